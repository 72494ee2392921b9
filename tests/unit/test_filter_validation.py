"""Invalid filter patterns and FilterCriteria limits (spec §1.6, §7.1, §7.2, §7.4, §7.6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from poller.core.filtering import (
    DEFAULT_MAX_FILTERS,
    MAX_FILTERS_QUOTA,
    MAX_PATTERN_LENGTH,
    FilterPatternError,
    compile_filters,
    compile_pattern,
)

MESSAGE = "Invalid filter pattern definition."

OBSERVED_INVALID = [
    "null",
    "simple string",
    '"simple string"',
    '{"eventSource": "aws:sqs"}',
    '{"eventSource": []}',
    '{"eventName": ["INSERT"=123}',
    '[{"eventName": ["INSERT"=123}]',
    "",
    "{",
]


@pytest.mark.parametrize("pattern", OBSERVED_INVALID)
def test_observed_invalid_patterns(pattern: str) -> None:
    """§7.6/§1.6 [SNAP]: null, a non-JSON string, a scalar instead of an array, an empty array and
    malformed JSON are refused with AWS's exact message."""
    with pytest.raises(FilterPatternError) as caught:
        compile_pattern(pattern)
    assert str(caught.value) == MESSAGE
    assert caught.value.detail


STRUCTURALLY_INVALID: list[Any] = [
    [],  # not an object
    [{"a": ["x"]}],
    42,
    True,
    {},  # empty objects are not allowed
    {"a": {}},
    {"a": None},
    {"a": 1},
    {"a": True},
    {"a": {"b": "x"}},
    {"a": [["x"]]},  # nested array in a value list
    {"a": [{}]},  # match expression without operator
    {"a": [{"prefix": "x", "suffix": "y"}]},  # two operators in one expression
]


@pytest.mark.parametrize("doc", STRUCTURALLY_INVALID, ids=[json.dumps(d) for d in STRUCTURALLY_INVALID])
def test_structurally_invalid(doc: Any) -> None:
    """§7.1/§7.6: a pattern is a non-empty object whose values are non-empty arrays or objects."""
    with pytest.raises(FilterPatternError, match=r"^Invalid filter pattern definition\.$"):
        compile_pattern(json.dumps(doc))


OPERATOR_INVALID: list[Any] = [
    # operators Lambda ESM does not accept (spec §7.2, Pipes subset)
    {"f": [{"wildcard": "dir/*.png"}]},
    {"ip": [{"cidr": "10.0.0.0/24"}]},
    {"f": [{"exactly": "x"}]},
    {"f": [{"equals": "x"}]},
    {"f": [{"regex": "x.*"}]},
    {"f": [{"anything-but": {"prefix": "us-"}}]},
    {"f": [{"anything-but": {"suffix": ".png"}}]},
    {"f": [{"anything-but": {"equals-ignore-case": "x"}}]},
    {"f": [{"anything-but": {"wildcard": "x*"}}]},
    {"f": [{"anything-but-ignore-case": "x"}]},
    # anything-but arguments
    {"f": [{"anything-but": []}]},
    {"f": [{"anything-but": None}]},
    {"f": [{"anything-but": True}]},
    {"f": [{"anything-but": ["a", 1]}]},  # mixed types
    {"f": [{"anything-but": [None]}]},
    {"f": [{"anything-but": [["a"]]}]},
    # prefix / suffix / equals-ignore-case arguments
    {"f": [{"prefix": 1}]},
    {"f": [{"prefix": None}]},
    {"f": [{"prefix": ["a"]}]},
    {"f": [{"prefix": {"equals-ignore-case": 1}}]},
    {"f": [{"prefix": {"other": "a"}}]},
    {"f": [{"prefix": {"equals-ignore-case": "a", "x": "b"}}]},
    {"f": [{"suffix": 1}]},
    {"f": [{"equals-ignore-case": 1}]},
    {"f": [{"equals-ignore-case": ["a"]}]},
    # exists
    {"f": [{"exists": "true"}]},
    {"f": [{"exists": 1}]},
    {"f": [{"exists": None}]},
    # numeric
    {"n": [{"numeric": 5}]},
    {"n": [{"numeric": []}]},
    {"n": [{"numeric": [">"]}]},
    {"n": [{"numeric": [">", "5"]}]},
    {"n": [{"numeric": [">", True]}]},
    {"n": [{"numeric": [">", None]}]},
    {"n": [{"numeric": ["!=", 5]}]},
    {"n": [{"numeric": ["==", 5]}]},
    {"n": [{"numeric": ["=", 5, "<", 6]}]},  # = stands alone
    {"n": [{"numeric": ["<", 5, ">", 1]}]},  # lower bound first
    {"n": [{"numeric": [">", 5, ">", 6]}]},
    {"n": [{"numeric": [">", 5, "<", 5]}]},  # bottom must be below top
    {"n": [{"numeric": [">=", 6, "<=", 5]}]},
    {"n": [{"numeric": [">", 1, "<", 5, "<", 6]}]},
    {"n": [{"numeric": [">", 1, "<"]}]},
    # $or
    {"$or": [{"a": ["x"]}]},  # at least two branches
    {"$or": []},
    {"$or": {"a": ["x"]}},
    {"$or": [{"a": ["x"]}, "b"]},
    {"$or": [{"a": ["x"]}, {}]},
    {"$or": [{"a": ["x"]}, {"prefix": ["y"]}]},  # operator names are reserved inside $or
    {"$or": [{"a": ["x"]}, {"b": {">=": ["y"]}}]},
]


