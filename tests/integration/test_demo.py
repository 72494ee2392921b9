"""`poller demo` works from any directory and ends with every message accounted for (DESIGN §1.2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end_from_another_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "poller", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "18 orders processed and deleted from 'orders'" in result.stdout
    assert (
        "2 poison orders retried (maxReceiveCount 2), then moved by the queue's redrive policy to 'orders-dlq'"
        in result.stdout
    )
    assert "0 messages left in 'orders'" in result.stdout
