"""Compiled patterns and the per-record match (spec §7.1, §7.2, §7.4).

A pattern compiles to a tree of `Obj` (AND of fields, plus `$or` groups) whose fields end in
`Leaf` value lists. Matching walks that tree against a record view; nothing is parsed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from poller.core.filtering.conditions import MISSING, Leaf
from poller.core.filtering.records import UNDECODABLE, SourceKind


def _get(container: object, key: str) -> object:
    # A field under a scalar (e.g. `body.x` when the body is a plain string) simply does not exist.
    return container.get(key, MISSING) if isinstance(container, Mapping) else MISSING


@dataclass(frozen=True, slots=True)
class Field:
    """`"key": <value list or nested object>` — every field of an object must match (AND)."""

    key: str
    node: Leaf | Obj

    def matches(self, container: object) -> bool:
        return self.node.test(_get(container, self.key))


@dataclass(frozen=True, slots=True)
class DataField:
    """The source's data key at the top level, where spec §7.4's format rules apply.

    A JSON-object pattern meeting data that is not an object, a value-list pattern meeting a JSON
    object, or data that could not be decoded at all is a format mismatch. SQS, Kinesis and
    DynamoDB then drop the record (`passes_on_mismatch=False`); Kafka ignores the data condition
    and filters on the other fields only (`True`).
    """

    key: str
    node: Leaf | Obj
    passes_on_mismatch: bool

    def matches(self, container: object) -> bool:
        value = _get(container, self.key)
        if value is UNDECODABLE:
            return self.passes_on_mismatch
        if value is not MISSING:
            # Arrays are neither: EventBridge's array rules decide (any element may match).
            if isinstance(self.node, Obj):
                mismatch = not isinstance(value, Mapping | list)
            else:
                mismatch = isinstance(value, Mapping)
            if mismatch:
                return self.passes_on_mismatch
        return self.node.test(value)


@dataclass(frozen=True, slots=True)
class Obj:
    """A pattern object: all `fields` match, and in each `$or` group at least one branch does.

    `$or` branches are objects at the same level as their parent (spec §7.2, OR of fields).
    """

    fields: tuple[Field | DataField, ...] = ()
    any_of: tuple[tuple[Obj, ...], ...] = ()

    def test(self, value: object) -> bool:
        if isinstance(value, list):
            # An array of objects matches when one element matches the whole sub-pattern, so
            # conditions on two fields are never satisfied by two different elements.
            elements = [item for item in value if isinstance(item, Mapping)]
            if elements:
                return any(self.match_object(item) for item in elements)
            value = MISSING
        return self.match_object(value)

    def match_object(self, value: object) -> bool:
        for f in self.fields:
            if not f.matches(value):
                return False
        return all(any(branch.match_object(value) for branch in group) for group in self.any_of)


@dataclass(frozen=True)
class CompiledFilter:
    """One `FilterCriteria.Filters[*].Pattern`, compiled once (see `compile_pattern`)."""

    pattern: str
    """The pattern text as given, for display; matching never reads it."""
    root: Obj = field(repr=False)
    source: SourceKind | None = None
    """The source whose §7.4 data-key rules were compiled in; `None` = plain EventBridge rules."""

    def matches(self, view: Mapping[str, Any]) -> bool:
        return self.root.match_object(view)


@dataclass(frozen=True)
class FilterSet:
    """A mapping's filters: a record is kept when at least one matches (spec §7.1)."""

    filters: tuple[CompiledFilter, ...] = ()

    def matches(self, view: Mapping[str, Any]) -> bool:
        """True when the record is kept; a mapping without filters keeps every record."""
        if not self.filters:
            return True
        return any(f.matches(view) for f in self.filters)