@pytest.mark.parametrize("doc", OPERATOR_INVALID, ids=[json.dumps(d) for d in OPERATOR_INVALID])
def test_invalid_operators(doc: Any) -> None:
    """§7.2/§7.6: unsupported operators and malformed operator arguments are refused."""
    with pytest.raises(FilterPatternError) as caught:
        compile_pattern(json.dumps(doc))
    assert str(caught.value) == MESSAGE


@pytest.mark.parametrize("text", ['{"a": [NaN]}', '{"a": [Infinity]}', '{"a": [-Infinity]}'])
def test_non_json_numbers(text: str) -> None:
    """§7.6: malformed JSON is refused; Python's NaN/Infinity extensions are not JSON."""
    with pytest.raises(FilterPatternError):
        compile_pattern(text)


def test_non_string_pattern() -> None:
    """§7.6: a pattern is a JSON string; `None` (SDK `null`) is refused like AWS refuses `null`."""
    with pytest.raises(FilterPatternError):
        compile_pattern(None)  # type: ignore[arg-type]


VALID: list[Any] = [
    {"a": ["x", 1, 1.5, True, False, None, ""]},
    {"a": [{"prefix": ""}]},
    {"a": [{"prefix": {"equals-ignore-case": "x"}}, {"suffix": {"equals-ignore-case": "y"}}]},
    {
        "a": [
            {"anything-but": "x"},
            {"anything-but": 1},
            {"anything-but": ["x", "y"]},
            {"anything-but": [1, 2.5]},
        ]
    },
    {"n": [{"numeric": ["=", -1]}, {"numeric": ["<=", 0]}, {"numeric": [">=", 1, "<", 2]}]},
    {"a": [{"exists": True}], "b": [{"exists": False}]},
    {"$or": [{"a": ["x"]}, {"b": {"$or": [{"c": [1]}, {"d": [2]}]}}]},
    {"prefix": ["field names may look like operators outside $or"]},
]


@pytest.mark.parametrize("doc", VALID, ids=[json.dumps(d) for d in VALID])
def test_valid_patterns_compile(doc: Any) -> None:
    """§7.2: every operator form Lambda ESM accepts compiles."""
    compile_pattern(json.dumps(doc))


