"""YAML loading that remembers where every key came from.

Users fix what `poller validate` prints, so each problem has to point at a line. PyYAML's
`safe_load` throws the marks away; composing the node tree first keeps them. We build the Python
values with the same SafeLoader (so tags, timestamps and merge keys behave exactly as `safe_load`)
and, beside them, a map from key path to the 1-based line of that key (or sequence item).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import yaml

KeyPath = tuple[str | int, ...]
"""A path into a YAML document: mapping keys as strings, sequence positions as ints."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(Exception):
    """The file is not one well-formed YAML document; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class LineMap:
    """Key path → line, seen from `prefix` (so one mapping's view of a multi-mapping file)."""

    lines: dict[KeyPath, int]
    prefix: KeyPath = ()

    def sub(self, *path: str | int) -> LineMap:
        """The view from one level further down, e.g. `("EventSourceMappings", 1)`."""
        return LineMap(self.lines, self.prefix + tuple(path))

    def line_of(self, path: Sequence[object] = ()) -> int | None:
        """Line of the deepest part of `path` the file spells out.

        A pydantic `loc` can name a key the file does not have (a missing required key) or
        carry validator tags; falling back to the nearest enclosing key still lands the reader on
        the right block, and ultimately on the first line of the mapping itself.
        """
        parts = tuple(p for p in path if isinstance(p, str | int))
        for depth in range(len(parts), -1, -1):
            line = self.lines.get(self.prefix + parts[:depth])
            if line is not None:
                return line
        return None


@dataclass(frozen=True, slots=True)
class YamlDocument:
    value: object
    """What `yaml.safe_load` would return (None for an empty file)."""
    lines: LineMap


def parse_yaml(
    text: str, *, loader_class: type[yaml.SafeLoader] = yaml.SafeLoader, tag_key: TagKey | None = None
) -> YamlDocument:
    """Parse exactly one YAML document, raising `YamlError` with a line for anything malformed.

    `loader_class` and `tag_key` serve loaders with tags of their own (CloudFormation's short forms:
    see `index_lines`)."""
    try:
        # The constructor already checks the characters (a NUL raises here), so it is inside.
        loader = loader_class(text)
    except yaml.YAMLError as exc:
        raise YamlError(f"Invalid YAML: {exc}", None) from exc
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, LineMap({}))
        # Index before constructing: construction flattens merge keys (`<<`) into the node in
        # place, which would make merged keys look like duplicates of the keys that override them.
        lines = index_lines(node, tag_key)
        value = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc) from exc
    except yaml.YAMLError as exc:  # unmarked errors (reader errors carry a position, not a mark)
        raise YamlError(f"Invalid YAML: {exc}", None) from exc
    except RecursionError as exc:
        raise YamlError("Invalid YAML: nested too deeply.", None) from exc
    finally:
        loader.dispose()
    return YamlDocument(value, LineMap(lines))


TagKey = Callable[[str], str | None]
"""A local tag (`!Sub`) → the key it stands for in the constructed value (`Fn::Sub`), or None."""


def index_lines(node: yaml.Node, tag_key: TagKey | None = None) -> dict[KeyPath, int]:
    """Key path → 1-based line for every key and sequence item under `node` (the root is `()`).

    Raises `YamlError` for a duplicate key. `tag_key` serves loaders whose tags construct a one-key
    mapping (CloudFormation's `!Sub x` → `{"Fn::Sub": x}`): that extra level is given the tag's line.
    Call it before constructing: construction flattens merge keys (`<<`) into the node in place,
    which would make merged keys look like duplicates of the keys that override them.
    """
    lines: dict[KeyPath, int] = {(): node.start_mark.line + 1}
    _index(node, (), lines, set(), tag_key)
    return lines


def _index(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], seen: set[int], tag_key: TagKey | None
) -> None:
    # An aliased node is indexed once, where it is anchored: walking every alias again would let
    # a few hundred bytes of nested aliases ("billion laughs") take exponential time and memory,
    # and a recursive alias (`&a [*a]`) would never end.
    if id(node) in seen:
        return
    seen.add(id(node))
    key = tag_key(node.tag) if tag_key is not None and node.tag.startswith("!") else None
    if key is not None:
        path = (*path, key)
        lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key_path = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if key_path in lines:
                # PyYAML keeps the last duplicate silently; a setting that is quietly ignored is
                # worse than a refused file.
                raise YamlError(f"Duplicate key '{key_node.value}' (first on line {lines[key_path]}).", line)
            lines[key_path] = line
            _index(value_node, key_path, lines, seen, tag_key)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            item_path = (*path, position)
            lines[item_path] = item.start_mark.line + 1
            _index(item, item_path, lines, seen, tag_key)


def _yaml_error(exc: yaml.MarkedYAMLError) -> YamlError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or "malformed YAML"
    if (exc.context or "").startswith("expected a single document"):
        return YamlError("A file holds one YAML document; found a second ('---').", line)
    context = f"{exc.context}: " if exc.context else ""
    return YamlError(f"Invalid YAML: {context}{problem}", line)
