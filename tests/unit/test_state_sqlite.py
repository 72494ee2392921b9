"""SqliteCheckpointStore: per-mapping/per-shard checkpoints that never move back and survive a crash."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from poller.state import Checkpoint, SqliteCheckpointStore, sequence_key

# A real Kinesis sequence number has 56-57 digits.
KINESIS_SEQ = "49590338271490256608559692538361571095921575989136588898"
KINESIS_SEQ_NEXT = "49590338271490256608559692540925702759324208523137515618"
KINESIS_SEQ_57 = "495903382714902566085596925383615710959215759891365888980"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteCheckpointStore]:
    s = await SqliteCheckpointStore.open(tmp_path / "state.sqlite3", clock=lambda: 1234.5)
    yield s
    await s.aclose()


async def test_round_trip(store: SqliteCheckpointStore) -> None:
    assert await store.get("m", "shardId-000000000000") is None
    await store.put(Checkpoint("m", "shardId-000000000000", KINESIS_SEQ))
    await store.put(Checkpoint("m", "shardId-000000000001", None))
    assert await store.get("m", "shardId-000000000000") == Checkpoint(
        "m", "shardId-000000000000", KINESIS_SEQ, False, 1234.5
    )
    assert await store.all_for("m") == {
        "shardId-000000000000": Checkpoint("m", "shardId-000000000000", KINESIS_SEQ, False, 1234.5),
        "shardId-000000000001": Checkpoint("m", "shardId-000000000001", None, False, 1234.5),
    }


async def test_updated_at_comes_from_the_clock(tmp_path: Path) -> None:
    now = [100.0]
    s = await SqliteCheckpointStore.open(tmp_path / "s.db", clock=lambda: now[0])
    await s.put(Checkpoint("m", "s1", "1", updated_at_epoch=5.0))
    now[0] = 200.0
    await s.put(Checkpoint("m", "s1", "2"))
    cp = await s.get("m", "s1")
    await s.aclose()
    assert cp is not None
    assert cp.updated_at_epoch == 200.0


async def test_mappings_are_independent(store: SqliteCheckpointStore) -> None:
    await store.put(Checkpoint("a", "shard-1", "100"))
    await store.put(Checkpoint("b", "shard-1", "5"))  # lower than a's, but a different mapping
    await store.put(Checkpoint("b", "shard-2", "7", shard_end=True))
    a1, b1 = await store.get("a", "shard-1"), await store.get("b", "shard-1")
    assert a1 is not None
    assert a1.sequence_number == "100"
    assert b1 is not None
    assert b1.sequence_number == "5"
    assert set(await store.all_for("a")) == {"shard-1"}
    assert set(await store.all_for("b")) == {"shard-1", "shard-2"}
    a2 = await store.get("a", "shard-2")
    assert a2 is None


async def test_integer_order_advances(store: SqliteCheckpointStore) -> None:
    await store.put(Checkpoint("m", "s", "9"))
    await store.put(Checkpoint("m", "s", "10"))  # string order would call this a step back
    cp = await store.get("m", "s")
    assert cp is not None
    assert cp.sequence_number == "10"


async def test_never_moves_backwards(store: SqliteCheckpointStore) -> None:
    await store.put(Checkpoint("m", "s", "10"))
    with capture_logs() as logs:
        await store.put(Checkpoint("m", "s", "9"))  # string order would call this a step forward
        await store.put(Checkpoint("m", "s", "0009"))  # so would a length compare keeping leading zeros
        await store.put(Checkpoint("m", "s", None))  # "not started" would rewind to StartingPosition
    cp = await store.get("m", "s")
    assert cp is not None
    assert cp.sequence_number == "10"
    warnings = [e for e in logs if e["event"] == "checkpoint_backwards_ignored"]
    assert [(e["log_level"], e["stored"], e["offered"]) for e in warnings] == [
        ("warning", "10", "9"),
        ("warning", "10", "0009"),
        ("warning", "10", None),
    ]


async def test_kinesis_sized_numbers(store: SqliteCheckpointStore) -> None:
    await store.put(Checkpoint("m", "s", KINESIS_SEQ))
    await store.put(Checkpoint("m", "s", KINESIS_SEQ_NEXT))
    await store.put(Checkpoint("m", "s", KINESIS_SEQ))  # older batch finishing late
    cp = await store.get("m", "s")
    assert cp is not None
    assert cp.sequence_number == KINESIS_SEQ_NEXT
    await store.put(Checkpoint("m", "s", KINESIS_SEQ_57))  # one digit longer: larger as an integer
    cp = await store.get("m", "s")
    assert cp is not None
    assert cp.sequence_number == KINESIS_SEQ_57
    await store.put(Checkpoint("m", "s", "0" + KINESIS_SEQ_NEXT))  # leading zero: still the smaller one
    cp = await store.get("m", "s")
    assert cp is not None
    assert cp.sequence_number == KINESIS_SEQ_57


def test_sequence_key_is_integer_order() -> None:
    nums = ["10", "9", "0009", KINESIS_SEQ_57, KINESIS_SEQ, "0", "1" + "0" * 127]
    assert sorted(nums, key=sequence_key) == sorted(nums, key=int)
    with pytest.raises(ValueError, match="decimal"):
        sequence_key("12a")


async def test_rejects_non_decimal_sequence_number(store: SqliteCheckpointStore) -> None:
    with pytest.raises(ValueError, match="decimal"):
        await store.put(Checkpoint("m", "s", "abc"))
    assert await store.get("m", "s") is None


async def test_concurrent_out_of_order_puts_keep_the_highest(store: SqliteCheckpointStore) -> None:
    order = [7, 3, 19, 1, 12, 18, 5, 2, 11, 4, 6, 13, 10, 9, 15, 8, 14, 17, 16, 0]
    with capture_logs():
        await asyncio.gather(*(store.put(Checkpoint("m", "s", str(n))) for n in order))
    cp = await store.get("m", "s")
    assert cp is not None
    assert cp.sequence_number == "19"


async def test_shard_end_is_sticky(store: SqliteCheckpointStore) -> None:
    await store.put(Checkpoint("m", "parent", "50", shard_end=True))
    await store.put(Checkpoint("m", "parent", "60", shard_end=False))
    cp = await store.get("m", "parent")
    assert cp is not None
    assert cp.shard_end is True
    assert cp.sequence_number == "60"


async def test_shard_end_recorded_even_with_a_stale_sequence_number(store: SqliteCheckpointStore) -> None:
    await store.put(Checkpoint("m", "parent", "60"))
    with capture_logs():
        await store.put(Checkpoint("m", "parent", "50", shard_end=True))
    cp = await store.get("m", "parent")
    assert cp is not None
    assert cp.shard_end is True
    assert cp.sequence_number == "60"


async def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    s = await SqliteCheckpointStore.open(path)
    await s.put(Checkpoint("m", "s", KINESIS_SEQ, shard_end=True))
    await s.aclose()
    await s.aclose()  # idempotent
    s = await SqliteCheckpointStore.open(path)
    cp = await s.get("m", "s")
    await s.aclose()
    assert cp is not None
    assert cp.sequence_number == KINESIS_SEQ
    assert cp.shard_end is True


async def test_put_is_durable_without_close(tmp_path: Path) -> None:
    """A child process puts and dies without closing (no clean shutdown); the parent reads the checkpoint."""
    path = tmp_path / "crash" / "state.sqlite3"
    script = textwrap.dedent(
        f"""
        import asyncio, os, traceback
        from pathlib import Path
        from poller.state import Checkpoint, SqliteCheckpointStore

        async def main():
            store = await SqliteCheckpointStore.open(Path({str(path)!r}))
            await store.put(Checkpoint("m", "shard-1", {KINESIS_SEQ!r}))
            await store.put(Checkpoint("m", "shard-2", "7", shard_end=True))
            os._exit(0)  # no aclose, no loop or interpreter shutdown: only what put committed is on disk

        try:
            asyncio.run(main())
        except BaseException:
            traceback.print_exc()
            os._exit(3)  # the store's thread is still open and would keep a normal exit waiting
        os._exit(4)  # unreachable unless main returned without dying
        """
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, stderr.decode()
    assert path.with_name(path.name + "-wal").exists()  # died with the WAL not checkpointed into the file
    s = await SqliteCheckpointStore.open(path)
    got = await s.all_for("m")
    await s.aclose()
    assert got["shard-1"].sequence_number == KINESIS_SEQ
    assert got["shard-2"].sequence_number == "7"
    assert got["shard-2"].shard_end is True


async def test_delete_mapping(store: SqliteCheckpointStore) -> None:
    await store.put(Checkpoint("a", "s1", "1"))
    await store.put(Checkpoint("a", "s2", "2"))
    await store.put(Checkpoint("b", "s1", "3"))
    assert await store.delete_mapping("a") == 2
    assert await store.all_for("a") == {}
    assert await store.delete_mapping("a") == 0
    b1 = await store.get("b", "s1")
    assert b1 is not None
    assert b1.sequence_number == "3"
    await store.put(Checkpoint("a", "s1", "0"))  # a re-created mapping starts over, lower is fine
    a1 = await store.get("a", "s1")
    assert a1 is not None
    assert a1.sequence_number == "0"


async def test_creates_parent_directories_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "var" / "deep" / "poller-state.sqlite3"
    s = await SqliteCheckpointStore.open(path)
    await s.aclose()
    assert path.is_file()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_refuses_unknown_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    s = await SqliteCheckpointStore.open(path)
    await s.aclose()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 2")
    with pytest.raises(RuntimeError, match="schema version 2"):
        await SqliteCheckpointStore.open(path)


async def test_synchronous_full(store: SqliteCheckpointStore) -> None:
    cur = await store._db.execute("PRAGMA synchronous")
    assert await cur.fetchone() == (2,)  # FULL; NORMAL (1) can lose the last commits on power loss
