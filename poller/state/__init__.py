"""Where stream sources keep their progress (DESIGN §2 `state/`): checkpoints, and the shard leases
that let several replicas share a stream.

- `base`: the `Checkpoint` value and the `CheckpointStore` protocol.
- `sqlite`: the embedded default checkpoint store.
- `dynamodb`: the shared backend: checkpoints and shard leases in one table, conditional writes.
- `leases`: the lease coordinator (which shards this replica runs: takes, renewals, fencing,
  handoffs) and `LeaseStore`, the checkpoint store that writes only under a held lease.
"""

from poller.state.base import Checkpoint, CheckpointStore, sequence_key
from poller.state.sqlite import SqliteCheckpointStore

__all__ = ["Checkpoint", "CheckpointStore", "SqliteCheckpointStore", "sequence_key"]
