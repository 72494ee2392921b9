"""The constraints of botocore's Lambda model on a mapping document, checked as Lambda checks them.

Lambda validates a CreateEventSourceMapping request against its service model before any rule of
its own: lengths, value ranges, enums and patterns of every member, nested ones included, each
refused with the model-validation message `1 validation error detected: Value '…' at '…' failed to
satisfy constraint: Member must …` (spec §1.6). Reading the constraints from the model botocore
ships, rather than restating them, keeps poller's parity with the API as exact as boto3's own
view of it; a mapping file and an API request go through the same check (DESIGN §1.4, §1.9).

Types and unknown keys are `poller.config.mapping`'s (pydantic) job, as they are botocore's on the
client side; this module sees a document that already has the right types.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.model import (
    ListShape,
    MapShape,
    NoShapeFoundError,
    ServiceModel,
    Shape,
    StringShape,
    StructureShape,
)

OPERATION = "CreateEventSourceMapping"
API_VERSION = "2015-03-31"

ENUM_ORDER: dict[str, tuple[str, ...]] = {
    "EventSourcePosition": ("LATEST", "AT_TIMESTAMP", "TRIM_HORIZON"),
}
"""spec §1.6: the order AWS lists an enum in its message where it is observed to differ from the
model's (StartingPosition)."""

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Violation:
    """One failed constraint: where it is in the document, and AWS's sentence for it."""

    path: Path
    """Document path in the file's spelling, e.g. `("SourceAccessConfigurations", 0, "URI")`."""
    text: str
    """`Value '…' at '…' failed to satisfy constraint: Member must …`."""


def validation_message(texts: Sequence[str]) -> str:
    """AWS's whole message for one or more violations (`N validation errors detected: …; …`)."""
    count = len(texts)
    plural = "error" if count == 1 else "errors"
    return f"{count} validation {plural} detected: {'; '.join(texts)}"


@functools.cache
def _service_model() -> ServiceModel:
    return botocore.session.Session().get_service_model("lambda", api_version=API_VERSION)


@functools.cache
def request_shape(operation: str = OPERATION) -> StructureShape:
    """The input shape of a Lambda operation in botocore's model (read once per process)."""
    shape = _service_model().operation_model(operation).input_shape
    assert isinstance(shape, StructureShape), operation
    return shape


@functools.cache
def error_members(code: str) -> frozenset[str] | None:
    """The members an error shape of the model declares (`Type`, `Message` or `message`, …), or None
    for an error the model does not declare."""
    try:
        shape = _service_model().shape_for(code)
    except NoShapeFoundError:
        return None
    if not isinstance(shape, StructureShape) or not shape.metadata.get("exception"):
        return None
    return frozenset(shape.members)


def check_document(document: Mapping[str, Any], shape: StructureShape | None = None) -> list[Violation]:
    """Every model constraint `document` breaks; keys the model does not know are left alone."""
    return list(_structure(document, shape or request_shape(), (), ""))


def _structure(
    value: Mapping[str, Any], shape: StructureShape, path: Path, where: str
) -> Iterator[Violation]:
    for key, member in shape.members.items():
        if key not in value or value[key] is None:
            continue
        yield from _value(value[key], member, (*path, key), _join(where, key))


def _value(value: Any, shape: Shape, path: Path, where: str) -> Iterator[Violation]:
    if isinstance(shape, StructureShape):
        if isinstance(value, Mapping):
            yield from _structure(value, shape, path, where)
        return
    if isinstance(shape, ListShape):
        yield from _list(value, shape, path, where)
        return
    if isinstance(shape, MapShape):
        yield from _map(value, shape, path, where)
        return
    for failed in scalar_failures(value, shape):
        yield Violation(path, f"Value {_show(value)} at '{where}' failed to satisfy constraint: {failed}")


def _list(value: Any, shape: ListShape, path: Path, where: str) -> Iterator[Violation]:
    if not isinstance(value, list | tuple):
        return
    for failed in _length_failures(len(value), shape):
        yield Violation(path, f"Value {_show(value)} at '{where}' failed to satisfy constraint: {failed}")
    member = shape.member
    if isinstance(member, StructureShape | ListShape | MapShape):
        # Lambda names an element of a list of structures `list.<1-based index>.member.<name>`.
        for index, item in enumerate(value):
            yield from _value(item, member, (*path, index), f"{where}.{index + 1}.member")
        return
    for index, item in enumerate(value):
        failures = scalar_failures(item, member)
        if failures:
            text = f"Value {_show(value)} at '{where}' failed to satisfy constraint: " + _nested(failures)
            yield Violation((*path, index), text)


