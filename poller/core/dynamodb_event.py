"""The DynamoDB Streams event record exactly as Lambda delivers it (spec §3.3).

Input is one record of a GetRecords reply as botocore parsed it. Two things differ from what the
function must see: botocore turned `ApproximateCreationDateTime` into a datetime (Lambda sends a
number, spec §11 Q10) and decoded binary attribute values (`B`, `BS`) to bytes (Lambda sends
base64, as on the wire). Everything else passes through as the stream gave it, `eventVersion`
included ("1.1" on AWS, "1.0" from moto). Serialise the result once with
`poller.core.stream_event.serialise_record`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from poller.core.stream_event import epoch_microseconds

_IMAGE_KEYS = frozenset({"Keys", "NewImage", "OldImage"})
_RECORD_KEYS = ("eventID", "eventName", "eventVersion", "eventSource", "awsRegion")


def _binary(value: bytes | bytearray | memoryview | str) -> str:
    """Base64 text of a binary value. A string is already base64 (a built record) and is kept,
    which makes the conversion idempotent, so `item_key` accepts raw and built records alike."""
    if isinstance(value, str):
        return value
    return base64.b64encode(value).decode("ascii")


def attribute_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """One attribute value in DynamoDB JSON with binaries base64, at any depth (inside L and M).

    Always a new dict with new lists, so the result shares nothing mutable with the input.
    """
    out: dict[str, Any] = {}
    for kind, inner in value.items():
        if kind == "B":
            out[kind] = _binary(inner)
        elif kind == "BS":
            out[kind] = [_binary(item) for item in inner]
        elif kind == "L":
            out[kind] = [attribute_value(item) for item in inner]
        elif kind == "M":
            out[kind] = item_image(inner)
        elif kind in ("SS", "NS"):
            out[kind] = list(inner)
        else:  # S, N, BOOL, NULL: JSON scalars already
            out[kind] = inner
    return out


def item_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """`Keys`, `NewImage`, `OldImage` or an `M` value: attribute name -> attribute value."""
    return {name: attribute_value(value) for name, value in image.items()}


def creation_epoch(raw: Mapping[str, Any]) -> float:
    """`dynamodb.ApproximateCreationDateTime` as epoch seconds, keeping whatever fraction it has.

    Accepts a raw record (datetime) or a built one (number).
    """
    return epoch_microseconds(raw["dynamodb"]["ApproximateCreationDateTime"]) / 1_000_000


def _stream_data(dynamodb: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Lambda puts the creation time first; the rest keeps the stream's order.
    if "ApproximateCreationDateTime" in dynamodb:
        out["ApproximateCreationDateTime"] = creation_epoch({"dynamodb": dynamodb})
    for key, value in dynamodb.items():
        if key == "ApproximateCreationDateTime":
            continue
        out[key] = item_image(value) if key in _IMAGE_KEYS else value
    return out


def dynamodb_record(raw: Mapping[str, Any], *, stream_arn: str) -> dict[str, Any]:
    """The event record for one GetRecords record; keys in the order Lambda sends them.

    `userIdentity` is present only on TTL deletions (spec §3.3), so it is copied only when given.
    The input is not modified.
    """
    record: dict[str, Any] = {key: raw[key] for key in _RECORD_KEYS}
    record["dynamodb"] = _stream_data(raw["dynamodb"])
    record["eventSourceARN"] = stream_arn
    identity = raw.get("userIdentity")
    if identity is not None:
        record["userIdentity"] = dict(identity)
    return record


def item_key(raw_or_record: Mapping[str, Any]) -> str:
    """A canonical string of the record's `dynamodb.Keys`: equal for every record of one item.

    Used to route the records of one item to one lane under ParallelizationFactor, so it must not
    depend on attribute order, nor on whether binaries are still bytes (raw) or base64 (built).
    """
    keys = item_image(raw_or_record["dynamodb"]["Keys"])
    return orjson.dumps(keys, option=orjson.OPT_SORT_KEYS).decode("utf-8")
