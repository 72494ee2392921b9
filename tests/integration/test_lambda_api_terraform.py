"""Terraform's `aws_lambda_event_source_mapping` manages a poller mapping unchanged (DESIGN §1.9):
apply creates it (and waits out Creating), a second plan finds nothing to change, a changed
batch_size is an in-place update, destroy deletes it.

Needs `terraform` and the hashicorp/aws provider in a local provider mirror (no network):
`POLLER_TEST_TF_PLUGINS` (default /opt/tf-plugins). Skipped where either is missing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REGION, PollerProcess, StartPoller
from tests.integration.test_lambda_api import lambda_client, status_states

pytestmark = pytest.mark.integration

PLUGINS = Path(os.environ.get("POLLER_TEST_TF_PLUGINS", "/opt/tf-plugins"))

CONFIG = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

provider "aws" {
  region                      = "%(region)s"
  access_key                  = "poller"
  secret_key                  = "unused"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {
    lambda = "%(endpoint)s"
  }
}

resource "aws_lambda_event_source_mapping" "orders" {
  event_source_arn                   = "%(queue)s"
  function_name                      = "orders-fn"
  batch_size                         = %(batch_size)d
  maximum_batching_window_in_seconds = 1
  function_response_types            = ["ReportBatchItemFailures"]

  tags = {
    Name = "tf-orders"
  }
}
"""


def terraform() -> str:
    found = shutil.which("terraform")
    if found is None or not (PLUGINS / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip("terraform or a local mirror of the hashicorp/aws provider is missing")
    return found


async def run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(workdir / "cli.tfrc"),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }
    command = [terraform(), *args, "-input=false", "-no-color"]
    return await asyncio.to_thread(
        subprocess.run, command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )


def write_config(workdir: Path, poller: PollerProcess, queue: Any, batch_size: int) -> None:
    values = {
        "region": REGION,
        "endpoint": f"http://127.0.0.1:{poller.port}",
        "queue": queue.arn,
        "batch_size": batch_size,
    }
    (workdir / "main.tf").write_text(CONFIG % values)


async def test_terraform_creates_updates_and_destroys(
    make_queue: Any, start_poller: StartPoller, tmp_path: Path
) -> None:
    terraform()
    workdir = tmp_path / "tf"
    workdir.mkdir()
    (workdir / "cli.tfrc").write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{PLUGINS}"\n  }}\n}}\n'
    )
    queue = make_queue(visibility=5)
    # A Lambda function's name: Terraform reads function_name back from FunctionArn, whose last part
    # is that name (a `python:` or HTTP target's FunctionArn names the mapping instead, DESIGN §1.3).
    # No message is sent, so nothing is invoked.
    poller = await start_poller([])
    write_config(workdir, poller, queue, batch_size=5)
    init = await run(workdir, "init")
    assert init.returncode == 0, init.stdout + init.stderr

    applied = await run(workdir, "apply", "-auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    (made,) = lambda_client(poller).list_event_source_mappings()["EventSourceMappings"]
    assert (made["BatchSize"], made["State"], made["FunctionResponseTypes"]) == (
        5,
        "Enabled",
        ["ReportBatchItemFailures"],
    )
    assert status_states(poller)["tf-orders"] == "Enabled"

    # What the API echoes is what Terraform wrote: nothing to change (exit code 0, not 2).
    again = await run(workdir, "plan", "-detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr

    write_config(workdir, poller, queue, batch_size=8)
    updated = await run(workdir, "apply", "-auto-approve")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "1 changed" in updated.stdout
    now = lambda_client(poller).get_event_source_mapping(UUID=made["UUID"])
    assert (now["BatchSize"], now["State"]) == (8, "Enabled")

    destroyed = await run(workdir, "destroy", "-auto-approve")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert lambda_client(poller).list_event_source_mappings()["EventSourceMappings"] == []
    assert "tf-orders" not in status_states(poller)
