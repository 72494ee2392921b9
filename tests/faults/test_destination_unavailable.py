"""An on-failure destination that cannot be written for a while (DESIGN §3): progress blocks, the
failure is reported, nothing is dropped — and that survives a kill -9 while blocked.

A stream mapping with MaximumRetryAttempts 0 sends its failed record to an SQS queue that does not
exist yet: `poller_destination_delivery_failures_total` grows, the checkpoint stays before the
failed record and the records after it wait; another mapping keeps flowing. The service is then
killed and started again on the same checkpoints: the failed record is invoked again (at least
once) and blocks again. Once the queue is created the record arrives, the shard moves on, and
`poller_records_dropped_total` is 0 throughout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import assert_alive
from tests.integration.conftest import FunctionServer, PollerProcess, StartPoller, put_kinesis, stream_mapping
from tests.integration.test_stream_failures import (
    Function,
    Inbox,
    fail_when_present,
    new_queue,
    queue_arn,
    unique,
    with_destination,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


@dataclass
class StreamSource:
    arn: str
    write: Callable[[list[str]], None]
    batch_info: str
    """The key of the failure record's batch description (spec §6.2)."""


def checkpoint(poller: PollerProcess, name: str) -> str | None:
    (mapping,) = [m for m in poller.status()["mappings"] if m["Name"] == name]
    positions = list(mapping["Positions"].values())
    return positions[0]["SequenceNumber"] if positions else None


def sequence_of(function: Function, data: str) -> str:
    for call in function.calls:
        for value, sequence in zip(call.data, call.sequence_numbers, strict=True):
            if value == data:
                return sequence
    raise AssertionError(f"{data} was never invoked")


def metric(poller: PollerProcess, name: str, mapping: str) -> float:
    return poller.metric(name, mapping=mapping)


@pytest.mark.parametrize("kind", ["kinesis", "dynamodb"])
async def test_a_destination_missing_for_a_while_blocks_then_delivers_and_drops_nothing(
    kind: str,
    tmp_path: Path,
    make_stream: Any,
    kinesis: Any,
    make_table: Any,
    dynamodb: Any,
    sqs: Any,
    function_server: FunctionServer,
    other_function_server: FunctionServer,
    start_poller: StartPoller,
) -> None:
    if kind == "kinesis":
        stream = make_stream()

        def put_records(data: list[str]) -> None:
            put_kinesis(kinesis, stream, [("pk", d.encode()) for d in data])

        source = StreamSource(stream.arn, put_records, "KinesisBatchInfo")
    else:
        table = make_table("KEYS_ONLY")

        def put_items(data: list[str]) -> None:
            for d in data:
                dynamodb.put_item(TableName=table.name, Item={"id": {"S": d}})

        source = StreamSource(table.stream_arn, put_items, "DDBStreamBatchInfo")
    neighbour = make_stream()
    name, queue_name = f"blocked-{kind}", unique("late-destination")
    function = Function(function_server, fail_when_present(lambda d: d.startswith("bad")))
    source.write(["good-0", "bad-0", "good-1", "good-2"])
    state = {"state": {"path": str(tmp_path / "state.sqlite3")}}
    mappings = [
        stream_mapping(
            name,
            source.arn,
            function_server.url,
            BatchSize=1,
            MaximumRetryAttempts=0,
            **with_destination(queue_arn(queue_name)),
        ),
        stream_mapping("flowing", neighbour.arn, other_function_server.url),
    ]
    poller = await start_poller(mappings, settings=state)

    def failures(p: PollerProcess) -> float:
        return metric(p, "poller_destination_delivery_failures_total", name)

    await wait_until(lambda: failures(poller) >= 2, timeout=30, what="two failed deliveries")
    good_0 = sequence_of(function, "good-0")
    assert checkpoint(poller, name) == good_0, "the checkpoint must not pass the undelivered record"
    assert function.data() == [["good-0"], ["bad-0"]], "the records after it wait"
    assert metric(poller, "poller_records_dropped_total", name) == 0
    assert metric(poller, "poller_records_sent_to_destination_total", name) == 0
    # Blocking is per shard: another mapping keeps flowing meanwhile.
    put_kinesis(kinesis, neighbour, [("k", f"n{i}".encode()) for i in range(5)])
    await wait_until(lambda: len(other_function_server.records) >= 5, timeout=30, what="the other mapping")

    poller.kill()
    restarted = await start_poller(mappings, settings=state)
    await wait_until(lambda: failures(restarted) >= 1, timeout=30, what="the failed record blocking again")
    # At least once: the record the crash left undelivered was invoked again, not skipped.
    assert function.data()[2:] == [["bad-0"]]
    assert checkpoint(restarted, name) in (None, good_0)
    assert metric(restarted, "poller_records_dropped_total", name) == 0

    inbox: Inbox = new_queue(sqs, queue_name)
    [record] = await inbox.wait_for(1, timeout=60)
    await wait_until(
        lambda: [d for c in function.data() for d in c][-2:] == ["good-1", "good-2"],
        timeout=30,
        what="the records after it",
    )
    good_2 = sequence_of(function, "good-2")
    await wait_until(lambda: checkpoint(restarted, name) == good_2, timeout=15, what="the shard moving on")

    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    info = record[source.batch_info]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == sequence_of(function, "bad-0")
    assert info["batchSize"] == 1
    assert metric(restarted, "poller_records_sent_to_destination_total", name) == 1
    assert metric(restarted, "poller_records_dropped_total", name) == 0
    assert failures(restarted) >= 1
    assert [d for c in function.data() for d in c].count("good-1") == 1
    assert inbox.poll() == 1, "one failure record, not one per process"
    assert json.loads(inbox.bodies[0]) == record
    assert_alive(restarted)