def _map(value: Any, shape: MapShape, path: Path, where: str) -> Iterator[Violation]:
    if not isinstance(value, Mapping):
        return
    for failed in _length_failures(len(value), shape):
        yield Violation(path, f"Value {_show(value)} at '{where}' failed to satisfy constraint: {failed}")
    for key, item in value.items():
        key_failures = scalar_failures(key, shape.key)
        if key_failures:
            text = f"Value {_show(value)} at '{where}' failed to satisfy constraint: Map keys must " + (
                _nested(key_failures).removeprefix("Member must ")
            )
            yield Violation((*path, key), text)
        if isinstance(shape.value, ListShape | StructureShape | MapShape):
            yield from _value(item, shape.value, (*path, key), f"{where}.{key}")
            continue
        value_failures = scalar_failures(item, shape.value)
        if value_failures:
            text = f"Value {_show(value)} at '{where}' failed to satisfy constraint: Map value must " + (
                _nested(value_failures).removeprefix("Member must ")
            )
            yield Violation((*path, key), text)


def scalar_failures(value: Any, shape: Shape) -> list[str]:
    """The constraints of a string or number shape that `value` breaks, in AWS's words."""
    meta = shape.metadata
    failures: list[str] = []
    if shape.type_name == "string" and isinstance(value, str):
        failures += _length_failures(len(value), shape)
        pattern = meta.get("pattern")
        if pattern is not None and not compiled_pattern(pattern)(value):
            failures.append(f"Member must satisfy regular expression pattern: {pattern}")
        if isinstance(shape, StringShape) and shape.enum and value not in shape.enum:
            listed = ENUM_ORDER.get(shape.name, tuple(shape.enum))
            failures.append(f"Member must satisfy enum value set: [{', '.join(listed)}]")
    elif shape.type_name in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        if "min" in meta and value < meta["min"]:
            failures.append(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            failures.append(f"Member must have value less than or equal to {meta['max']}")
    return failures


def _length_failures(length: int, shape: Shape) -> list[str]:
    meta = shape.metadata
    failures: list[str] = []
    if "min" in meta and length < meta["min"]:
        failures.append(f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and length > meta["max"]:
        failures.append(f"Member must have length less than or equal to {meta['max']}")
    return failures


def _nested(failures: list[str]) -> str:
    return f"Member must satisfy constraint: [{', '.join(failures)}]"


def _join(where: str, key: str) -> str:
    # Lambda spells members lowerCamelCase in its messages (`startingPosition`, `kMSKeyArn`).
    camel = key[:1].lower() + key[1:]
    return f"{where}.{camel}" if where else camel


def _show(value: Any) -> str:
    """A value as the Java service prints it: `'text'`, `'[a, b]'`, `'{k=v}'`."""
    return f"'{_java_text(value)}'"


def _java_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_java_text(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_java_text(k)}={_java_text(v)}" for k, v in value.items()) + "}"
    return str(value)


# Java's Unicode categories, which Python's `re` lacks; the model uses them only inside a
# character class (the Tags pattern), e.g. `([\p{L}\p{Z}\p{N}_.:/=+\-@]*)`.
_CATEGORY_CLASS = re.compile(r"^\(?\[((?:\\p\{[A-Z]\}|\\.|[^\]\\])+)\]\*\)?$")
_CLASS_ITEM = re.compile(r"\\p\{([A-Z])\}|\\(.)|(.)")


@functools.cache
def compiled_pattern(pattern: str) -> Callable[[str], bool]:
    """A full-match test for a model pattern (Java regex, as the service applies it)."""
    if "\\p{" not in pattern:
        regex = re.compile(pattern)
        return lambda text: regex.fullmatch(text) is not None
    found = _CATEGORY_CLASS.match(pattern)
    if found is None:
        # A new shape of pattern in a future model: refuse to guess, loudly (the parity test sees it).
        raise ValueError(f"unsupported Unicode-category pattern in botocore's model: {pattern}")
    categories: set[str] = set()
    characters: set[str] = set()
    for item in _CLASS_ITEM.finditer(found[1]):
        category, escaped, plain = item.groups()
        if category is not None:
            categories.add(category)
        else:
            characters.add(escaped or plain)
    return lambda text: all(c in characters or unicodedata.category(c)[0] in categories for c in text)
