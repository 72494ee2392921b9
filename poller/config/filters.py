"""`FilterCriteria` checks shared by every source's resolver (spec §7.1, §7.6)."""

from __future__ import annotations

from poller.config.problems import MappingContext, Problem
from poller.config.sources import SourceKind
from poller.core.filtering import FilterPatternError, compile_filters, compile_pattern


def filter_problems(patterns: tuple[str, ...], ctx: MappingContext, source: SourceKind) -> list[Problem]:
    """spec §7.6: an invalid pattern is refused at load with AWS's message, naming which one.

    `source` brings in that source's data-key rules (§7.4), e.g. Kinesis/DynamoDB refuse a
    non-object pattern for `data` / `dynamodb`.
    """
    problems: list[Problem] = []
    for index, pattern in enumerate(patterns):
        try:
            compile_pattern(pattern, source=source)
        except FilterPatternError as exc:
            problems.append(ctx.problem(("FilterCriteria", "Filters", index, "Pattern"), str(exc)))
    if not problems:
        try:
            compile_filters(patterns, source=source)
        except FilterPatternError as exc:
            problems.append(ctx.problem(("FilterCriteria", "Filters"), f"{exc} ({exc.detail})"))
    return problems
