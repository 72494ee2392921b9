"""Where discarded stream records go, through the real `poller run`: each kind of on-failure
destination besides SQS — SNS (read back through a subscribed queue), S3 (spec §6.3 key and
`payload`), `file:///….jsonl` (DESIGN §1.4) — with the exact spec §6.2 record; no destination (a
counted drop); and a destination that cannot be written yet (the shard waits, DESIGN §3)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.conftest import REGION, FunctionServer, StartPoller, stream_mapping
from tests.integration.test_stream_failures import (
    UNHANDLED_RESPONSE,
    Function,
    Inbox,
    checked_timestamp,
    expected_record,
    fail_when_present,
    new_queue,
    position,
    queue_arn,
    unique,
    wait_checkpoint,
    with_destination,
    write,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Sink:
    """One destination of one kind, and how to read what was written to it."""

    def __init__(self, kind: str, moto_endpoint: str, tmp_path: Path) -> None:
        self.kind = kind

        def client(service: str) -> Any:
            return boto3.client(service, endpoint_url=moto_endpoint, region_name=REGION)

        self.s3 = client("s3")
        self.inbox: Inbox | None = None
        if kind == "sns":
            sns = client("sns")
            self.topic_arn = sns.create_topic(Name=unique("failures"))["TopicArn"]
            self.inbox = new_queue(client("sqs"), unique("subscriber"))
            sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=self.inbox.arn)
            self.uri = self.topic_arn
        elif kind == "s3":
            self.bucket = unique("failures")
            self.s3.create_bucket(Bucket=self.bucket)
            self.uri = f"arn:aws:s3:::{self.bucket}"
        else:
            self.path = tmp_path / "out" / "failures.jsonl"
            self.uri = f"file://{self.path}"

    def written(self) -> list[tuple[str, dict[str, Any]]]:
        """(where, document) of everything written so far."""
        if self.kind == "sns":
            assert self.inbox is not None
            self.inbox.poll()
            envelopes = [json.loads(body) for body in self.inbox.bodies]
            assert all(e["TopicArn"] == self.topic_arn for e in envelopes)
            return [(e["Type"], json.loads(e["Message"])) for e in envelopes]
        if self.kind == "s3":
            listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
            return [
                (o["Key"], json.loads(self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()))
                for o in listed
            ]
        if not self.path.exists():
            return []
        return [("line", json.loads(line)) for line in self.path.read_text().splitlines()]


@pytest.mark.parametrize("kind", ["sns", "s3", "file"])
async def test_retry_attempts_exhausted_record_reaches_the_destination(
    kind: str,
    moto_endpoint: str,
    tmp_path: Path,
    make_stream: Any,
    kinesis: Any,
    function_server: FunctionServer,
    start_poller: StartPoller,
) -> None:
    """spec §6.2 for SNS (the record is the SNS Message) and file (one JSON line per failure);
    §6.3 for S3: key aws/lambda/<mapping Name>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid> from
    the failure timestamp, and `payload` = the invocation event of the discarded records, as a string."""
    sink = Sink(kind, moto_endpoint, tmp_path)
    stream = make_stream()
    name = f"to-{kind}"
    shard, seqs = write(kinesis, stream, ["bad-0", "bad-1", "good-0"])
    function = Function(function_server, fail_when_present(lambda d: d.startswith("bad")))
    poller = await start_poller(
        [
            stream_mapping(
                name,
                stream.arn,
                function_server.url,
                BatchSize=2,
                MaximumRetryAttempts=1,
                **with_destination(sink.uri),
            )
        ],
        settings={"destinations": {"file_root": str(tmp_path)}},  # where a file sink writes
    )
    await wait_until(lambda: len(sink.written()) >= 1, timeout=30, what=f"a record in the {kind} destination")
    await wait_checkpoint(poller, shard, seqs[2])

    assert function.data() == [["bad-0", "bad-1"], ["bad-0", "bad-1"], ["good-0"]]
    [(where, document)] = sink.written()
    last = function.calls[1]
    record = {k: v for k, v in document.items() if k != "payload"}
    timestamp = checked_timestamp(record, not_before=last.at)
    assert record == expected_record(
        mapping=name,
        condition="RetryAttemptsExhausted",
        invoke_count=2,
        last_call=last,
        discarded=last.records,
        shard_id=shard,
        stream_arn=stream.arn,
        timestamp=timestamp,
        response=UNHANDLED_RESPONSE,
    )
    if kind == "s3":
        day, clock = timestamp[:10], timestamp[11:19]
        assert re.fullmatch(
            rf"aws/lambda/{name}/{shard}/{day.replace('-', '/')}/{day}T{clock.replace(':', '.')}-{UUID}",
            where,
        ), where
        assert isinstance(document["payload"], str)
        assert json.loads(document["payload"]) == last.event
    else:
        assert "payload" not in document
    if kind == "sns":
        assert where == "Notification"
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 2
    assert poller.metric("poller_retries_total", mapping=name) == 1
    assert poller.metric("poller_destination_delivery_failures_total", mapping=name) == 0
    assert poller.terminate() == 0
    assert len(sink.written()) == 1


# -- 6. no destination -----------------------------------------------------------------------------


async def test_without_a_destination_exhausted_records_are_dropped_and_counted(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §5.2: discarded records with no destination are gone; the shard moves on."""
    stream = make_stream()
    name = "dropping"
    shard, seqs = write(kinesis, stream, ["bad-0", "bad-1", "good-0", "good-1"])
    function = Function(function_server, fail_when_present(lambda d: d.startswith("bad")))
    poller = await start_poller(
        [stream_mapping(name, stream.arn, function_server.url, BatchSize=2, MaximumRetryAttempts=0)]
    )
    await wait_checkpoint(poller, shard, seqs[3])

    assert function.data() == [["bad-0", "bad-1"], ["good-0", "good-1"]]
    assert poller.metric("poller_records_dropped_total", mapping=name, reason="retry_attempts_exhausted") == 2
    assert poller.metric("poller_records_dropped_total", mapping=name) == 2
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 0
    assert poller.metric("poller_retries_total", mapping=name) == 0
    dropped = [line for line in poller.logs() if line.get("event") == "records_dropped"]
    assert len(dropped) == 1
    assert (dropped[0]["records"], dropped[0]["first"], dropped[0]["last"]) == (2, seqs[0], seqs[1])


