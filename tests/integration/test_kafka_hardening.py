"""The Kafka source's edges through the real `poller run` against Tansu (issue 13)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import FunctionServer, PollerProcess, StartPoller
from tests.integration.kafka_broker import create_topic, read_topic
from tests.integration.test_kafka_source import FAST_GROUP, kafka_mapping
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

LARGE_VALUE_BYTES = 1_500_000
"""Base64'd inside the §6.5 document, about 2 MB: over aiokafka's 1 MB default request size, and
within what Tansu accepts (it does not enforce `message.max.bytes`; see kafka_broker.py)."""


async def test_a_failure_message_over_one_megabyte_reaches_the_kafka_destination(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §6.5: the service's kafka:// producers take what a failed large record becomes."""

    async def fail(_: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"errorMessage": "boom"}, headers={"X-Amz-Function-Error": "Unhandled"})

    function_server.behaviour = fail
    topic = await create_topic(kafka_bootstrap, partitions=1)
    failures = await create_topic(kafka_bootstrap, partitions=1)
    value = bytes(range(256)) * (LARGE_VALUE_BYTES // 256)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"big", partition=0)
    finally:
        await producer.stop()
    mapping = kafka_mapping(
        "large-failure",
        topic,
        kafka_bootstrap,
        function_server.url,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": f"kafka://{failures}"}},
    )
    poller = await start_poller([mapping], settings=FAST_GROUP)

    def outcome(name: str) -> float:
        return poller.metric(name, mapping="large-failure")

    await wait_until(
        lambda: (
            outcome("poller_records_sent_to_destination_total") + outcome("poller_records_dropped_total") >= 1
        ),
        timeout=60,
        what="the failed record delivered or dropped",
    )
    # A producer with aiokafka's 1 MB request size refuses the message: the record is dropped.
    assert outcome("poller_records_dropped_total") == 0
    assert outcome("poller_records_sent_to_destination_total") == 1
    [message] = await read_topic(kafka_bootstrap, failures, 1)
    assert message.key == b"big"
    assert len(message.value) > 1024 * 1024
    document = json.loads(message.value)
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    [failed] = document["payload"]["records"][f"{topic}-0"]
    assert base64.b64decode(failed["value"]) == value


def assigned(poller: PollerProcess) -> int:
    return len(poller.status()["mappings"][0]["Positions"])


async def test_a_member_finishing_a_long_invoke_is_not_evicted_when_another_joins(
    kafka_bootstrap: str, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """A revoked partition's batch runs on for 12 s (FunctionTimeout 15) while a second process
    joins the group: the first stays a member until it is done, so no record is invoked by both
    at once, and each record is processed (the in-flight one once).

    Kafka and Redpanda (POLLER_TEST_KAFKA_BOOTSTRAP) drop a member that has not rejoined within its
    rebalance timeout, which aiokafka sets to the session timeout (6 s here) unless told otherwise.
    Tansu evicts on the session timeout alone, which heartbeats keep alive during the revocation
    (its coordinator/group/administrator.rs), so against it this test holds either way; the
    derived timeouts themselves are checked in tests/unit/test_kafka_hardening.py.
    """
    in_flight: dict[str, int] = {}
    overlaps: list[str] = []
    done: list[str] = []

    async def slow(event: dict[str, Any]) -> web.StreamResponse:
        values = [base64.b64decode(r["value"]).decode() for rs in event["records"].values() for r in rs]
        for v in values:
            if in_flight.get(v):
                overlaps.append(v)
            in_flight[v] = in_flight.get(v, 0) + 1
        try:
            if any(v.startswith("slow") for v in values):
                await asyncio.sleep(12)  # the function's work, well within FunctionTimeout
            return web.json_response(None)
        finally:
            for v in values:
                in_flight[v] -= 1
            done.extend(values)

    function_server.behaviour = slow
    topic = await create_topic(kafka_bootstrap, partitions=2)
    mapping = kafka_mapping("long-invoke", topic, kafka_bootstrap, function_server.url, FunctionTimeout=15)
    first = await start_poller([mapping], settings=FAST_GROUP)
    await wait_until(lambda: assigned(first) == 2, timeout=60, what="both partitions")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"slow-0", partition=0)
        await producer.send_and_wait(topic, b"slow-1", partition=1)
    finally:
        await producer.stop()
    await wait_until(
        lambda: in_flight.get("slow-0") == in_flight.get("slow-1") == 1, timeout=30, what="both slow invokes"
    )
    second = await start_poller([mapping], settings=FAST_GROUP)
    await wait_until(lambda: len(done) >= 2, timeout=60, what="the slow invokes finished")
    await wait_until(
        lambda: assigned(first) + assigned(second) == 2 and assigned(second) > 0,
        timeout=60,
        what="partitions shared",
    )
    assert overlaps == []
    assert sorted(done) == ["slow-0", "slow-1"]
