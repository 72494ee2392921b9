"""What is wrong with a settings or mapping file, said the way `poller validate` prints it.

Problems are values, not exceptions: loading collects every one of them so a user fixes a file in
one pass, and a bad mapping never stops the good ones from loading (DESIGN §1.2, §1.4).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from poller.config.yaml_lines import LineMap

Severity = Literal["error", "warning"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


@dataclass(frozen=True, slots=True)
class Problem:
    message: str
    file: Path | None = None
    line: int | None = None
    mapping: str | None = None
    field: str | None = None
    """Dotted path in the file's own spelling, e.g. `ScalingConfig.MaximumConcurrency`."""
    severity: Severity = "error"
    function: str | None = None
    """The function declared under `Functions:` (DESIGN §1.5.1) the problem is about, if any."""

    def __str__(self) -> str:
        """`file:line: Mapping 'name': field: message` (or `Function 'name'`), leaving out the parts
        that are unknown.

        Warnings say so right after the location, as compilers do, so editors still jump to them.
        """
        where = ""
        if self.file is not None:
            where = str(self.file) if self.line is None else f"{self.file}:{self.line}"
        parts = [where] if where else []
        if self.severity == "warning":
            parts.append("warning")
        if self.mapping is not None:
            parts.append(f"Mapping '{self.mapping}'")
        if self.function is not None:
            parts.append(f"Function '{self.function}'")
        if self.field is not None:
            parts.append(self.field)
        parts.append(self.message)
        # One problem, one line: control characters from the file (a name with a newline) are shown
        # escaped, never acted on.
        return _CONTROL.sub(_escape, ": ".join(parts))


def dotted(path: Sequence[object]) -> str | None:
    """`("FilterCriteria", "Filters", 0, "Pattern")` → `FilterCriteria.Filters[0].Pattern`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str):
            text += f".{part}" if text else part
    return text or None


def readable(error_type: str, message: str) -> str:
    """Pydantic's message, minus the parts that read oddly in a config file."""
    if error_type == "extra_forbidden":
        return "Unknown key."
    if error_type == "missing":
        return "Required key is missing."
    # YAML has lists, not tuples; the models use tuples only to stay immutable.
    return message.removeprefix("Value error, ").replace("Tuple should", "List should")


@dataclass(frozen=True, slots=True)
class MappingContext:
    """Where one mapping sits, so resolution rules can report a problem by field path alone."""

    name: str | None
    file: Path | None
    lines: LineMap

    def problem(self, path: Sequence[str | int], message: str, severity: Severity = "error") -> Problem:
        return Problem(
            message=message,
            file=self.file,
            line=self.lines.line_of(path),
            mapping=self.name,
            field=dotted(path),
            severity=severity,
        )

    def validation_problems(self, exc: ValidationError) -> list[Problem]:
        return [self.problem(err["loc"], readable(err["type"], err["msg"])) for err in exc.errors()]
