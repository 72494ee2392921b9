"""The repository keeps its public promises: README commands, CI, example mappings (DESIGN §1.1-1.2)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = next(c for c in readme_commands() if c.endswith("pytest"))
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_demo_command_runs_poller_demo() -> None:
    assert any(c.endswith("poller demo") and "pip install" in c for c in readme_commands())


def test_repository_mappings_are_the_packaged_demo_mappings() -> None:
    packaged = {p.name: p.read_text() for p in (ROOT / "poller" / "demo" / "mappings").glob("*.yaml")}
    repo = {p.name: p.read_text() for p in (ROOT / "mappings").glob("*.yaml")}
    assert packaged == repo
    assert packaged
