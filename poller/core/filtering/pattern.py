"""Parse, validate and compile filter patterns (spec §7.1, §7.2, §7.6).

Validation follows EventBridge's rule compiler restricted to what Lambda ESM accepts (the Pipes
subset): anything AWS would refuse raises `FilterPatternError` at create/update time, never while
records flow.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Any, Final

from poller.core.filtering.conditions import (
    AnythingBut,
    Condition,
    EqualsIgnoreCase,
    Leaf,
    Numeric,
    Prefix,
    Suffix,
    eq_key,
    is_number,
)
from poller.core.filtering.errors import FilterPatternError
from poller.core.filtering.matcher import CompiledFilter, DataField, Field, FilterSet, Obj
from poller.core.filtering.records import DATA_KEYS, SourceKind, reject_non_json_constant

MAX_PATTERN_LENGTH: Final = 4096
DEFAULT_MAX_FILTERS: Final = 5
MAX_FILTERS_QUOTA: Final = 10
"""Spec §7.1: 5 filters per mapping by default, raisable by quota to 10."""

MAX_DEPTH: Final = 100
"""Our own bound on object nesting, so compiling and matching stay far from Python's recursion
limit; AWS documents none, and 4096 characters could otherwise nest ~680 levels."""

OR_KEY: Final = "$or"
_OPERATORS: Final = frozenset({"prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists"})
_UNSUPPORTED: Final = frozenset({"wildcard", "cidr", "exactly"})
"""EventBridge operators Lambda ESM does not accept (spec §7.2: not in the Pipes subset)."""
_RESERVED_IN_OR: Final = (
    _OPERATORS
    | _UNSUPPORTED
    | {"=", "<", "<=", ">", ">=", "regex", "not-wildcard", "not-equals-ignore-case"}
    | {"date-after", "date-on-or-after", "date-before", "date-on-or-before", "in-date-range"}
    | {"ip-address-in-range", "ip-address-not-in-range"}
)
"""EventBridge's rule compiler refuses these as field names inside `$or` (where a legacy reading
would take them for operators); we refuse what it refuses."""

_LOWER_OPS: Final = {">": True, ">=": False}  # value: is the bound open
_UPPER_OPS: Final = {"<": True, "<=": False}

_DATA_MUST_BE_JSON: Final = frozenset({"kinesis", "dynamodb"})
_MISMATCH_PASSES: Final[dict[SourceKind, bool]] = {
    "sqs": False,
    "kinesis": False,
    "dynamodb": False,
    "kafka": True,
}
"""Spec §7.4: on a data/pattern format mismatch Kafka filters on metadata only; the rest drop."""


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


class _Compiler:
    """One pattern's compilation; `source` decides which top-level key gets the §7.4 rules."""

    def __init__(self, source: SourceKind | None) -> None:
        self.data_key = DATA_KEYS[source] if source else None
        self.data_must_be_json = source in _DATA_MUST_BE_JSON
        self.passes_on_mismatch = _MISMATCH_PASSES[source] if source else False

    def obj(self, doc: dict[str, Any], path: str, *, top: bool, in_or: bool, depth: int) -> Obj:
        if depth > MAX_DEPTH:
            raise FilterPatternError(f"pattern nests deeper than {MAX_DEPTH} objects")
        if not doc:
            raise FilterPatternError(f"empty object at {path or 'the top level'}")
        fields: list[Field | DataField] = []
        any_of: list[tuple[Obj, ...]] = []
        for key, value in doc.items():
            if key == OR_KEY:
                any_of.append(self.or_group(value, path, top=top, depth=depth))
                continue
            where = f"{path}.{key}" if path else key
            if in_or and key in _RESERVED_IN_OR:
                raise FilterPatternError(f"{where}: operator name {key!r} cannot be a field inside $or")
            node: Leaf | Obj
            if isinstance(value, dict):
                node = self.obj(value, where, top=False, in_or=in_or, depth=depth + 1)
            elif isinstance(value, list):
                node = self.leaf(value, where)
            else:
                raise FilterPatternError(f"{where}: must be an array or an object, not {_kind(value)}")
            if top and key == self.data_key:
                if self.data_must_be_json and isinstance(node, Leaf):
                    raise FilterPatternError(f"{where}: the data pattern must be a JSON object (spec §7.4)")
                fields.append(DataField(key, node, self.passes_on_mismatch))
            else:
                fields.append(Field(key, node))
        return Obj(tuple(fields), tuple(any_of))

    def or_group(self, value: object, path: str, *, top: bool, depth: int) -> tuple[Obj, ...]:
        where = f"{path}.{OR_KEY}" if path else OR_KEY
        if not isinstance(value, list):
            raise FilterPatternError(f"{where}: must be an array of objects")
        if len(value) < 2:
            raise FilterPatternError(f"{where}: needs at least 2 objects")
        branches: list[Obj] = []
        for branch in value:
            if not isinstance(branch, dict):
                raise FilterPatternError(f"{where}: only objects are allowed, not {_kind(branch)}")
            branches.append(self.obj(branch, path, top=top, in_or=True, depth=depth + 1))
        return tuple(branches)

    def leaf(self, values: list[Any], where: str) -> Leaf:
        if not values:
            raise FilterPatternError(f"{where}: empty arrays are not allowed")
        exact: set[Hashable] = set()
        conditions: list[Condition] = []
        exists_true = exists_false = False
        for item in values:
            if isinstance(item, dict):
                if len(item) != 1:
                    raise FilterPatternError(f"{where}: a match expression has exactly one operator")
                ((name, arg),) = item.items()
                if name == "exists":
                    if not isinstance(arg, bool):
                        raise FilterPatternError(f"{where}: exists takes true or false")
                    exists_true |= arg
                    exists_false |= not arg
                else:
                    conditions.append(_operator(name, arg, where))
            elif isinstance(item, list):
                raise FilterPatternError(f"{where}: arrays cannot be nested in a value list")
            else:
                exact.add(eq_key(item))  # string, number, true, false or null
        return Leaf(frozenset(exact), tuple(conditions), exists_true, exists_false)


