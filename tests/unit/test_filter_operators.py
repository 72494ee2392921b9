"""Event-filter operators, one table per operator, matching and non-matching (spec §7.1, §7.2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from poller.core.filtering import FilterSet, compile_filters, compile_pattern


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return compile_pattern(json.dumps(pattern)).matches(event)


Case = tuple[dict[str, Any], dict[str, Any], bool]


def _ids(cases: list[Case]) -> list[str]:
    return [f"{json.dumps(p)} vs {json.dumps(e)}" for p, e, _ in cases]


EQUALS: list[Case] = [
    ({"Name": ["Alice"]}, {"Name": "Alice"}, True),
    ({"Name": ["Alice"]}, {"Name": "alice"}, False),  # case-sensitive
    ({"Name": ["Alice"]}, {"Name": "Alice "}, False),  # no normalisation
    ({"Name": ["Alice"]}, {}, False),
    ({"PaymentType": ["Credit", "Debit"]}, {"PaymentType": "Debit"}, True),
    ({"PaymentType": ["Credit", "Debit"]}, {"PaymentType": "Cash"}, False),
    ({"a": [1, 2]}, {"a": 2}, True),
    ({"a": [1, 2]}, {"a": 3}, False),
    ({"a": [300]}, {"a": 300}, True),
    ({"a": [300]}, {"a": 300.0}, False),  # numbers compare by form, not value
    ({"a": [300.0]}, {"a": 300.0}, True),
    ({"a": [1]}, {"a": "1"}, False),
    ({"a": ["1"]}, {"a": 1}, False),
    ({"a": [True]}, {"a": True}, True),
    ({"a": [True]}, {"a": 1}, False),  # Python's True == 1 must not leak in
    ({"a": [1]}, {"a": True}, False),
    ({"a": [False]}, {"a": False}, True),
    ({"a": [False]}, {"a": 0}, False),
    ({"a": ["x"]}, {"a": {"x": 1}}, False),  # an object is not a leaf value
]


@pytest.mark.parametrize(("pattern", "event", "expected"), EQUALS, ids=_ids(EQUALS))
def test_equals_and_value_lists(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.2 Equals / OR (values): exact, case-sensitive, typed; a value list matches any element."""
    assert matches(pattern, event) is expected


NULL_AND_EMPTY: list[Case] = [
    ({"UserID": [None]}, {"UserID": None}, True),
    ({"UserID": [None]}, {}, False),  # null is a value, not absence
    ({"UserID": [None]}, {"UserID": ""}, False),
    ({"LastName": [""]}, {"LastName": ""}, True),
    ({"LastName": [""]}, {"LastName": None}, False),
    ({"LastName": [""]}, {}, False),
    ({"LastName": [""]}, {"LastName": " "}, False),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), NULL_AND_EMPTY, ids=_ids(NULL_AND_EMPTY))
