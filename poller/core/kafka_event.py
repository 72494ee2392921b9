"""The Kafka event exactly as Lambda delivers it (spec §3.4); the Kafka-topic failure record is in
`poller.core.kafka_failure_messages` (spec §6.5).

Pure: a consumed record comes in as a plain value (`KafkaRecordInput`, made from aiokafka's
`ConsumerRecord` by `from_consumer_record`). Each record is serialised once, when it is read: the
batcher needs its size for the 6 MB cap (spec §2) anyway, and the event is then ready-made record
bytes joined inside an envelope, so its exact size is known without serialising the batch again:

    {"eventSource":"SelfManagedKafka","bootstrapServers":"h:p,h:p","records":{"t-0":[r,r],"t-1":[r]}}

Choices where AWS documents nothing (spec §14 item 6), each in one place below:

* A null key leaves `key` out (spec §3.4; aws-lambda-go's `key,omitempty`); an empty key is `""`.
* A null value (tombstone) is `"value": null` (reports disagree on null vs absent: Powertools
  for TypeScript issues #4988 and #5016). Powertools' Python model requires a string there, so it
  rejects tombstones either way.
* Header values are arrays of **signed** byte integers (-128..127): AWS serialises Java's `byte[]`,
  and AWS's own event libraries read them signed (aws-lambda-go `int8`, .NET `sbyte`, Powertools).
  A null header value becomes `[]`, which every one of those libraries can read.
* A record without a timestamp (message format v0, which aiokafka reads as `None`) has
  `"timestamp": -1`, Kafka's `NO_TIMESTAMP`: what the Java client that AWS's pollers build on
  reports for it, and still an epoch-ms integer for every event library. Its `timestampType` stays
  `CREATE_TIME`, the two values spec §3.4 names. For MaximumRecordAge such a record counts as
  arriving when it was read (`arrival_epoch_seconds`), so it neither expires at once nor never.
"""

from __future__ import annotations

import base64
from binascii import b2a_base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from poller.core.stream_event import compact

SELF_MANAGED_EVENT_SOURCE: Final = "SelfManagedKafka"
MSK_EVENT_SOURCE: Final = "aws:kafka"

TimestampType = Literal["CREATE_TIME", "LOG_APPEND_TIME"]

LOG_APPEND_TIME_TYPE: Final = 1
"""Kafka's code for a broker-assigned timestamp; 0 is the producer's (CreateTime)."""
NO_TIMESTAMP: Final = -1
"""Kafka's timestamp of a record that has none (see the module notes)."""
MAX_TOPIC_LENGTH: Final = 249
MAX_PARTITION: Final = 2**31 - 1
"""Partitions are int32: at most 10 digits in a `<topic>-<partition>` key."""

_GROUP_OPEN: Final = b":["
_GROUP_CLOSE: Final = b"]"
_EVENT_SUFFIX: Final = b"}}"


@dataclass(frozen=True, slots=True)
class KafkaRecordInput:
    """One consumed Kafka record, as plain values."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    timestamp_type: TimestampType
    key: bytes | None
    value: bytes | None
    """None for a tombstone."""
    headers: tuple[tuple[str, bytes | None], ...] = ()
    """In record order; a key may repeat, and a header's value may be null."""

    @property
    def group(self) -> str:
        """`<topic>-<partition>`: the record's key in the event's `records` object."""
        return group_key(self.topic, self.partition)


