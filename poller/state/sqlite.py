"""SQLite checkpoint store: the embedded default of `state.backend` (DESIGN §1.3, §2, §3).

It also keeps the mappings made through the Lambda API (DESIGN §1.9), as JSON text the API layer
writes and reads: the store knows nothing of their shape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from poller.state.base import Checkpoint, sequence_key

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE checkpoints (
    mapping TEXT NOT NULL,
    shard_id TEXT NOT NULL,
    sequence_number TEXT,  -- decimal text: up to 128 digits overflow INTEGER, order is compared in Python
    shard_end INTEGER NOT NULL DEFAULT 0,
    updated_at_epoch REAL NOT NULL,
    PRIMARY KEY (mapping, shard_id)
) WITHOUT ROWID;
"""

# Mappings made through the Lambda API, by UUID. A table of its own that older code never reads, so
# it is added to a file of any version without bumping it (a downgrade still opens the file).
_API_MAPPINGS = """
CREATE TABLE IF NOT EXISTS api_mappings (
    uuid TEXT NOT NULL PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS = "mapping, shard_id, sequence_number, shard_end, updated_at_epoch"


def _row(row: Any) -> Checkpoint:
    return Checkpoint(row[0], row[1], row[2], bool(row[3]), float(row[4]))


class SqliteCheckpointStore:
    """One connection for the process; every operation holds one asyncio.Lock.

    The lock covers reads too: aiosqlite runs each statement separately on the shared connection, so a
    read between a put's BEGIN and COMMIT would see a checkpoint that is not yet durable, and two puts
    interleaving their read-compare-write would let an older sequence number win.
    """

    def __init__(self, db: aiosqlite.Connection, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: Path, *, clock: Callable[[], float] = time.time) -> SqliteCheckpointStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a put's read and write are one transaction.
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            mode = await _scalar(db, "PRAGMA journal_mode=WAL")
            if str(mode).lower() != "wal":
                raise RuntimeError(f"{path}: SQLite refused WAL journal mode (got {mode!r})")
            # WAL + NORMAL does not fsync the WAL on commit: a commit survives the process being killed
            # (the OS still holds the pages) but the last commits can silently roll back on power loss, an
            # OS crash or the loss of a node under a container. FULL fsyncs the WAL on every commit, which
            # is what "durable when put returns" promises; it costs one fsync per checkpoint, i.e. per batch.
            await db.execute("PRAGMA synchronous=FULL")
            # Another process on the same file (a mistaken second replica) waits instead of failing at once.
            await db.execute("PRAGMA busy_timeout=5000")
            await _migrate(db, path)
        except BaseException:
            await db.close()
            raise
        return cls(db, clock)

    async def get(self, mapping: str, shard_id: str) -> Checkpoint | None:
        async with self._lock:
            cur = await self._db.execute(
                f"SELECT {_COLUMNS} FROM checkpoints WHERE mapping = ? AND shard_id = ?", (mapping, shard_id)
            )
            row = await cur.fetchone()
        return None if row is None else _row(row)

    async def all_for(self, mapping: str) -> dict[str, Checkpoint]:
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_COLUMNS} FROM checkpoints WHERE mapping = ? ORDER BY shard_id", (mapping,)
            )
        return {cp.shard_id: cp for cp in map(_row, rows)}

    async def put(self, checkpoint: Checkpoint) -> None:
        if checkpoint.sequence_number is not None:
            sequence_key(checkpoint.sequence_number)  # reject garbage before it can poison comparisons
        async with self._lock, _transaction(self._db):
            cur = await self._db.execute(
                f"SELECT {_COLUMNS} FROM checkpoints WHERE mapping = ? AND shard_id = ?",
                (checkpoint.mapping, checkpoint.shard_id),
            )
            row = await cur.fetchone()
            stored = None if row is None else _row(row)
            sequence_number = checkpoint.sequence_number
            shard_end = checkpoint.shard_end or (stored is not None and stored.shard_end)
            if stored is not None and _is_behind(sequence_number, stored.sequence_number):
                # Under ParallelizationFactor > 1 batches of one shard finish out of order; the later
                # write of an earlier batch must not move the shard back (records would be redelivered).
                structlog.get_logger("poller.state").warning(
                    "checkpoint_backwards_ignored",
                    mapping=checkpoint.mapping,
                    shard_id=checkpoint.shard_id,
                    stored=stored.sequence_number,
                    offered=sequence_number,
                )
                if shard_end == stored.shard_end:
                    return
                sequence_number = stored.sequence_number
            await self._db.execute(
                f"INSERT INTO checkpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (mapping, shard_id) DO UPDATE SET sequence_number = excluded.sequence_number, "
                "shard_end = excluded.shard_end, updated_at_epoch = excluded.updated_at_epoch",
                (checkpoint.mapping, checkpoint.shard_id, sequence_number, int(shard_end), self._clock()),
            )

    async def delete_mapping(self, mapping: str) -> int:
        async with self._lock, _transaction(self._db):
            cur = await self._db.execute("DELETE FROM checkpoints WHERE mapping = ?", (mapping,))
            return cur.rowcount

    async def api_mappings(self) -> dict[str, str]:
        """Every API-made mapping: UUID → its JSON body."""
        async with self._lock:
            rows = await self._db.execute_fetchall("SELECT uuid, body FROM api_mappings ORDER BY uuid")
        return {str(row[0]): str(row[1]) for row in rows}

    async def put_api_mapping(self, uuid: str, body: str) -> None:
        async with self._lock, _transaction(self._db):
            await self._db.execute(
                "INSERT INTO api_mappings (uuid, body) VALUES (?, ?) "
                "ON CONFLICT (uuid) DO UPDATE SET body = excluded.body",
                (uuid, body),
            )

    async def delete_api_mapping(self, uuid: str) -> None:
        async with self._lock, _transaction(self._db):
            await self._db.execute("DELETE FROM api_mappings WHERE uuid = ?", (uuid,))

    async def aclose(self) -> None:
        async with self._lock:
            if not self._closed:
                self._closed = True
                await self._db.close()


def _is_behind(offered: str | None, stored: str | None) -> bool:
    if stored is None:
        return False
    # "Not started" after a position would rewind the shard to its starting position.
    return offered is None or sequence_key(offered) < sequence_key(stored)


@asynccontextmanager
async def _transaction(db: aiosqlite.Connection) -> AsyncIterator[None]:
    # IMMEDIATE takes the write lock before put's read, so no other connection can change the row between.
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")


async def _scalar(db: aiosqlite.Connection, sql: str) -> Any:
    cur = await db.execute(sql)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    async with _transaction(db):
        exists = await _scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = 'schema_version'")
        if not exists:
            await db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            await db.execute(_SCHEMA)
            await db.execute(_API_MAPPINGS)
            await db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            return
        version = await _scalar(db, "SELECT max(version) FROM schema_version")
        # Later versions add migrations here; a newer file than this code must not be written by it.
        if version != SCHEMA_VERSION:
            raise RuntimeError(
                f"{path}: checkpoint schema version {version}; this poller knows {SCHEMA_VERSION}"
            )
        await db.execute(_API_MAPPINGS)