def test_pattern_length_limit() -> None:
    """§7.1: a pattern is at most 4096 characters."""

    def sized(n: int) -> str:
        head = '{"a": ["'
        return head + "x" * (n - len(head) - 3) + '"]}'

    assert len(sized(MAX_PATTERN_LENGTH)) == MAX_PATTERN_LENGTH
    compile_pattern(sized(MAX_PATTERN_LENGTH))
    compile_filters([sized(MAX_PATTERN_LENGTH)])
    with pytest.raises(FilterPatternError) as caught:
        compile_filters([sized(MAX_PATTERN_LENGTH + 1)])
    assert str(caught.value) == MESSAGE
    assert "4096" in caught.value.detail


def test_filter_count_limit() -> None:
    """§7.1: 5 filters per mapping by default; the quota can raise that to 10, no further."""
    pattern = '{"a": ["x"]}'
    assert DEFAULT_MAX_FILTERS == 5
    assert MAX_FILTERS_QUOTA == 10
    assert len(compile_filters([pattern] * 5).filters) == 5
    with pytest.raises(FilterPatternError) as caught:
        compile_filters([pattern] * 6)
    assert str(caught.value) == MESSAGE
    assert len(compile_filters([pattern] * 10, max_filters=10).filters) == 10
    with pytest.raises(FilterPatternError):
        compile_filters([pattern] * 11, max_filters=10)
    with pytest.raises(ValueError, match="max_filters"):
        compile_filters([pattern], max_filters=11)


def test_error_names_the_failing_filter() -> None:
    """§7.6: one bad pattern fails the whole criteria; our detail says which one and why."""
    with pytest.raises(FilterPatternError) as caught:
        compile_filters(['{"a": ["x"]}', '{"a": []}'])
    assert caught.value.index == 1
    assert "empty" in caught.value.detail
    assert str(caught.value) == MESSAGE


def test_a_single_string_is_not_a_filter_list() -> None:
    """§7.1: Filters is a list of patterns; a bare string would otherwise iterate characters."""
    with pytest.raises(FilterPatternError):
        compile_filters('{"a": ["x"]}')


@pytest.mark.parametrize(
    ("source", "doc"),
    [
        ("kinesis", {"data": ["plain"]}),
        ("kinesis", {"data": [{"prefix": "x"}]}),
        ("kinesis", {"$or": [{"data": ["plain"]}, {"partitionKey": ["k"]}]}),
        ("dynamodb", {"dynamodb": [{"exists": True}]}),
    ],
)
def test_streams_refuse_non_json_data_patterns(source: Any, doc: dict[str, Any]) -> None:
    """§7.4/§7.6: Kinesis and DynamoDB refuse a non-JSON pattern for the data key at create/update."""
    with pytest.raises(FilterPatternError) as caught:
        compile_filters([json.dumps(doc)], source=source)
    assert str(caught.value) == MESSAGE
    # Without a source (plain EventBridge rules) the same pattern is fine.
    compile_filters([json.dumps(doc)])


@pytest.mark.parametrize(("source", "key"), [("sqs", "body"), ("kafka", "value")])
def test_queues_accept_plain_data_patterns(source: Any, key: str) -> None:
    """§7.4: SQS and Kafka accept plain-string patterns for their data key."""
    compile_filters([json.dumps({key: ["plain"]})], source=source)


def test_nesting_depth_is_bounded() -> None:
    """§7.1: a 4096-character pattern could nest ~680 objects; we refuse beyond 100 levels."""
    deep = '{"a":' * 100 + '["x"]' + "}" * 100
    event: dict[str, Any] = {"a": "x"}
    for _ in range(99):
        event = {"a": event}
    assert compile_pattern(deep).matches(event)
    with pytest.raises(FilterPatternError):
        compile_pattern('{"a":' * 101 + '["x"]' + "}" * 101)
    deepest = '{"a":' * 680 + "[1]" + "}" * 680  # just under 4096 characters
    assert len(deepest) <= MAX_PATTERN_LENGTH
    with pytest.raises(FilterPatternError):
        compile_pattern(deepest)
