"""Checkpoint stores for stream sources (DESIGN §2 `state/`)."""

from poller.state.base import Checkpoint, CheckpointStore, sequence_key
from poller.state.sqlite import SqliteCheckpointStore

__all__ = ["Checkpoint", "CheckpointStore", "SqliteCheckpointStore", "sequence_key"]