def group_key(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def from_consumer_record(rec: Any) -> KafkaRecordInput:
    """The plain value of an aiokafka `ConsumerRecord` read without deserialisers (bytes in, bytes out)."""
    timestamp_type: TimestampType = (
        "LOG_APPEND_TIME" if rec.timestamp_type == LOG_APPEND_TIME_TYPE else "CREATE_TIME"
    )
    return KafkaRecordInput(
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        timestamp_ms=NO_TIMESTAMP if rec.timestamp is None else rec.timestamp,
        timestamp_type=timestamp_type,
        key=rec.key,
        value=rec.value,
        headers=tuple((name, value) for name, value in rec.headers or ()),
    )


def arrival_epoch_seconds(timestamp_ms: int | None, read_at_epoch_seconds: float) -> float:
    """When a record arrived, for MaximumRecordAge: its timestamp, or for a record without one
    (`None` or `NO_TIMESTAMP`), `read_at_epoch_seconds`."""
    if timestamp_ms is None or timestamp_ms < 0:
        return read_at_epoch_seconds
    return timestamp_ms / 1000


def header_bytes(value: bytes | None) -> list[int]:
    """A header value as JSON: its bytes as signed integers, -128..127 (see the module notes)."""
    if not value:
        return []
    signed: list[int] = memoryview(value).cast("b").tolist()
    return signed


def kafka_record(rec: KafkaRecordInput) -> dict[str, Any]:
    """The event record for one consumed record; keys in the order of spec §3.4's example."""
    record: dict[str, Any] = {
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "timestamp": rec.timestamp_ms,
        "timestampType": rec.timestamp_type,
    }
    if rec.key is not None:
        record["key"] = base64.b64encode(rec.key).decode("ascii")
    record["value"] = None if rec.value is None else base64.b64encode(rec.value).decode("ascii")
    record["headers"] = [{name: header_bytes(value)} for name, value in rec.headers]
    return record


def serialise_record(record: Mapping[str, Any]) -> bytes:
    """A record's JSON, exactly as it will appear inside the event (exact-size, see `compact`)."""
    return compact(orjson.dumps(record))


_TIMESTAMP_TYPES: Final = (b'"CREATE_TIME"', b'"LOG_APPEND_TIME"')
_NO_HEADERS: Final = b'"headers":[]}'


class KafkaRecordEncoder:
    """The event record JSON of aiokafka `ConsumerRecord`s of one topic, byte for byte what
    `serialise_record(kafka_record(from_consumer_record(rec)))` gives, formatted directly.

    The hot path of the Kafka source: no intermediate dict or objects per record (the dict costs
    several times the formatting). Records it cannot format directly (a timestamp that is not an
    integer, such as the `None` of a record without one) take the dict's way.
    """

    __slots__ = ("_templates", "_topic")

    def __init__(self, topic: str) -> None:
        self._topic = topic
        head = b'{"topic":' + orjson.dumps(topic).replace(b"%", b"%%")
        head += b',"partition":%d,"offset":%d,"timestamp":%d,"timestampType":%s,'
        # Indexed by (key is None) * 2 + (value is None); `%s` at the end takes the headers.
        self._templates = (
            head + b'"key":"%s","value":"%s",%s',
            head + b'"key":"%s","value":null,%s',
            head + b'"value":"%s",%s',
            head + b'"value":null,%s',
        )

    def encode(self, rec: Any) -> bytes:
        key, value, headers = rec.key, rec.value, rec.headers
        tail = _NO_HEADERS if not headers else _headers_json(headers)
        head = (
            rec.partition,
            rec.offset,
            rec.timestamp,
            _TIMESTAMP_TYPES[rec.timestamp_type == LOG_APPEND_TIME_TYPE],
        )
        try:
            if key is None:
                if value is None:
                    return self._templates[3] % (*head, tail)
                return self._templates[2] % (*head, b2a_base64(value, newline=False), tail)
            if value is None:
                return self._templates[1] % (*head, b2a_base64(key, newline=False), tail)
            return self._templates[0] % (
                *head,
                b2a_base64(key, newline=False),
                b2a_base64(value, newline=False),
                tail,
            )
        except TypeError:
            return serialise_record(kafka_record(from_consumer_record(rec)))

    def encode_many(self, records: Iterable[Any]) -> list[bytes]:
        """`encode` of each record; the common shape (a value, no headers) inlined, as this runs
        for every record the source reads."""
        encode, types = self.encode, _TIMESTAMP_TYPES
        with_key, without_key = self._templates[0], self._templates[2]
        out: list[bytes] = []
        append = out.append
        for rec in records:
            value = rec.value
            if value is None or rec.headers:
                append(encode(rec))
                continue
            key = rec.key
            kind = types[rec.timestamp_type == LOG_APPEND_TIME_TYPE]
            try:
                if key is None:
                    append(
                        without_key
                        % (
                            rec.partition,
                            rec.offset,
                            rec.timestamp,
                            kind,
                            b2a_base64(value, newline=False),
                            _NO_HEADERS,
                        )
                    )
                else:
                    append(
                        with_key
                        % (
                            rec.partition,
                            rec.offset,
                            rec.timestamp,
                            kind,
                            b2a_base64(key, newline=False),
                            b2a_base64(value, newline=False),
                            _NO_HEADERS,
                        )
                    )
            except TypeError:
                append(encode(rec))
        return out


def _headers_json(headers: Iterable[tuple[str, bytes | None]]) -> bytes:
    return b'"headers":' + orjson.dumps([{name: header_bytes(value)} for name, value in headers]) + b"}"


# -- the event -------------------------------------------------------------------------------------


def event_source_for(event_source_arn: str | None) -> str:
    """`aws:kafka` for an MSK cluster (which has an ARN), `SelfManagedKafka` otherwise (spec §3.4)."""
    return SELF_MANAGED_EVENT_SOURCE if event_source_arn is None else MSK_EVENT_SOURCE


def event_prefix(event_source: str, bootstrap_servers: str, *, event_source_arn: str | None = None) -> bytes:
    """Everything before the first `<topic>-<partition>` key, in spec §3.4's key order."""
    prefix = b'{"eventSource":' + orjson.dumps(event_source)
    if event_source_arn is not None:
        # MSK only; note the lower-case `Arn` (spec §3.4).
        prefix += b',"eventSourceArn":' + orjson.dumps(event_source_arn)
    return prefix + b',"bootstrapServers":' + orjson.dumps(bootstrap_servers) + b',"records":{'


def event_overhead(event_source: str, bootstrap_servers: str, *, event_source_arn: str | None = None) -> int:
    """Bytes of the event around its groups: the envelope of an event with no records."""
    prefix = event_prefix(event_source, bootstrap_servers, event_source_arn=event_source_arn)
    return len(prefix) + len(_EVENT_SUFFIX)


def group_overhead(group: str) -> int:
    """Bytes a `<topic>-<partition>` group adds around its records: `"t-0":[` and `]`."""
    return len(orjson.dumps(group)) + len(_GROUP_OPEN) + len(_GROUP_CLOSE)


def encode_kafka_event(
    event_source: str,
    bootstrap_servers: str,
    grouped: Mapping[str, Sequence[bytes]],
    *,
    event_source_arn: str | None = None,
) -> bytes:
    """The event for records already serialised by `serialise_record`, grouped by `<topic>-<partition>`.

    Groups and records keep the order given. Its length is `kafka_event_size` of the same lengths.
    """
    groups = b",".join(_encode_group(group, records) for group, records in grouped.items())
    prefix = event_prefix(event_source, bootstrap_servers, event_source_arn=event_source_arn)
    return prefix + groups + _EVENT_SUFFIX


def _encode_group(group: str, records: Sequence[bytes]) -> bytes:
    return orjson.dumps(group) + _GROUP_OPEN + b",".join(records) + _GROUP_CLOSE


def kafka_event_size(grouped_lengths: Mapping[str, Sequence[int]], *, overhead: int) -> int:
    """The exact length of `encode_kafka_event` from the serialised records' lengths alone."""
    size = overhead + max(len(grouped_lengths) - 1, 0)
    for group, lengths in grouped_lengths.items():
        size += group_overhead(group) + sum(lengths) + max(len(lengths) - 1, 0)
    return size


class KafkaEventSize:
    """The exact payload size of an event as records are added to it one by one.

    `cost` is what one more record adds (its bytes, a comma, and the first time a group appears,
    the group's key and brackets), so a batcher can check the 6 MB cap before adding it; after
    any sequence of `add`, `size == len(encode_kafka_event(...))` of the same records.
    """

    __slots__ = ("_counts", "size")

    def __init__(self, overhead: int) -> None:
        self.size = overhead
        self._counts: dict[str, int] = {}

    @property
    def records(self) -> int:
        return sum(self._counts.values())

    def cost(self, group: str, record_bytes: int) -> int:
        """What adding a record of `record_bytes` serialised bytes to `group` adds to `size`."""
        if group in self._counts:
            return 1 + record_bytes
        separator = 1 if self._counts else 0
        return separator + group_overhead(group) + record_bytes

    def add(self, group: str, record_bytes: int) -> int:
        """Count the record in; returns the new size."""
        self.size += self.cost(group, record_bytes)
        self._counts[group] = self._counts.get(group, 0) + 1
        return self.size


@dataclass(frozen=True, slots=True)
class KafkaEventShape:
    """The envelope of one mapping's events: its event source and bootstrap servers (spec §3.4)."""

    bootstrap_servers: str
    """Comma-separated `host:port`, as the mapping names them."""
    event_source_arn: str | None = None
    """The MSK cluster ARN; None for self-managed Kafka."""
    topic: str | None = None
    """The mapping's topic, if known: it tightens `envelope_bytes`."""
    _prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefix = event_prefix(
            self.event_source, self.bootstrap_servers, event_source_arn=self.event_source_arn
        )
        object.__setattr__(self, "_prefix", prefix)

    @property
    def event_source(self) -> str:
        return event_source_for(self.event_source_arn)

    @property
    def overhead(self) -> int:
        """Bytes of an event around its groups."""
        return len(self._prefix) + len(_EVENT_SUFFIX)

    @property
    def envelope_bytes(self) -> int:
        """An upper bound of the bytes around the records of a one-partition event, whatever the
        partition: the group key is counted with the longest partition number (and, without
        `topic`, the longest topic name). `envelope_bytes_for` gives the exact figure."""
        topic = self.topic if self.topic is not None else "t" * MAX_TOPIC_LENGTH
        return self.overhead + group_overhead(group_key(topic, MAX_PARTITION))

    def envelope_bytes_for(self, group: str) -> int:
        """The exact bytes around the records of a one-partition event for `group`."""
        return self.overhead + group_overhead(group)

    def sizer(self) -> KafkaEventSize:
        """An exact size counter for an event of this mapping, starting empty."""
        return KafkaEventSize(self.overhead)

    def encode(self, group: str, records: Sequence[bytes]) -> bytes:
        """The event for one partition's records (serialised by `serialise_record`)."""
        return self._prefix + _encode_group(group, records) + _EVENT_SUFFIX

    def encode_grouped(self, grouped: Mapping[str, Sequence[bytes]]) -> bytes:
        """The event for records of several partitions, grouped by `<topic>-<partition>`."""
        return encode_kafka_event(
            self.event_source, self.bootstrap_servers, grouped, event_source_arn=self.event_source_arn
        )
