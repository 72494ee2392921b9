"""Write a template (with a handler beside it) and read it, for the template tests."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from poller.api.template_config import build_parts
from poller.api.template_read import ReadTemplate, read_template
from poller.config.loader import LoadedConfig
from poller.config.problems import Problem
from poller.config.settings import Settings

ACCOUNT = "123456789012"
REGION = "us-east-1"
HANDLER = "def handler(event, context):\n    return None\n"


def write_template(directory: Path, text: str, name: str = "template.yaml") -> Path:
    (directory / "src").mkdir(exist_ok=True)
    (directory / "src" / "app.py").write_text(HANDLER)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def read(
    directory: Path, text: str, overrides: Mapping[str, str] | None = None, *, lint: bool = False
) -> ReadTemplate:
    return read_template(
        write_template(directory, text),
        parameter_overrides=overrides or {},
        region=REGION,
        account_id=ACCOUNT,
        stack_name="shop",
        lint=lint,
    )


def config(template: ReadTemplate, attributes: Mapping[str, Mapping[str, str]] | None = None) -> LoadedConfig:
    return template.to_config(
        Settings(), settings_file=None, base_dir=template.path.parent, attributes=attributes
    )


def documents(template: ReadTemplate) -> dict[str, dict[str, Any]]:
    """Each mapping as poller's YAML would spell it (API names), by Name."""
    parts = build_parts(template, attributes=None, code_dir=template.path.parent / "inline")
    return {
        entry.raw.name: entry.raw.model_dump(mode="json", by_alias=True, exclude_unset=True)
        for entry in parts.entries
    }


def problem_at(problems: tuple[Problem, ...], line: int) -> Problem:
    found = [p for p in problems if p.line == line]
    assert len(found) == 1, f"expected one problem on line {line}: {[str(p) for p in problems]}"
    return found[0]


def sam_function(events: str, properties: str = "") -> str:
    """A SAM template of one queue, stream and table and one function `Fn` with these events."""
    return (
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Q:\n    Type: AWS::SQS::Queue\n"
        "  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {ShardCount: 1}\n"
        "  T:\n    Type: AWS::DynamoDB::Table\n    Properties:\n"
        "      StreamSpecification: {StreamViewType: NEW_IMAGE}\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Runtime: python3.12\n      Handler: app.handler\n      CodeUri: src/\n"
        + textwrap.indent(textwrap.dedent(properties), "      ")
        + "      Events:\n"
        + textwrap.indent(textwrap.dedent(events), "        ")
    )
