"""`FilterCriteria` checks shared by every source's resolver (spec §7.1, §7.3, §7.6)."""

from __future__ import annotations

import json
from typing import Any

from poller.config.problems import MappingContext, Problem
from poller.config.sources import SourceKind
from poller.core.filtering import FilterPatternError, compile_filters, compile_pattern
from poller.core.filtering.errors import INVALID_PATTERN
from poller.core.filtering.pattern import OR_KEY

KAFKA_DATA_KEY = "value"


def filter_problems(
    patterns: tuple[str, ...], ctx: MappingContext, source: SourceKind | None
) -> list[Problem]:
    """spec §7.6: an invalid pattern is refused at load with AWS's message, naming which one.

    `source` brings in that source's data-key rules (§7.4), e.g. Kinesis/DynamoDB refuse a
    non-object pattern for `data` / `dynamodb`; None applies EventBridge's rules alone. Kafka
    patterns may name no key but `value` (§7.3).
    """
    problems: list[Problem] = []
    for index, pattern in enumerate(patterns):
        try:
            compile_pattern(pattern, source=source)
        except FilterPatternError as exc:
            problems.append(ctx.problem(("FilterCriteria", "Filters", index, "Pattern"), str(exc)))
            continue
        if source == "kafka" and not _value_only(json.loads(pattern)):
            problems.append(ctx.problem(("FilterCriteria", "Filters", index, "Pattern"), INVALID_PATTERN))
    if not problems:
        try:
            compile_filters(patterns, source=source)
        except FilterPatternError as exc:
            problems.append(ctx.problem(("FilterCriteria", "Filters"), f"{exc} ({exc.detail})"))
    return problems


def _value_only(pattern: dict[str, Any]) -> bool:
    """spec §7.3: "Amazon MSK and self-managed Apache Kafka event source mappings only support
    filtering on the `value` key"; a top-level `$or` may only combine patterns that do the same."""
    for key, condition in pattern.items():
        if key == OR_KEY and isinstance(condition, list):
            if not all(isinstance(branch, dict) and _value_only(branch) for branch in condition):
                return False
        elif key != KAFKA_DATA_KEY:
            return False
    return True
