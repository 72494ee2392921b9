"""The AWS endpoint goes away for 20 s and comes back (DESIGN §3): the service rides it out by
itself — no restart of `poller run` — then delivers everything and loses nothing.

The poller talks to a moto server of this test's own, on a fixed port. It is stopped (the listener
closed and every open connection severed) while records are pending, and started again on the same
port. moto keeps its state in this process, not in the server thread, so the queue, the stream and
the records written meanwhile (through the session's other moto server, which shares that state)
are all there when it returns; the test checks that too.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import boto3
import pytest
from aiohttp import web

from tests.faults.conftest import RestartableMotoServer, assert_alive
from tests.integration.conftest import REGION, FunctionServer, StartPoller, free_port, stream_mapping
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

OUTAGE_SECONDS = 20.0


def mapping_states(status: dict[str, Any]) -> dict[str, str]:
    return {m["Name"]: m["State"] for m in status["mappings"]}


async def test_the_service_recovers_by_itself_from_a_20_s_aws_outage(
    aws_env: dict[str, str], moto_endpoint: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    server = RestartableMotoServer(free_port())
    await asyncio.to_thread(server.start)
    running = True
    try:
        suffix = uuid.uuid4().hex[:8]
        sqs = boto3.client("sqs", endpoint_url=server.endpoint, region_name=REGION)
        kinesis = boto3.client("kinesis", endpoint_url=server.endpoint, region_name=REGION)
        # The session's moto: another server on the same in-process state, up during the outage.
        shared_sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name=REGION)
        shared_kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint, region_name=REGION)
        queue_url = sqs.create_queue(QueueName=f"outage-{suffix}", Attributes={"VisibilityTimeout": "2"})[
            "QueueUrl"
        ]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        stream_name = f"outage-{suffix}"
        kinesis.create_stream(StreamName=stream_name, ShardCount=1)
        stream_arn = kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"][
            "StreamARN"
        ]

        def send(client: Any, bodies: list[str]) -> None:
            for start in range(0, len(bodies), 10):
                chunk = bodies[start : start + 10]
                client.send_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)],
                )

        def put(client: Any, data: list[str]) -> None:
            for d in data:  # one writer, in order (DESIGN §4)
                client.put_record(StreamName=stream_name, PartitionKey="k", Data=d.encode())

        async def work(_: dict[str, Any]) -> web.StreamResponse:
            await asyncio.sleep(0.02)  # the function's work
            return web.json_response(None)

        function_server.behaviour = work

        def sqs_seen() -> set[str]:
            return {r["body"] for r in function_server.records if "body" in r}

        def kinesis_seen() -> set[str]:
            return {
                base64.b64decode(r["kinesis"]["data"]).decode()
                for r in function_server.records
                if "kinesis" in r
            }

        mappings = [
            {"Name": "outage-sqs", "EventSourceArn": queue_arn, "FunctionName": function_server.url},
            stream_mapping("outage-kinesis", stream_arn, function_server.url, BatchSize=10),
        ]
        poller = await start_poller(mappings, env={"POLLER_AWS__ENDPOINT_URL": server.endpoint})

        before = [f"before-{i}" for i in range(10)]
        send(sqs, before)
        put(kinesis, before)
        await wait_until(
            lambda: set(before) <= sqs_seen() and set(before) <= kinesis_seen(),
            timeout=30,
            what="first records",
        )

        # Records pending as the endpoint goes away: written just before, and while it is down.
        edge = [f"edge-{i}" for i in range(5)]
        send(sqs, edge)
        put(kinesis, edge)
        await asyncio.to_thread(server.stop)
        running = False
        down_at = time.monotonic()
        assert not server.answers()
        during = [f"during-{i}" for i in range(10)]
        send(shared_sqs, during)
        put(shared_kinesis, during)

        def outage_reported(name: str) -> bool:
            state = mapping_states(poller.status())[name]
            return state != "Enabled" or poller.metric("poller_poll_errors_total", mapping=name) > 0

        await wait_until(
            lambda: outage_reported("outage-sqs") and outage_reported("outage-kinesis"),
            timeout=OUTAGE_SECONDS - 2,
            what="the outage reported in /status or poll_errors_total",
        )
        while time.monotonic() - down_at < OUTAGE_SECONDS:
            assert_alive(poller)  # /healthz never depends on AWS (DESIGN §1.6)
            await asyncio.sleep(1)  # the outage's length, not synchronisation
        assert not (set(during) & (sqs_seen() | kinesis_seen())), "the endpoint was not really down"
        outage_status = poller.status()

        await asyncio.to_thread(server.start)
        running = True
        # moto's state survived the restart of its server thread.
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        assert attrs["QueueArn"] == queue_arn
        assert (
            kinesis.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]["StreamARN"]
            == stream_arn
        )

        everything = set(before) | set(edge) | set(during)
        await wait_until(
            lambda: sqs_seen() == everything and kinesis_seen() == everything,
            timeout=120,
            what="every record after the outage",
        )
        await wait_until(
            lambda: mapping_states(poller.status()) == {"outage-sqs": "Enabled", "outage-kinesis": "Enabled"},
            timeout=60,
            what="both mappings Enabled again",
        )

        def queue_empty() -> bool:
            got = sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return bool(
                got["ApproximateNumberOfMessages"] == got["ApproximateNumberOfMessagesNotVisible"] == "0"
            )

        await wait_until(queue_empty, timeout=60, what="every message deleted")
        assert_alive(poller)  # the same process throughout: it was never restarted
        print(
            "during the outage:",
            {m["Name"]: (m["State"], m["StateTransitionReason"][:80]) for m in outage_status["mappings"]},
            "poll errors:",
            {
                n: poller.metric("poller_poll_errors_total", mapping=n)
                for n in ("outage-sqs", "outage-kinesis")
            },
        )
    finally:
        if running:
            await asyncio.to_thread(server.stop)
