"""Two replicas on the dynamodb state backend share the mappings made through either one's Lambda
API (DESIGN §1.3 `state.backend: dynamodb`, §1.9): create, update and delete reach the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PollerProcess, launch_poller, wait_until
from tests.integration.test_lambda_api import HANDLER, lambda_client, status_states

pytestmark = pytest.mark.integration


def batch_size(poller: PollerProcess, uuid: str) -> int | None:
    client = lambda_client(poller)
    try:
        return int(client.get_event_source_mapping(UUID=uuid)["BatchSize"])
    except client.exceptions.ResourceNotFoundException:
        return None


def restarts(poller: PollerProcess, name: str) -> int:
    """How often this replica restarted the mapping to apply a change (its own log)."""
    return len(
        [
            line
            for line in poller.logs()
            if line.get("event") == "mapping_restarting" and line.get("mapping") == name
        ]
    )


async def test_a_change_through_one_replica_reaches_the_other(
    make_queue: Any, moto_endpoint: str, tmp_path: Path
) -> None:
    queue = make_queue(visibility=5)
    settings = {"state": {"backend": "dynamodb", "table": f"api-replicas-{tmp_path.name[-20:]}"}}
    replicas: list[PollerProcess] = []
    try:
        for index in range(2):
            workdir = tmp_path / f"replica-{index}"
            (workdir / "mappings").mkdir(parents=True)
            (workdir / "api_handler.py").write_text(HANDLER)
            await launch_poller(workdir, moto_endpoint, settings=settings, started=replicas)
        first, second = replicas
        uuid = lambda_client(first).create_event_source_mapping(
            EventSourceArn=queue.arn, FunctionName="python:api_handler.handle", Tags={"Name": "shared"}
        )["UUID"]
        await wait_until(
            lambda: status_states(second).get("shared") == "Enabled",
            timeout=30,
            what="the other replica runs it",
        )
        assert status_states(first).get("shared") == "Enabled"

        assert restarts(first, "shared") == 0
        lambda_client(second).update_event_source_mapping(UUID=uuid, BatchSize=7)
        # The first replica's own running mapping, not the shared store: it drains and restarts it
        # with the change (hot reload's path), then runs it again.
        await wait_until(
            lambda: restarts(first, "shared") == 1, timeout=30, what="the first replica applies the update"
        )
        await wait_until(
            lambda: status_states(first).get("shared") == "Enabled", timeout=30, what="restarted on the first"
        )
        assert batch_size(first, uuid) == 7

        lambda_client(first).delete_event_source_mapping(UUID=uuid)
        await wait_until(
            lambda: "shared" not in status_states(second), timeout=30, what="removed on the second"
        )
        assert batch_size(second, uuid) is None
    finally:
        for replica in replicas:
            replica.kill()
