"""Property tests for event filtering (spec §7.1, §7.2): what must never change a verdict."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from poller.core.filtering import MAX_PATTERN_LENGTH, compile_filters, compile_pattern

KEYS = ["a", "b", "c", "d"]
"""Pattern and event keys share a small alphabet so that patterns often meet their fields."""
EXTRA_KEYS = ["x-extra", "y_extra", "$or"]
"""Never named by a generated pattern (`$or` is an operator in patterns, a plain field in events)."""

texts = st.sampled_from(["", "us-east-1", "US-EAST-1", "eu-west-1", "Alice", "alice", "a.png", "x"])
numbers = st.one_of(st.integers(-5, 5), st.sampled_from([-1.5, 0.0, 0.5, 2.0, 300.0, 1e3]))
scalars = st.one_of(texts, numbers, st.booleans(), st.none())


def numeric_condition() -> st.SearchStrategy[dict[str, Any]]:
    single = st.tuples(st.sampled_from(["=", "<", "<=", ">", ">="]), numbers).map(list)
    ranged = st.tuples(
        st.sampled_from([">", ">="]), numbers, st.sampled_from(["<", "<="]), st.integers(1, 4)
    ).map(lambda t: [t[0], t[1], t[2], t[1] + t[3]])
    return st.one_of(single, ranged).map(lambda ops: {"numeric": ops})


conditions = st.one_of(
    scalars,
    texts.map(lambda t: {"prefix": t}),
    texts.map(lambda t: {"suffix": t}),
    texts.map(lambda t: {"prefix": {"equals-ignore-case": t}}),
    texts.map(lambda t: {"suffix": {"equals-ignore-case": t}}),
    texts.map(lambda t: {"equals-ignore-case": t}),
    st.one_of(texts, st.lists(texts, min_size=1, max_size=3)).map(lambda v: {"anything-but": v}),
    st.lists(st.integers(-3, 3), min_size=1, max_size=3).map(lambda v: {"anything-but": v}),
    numeric_condition(),
    st.booleans().map(lambda b: {"exists": b}),
)
value_lists = st.lists(conditions, min_size=1, max_size=3)


def pattern_objects(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    child = value_lists if depth == 0 else st.one_of(value_lists, pattern_objects(depth - 1))
    fields = st.dictionaries(st.sampled_from(KEYS), child, min_size=1, max_size=2)
    if depth == 0:
        return fields
    branches = st.lists(pattern_objects(depth - 1), min_size=2, max_size=3)
    with_or = st.tuples(fields, branches).map(lambda t: {**t[0], "$or": t[1]})
    return st.one_of(fields, with_or, branches.map(lambda b: {"$or": b}))


patterns = pattern_objects()

events = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.fixed_dictionaries({}, optional=dict.fromkeys(KEYS, inner)),
    ),
    max_leaves=12,
)
random_events = st.fixed_dictionaries({}, optional=dict.fromkeys(KEYS, events))

_OMIT = object()


def _satisfying(condition: Any) -> Any:
    """A value one pattern condition accepts (`_OMIT` for `exists: false`)."""
    if not isinstance(condition, dict):
        return condition
    ((name, arg),) = condition.items()
    if name in ("prefix", "suffix"):
        text = arg["equals-ignore-case"].upper() if isinstance(arg, dict) else arg
        return text + "-tail" if name == "prefix" else "head-" + text
    if name == "equals-ignore-case":
        return arg.upper()
    if name == "anything-but":
        return 99 if isinstance(arg, str) or isinstance(arg[0], str) else "other"
    if name == "exists":
        return "present" if arg else _OMIT
    op, n = arg[0], arg[1]
    if len(arg) == 4:
        return n + 0.5
    return {"<": n - 1, ">": n + 1}.get(op, n)


def witness(pattern: dict[str, Any]) -> dict[str, Any]:
    """An event meant to match (first choice everywhere; a contradictory pattern still fails).

    Random events alone rarely match; mixing witnesses in gives the properties both verdicts
    (about a third of generated cases match).
    """
    event: dict[str, Any] = {}
    for key, value in pattern.items():
        if key == "$or":
            event.update(witness(value[0]))
            continue
        found = witness(value) if isinstance(value, dict) else _satisfying(value[0])
        if found is not _OMIT:
            event[key] = found
    return event


@st.composite
def pattern_and_event(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    pattern = draw(patterns)
    event = draw(random_events)
    if draw(st.booleans()):
        event = {**event, **witness(pattern)}
    return pattern, event


def reversed_keys(value: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(item) for item in value]
    return value


def with_extras(value: Any, extra: Any) -> Any:
    """The same JSON value with fields no pattern names added to every object."""
    if isinstance(value, dict):
        out = {key: with_extras(item, extra) for key, item in value.items()}
        out.update(dict.fromkeys(EXTRA_KEYS, extra))
        return out
    if isinstance(value, list):
        return [with_extras(item, extra) for item in value]
    return value


@settings(max_examples=300)
@given(case=pattern_and_event())
def test_event_key_order_never_changes_the_result(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """§7.1: fields are matched by name; their order in the event is irrelevant."""
    pattern, event = case
    compiled = compile_pattern(json.dumps(pattern))
    assert compiled.matches(event) == compiled.matches(reversed_keys(event))


@settings(max_examples=300)
@given(case=pattern_and_event(), extra=events)
def test_irrelevant_fields_never_change_the_result(
    case: tuple[dict[str, Any], dict[str, Any]], extra: Any
) -> None:
    """§7.1: fields the pattern does not name are ignored, at every level."""
    pattern, event = case
    compiled = compile_pattern(json.dumps(pattern))
    assert compiled.matches(event) == compiled.matches(with_extras(event, extra))


@settings(max_examples=200)
@given(case=pattern_and_event())
def test_pattern_key_order_and_layout_never_change_the_result(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """§7.1: a pattern is an AND over named fields; its key order and whitespace mean nothing."""
    pattern, event = case
    spaced = json.dumps(reversed_keys(pattern), indent=1)
    assume(len(spaced) <= MAX_PATTERN_LENGTH)
    compact = compile_pattern(json.dumps(pattern, separators=(",", ":")))
    reordered = compile_pattern(spaced)
    assert compact.matches(event) == reordered.matches(event)


@given(pattern=patterns)
def test_compile_is_deterministic(pattern: dict[str, Any]) -> None:
    """§7.1: compiling the same text twice gives equal filters; layout does not matter."""
    text = json.dumps(pattern, separators=(",", ":"))
    spaced = json.dumps(pattern, indent=1)
    assume(len(spaced) <= MAX_PATTERN_LENGTH)
    assert compile_pattern(text) == compile_pattern(text)
    assert compile_pattern(text).root == compile_pattern(spaced).root
    assert compile_filters([text]) == compile_filters([text])


@settings(max_examples=200)
@given(case=pattern_and_event(), second=patterns)
def test_filter_set_is_the_or_of_its_filters(
    case: tuple[dict[str, Any], dict[str, Any]], second: dict[str, Any]
) -> None:
    """§7.1: filters are ORed, whatever their order."""
    first, event = case
    texts_ = [json.dumps(first), json.dumps(second)]
    expected = any(compile_pattern(t).matches(event) for t in texts_)
    assert compile_filters(texts_).matches(event) == expected
    assert compile_filters(texts_[::-1]).matches(event) == expected