# -- 7. a destination that cannot be written -------------------------------------------------------


async def test_unwritable_destination_holds_the_shard_until_it_can_be_written(
    make_stream: Any, kinesis: Any, sqs: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """DESIGN §3: a destination that cannot be written blocks progress (and is reported) rather than
    dropping: the checkpoint stays before the failed record, the next record waits, and once the
    queue exists the record is delivered and the shard moves on."""
    stream = make_stream()
    name = "blocked"
    queue_name = unique("late")
    shard, seqs = write(kinesis, stream, ["good-0", "bad-0", "good-1"])
    function = Function(function_server, fail_when_present(lambda d: d.startswith("bad")))
    poller = await start_poller(
        [
            stream_mapping(
                name,
                stream.arn,
                function_server.url,
                BatchSize=1,
                MaximumRetryAttempts=0,
                **with_destination(queue_arn(queue_name)),
            )
        ]
    )
    await wait_until(
        lambda: poller.metric("poller_destination_delivery_failures_total", mapping=name) >= 2,
        timeout=20,
        what="two failed deliveries",
    )
    assert position(poller, shard) == seqs[0]
    assert function.data() == [["good-0"], ["bad-0"]]
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 0
    assert any(line.get("event") == "destination_delivery_failed" for line in poller.logs())

    inbox = new_queue(sqs, queue_name)
    [record] = await inbox.wait_for(1, timeout=30)
    await wait_checkpoint(poller, shard, seqs[2])

    assert function.data() == [["good-0"], ["bad-0"], ["good-1"]]
    last = function.calls[1]
    assert record == expected_record(
        mapping=name,
        condition="RetryAttemptsExhausted",
        invoke_count=1,
        last_call=last,
        discarded=last.records,
        shard_id=shard,
        stream_arn=stream.arn,
        timestamp=checked_timestamp(record, not_before=last.at),
        response=UNHANDLED_RESPONSE,
    )
    assert poller.metric("poller_records_sent_to_destination_total", mapping=name) == 1
    assert poller.metric("poller_records_dropped_total", mapping=name) == 0
    assert poller.metric("poller_destination_delivery_failures_total", mapping=name) >= 2
    assert inbox.poll() == 1
