"""The DESIGN §1.7 metric catalogue for every source, read from an injected registry after real
traffic through an in-process service: every family present per mapping, labels bounded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from poller.config import load_config
from poller.observability.metrics import ACK_KINDS, INVOKE_OUTCOMES, MAPPING_STATES
from poller.runtime.app import Service
from tests.integration.conftest import ACCOUNT, REGION, free_port, put_kinesis
from tests.integration.kafka_broker import Produce, create_topic, produce
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

HANDLER = """
import base64


def handle(event, context):
    text = str(event)
    for record in event.get("Records", []):
        if "kinesis" in record:
            text += base64.b64decode(record["kinesis"]["data"]).decode()
    if "poison" in text:
        raise ValueError("poison record")
    return None
"""

EVERY_MAPPING = (
    "poller_records_polled_total",
    "poller_records_filtered_total",
    "poller_records_invoked_total",
    "poller_records_failed_total",
    "poller_records_sent_to_destination_total",
    "poller_destination_delivery_failures_total",
    "poller_invocations_total",
    "poller_retries_total",
    "poller_poll_errors_total",
    "poller_invocation_duration_seconds_count",
    "poller_batch_size_records_count",
    "poller_buffered_records",
    "poller_in_flight_batches",
    "poller_mapping_state",
)
ALLOWED_LABELS = {
    "mapping": None,
    "outcome": set(INVOKE_OUTCOMES),
    "state": set(MAPPING_STATES),
    "reason": {
        "retry_attempts_exhausted",
        "record_age_exceeded",
        "maximum_payload_size_exceeded",
        "destination_rejected",
    },
    "kind": {"take", "steal", *ACK_KINDS},
    "result": {"success", "failure"},
    "le": None,
}


def samples(registry: CollectorRegistry) -> list[Any]:
    return [s for family in registry.collect() for s in family.samples if s.name.startswith("poller_")]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples(registry)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_every_family_is_reported_for_every_source_with_bounded_labels(
    tmp_path: Path,
    moto_endpoint: str,
    sqs: Any,
    kinesis: Any,
    make_queue: Any,
    make_stream: Any,
    make_table: Any,
    dynamodb: Any,
    kafka_bootstrap: str,
) -> None:
    queue = make_queue(visibility=2)
    stream = make_stream()
    table = make_table("NEW_IMAGE")
    failures = make_queue()
    topic = await create_topic(kafka_bootstrap, partitions=2)
    (tmp_path / "handler.py").write_text(HANDLER)
    mappings = [
        {
            "Name": "sqs",
            "EventSourceArn": queue.arn,
            "FunctionName": "python:handler.handle",
            "FunctionTimeout": 1,
            "BatchSize": 1,
            "FilterCriteria": {"Filters": [{"Pattern": json.dumps({"body": [{"anything-but": "skip"}]})}]},
        },
        {
            "Name": "kinesis",
            "EventSourceArn": stream.arn,
            "FunctionName": "python:handler.handle",
            "StartingPosition": "TRIM_HORIZON",
            "MaximumRetryAttempts": 0,
            "DestinationConfig": {"OnFailure": {"Destination": failures.arn}},
        },
        {
            "Name": "dynamodb",
            "EventSourceArn": table.stream_arn,
            "FunctionName": "python:handler.handle",
            "StartingPosition": "TRIM_HORIZON",
            "MaximumRetryAttempts": 0,
        },
        {
            "Name": "kafka",
            "Topics": [topic],
            "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [kafka_bootstrap]}},
            "FunctionName": "python:handler.handle",
        },
    ]
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "all.yaml").write_text(json.dumps({"EventSourceMappings": mappings}))
    settings = {
        "aws": {"region": REGION, "account_id": ACCOUNT, "endpoint_url": moto_endpoint},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "kafka": {"session_timeout_ms": 6000},
        "mappings": ["mappings/"],
    }
    (tmp_path / "poller.yaml").write_text(json.dumps(settings))
    loaded = load_config(tmp_path / "poller.yaml", environ={}, cwd=tmp_path)
    assert not loaded.errors, loaded.errors

    for body in ("ok-1", "skip", "poison"):
        sqs.send_message(QueueUrl=queue.url, MessageBody=body)
    put_kinesis(kinesis, stream, [("k", b"ok"), ("k", b"poison")])
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "ok"}})
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "poison"}})
    await produce(kafka_bootstrap, topic, [Produce(b"ok", partition=p) for p in (0, 1)])

    registry = CollectorRegistry()
    service = Service(loaded, registry=registry)
    runner = asyncio.create_task(service.run(install_signal_handlers=False))
    try:
        await wait_until(
            lambda: value(registry, "poller_records_deleted_total", mapping="sqs") >= 1, timeout=30
        )
        await wait_until(
            lambda: value(registry, "poller_records_filtered_total", mapping="sqs") >= 1, timeout=30
        )
        await wait_until(
            lambda: value(registry, "poller_records_sent_to_destination_total", mapping="kinesis") >= 1,
            timeout=30,
        )
        await wait_until(
            lambda: value(registry, "poller_records_dropped_total", mapping="dynamodb") >= 1, timeout=30
        )
        await wait_until(
            lambda: value(registry, "poller_records_invoked_total", mapping="kafka") >= 2, timeout=60
        )
        await wait_until(lambda: value(registry, "poller_retries_total", mapping="sqs") >= 1, timeout=30)
        found = samples(registry)
    finally:
        service.request_stop()
        await runner

    for mapping in ("sqs", "kinesis", "dynamodb", "kafka"):
        names = {s.name for s in found if s.labels.get("mapping") == mapping}
        missing = [name for name in EVERY_MAPPING if name not in names]
        assert not missing, f"{mapping}: {missing}"
        states = {
            s.labels["state"]: s.value
            for s in found
            if s.name == "poller_mapping_state" and s.labels["mapping"] == mapping
        }
        assert set(states) == set(MAPPING_STATES)
    assert value_in(found, "poller_records_deleted_total", "sqs") >= 1
    assert value_in(found, "poller_invocations_total", "sqs", outcome="error") >= 1
    # Both records of the failed batch are given up on (no bisect, no destination).
    assert value_in(found, "poller_records_dropped_total", "dynamodb", reason="retry_attempts_exhausted") == 2
    assert {"poller_iterator_age_seconds"} <= {s.name for s in found if s.labels.get("mapping") == "kinesis"}
    assert {"poller_iterator_age_seconds"} <= {s.name for s in found if s.labels.get("mapping") == "dynamodb"}
    assert {"poller_offset_lag"} <= {s.name for s in found if s.labels.get("mapping") == "kafka"}
    for sample in found:
        for label, label_value in sample.labels.items():
            assert label in ALLOWED_LABELS, f"{sample.name} has an unbounded label {label}"
            allowed = ALLOWED_LABELS[label]
            assert allowed is None or label_value in allowed, f"{sample.name}{{{label}={label_value}}}"
        if "mapping" in sample.labels:
            assert sample.labels["mapping"] in {"sqs", "kinesis", "dynamodb", "kafka"}


def value_in(found: list[Any], name: str, mapping: str, **labels: str) -> float:
    return sum(
        s.value
        for s in found
        if s.name == name
        and s.labels.get("mapping") == mapping
        and all(s.labels.get(k) == v for k, v in labels.items())
    )
