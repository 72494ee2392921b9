"""The `file:///…jsonl` destination: one fsync'd JSON line per record, appended across reopens."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiobotocore.session
import orjson
import pytest

from poller.destinations import DeliveryFailed, FailureDelivery, open_destination, parse_destination


def record(n: int) -> dict[str, Any]:
    return {"requestContext": {"requestId": f"req-{n}", "condition": "RetryAttemptsExhausted"}, "n": n}


async def deliver_all(path: Path, records: list[dict[str, Any]]) -> None:
    async with AsyncExitStack() as stack:
        destination = await open_destination(
            parse_destination(path.as_uri()),
            session=aiobotocore.session.get_session(),
            endpoint_url=None,
            stack=stack,
        )
        assert destination.kind == "file"
        for r in records:
            await destination.deliver(FailureDelivery(record=r, payload=b'{"Records":[]}'))


def lines(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_records_are_appended_one_line_each_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dirs" / "failures.jsonl"
    await deliver_all(path, [record(1), record(2)])
    await deliver_all(path, [record(3)])
    assert path.read_bytes().endswith(b"\n")
    # Only the record is written: the payload belongs to S3 destinations alone (spec §6.3).
    assert lines(path) == [record(1), record(2), record(3)]


async def test_concurrent_deliveries_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "failures.jsonl"
    async with AsyncExitStack() as stack:
        destination = await open_destination(
            parse_destination(path.as_uri()),
            session=aiobotocore.session.get_session(),
            endpoint_url=None,
            stack=stack,
        )
        await asyncio.gather(*(destination.deliver(FailureDelivery(record(n), None)) for n in range(50)))
    assert sorted(r["n"] for r in lines(path)) == list(range(50))


async def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "failures.jsonl"
    path.write_bytes(orjson.dumps(record(1)) + b"\n" + b'{"requestContext": {"requ')
    await deliver_all(path, [record(2)])
    first, torn, last = path.read_bytes().splitlines()
    assert orjson.loads(first) == record(1)
    assert torn == b'{"requestContext": {"requ'
    assert orjson.loads(last) == record(2)


async def test_an_unwritable_path_is_a_retriable_delivery_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(DeliveryFailed) as caught:
        await deliver_all(blocker / "failures.jsonl", [record(1)])
    assert caught.value.retriable
    assert str(blocker) in str(caught.value)