def test_null_and_empty_string(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.2 Null and Empty string: `[null]` only matches an explicit null, `[""]` only ""."""
    assert matches(pattern, event) is expected


NESTED_AND: list[Case] = [
    ({"person": {"address": {"city": ["Oslo"]}}}, {"person": {"address": {"city": "Oslo"}}}, True),
    ({"person": {"address": {"city": ["Oslo"]}}}, {"person": {"address": {"city": "Rome"}}}, False),
    ({"person": {"address": {"city": ["Oslo"]}}}, {"person": {"address": "Oslo"}}, False),
    ({"person": {"address": {"city": ["Oslo"]}}}, {"person": {}}, False),
    ({"person": {"address": {"city": ["Oslo"]}}}, {"person.address.city": "Oslo"}, False),
    ({"a": ["1"], "b": ["2"]}, {"a": "1", "b": "2", "c": "3"}, True),
    ({"a": ["1"], "b": ["2"]}, {"a": "1", "b": "x"}, False),
    ({"a": ["1"], "b": ["2"]}, {"a": "1"}, False),
    ({"a": ["1"], "n": {"b": ["2"]}}, {"a": "1", "n": {"b": "2"}}, True),
    ({"a": ["1"], "n": {"b": ["2"]}}, {"a": "0", "n": {"b": "2"}}, False),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), NESTED_AND, ids=_ids(NESTED_AND))
def test_nested_keys_and_and(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.1/§7.2 AND: every named field must match, at any depth; unnamed fields are ignored."""
    assert matches(pattern, event) is expected


ARRAYS: list[Case] = [
    ({"tags": ["red"]}, {"tags": ["blue", "red"]}, True),
    ({"tags": ["red"]}, {"tags": ["blue", "green"]}, False),
    ({"tags": ["red", "green"]}, {"tags": ["green"]}, True),
    ({"tags": ["red"]}, {"tags": []}, False),
    ({"tags": ["red"]}, {"tags": [["red"]]}, True),  # nested arrays flatten, as in EventBridge
    ({"n": [{"numeric": [">", 10]}]}, {"n": [1, 2, 30]}, True),
    ({"n": [{"numeric": [">", 10]}]}, {"n": [1, 2, 3]}, False),
    ({"items": {"sku": ["A"]}}, {"items": [{"sku": "B"}, {"sku": "A"}]}, True),
    ({"items": {"sku": ["C"]}}, {"items": [{"sku": "B"}, {"sku": "A"}]}, False),
    # Two conditions must hold in the same array element.
    ({"items": {"sku": ["A"], "qty": [2]}}, {"items": [{"sku": "A", "qty": 2}]}, True),
    (
        {"items": {"sku": ["A"], "qty": [2]}},
        {"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]},
        False,
    ),
    ({"tags": [{"anything-but": "red"}]}, {"tags": ["red", "blue"]}, True),  # "blue" is not red
    ({"tags": [{"anything-but": "red"}]}, {"tags": ["red", "red"]}, False),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), ARRAYS, ids=_ids(ARRAYS))
def test_arrays_in_events(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.2 matching semantics: an event array matches when any element matches."""
    assert matches(pattern, event) is expected


PREFIX_SUFFIX: list[Case] = [
    ({"region": [{"prefix": "us-"}]}, {"region": "us-east-1"}, True),
    ({"region": [{"prefix": "us-"}]}, {"region": "eu-west-1"}, False),
    ({"region": [{"prefix": "us-"}]}, {"region": "US-east-1"}, False),
    ({"region": [{"prefix": "us-"}]}, {}, False),
    ({"n": [{"prefix": "1"}]}, {"n": 123}, False),  # string operators ignore numbers
    ({"f": [{"suffix": ".png"}]}, {"f": "cat.png"}, True),
    ({"f": [{"suffix": ".png"}]}, {"f": "cat.jpg"}, False),
    ({"f": [{"suffix": ".png"}]}, {"f": "cat.PNG"}, False),
    ({"s": [{"prefix": {"equals-ignore-case": "eventb"}}]}, {"s": "EventBridge"}, True),
    ({"s": [{"prefix": {"equals-ignore-case": "EVENTB"}}]}, {"s": "eventbridge"}, True),
    ({"s": [{"prefix": {"equals-ignore-case": "eventb"}}]}, {"s": "Lambda"}, False),
    ({"s": [{"suffix": {"equals-ignore-case": "tbridge"}}]}, {"s": "EvenTBRIDGE"}, True),
    ({"s": [{"suffix": {"equals-ignore-case": "tbridge"}}]}, {"s": "EventBus"}, False),
    ({"s": [{"prefix": ""}]}, {"s": "anything"}, True),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), PREFIX_SUFFIX, ids=_ids(PREFIX_SUFFIX))
def test_prefix_and_suffix(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.2 Prefix / Suffix and their equals-ignore-case forms (Pipes subset)."""
    assert matches(pattern, event) is expected


IGNORE_CASE: list[Case] = [
    ({"Name": [{"equals-ignore-case": "alice"}]}, {"Name": "ALICE"}, True),
    ({"Name": [{"equals-ignore-case": "alice"}]}, {"Name": "aLiCe"}, True),
    ({"Name": [{"equals-ignore-case": "ALICE"}]}, {"Name": "alice"}, True),
    ({"Name": [{"equals-ignore-case": "alice"}]}, {"Name": "alicia"}, False),
    ({"Name": [{"equals-ignore-case": "alice"}]}, {}, False),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), IGNORE_CASE, ids=_ids(IGNORE_CASE))
def test_equals_ignore_case(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.2 Equals ignore case."""
    assert matches(pattern, event) is expected


ANYTHING_BUT: list[Case] = [
    ({"Weather": [{"anything-but": ["Raining"]}]}, {"Weather": "Sunny"}, True),
    ({"Weather": [{"anything-but": ["Raining"]}]}, {"Weather": "Raining"}, False),
    ({"Weather": [{"anything-but": "Raining"}]}, {"Weather": "Raining"}, False),
    ({"Weather": [{"anything-but": "Raining"}]}, {"Weather": "raining"}, True),
    ({"Weather": [{"anything-but": ["Rain", "Snow"]}]}, {"Weather": "Snow"}, False),
    ({"Weather": [{"anything-but": ["Rain", "Snow"]}]}, {"Weather": "Fog"}, True),
    ({"Weather": [{"anything-but": "Raining"}]}, {}, False),  # needs the field to be present
    ({"Weather": [{"anything-but": "Raining"}]}, {"Weather": {"x": 1}}, False),  # objects are not leaves
    ({"code": [{"anything-but": 404}]}, {"code": 200}, True),
    ({"code": [{"anything-but": 404}]}, {"code": 404}, False),
    ({"code": [{"anything-but": 404}]}, {"code": 404.0}, False),  # numeric exclusion is numeric
    ({"code": [{"anything-but": [400, 404]}]}, {"code": 400}, False),
    ({"code": [{"anything-but": [400, 404]}]}, {"code": "404"}, True),  # a string is not the number
    ({"code": [{"anything-but": ["404"]}]}, {"code": 404}, True),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), ANYTHING_BUT, ids=_ids(ANYTHING_BUT))
def test_anything_but(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.2 Anything-but: a single value or a list, of strings or of numbers."""
    assert matches(pattern, event) is expected


NUMERIC: list[Case] = [
    ({"n": [{"numeric": ["=", 100]}]}, {"n": 100}, True),
    ({"n": [{"numeric": ["=", 100]}]}, {"n": 100.0}, True),  # numeric compares values
    ({"n": [{"numeric": ["=", 100]}]}, {"n": 100.5}, False),
    ({"n": [{"numeric": ["=", 100]}]}, {"n": "100"}, False),
    ({"n": [{"numeric": [">", 10]}]}, {"n": 10}, False),
    ({"n": [{"numeric": [">", 10]}]}, {"n": 10.000001}, True),
    ({"n": [{"numeric": [">=", 10]}]}, {"n": 10}, True),
    ({"n": [{"numeric": [">=", 10]}]}, {"n": 9.99}, False),
    ({"n": [{"numeric": ["<", 0]}]}, {"n": -0.5}, True),
    ({"n": [{"numeric": ["<", 0]}]}, {"n": 0}, False),
    ({"n": [{"numeric": ["<=", 0]}]}, {"n": 0}, True),
    ({"n": [{"numeric": ["<=", 0]}]}, {"n": -0.0}, True),
    ({"n": [{"numeric": [">", 10, "<=", 20]}]}, {"n": 10}, False),
    ({"n": [{"numeric": [">", 10, "<=", 20]}]}, {"n": 15}, True),
    ({"n": [{"numeric": [">", 10, "<=", 20]}]}, {"n": 20}, True),
    ({"n": [{"numeric": [">", 10, "<=", 20]}]}, {"n": 20.01}, False),
    ({"n": [{"numeric": [">=", 0, "<", 1]}]}, {"n": 0}, True),
    ({"n": [{"numeric": [">=", 0, "<", 1]}]}, {"n": 1}, False),
    ({"n": [{"numeric": [">", 1e9]}]}, {"n": 10**12}, True),  # large ints compare exactly
    ({"n": [{"numeric": [">", 0]}]}, {"n": True}, False),  # booleans are not numbers
    ({"n": [{"numeric": [">", 0]}]}, {}, False),
    ({"n": [{"numeric": [">", 0]}]}, {"n": None}, False),
    ({"n": [{"numeric": ["<", 5]}, {"numeric": [">", 100]}]}, {"n": 101}, True),
    ({"n": [{"numeric": ["<", 5]}, {"numeric": [">", 100]}]}, {"n": 50}, False),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), NUMERIC, ids=_ids(NUMERIC))
def test_numeric(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.2 Numeric: `=`, `<`, `<=`, `>`, `>=` and ranges, on JSON numbers only."""
    assert matches(pattern, event) is expected


EXISTS: list[Case] = [
    ({"a": [{"exists": True}]}, {"a": "x"}, True),
    ({"a": [{"exists": True}]}, {"a": None}, True),  # null is a present value
    ({"a": [{"exists": True}]}, {"a": ""}, True),
    ({"a": [{"exists": True}]}, {}, False),
    ({"a": [{"exists": False}]}, {}, True),
    ({"a": [{"exists": False}]}, {"b": "x"}, True),
    ({"a": [{"exists": False}]}, {"a": "x"}, False),
    ({"a": [{"exists": False}]}, {"a": None}, False),
    # Leaf nodes only: an object is never "existing", so exists:false holds for it.
    ({"person": {"address": [{"exists": True}]}}, {"person": {"address": {"city": "Oslo"}}}, False),
    ({"person": {"address": [{"exists": False}]}}, {"person": {"address": {"city": "Oslo"}}}, True),
    ({"a": {"b": [{"exists": False}]}}, {}, True),  # missing parents: the leaf is missing too
    ({"a": {"b": [{"exists": False}]}}, {"a": "scalar"}, True),
    ({"a": {"b": [{"exists": True}]}}, {"a": {"b": 0}}, True),
    ({"a": [{"exists": True}]}, {"a": []}, False),  # an empty array has no leaf value
    ({"a": [{"exists": False}]}, {"a": []}, True),
    ({"a": [{"exists": True}]}, {"a": [1]}, True),
    ({"a": [{"exists": False}, "x"]}, {"a": "x"}, True),  # OR with a value
]


@pytest.mark.parametrize(("pattern", "event", "expected"), EXISTS, ids=_ids(EXISTS))
def test_exists(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.2 Exists (leaf nodes only); `exists: false` matches absent fields (SNAP exists_false_filter)."""
    assert matches(pattern, event) is expected


OR_FIELDS: list[Case] = [
    ({"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}, {"Location": "New York"}, True),
    ({"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}, {"Day": "Monday"}, True),
    (
        {"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]},
        {"Location": "Oslo", "Day": "Friday"},
        False,
    ),
    # $or ANDed with sibling fields
    ({"src": ["a"], "$or": [{"x": [1]}, {"y": [2]}]}, {"src": "a", "y": 2}, True),
    ({"src": ["a"], "$or": [{"x": [1]}, {"y": [2]}]}, {"src": "b", "y": 2}, False),
    # $or inside a nested object, branches at that object's level
    ({"d": {"$or": [{"c": [{"numeric": [">", 0]}]}, {"l": ["x"]}]}}, {"d": {"c": 5}}, True),
    ({"d": {"$or": [{"c": [{"numeric": [">", 0]}]}, {"l": ["x"]}]}}, {"d": {"c": 0, "l": "y"}}, False),
    ({"d": {"$or": [{"c": [1]}, {"l": ["x"]}]}}, {"c": 1}, False),
    # multi-field branch is an AND
    ({"$or": [{"a": [1], "b": [2]}, {"c": [3]}]}, {"a": 1}, False),
    ({"$or": [{"a": [1], "b": [2]}, {"c": [3]}]}, {"a": 1, "b": 2}, True),
    # nested $or
    ({"$or": [{"a": [1]}, {"$or": [{"b": [2]}, {"c": [3]}]}]}, {"c": 3}, True),
    ({"$or": [{"a": [1]}, {"$or": [{"b": [2]}, {"c": [3]}]}]}, {"d": 4}, False),
    # $or with exists:false on a missing field
    ({"$or": [{"a": ["x"]}, {"a": [{"exists": False}]}]}, {}, True),
    ({"$or": [{"a": ["x"]}, {"a": [{"exists": False}]}]}, {"a": "y"}, False),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), OR_FIELDS, ids=_ids(OR_FIELDS))
def test_or_fields(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """§7.2 OR (fields): `$or` branches sit at their parent's level and are ANDed with siblings."""
    assert matches(pattern, event) is expected


def test_several_filters_are_ored() -> None:
    """§7.1: a record is kept when it matches at least one filter."""
    filters = compile_filters(['{"a": ["1"]}', '{"b": [{"prefix": "x"}]}', '{"c": [{"exists": true}]}'])
    assert filters.matches({"a": "1"})
    assert filters.matches({"b": "xyz"})
    assert filters.matches({"c": None})
    assert not filters.matches({"a": "2", "b": "yz"})
    assert not filters.matches({})


def test_empty_filter_set_keeps_everything() -> None:
    """§7.1: a mapping without filters delivers every record."""
    assert compile_filters([]).matches({})
    assert FilterSet().matches({"anything": 1})


def test_duplicate_keys_last_one_wins() -> None:
    """§7.1: duplicate keys in a pattern — the last one wins."""
    compiled = compile_pattern('{"a": ["first"], "a": ["second"]}')
    assert compiled.matches({"a": "second"})
    assert not compiled.matches({"a": "first"})


def test_dynamodb_quirk_string_operators_match_n_values() -> None:
    """§7.3/§11: `N` values are strings: numeric never matches them, anything-but and equals do."""
    pattern = {"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 100]}, {"anything-but": "101"}]}}}}
    assert matches(pattern, {"dynamodb": {"NewImage": {"n": {"N": "42"}}}})
    assert not matches(pattern, {"dynamodb": {"NewImage": {"n": {"N": "101"}}}})
    assert matches(
        {"dynamodb": {"NewImage": {"n": {"N": ["42"]}}}}, {"dynamodb": {"NewImage": {"n": {"N": "42"}}}}
    )


def test_compiled_filter_keeps_pattern_text() -> None:
    """§7.1: the compiled filter remembers its source text for display."""
    text = '{"a": ["x"]}'
    assert compile_pattern(text).pattern == text
