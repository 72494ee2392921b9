"""Leaf conditions: what one element of a pattern's value list tests against one event value.

Each condition is compiled once from the pattern (pattern.py) and then only compares Python values,
so matching a record never touches the pattern's JSON again.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeGuard


class _Missing:
    """The value of a field the event does not have (distinct from JSON `null`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()

_NO_KEY: Final = object()
"""Equality key of values no pattern literal can equal (objects, undecodable data)."""


def is_number(value: object) -> TypeGuard[int | float]:
    # JSON booleans are not numbers, but Python's bool subclasses int: exclude it explicitly.
    return isinstance(value, int | float) and not isinstance(value, bool)


def eq_key(value: object) -> Hashable:
    """The key under which a value is compared for exact equality (spec §7.2).

    Matching is typed: `"1"`, `1`, `1.0` and `true` are four different values. The type is part of
    the key because Python would otherwise call `1 == 1.0 == True`. AWS compares numbers by their
    text (`300` vs `300.0` vs `3.0e2`); after JSON decoding only int-vs-float survives, so
    `300.0` and `3.0e2` (both floats) are equal here.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return (bool, value)
    if isinstance(value, int):
        return (int, value)
    if isinstance(value, float):
        return (float, value)
    if value is None:
        return None
    return _NO_KEY


class Condition(Protocol):
    def matches(self, value: object) -> bool: ...


@dataclass(frozen=True, slots=True)
class Prefix:
    """`{"prefix": "us-"}`, or with `{"equals-ignore-case": ...}` inside (spec §7.2)."""

    text: str
    ignore_case: bool = False

    def matches(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        return (value.lower() if self.ignore_case else value).startswith(self.text)


@dataclass(frozen=True, slots=True)
class Suffix:
    """`{"suffix": ".png"}`, or with `{"equals-ignore-case": ...}` inside (spec §7.2)."""

    text: str
    ignore_case: bool = False

    def matches(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        return (value.lower() if self.ignore_case else value).endswith(self.text)


@dataclass(frozen=True, slots=True)
class EqualsIgnoreCase:
    """`{"equals-ignore-case": "alice"}`; `text` is stored lower-cased."""

    text: str

    def matches(self, value: object) -> bool:
        return isinstance(value, str) and value.lower() == self.text


@dataclass(frozen=True, slots=True)
class Numeric:
    """`{"numeric": [...]}`: one interval; `=` is the closed interval [v, v].

    Only JSON numbers qualify, which is why DynamoDB's `{"N": "42"}` strings never match (§7.3, §11).
    """

    low: int | float | None = None
    low_open: bool = False
    high: int | float | None = None
    high_open: bool = False

    def matches(self, value: object) -> bool:
        if not is_number(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


@dataclass(frozen=True, slots=True)
class AnythingBut:
    """`{"anything-but": ...}` with strings or with numbers, never mixed (spec §7.2).

    Any present leaf that is not one of the values matches, including values of another type.
    Numbers are excluded numerically (`1` also excludes `1.0`), as EventBridge compares them.
    """

    values: frozenset[str] | frozenset[int | float]
    numeric: bool

    def matches(self, value: object) -> bool:
        if self.numeric:
            return not (is_number(value) and value in self.values)
        return not (isinstance(value, str) and value in self.values)


def _flatten(values: Sequence[object], out: list[object]) -> list[object]:
    for item in values:
        if isinstance(item, list):
            _flatten(item, out)
        elif not isinstance(item, Mapping):  # objects inside arrays are not leaves
            out.append(item)
    return out


@dataclass(frozen=True, slots=True)
class Leaf:
    """A pattern's value list: OR of its elements, tested against the event's leaf values.

    Literals sit in one set so the common `["a", "b", ...]` costs one hash lookup per value.
    """

    exact: frozenset[Hashable] = frozenset()
    conditions: tuple[Condition, ...] = ()
    exists_true: bool = False
    exists_false: bool = False

    def test(self, value: object) -> bool:
        # A missing field, an object (not a leaf, spec §7.2) and an empty array have no leaf value:
        # only `exists: false` can match them.
        if value is MISSING or isinstance(value, Mapping):
            return self.exists_false
        values: Sequence[object]
        if isinstance(value, list):
            values = _flatten(value, [])
            if not values:
                return self.exists_false
        else:
            values = (value,)
        if self.exists_true:
            return True
        exact = self.exact
        for item in values:
            if exact and eq_key(item) in exact:
                return True
            for condition in self.conditions:
                if condition.matches(item):
                    return True
        return False