def _operator(name: str, arg: object, where: str) -> Condition:
    if name in ("prefix", "suffix"):
        kind = Prefix if name == "prefix" else Suffix
        if isinstance(arg, str):
            return kind(arg)
        if isinstance(arg, dict) and len(arg) == 1 and isinstance(arg.get("equals-ignore-case"), str):
            return kind(arg["equals-ignore-case"].lower(), ignore_case=True)
        raise FilterPatternError(f"{where}: {name} takes a string or {{'equals-ignore-case': string}}")
    if name == "equals-ignore-case":
        if not isinstance(arg, str):
            raise FilterPatternError(f"{where}: equals-ignore-case takes a string")
        return EqualsIgnoreCase(arg.lower())
    if name == "anything-but":
        return _anything_but(arg, where)
    if name == "numeric":
        return _numeric(arg, where)
    if name in _UNSUPPORTED or name.startswith("anything-but"):
        raise FilterPatternError(f"{where}: {name!r} is not supported by Lambda event filtering")
    raise FilterPatternError(f"{where}: unknown operator {name!r}")


def _anything_but(arg: object, where: str) -> AnythingBut:
    if isinstance(arg, dict):
        # Spec §7.2: anything-but with prefix/suffix/equals-ignore-case/wildcard is Pipes-unsupported.
        raise FilterPatternError(f"{where}: anything-but takes values only, not {sorted(arg)}")
    items = arg if isinstance(arg, list) else [arg]
    if items and all(isinstance(item, str) for item in items):
        return AnythingBut(frozenset(items), numeric=False)
    if items and all(is_number(item) for item in items):
        return AnythingBut(frozenset(items), numeric=True)
    raise FilterPatternError(
        f"{where}: anything-but takes a string, a number, or a non-empty array of only one of them"
    )


def _number(value: object, where: str) -> int | float:
    if not is_number(value):
        raise FilterPatternError(f"{where}: numeric bounds must be numbers, not {_kind(value)}")
    return value


def _numeric(arg: object, where: str) -> Numeric:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise FilterPatternError(f"{where}: numeric takes [op, n] or [>/>=, n, </<=, m]")
    op = arg[0]
    value = _number(arg[1], where)
    if len(arg) == 2:
        if op == "=":
            return Numeric(value, False, value, False)
        if op in _LOWER_OPS:
            return Numeric(low=value, low_open=_LOWER_OPS[op])
        if op in _UPPER_OPS:
            return Numeric(high=value, high_open=_UPPER_OPS[op])
        raise FilterPatternError(f"{where}: unknown numeric operator {op!r}")
    # A range: the lower bound comes first, as EventBridge requires.
    op2, top = arg[2], _number(arg[3], where)
    if op not in _LOWER_OPS or op2 not in _UPPER_OPS:
        raise FilterPatternError(f"{where}: a numeric range is [>/>=, n, </<=, m]")
    if not value < top:
        raise FilterPatternError(f"{where}: numeric range bottom must be less than top")
    return Numeric(value, _LOWER_OPS[op], top, _UPPER_OPS[op2])


def compile_pattern(pattern: str, *, source: SourceKind | None = None) -> CompiledFilter:
    """Compile one `Pattern` string; raises `FilterPatternError` for anything AWS refuses.

    With `source`, the §7.4 format rules for that source's data key are compiled in (and, for
    Kinesis/DynamoDB, a non-object data pattern is refused); without it, plain EventBridge rules.
    """
    if not isinstance(pattern, str):
        raise FilterPatternError(f"a pattern is a JSON string, not {_kind(pattern)}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise FilterPatternError(f"pattern is {len(pattern)} characters; at most {MAX_PATTERN_LENGTH}")
    try:
        doc = json.loads(pattern, parse_constant=reject_non_json_constant)
    except (ValueError, RecursionError) as exc:
        raise FilterPatternError(f"pattern is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise FilterPatternError(f"a pattern is a JSON object, not {_kind(doc)}")
    root = _Compiler(source).obj(doc, "", top=True, in_or=False, depth=1)
    return CompiledFilter(pattern, root, source)


def compile_filters(
    patterns: Sequence[str],
    *,
    source: SourceKind | None = None,
    max_filters: int = DEFAULT_MAX_FILTERS,
) -> FilterSet:
    """Compile a mapping's `FilterCriteria.Filters[*].Pattern` list into one ORed set.

    `max_filters` is the account's quota (spec §7.1: 5 by default, at most 10).
    """
    if not 1 <= max_filters <= MAX_FILTERS_QUOTA:
        raise ValueError(f"max_filters must be 1..{MAX_FILTERS_QUOTA}, not {max_filters}")
    if isinstance(patterns, str):
        raise FilterPatternError("filters are a list of pattern strings, not one string")
    if len(patterns) > max_filters:
        raise FilterPatternError(f"{len(patterns)} filters; at most {max_filters} are allowed")
    compiled: list[CompiledFilter] = []
    for index, pattern in enumerate(patterns):
        try:
            compiled.append(compile_pattern(pattern, source=source))
        except FilterPatternError as exc:
            raise exc.at(index) from exc
    return FilterSet(tuple(compiled))
