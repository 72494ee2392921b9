"""Lambda event filtering (`FilterCriteria`) as a pure core (spec §7).

Compile a mapping's patterns once with `compile_filters`, build each record's view with the
source's `*_view` function, and keep the record when `FilterSet.matches(view)` is true.
"""

from poller.core.filtering.errors import INVALID_PATTERN, FilterPatternError
from poller.core.filtering.matcher import CompiledFilter, FilterSet
from poller.core.filtering.pattern import (
    DEFAULT_MAX_FILTERS,
    MAX_FILTERS_QUOTA,
    MAX_PATTERN_LENGTH,
    compile_filters,
    compile_pattern,
)
from poller.core.filtering.records import (
    DATA_KEYS,
    UNDECODABLE,
    SourceKind,
    dynamodb_view,
    kafka_view,
    kinesis_view,
    record_view,
    sqs_view,
)

__all__ = [
    "DATA_KEYS",
    "DEFAULT_MAX_FILTERS",
    "INVALID_PATTERN",
    "MAX_FILTERS_QUOTA",
    "MAX_PATTERN_LENGTH",
    "UNDECODABLE",
    "CompiledFilter",
    "FilterPatternError",
    "FilterSet",
    "SourceKind",
    "compile_filters",
    "compile_pattern",
    "dynamodb_view",
    "kafka_view",
    "kinesis_view",
    "record_view",
    "sqs_view",
]
