"""The template verbs of the command line and their exit codes (DESIGN §1.2, §1.10)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from poller import cli
from tests.unit.template_helpers import write_template

GOOD = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Size: {Type: Number, Default: 5}
Resources:
  Q:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      CodeUri: src/
      Events:
        Orders:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            BatchSize: !Ref Size
"""


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["A=1", "B=two words"], {"A": "1", "B": "two words"}),
        (["A=1 B=2"], {"A": "1", "B": "2"}),
        (["ParameterKey=A,ParameterValue=x=y"], {"A": "x=y"}),
        (["ParameterKey=A,ParameterValue=1 ParameterKey=B,ParameterValue=2"], {"A": "1", "B": "2"}),
        (["A="], {"A": ""}),
        (["A=1", "A=2"], {"A": "2"}),
    ],
)
def test_parameter_overrides_in_sam_clis_forms(arguments: list[str], expected: dict[str, str]) -> None:
    assert cli.parse_overrides(arguments) == expected


def test_a_malformed_override_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_template(tmp_path, GOOD)
    with pytest.raises(SystemExit) as raised:
        cli.main(["validate", "--template", str(path), "--parameter-overrides", "novalue"])
    assert raised.value.code == 2
    assert "--parameter-overrides 'novalue'" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["run", "validate", "demo"])
def test_overrides_without_a_template_are_a_usage_error(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main([verb, "--parameter-overrides", "A=1"])
    assert raised.value.code == 2
    assert "give --template FILE too" in capsys.readouterr().err


def test_validate_template_exit_codes_and_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_template(tmp_path, GOOD)
    assert cli.main(["validate", "--template", "template.yaml"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 mapping and 1 function OK, 0 problems"
    status = cli.main(["validate", "--template", "template.yaml", "--parameter-overrides", "Size=20000"])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0].startswith("template.yaml:18: Mapping 'FnOrders': BatchSize: ")
    write_template(tmp_path, "Resources:\n  Q: [unclosed\n")
    assert cli.main(["validate", "--template", "template.yaml"]) == 1
    assert capsys.readouterr().out.startswith("template.yaml:3: Invalid YAML")


def test_validate_template_reads_region_and_account_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_template(tmp_path, GOOD)
    (tmp_path / "settings.yaml").write_text("aws: {region: eu-west-1, account_id: 12}\n")
    assert cli.main(["validate", "--template", "template.yaml", "--config", "settings.yaml"]) == 1
    assert "account_id must be a quoted string" in capsys.readouterr().out
    (tmp_path / "settings.yaml").write_text('aws: {region: eu-west-1, account_id: "111122223333"}\n')
    assert cli.main(["import", "template.yaml", "-o", "out", "--config", "settings.yaml"]) == 0
    assert "arn:aws:sqs:eu-west-1:111122223333:" in (tmp_path / "out" / "Fn.yaml").read_text()


def test_import_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_template(tmp_path, GOOD)
    assert cli.main(["import", "template.yaml", "--parameter-overrides", "Size=7"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {Path('mappings') / 'Fn.yaml'}",
        "1 file written, 0 problems",
    ]
    written = (tmp_path / "mappings" / "Fn.yaml").read_text()
    assert "CodeUri: ../src\n" in written
    assert "BatchSize: 7\n" in written
    assert cli.main(["import", "missing.yaml", "-o", "elsewhere"]) == 1
    assert "missing.yaml: Cannot read template" in capsys.readouterr().out


def test_run_and_demo_hand_the_template_to_the_running_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring only: `run_template` and `run_demo` are the running side's, tested there."""
    from poller.demo import runner
    from poller.runtime import template_run

    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_run_template(path: Path, **kwargs: Any) -> int:
        calls.append(("run", {"path": path, **kwargs}))
        return 7

    def fake_run_demo(**kwargs: Any) -> int:
        calls.append(("demo", kwargs))
        return 5

    monkeypatch.setattr(template_run, "run_template", fake_run_template)
    monkeypatch.setattr(runner, "run_demo", fake_run_demo)
    monkeypatch.chdir(tmp_path)
    assert (
        cli.main(["run", "--template", "t.yaml", "--parameter-overrides", "A=1", "B=2", "--config", "c.yaml"])
        == 7
    )
    kind, run = calls.pop()
    overrides: Mapping[str, str] = run["parameter_overrides"]
    assert (kind, run["path"], dict(overrides), run["config"], run["cwd"]) == (
        "run",
        Path("t.yaml"),
        {"A": "1", "B": "2"},
        Path("c.yaml"),
        tmp_path,
    )
    assert cli.main(["demo", "--template"]) == 5
    assert calls.pop() == (
        "demo",
        {"messages": 20, "template": runner.PACKAGED_SAM_APP, "parameter_overrides": {}},
    )
    assert cli.main(["demo", "--messages", "3", "--template", "app.yaml"]) == 5
    assert calls.pop()[1]["template"] == Path("app.yaml")
    assert cli.main(["demo", "--messages", "3"]) == 5
    assert calls.pop() == ("demo", {"messages": 3})
