"""The AWS CLI (`aws lambda … --endpoint-url`) manages poller's mappings unchanged (DESIGN §1.9;
spec §1.1 operations, §1.5 Disabling → Disabled and Enabling → Enabled, §1.6 errors).

The CLI is awscli from PyPI in its own virtualenv, `.cache/awscli` (scripts/test installs it: it
pins botocore exactly, so it cannot share the project's); an `aws` on PATH serves where that is
missing."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REGION, PollerProcess, StartPoller, wait_until
from tests.integration.test_lambda_api import HANDLER, seen, status_states
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

_VENV_AWS = Path(__file__).resolve().parents[2] / ".cache" / "awscli" / "bin" / "aws"


def aws_cli() -> str:
    if _VENV_AWS.exists():
        return str(_VENV_AWS)
    found = shutil.which("aws")
    if found is None:
        pytest.skip("the AWS CLI is not installed (scripts/test puts it in .cache/awscli)")
    return found


async def aws(poller: PollerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    command = [
        aws_cli(),
        "lambda",
        *args,
        "--endpoint-url",
        f"http://127.0.0.1:{poller.port}",
        "--output",
        "json",
    ]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env, timeout=60
    )


async def aws_json(poller: PollerProcess, *args: str) -> dict[str, Any]:
    done = await aws(poller, *args)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)) if done.stdout.strip() else {}


async def eventually(look: Callable[[], Awaitable[object]], expected: object, *, what: str) -> None:
    """Each look runs the CLI, so it is awaited: a deadline, no fixed pause."""
    await wait_for(look, lambda seen: seen == expected, what=what)


async def test_the_cli_runs_a_mapping_through_its_life(
    sqs: Any, make_queue: Any, start_poller: StartPoller
) -> None:
    queue = make_queue(visibility=5)
    poller = await start_poller([], handlers={"api_handler": HANDLER})
    created = await aws_json(
        poller,
        "create-event-source-mapping",
        "--event-source-arn",
        queue.arn,
        "--function-name",
        "python:api_handler.handle",
        "--batch-size",
        "5",
        "--tags",
        "Name=cli-made",
    )
    uuid = created["UUID"]
    assert (created["State"], created["BatchSize"]) == ("Creating", 5)

    async def state() -> str:
        return str((await aws_json(poller, "get-event-source-mapping", "--uuid", uuid))["State"])

    async def settled(expected: str) -> None:
        await eventually(state, expected, what=f"State {expected}")

    await settled("Enabled")
    sqs.send_message(QueueUrl=queue.url, MessageBody="via cli")
    await wait_until(lambda: [r["body"] for r in seen(poller)] == ["via cli"], what="a record through it")

    listed = await aws_json(poller, "list-event-source-mappings", "--event-source-arn", queue.arn)
    assert [m["UUID"] for m in listed["EventSourceMappings"]] == [uuid]

    disabled = await aws_json(poller, "update-event-source-mapping", "--uuid", uuid, "--no-enabled")
    assert disabled["State"] == "Disabling"
    await settled("Disabled")
    assert status_states(poller)["cli-made"] == "Disabled"
    enabled = await aws_json(
        poller, "update-event-source-mapping", "--uuid", uuid, "--enabled", "--batch-size", "2"
    )
    assert (enabled["State"], enabled["BatchSize"]) == ("Enabling", 2)
    await settled("Enabled")

    arn = created["EventSourceMappingArn"]
    await aws_json(poller, "tag-resource", "--resource", arn, "--tags", "team=ops")
    assert (await aws_json(poller, "list-tags", "--resource", arn))["Tags"] == {
        "Name": "cli-made",
        "team": "ops",
    }

    refused = await aws(
        poller,
        "update-event-source-mapping",
        "--uuid",
        uuid,
        "--batch-size",
        "50",
        "--maximum-batching-window-in-seconds",
        "0",
    )
    assert refused.returncode != 0
    assert "(InvalidParameterValueException)" in refused.stderr
    assert (
        "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
        in refused.stderr
    )

    deleted = await aws_json(poller, "delete-event-source-mapping", "--uuid", uuid)
    assert deleted["State"] == "Deleting"

    async def found() -> bool:
        gone = await aws(poller, "get-event-source-mapping", "--uuid", uuid)
        assert gone.returncode == 0 or "(ResourceNotFoundException)" in gone.stderr, gone.stderr
        return gone.returncode == 0

    await eventually(found, False, what="the mapping gone")
