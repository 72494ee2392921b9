"""`poller demo --template` runs the README's SAM app (shipped in the package, the same files as
examples/sam-app/) from any directory on the embedded AWS emulation, and a template file given by
path (DESIGN §1.2, §1.10; issue 16 §6)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.test_demo import run, summary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = re.compile(
    r"^  (?P<name>\S+)  (?P<invocations>\d+) invocations?, (?P<cold>\d+) cold starts?", re.M
)


def test_the_shipped_sam_app_runs_end_to_end_from_another_directory(tmp_path: Path) -> None:
    result, seconds = run(["-m", "poller", "demo", "--template"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert seconds < 60, output
    assert "--parameter-overrides OrdersVisibilityTimeout=3" in result.stdout
    assert ": every record accounted for" in result.stdout, output
    # The failing orders (quantity 0) went to the dead-letter queue through the queue's redrive
    # policy, as the template declares; every stock change reached the stock function.
    assert summary(result.stdout) == {
        "OrdersFunctionOrders": (
            18,
            "2 poison records",
            "SQS sam-app-orders-dlq-dev",
            "the queue's redrive policy, maxReceiveCount 2",
        ),
    }, output
    assert "  StockFunctionStock 20 processed, none in SQS sam-app-stock-failures-dev" in result.stdout, (
        output
    )
    # Both functions ran in execution environments.
    ran = {m["name"]: int(m["invocations"]) for m in FUNCTION.finditer(result.stdout)}
    assert set(ran) == {"OrdersFunction", "StockFunction"}, output
    assert all(count >= 1 for count in ran.values()), output


def test_a_template_given_by_path_runs_with_its_own_parameters(tmp_path: Path) -> None:
    app = tmp_path / "copy"
    shutil.copytree(ROOT / "examples" / "sam-app", app)
    args = ["-m", "poller", "demo", "--messages", "5", "--template", str(app / "template.yaml")]
    result, _ = run([*args, "--parameter-overrides", "Stage=prod", "OrdersVisibilityTimeout=4"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (
        f"poller demo: running {app / 'template.yaml'} with --parameter-overrides Stage=prod" in result.stdout
    )
    # Five orders, none of them the tenth: nothing to send to the DLQ.
    assert "  OrdersFunctionOrders 5 processed, none in SQS sam-app-orders-dlq-prod" in result.stdout, output
    assert "  StockFunctionStock 5 processed, none in SQS sam-app-stock-failures-prod" in result.stdout, (
        output
    )
