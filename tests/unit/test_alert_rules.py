"""config/prometheus/alerts.yaml: valid for Prometheus (`promtool check rules`), behaving as its unit
tests say (`promtool test rules alerts_test.yaml`), and written the same way throughout: a severity,
and a summary, description and runbook that name the mapping.

promtool comes with Debian's `prometheus` package, which .ci/run installs; without it these tests fail
rather than skip, so the alert rules are never shipped unchecked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "prometheus" / "alerts.yaml"
RULE_TESTS = ROOT / "config" / "prometheus" / "alerts_test.yaml"


def promtool(*args: str) -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is not installed: it comes with Debian's `prometheus` package "
            "(`apt-get install prometheus`), which .ci/run installs"
        )
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def alerts() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    output = promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(alerts())} rules found" in output, output


def test_promtool_test_rules() -> None:
    output = promtool("test", "rules", str(RULE_TESTS))
    assert "SUCCESS" in output, output


def test_every_rule_is_a_described_alert_on_a_mapping() -> None:
    rules = alerts()
    names = [rule.get("alert") for rule in rules]
    assert all(names), "only alerting rules here"
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, rule["alert"]
        for key in ("summary", "description"):
            assert "$labels.mapping" in annotations[key], (rule["alert"], key)
        assert "mapping" in rule["expr"] or "poller_mapping_state" in rule["expr"], rule["alert"]


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    """alerts_test.yaml covers each alert: an evaluation where it fires, one where it does not."""
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert firing == names
    assert silent == names
