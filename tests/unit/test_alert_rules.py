"""config/prometheus/alerts.yaml: valid for Prometheus (`promtool check rules`), behaving as its unit
tests say (`promtool test rules alerts_test.yaml`), and written the same way throughout: a severity,
and a summary, description and runbook that name the mapping (or, for the function alerts, the
function).

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


def test_every_rule_is_a_described_alert_on_a_mapping_or_a_function() -> None:
    """A rule on the function_* series (DESIGN §1.7: labelled `function`, not `mapping`) names the
    function; every other rule names the mapping."""
    rules = alerts()
    names = [rule.get("alert") for rule in rules]
    assert all(names), "only alerting rules here"
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, rule["alert"]
        on_function = "poller_function_" in rule["expr"]
        subject = "function" if on_function else "mapping"
        for key in ("summary", "description"):
            assert f"$labels.{subject}" in annotations[key], (rule["alert"], key)
        if on_function:
            assert "by (function)" in rule["expr"], rule["alert"]
            assert "mapping" not in rule["expr"], rule["alert"]
        else:
            assert "mapping" in rule["expr"] or "poller_mapping_state" in rule["expr"], rule["alert"]


def test_function_timeouts_and_out_of_memory_have_alerts() -> None:
    """Issue 15: the two ways the platform kills an environment for the function's own doing."""
    exprs = {rule["alert"]: rule["expr"] for rule in alerts()}
    assert 'error_type="Sandbox.Timedout"' in exprs["PollerFunctionTimeouts"]
    assert 'error_type="Runtime.OutOfMemory"' in exprs["PollerFunctionOutOfMemory"]
    for name in ("PollerFunctionTimeouts", "PollerFunctionOutOfMemory"):
        assert "poller_function_errors_total" in exprs[name]
        # The series is born with the first error: the `_created` branch catches it.
        assert "poller_function_errors_created" in exprs[name]


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
