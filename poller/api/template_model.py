"""The functions and event source mappings found in a template, before their intrinsics are resolved.

Both keep the template lines of their properties, keyed by the path inside `properties`, so the
problems the config layer finds later point at the template line that says the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from poller.config.yaml_lines import KeyPath, LineMap


@dataclass(frozen=True)
class TemplateFunction:
    """An `AWS::Serverless::Function` (Globals applied) or an `AWS::Lambda::Function`."""

    logical_id: str
    properties: Mapping[str, Any]
    """SAM's property names: Runtime, Handler, CodeUri (or InlineCode), MemorySize, Timeout, …;
    a plain function's `Code` is already turned into `CodeUri`/`InlineCode`."""
    lines: Mapping[KeyPath, int] = field(default_factory=dict)
    condition: str | None = None

    def line_map(self) -> LineMap:
        return LineMap(dict(self.lines))


@dataclass(frozen=True)
class TemplateMapping:
    """An event source mapping: a SAM event as aws-sam-translator writes it, or a plain
    `AWS::Lambda::EventSourceMapping`; CloudFormation's property names, intrinsics unresolved."""

    logical_id: str
    properties: Mapping[str, Any]
    lines: Mapping[KeyPath, int] = field(default_factory=dict)
    condition: str | None = None
    function: str | None = None
    """The logical id of the SAM function whose event this is; None for a plain mapping."""

    def line_map(self) -> LineMap:
        return LineMap(dict(self.lines))


def lines_under(lines: LineMap, prefix: KeyPath) -> dict[KeyPath, int]:
    """The lines of everything under `prefix`, keyed by the path below it (`()` is `prefix` itself)."""
    size = len(prefix)
    return {path[size:]: line for path, line in lines.lines.items() if path[:size] == prefix}
