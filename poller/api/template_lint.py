"""cfn-lint's checks of a template's own mistakes (a misspelt property, a wrong type), as problems.

Only errors are kept: cfn-lint's warnings and informational rules are about deploying to AWS (IAM
scopes, deprecated runtimes), not about what poller runs. Its failure is never poller's: whatever
goes wrong inside cfn-lint is one warning, and reading the template goes on.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from poller.config.problems import Problem

_LINT_SUFFIX = re.compile(r" \(cfn-lint E\d+\)$")
IGNORED_CHECKS = ["W", "I", "E6"]
"""Warnings, informational rules, and Outputs (E6xxx), which poller does not read."""


def lint_problems(text: str, path: Path, region: str) -> list[Problem]:
    """cfn-lint's errors for the template `text` (read from `path`), each with its line."""
    try:
        from cfnlint.api import ManualArgs, lint  # type: ignore[import-untyped]

        logging.getLogger("cfnlint").setLevel(logging.CRITICAL)
        logging.getLogger("samtranslator").setLevel(logging.ERROR)
        from cfnlint.helpers import REGIONS  # type: ignore[import-untyped]

        # A local emulator's made-up region is not one cfn-lint knows; the template's own mistakes
        # are the same in any region.
        regions = [region if region in REGIONS else "us-east-1"]
        matches = lint(text, config=ManualArgs(regions=regions, ignore_checks=IGNORED_CHECKS))
    except Exception as exc:
        return [
            Problem(
                f"cfn-lint could not check this template ({exc!r}); checked without it.",
                path,
                severity="warning",
            )
        ]
    problems: list[Problem] = []
    lines_seen: set[int | None] = set()
    for match in matches:
        rule_id = str(getattr(match.rule, "id", ""))
        where = list(getattr(match, "path", None) or [])
        if str(match.message).startswith("Unknown exception while processing rule"):
            continue  # cfn-lint's own failure on an input it did not expect: not the template's
        if not rule_id.startswith("E") or where[2:4] == ["Properties", "Events"]:
            # A SAM event is aws-sam-translator's to judge, in SAM's words; cfn-lint's schema for
            # it tries every event type and reports each mismatch.
            continue
        line = getattr(match, "linenumber", None)
        line = line if isinstance(line, int) else None
        if line in lines_seen:
            continue  # one problem a line: the first says what to fix
        lines_seen.add(line)
        logical_id = str(where[1]) if len(where) > 1 and where[0] == "Resources" else None
        problems.append(Problem(f"{match.message} (cfn-lint {rule_id})", path, line, field=logical_id))
    return problems


def is_lint_problem(problem: Problem) -> bool:
    return _LINT_SUFFIX.search(problem.message) is not None
