"""Mappings share the service's AWS clients (runtime/clients.py), against moto: two SQS mappings of
one region and endpoint use one client, and removing one of them by a hot reload, or restarting
the other, leaves that client open and working."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from poller.config import load_config
from poller.runtime.app import Service
from tests.integration.conftest import ACCOUNT, REGION, Queue, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REDELIVERY_TIMEOUT = 35.0
"""As in test_hot_reload: a long poll the restarted source abandoned may still take the message on
moto, which then comes back after its visibility timeout (2 s) once that poll has run out (20 s)."""


def deleted(registry: CollectorRegistry, mapping: str) -> float:
    return registry.get_sample_value("poller_records_deleted_total", {"mapping": mapping}) or 0.0


def write_mapping(directory: Path, name: str, queue: Queue, **extra: Any) -> None:
    mapping = {
        "Name": name,
        "EventSourceArn": queue.arn,
        "FunctionName": "python:handler.handle",
        "FunctionTimeout": 1,
        **extra,
    }
    (directory / f"{name}.yaml").write_text(json.dumps(mapping))


def running_source(service: Service, name: str) -> Any:
    supervised = service.pool.active.get(name) if service.pool is not None else None
    return None if supervised is None else supervised.supervisor.source


async def test_sqs_mappings_share_one_client_that_outlives_a_removed_or_restarted_mapping(
    tmp_path: Path, moto_endpoint: str, sqs: Any, make_queue: Any
) -> None:
    first, second = make_queue(), make_queue()
    (tmp_path / "handler.py").write_text("def handle(event, context):\n    return None\n")
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    write_mapping(mappings, "first", first)
    write_mapping(mappings, "second", second)
    settings = {
        "aws": {"region": REGION, "account_id": ACCOUNT, "endpoint_url": moto_endpoint},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "shutdown": {"drain_seconds": 2},
        "mappings": ["mappings/"],
    }
    (tmp_path / "poller.yaml").write_text(json.dumps(settings))
    loaded = load_config(tmp_path / "poller.yaml", environ={}, cwd=tmp_path)
    assert not loaded.errors, loaded.errors

    registry = CollectorRegistry()
    service = Service(loaded, registry=registry, environ={})
    runner = asyncio.create_task(service.run(install_signal_handlers=False))
    try:
        await wait_until(
            lambda: all(running_source(service, name) is not None for name in ("first", "second")),
            what="both mappings running",
        )
        client = running_source(service, "first").client
        assert running_source(service, "second").client is client
        assert service.clients.opened() == {("sqs-source", REGION): [client]}
        sqs.send_message(QueueUrl=first.url, MessageBody="to first")
        sqs.send_message(QueueUrl=second.url, MessageBody="to second")
        await wait_until(
            lambda: deleted(registry, "first") == 1 and deleted(registry, "second") == 1,
            what="both mappings delivering",
        )

        # A reload removes one mapping and changes the other, which restarts with its new settings.
        (mappings / "first.yaml").unlink()
        old_second = running_source(service, "second")
        write_mapping(mappings, "second", second, BatchSize=5)
        service.request_reload()
        await wait_until(
            lambda: "first" not in service.status.mappings
            and running_source(service, "second") not in (None, old_second),
            what="first removed and second restarted",
        )
        assert running_source(service, "second").client is client
        assert service.clients.opened() == {("sqs-source", REGION): [client]}
        sqs.send_message(QueueUrl=second.url, MessageBody="after the reload")
        await wait_until(
            lambda: deleted(registry, "second") == 2,
            timeout=REDELIVERY_TIMEOUT,
            what="second delivering after the reload",
        )
    finally:
        service.request_stop()
        await runner
    assert service.clients.opened() == {}
