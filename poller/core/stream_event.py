"""The `{"Records": [...]}` envelope shared by the Kinesis and DynamoDB Streams events (spec §3).

Records are serialised once, when they are read from the shard: the batcher needs each record's
size for the 6 MB cap (spec §2) anyway, and the event is then the concatenation of ready-made
record bytes, so its size is known exactly without serialising the batch again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

STREAM_EVENT_PREFIX = b'{"Records":['
STREAM_EVENT_SUFFIX = b"]}"
STREAM_EVENT_OVERHEAD = len(STREAM_EVENT_PREFIX) + len(STREAM_EVENT_SUFFIX)
"""Bytes of the envelope around the records (not counting the commas between them)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def serialise_record(record: Mapping[str, Any]) -> bytes:
    """A record's JSON, exactly as it will appear in the event's `Records` list."""
    return compact(orjson.dumps(record))


def compact(serialised: bytes) -> bytes:
    """The bytes in an object of their own size.

    orjson (3.12 and later) returns its over-allocated output buffer: 16 KiB held for a 1.5 KB
    record, measured with tracemalloc in bench/ (`memory`). Records wait in bounded buffers by the
    thousand, so each is copied once into an exact-size object.
    """
    return bytes(memoryview(serialised))


def record_size(serialised: bytes) -> int:
    """What one record adds to the payload: its bytes plus the comma joining it to a neighbour.

    Counting a comma per record over-counts one comma per batch, which keeps the 6 MB check safe.
    """
    return len(serialised) + 1


def encode_stream_event(records: Sequence[bytes]) -> bytes:
    """The event payload for a batch from records already serialised by `serialise_record`.

    Its length is `STREAM_EVENT_OVERHEAD + sum(len(r)) + max(len(records) - 1, 0)`.
    """
    return STREAM_EVENT_PREFIX + b",".join(records) + STREAM_EVENT_SUFFIX


def epoch_microseconds(value: datetime | float | str) -> int:
    """Whole microseconds since the epoch, computed without floating-point drift.

    botocore hands timestamps over as tz-aware datetimes (tzlocal) unless its timestamp parser is
    switched off, as the stream clients do for speed: then they arrive as the wire's epoch seconds,
    a number (or its text). A naive datetime can only come from a test or a hand-built record and
    is read as UTC rather than as the host's local time.
    """
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (aware - _EPOCH) // _MICROSECOND
    if isinstance(value, str):
        return round(Decimal(value) * 1_000_000)
    return round(value * 1_000_000)
