"""What a filter pattern sees of each source's record (spec §7.3).

A view is the Lambda record with its data key decoded: SQS `body` parsed when it is JSON, Kinesis
`data` and Kafka `value` base64-decoded then parsed when JSON, DynamoDB untouched (typed attribute
values). Views are built per record, so they copy shallowly and decode only the one data field.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

SourceKind = Literal["sqs", "kinesis", "dynamodb", "kafka"]
"""Same values as `poller.config.sources.SourceKind`; restated so the pure core imports no config."""

DATA_KEYS: Final[Mapping[SourceKind, str]] = {
    "sqs": "body",
    "kinesis": "data",
    "dynamodb": "dynamodb",
    "kafka": "value",
}
"""The key under which each source's payload sits in a pattern (spec §7.3)."""


class _Undecodable:
    """Data that is not base64 or not UTF-8: no data condition can hold for it (spec §7.4)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<undecodable>"


UNDECODABLE: Final = _Undecodable()


def reject_non_json_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; JSON (and AWS) do not.
    raise ValueError(f"{name} is not JSON")


def json_or_text(text: str) -> Any:
    """`text` parsed as JSON when it is JSON (any JSON value), else `text` itself (spec §7.3)."""
    # The stdlib, not orjson: orjson turns integers beyond 64 bits into floats, and an id like
    # 123456789012345678901234567890 must still equal itself in a pattern.
    try:
        return json.loads(text, parse_constant=reject_non_json_constant)
    except (ValueError, RecursionError):
        return text


def decode_payload(data: object) -> Any:
    """A base64 payload (Kinesis `data`, Kafka `value`) as the filter sees it."""
    if isinstance(data, str):
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return UNDECODABLE
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        return UNDECODABLE
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return UNDECODABLE
    return json_or_text(text)


def sqs_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The SQS record with `body` parsed when it is JSON, else kept as the plain string."""
    view = dict(record)
    body = record.get("body")
    if isinstance(body, str):
        view["body"] = json_or_text(body)
    return view


def kinesis_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The Kinesis record flattened: the `kinesis` object's fields next to the envelope's.

    Spec §7.3: patterns address `data` and `partitionKey` at the top level, not under `kinesis`,
    so the nested object is not kept (a pattern on `kinesis.partitionKey` does not match).
    """
    inner = record.get("kinesis")
    inner = inner if isinstance(inner, Mapping) else {}
    view = dict(inner)
    view.update((key, value) for key, value in record.items() if key != "kinesis")
    if "data" in inner:
        view["data"] = decode_payload(inner["data"])
    return view


def dynamodb_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The DynamoDB record as delivered: images keep their typed values (`{"N": "42"}`)."""
    return dict(record)


def kafka_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The Kafka record with `value` decoded; `key` and `headers` stay as delivered.

    Lambda only supports filtering on `value` for Kafka (spec §7.3), so `key` is not decoded.
    A null value (tombstone) stays `null`.
    """
    view = dict(record)
    value = record.get("value")
    if value is not None:
        view["value"] = decode_payload(value)
    return view


VIEWS: Final[Mapping[SourceKind, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    "sqs": sqs_view,
    "kinesis": kinesis_view,
    "dynamodb": dynamodb_view,
    "kafka": kafka_view,
}


def record_view(source: SourceKind, record: Mapping[str, Any]) -> dict[str, Any]:
    """The view of `record` for a mapping reading `source`."""
    return VIEWS[source](record)
