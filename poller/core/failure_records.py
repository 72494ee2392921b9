"""The on-failure destination records Lambda writes for stream and Kafka batches (spec §6.2–§6.4).

Pure builders: every input is a plain value (ids, ARNs, sequence numbers, epoch seconds, the last
`InvokeOutcome`), and each builder returns a dict ready for `orjson.dumps`. Nothing here reads the
clock or makes ids up: the failure timestamp and, for batches that never reached the function, the
request id come in from the caller, so golden tests can pin every byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded, TimedOut

RECORD_VERSION = "1.0"


class FailureCondition(StrEnum):
    """`requestContext.condition`: why the records were discarded (spec §6.2, §6.4)."""

    RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
    RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
    MAXIMUM_PAYLOAD_SIZE_EXCEEDED = "MaximumPayloadSizeExceeded"
    """Kafka only: a record too large for the invoke payload; it never reached the function."""


@dataclass(frozen=True, slots=True)
class FailureContext:
    """What every record says about the failed invocation, whatever the source."""

    request_id: str
    """Of the last invocation of the discarded records; a fresh id when there was none."""
    function_arn: str
    condition: FailureCondition
    approximate_invoke_count: int
    outcome: InvokeOutcome | None
    """The last invoke outcome of these records, the source of `responseContext`; None if never run."""
    timestamp_epoch_seconds: float
    """When the records were discarded (the clock's wall time)."""


class _ArrivedRecord(Protocol):
    @property
    def sequence_number(self) -> str: ...

    @property
    def arrival_epoch_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class StreamBatchInfo:
    """The members of `KinesisBatchInfo` / `DDBStreamBatchInfo`: exactly the discarded records."""

    shard_id: str
    stream_arn: str
    start_sequence_number: str
    end_sequence_number: str
    first_arrival_epoch_seconds: float
    last_arrival_epoch_seconds: float
    batch_size: int

    @classmethod
    def from_records(
        cls, records: Sequence[_ArrivedRecord], *, shard_id: str, stream_arn: str
    ) -> StreamBatchInfo:
        """Describe `records` (in stream order) as discarded together (spec §6.2: after a partial
        checkpoint or a split, only the records actually discarded)."""
        if not records:
            raise ValueError("a failure record describes at least one record")
        first, last = records[0], records[-1]
        return cls(
            shard_id=shard_id,
            stream_arn=stream_arn,
            start_sequence_number=first.sequence_number,
            end_sequence_number=last.sequence_number,
            first_arrival_epoch_seconds=first.arrival_epoch_seconds,
            last_arrival_epoch_seconds=last.arrival_epoch_seconds,
            batch_size=len(records),
        )


@dataclass(frozen=True, slots=True)
class KafkaPartitionRange:
    """One `recordsInfo` entry: the discarded records of one topic-partition (spec §6.4)."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    first_timestamp_epoch_seconds: float
    last_timestamp_epoch_seconds: float


@dataclass(frozen=True, slots=True)
class KafkaBatchInfo:
    batch_size: int
    bootstrap_servers: str
    """Comma-separated `host:port`, as in the Kafka event (spec §3.4)."""
    payload_size: int
    """Bytes of the invocation payload of the discarded batch."""
    partitions: Sequence[KafkaPartitionRange]
    event_source_arn: str | None = None
    """The MSK cluster ARN; None for self-managed Kafka, whose record then has no such key."""


def iso_millis(epoch_seconds: float) -> str:
    """`2024-11-22T10:15:06.021Z`: UTC, millisecond precision, `Z` (spec §6.2 `timestamp`)."""
    # Round once, in integer milliseconds, so 1732270504.835 does not print as .834 because the
    # float is a hair below it.
    seconds, millis = divmod(round(epoch_seconds * 1000), 1000)
    return f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def iso_seconds(epoch_seconds: float) -> str:
    """`2024-11-22T10:15:04Z`: the second precision of `DDBStreamBatchInfo` arrivals (spec §6.2).

    Truncated, not rounded: DynamoDB's creation time is a whole second that the fraction refines.
    """
    return f"{datetime.fromtimestamp(math.floor(epoch_seconds), tz=UTC):%Y-%m-%dT%H:%M:%S}Z"


def request_id_of(outcome: InvokeOutcome | None) -> str | None:
    """The request id an outcome carries, if the function was reached and the target reported one."""
    match outcome:
        case Succeeded(request_id=rid) | FunctionFailed(request_id=rid) | TimedOut(request_id=rid):
            return rid or None
        case _:
            return None


def response_context(outcome: InvokeOutcome | None) -> dict[str, Any] | None:
    """`responseContext` from the last invoke, or None when the function never ran.

    Spec §6.2 / Q7: `statusCode` is 200 even for function errors, and `functionError` is null when
    the failure came from a partial-batch response (the function itself succeeded). It is the status
    of the Invoke call, which completed, not the status an HTTP target answered with (a 500, a 204).
    """
    match outcome:
        case Succeeded():
            return _response(200, outcome.executed_version, None)
        case FunctionFailed():
            return _response(200, outcome.executed_version, outcome.function_error)
        case TimedOut():
            # Lambda reports a timeout as an Unhandled error of a completed (200) invoke; the
            # outcome has no version because the runtime never answered.
            return _response(200, "$LATEST", "Unhandled")
        case NotInvoked() | None:
            return None


def _response(status_code: int, executed_version: str, function_error: str | None) -> dict[str, Any]:
    return {"statusCode": status_code, "executedVersion": executed_version, "functionError": function_error}


def _envelope(context: FailureContext) -> dict[str, Any]:
    """`requestContext`, `responseContext`, `version` and `timestamp`, in AWS's key order."""
    record: dict[str, Any] = {
        "requestContext": {
            "requestId": context.request_id,
            "functionArn": context.function_arn,
            "condition": str(context.condition),
            "approximateInvokeCount": context.approximate_invoke_count,
        }
    }
    match context.condition:
        case FailureCondition.RECORD_AGE_EXCEEDED:
            # Q8: an age discard carries no invocation result, so the key is left out entirely.
            pass
        case FailureCondition.MAXIMUM_PAYLOAD_SIZE_EXCEEDED:
            # Spec §6.2: Kafka documents `responseContext: null` here (present, unlike Q8).
            record["responseContext"] = None
        case FailureCondition.RETRY_ATTEMPTS_EXHAUSTED:
            response = response_context(context.outcome)
            if response is not None:
                record["responseContext"] = response
    record["version"] = RECORD_VERSION
    record["timestamp"] = iso_millis(context.timestamp_epoch_seconds)
    return record


def _stream_batch_info(batch: StreamBatchInfo, arrival: Callable[[float], str]) -> dict[str, Any]:
    # Every member is always present (spec §6.2), so there is no optional key here.
    return {
        "shardId": batch.shard_id,
        "startSequenceNumber": batch.start_sequence_number,
        "endSequenceNumber": batch.end_sequence_number,
        "approximateArrivalOfFirstRecord": arrival(batch.first_arrival_epoch_seconds),
        "approximateArrivalOfLastRecord": arrival(batch.last_arrival_epoch_seconds),
        "batchSize": batch.batch_size,
        "streamArn": batch.stream_arn,
    }


def kinesis_failure_record(context: FailureContext, batch: StreamBatchInfo) -> dict[str, Any]:
    """The Kinesis record of spec §6.2 (SQS body / SNS message); arrivals at millisecond precision."""
    return {**_envelope(context), "KinesisBatchInfo": _stream_batch_info(batch, iso_millis)}


def dynamodb_failure_record(context: FailureContext, batch: StreamBatchInfo) -> dict[str, Any]:
    """The DynamoDB Streams record of spec §6.2: key `DDBStreamBatchInfo`, arrivals to the second."""
    return {**_envelope(context), "DDBStreamBatchInfo": _stream_batch_info(batch, iso_seconds)}


def kafka_failure_record(context: FailureContext, batch: KafkaBatchInfo) -> dict[str, Any]:
    """The Kafka record of spec §6.4; offsets are strings, `recordsInfo` is keyed `<topic>-<partition>`."""
    info: dict[str, Any] = {"batchSize": batch.batch_size}
    if batch.event_source_arn is not None:
        info["eventSourceArn"] = batch.event_source_arn
    info["bootstrapServers"] = batch.bootstrap_servers
    info["payloadSize"] = batch.payload_size
    info["recordsInfo"] = {
        f"{part.topic}-{part.partition}": {
            "firstRecordOffset": str(part.first_offset),
            "lastRecordOffset": str(part.last_offset),
            "firstRecordTimestamp": iso_millis(part.first_timestamp_epoch_seconds),
            "lastRecordTimestamp": iso_millis(part.last_timestamp_epoch_seconds),
        }
        for part in batch.partitions
    }
    return {**_envelope(context), "KafkaBatchInfo": info}


def with_s3_payload(record: Mapping[str, Any], event: bytes) -> dict[str, Any]:
    """The S3 variant (spec §6.3, §6.4): the same document plus `payload`, the whole invocation
    event as a JSON *string* — serialising the document then escapes it, as AWS's objects show."""
    return {**record, "payload": event.decode("utf-8")}


def s3_object_key(*, esm_uuid: str, shard_id: str, timestamp_epoch_seconds: float, object_uuid: str) -> str:
    """`aws/lambda/<ESM-UUID>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>` (spec §6.3).

    The date and time are the failure timestamp's, in UTC, truncated to the second; `object_uuid`
    is the caller's random UUID so that the key stays a pure function of its inputs.
    """
    at = datetime.fromtimestamp(math.floor(timestamp_epoch_seconds), tz=UTC)
    return f"aws/lambda/{esm_uuid}/{shard_id}/{at:%Y/%m/%d}/{at:%Y-%m-%dT%H.%M.%S}-{object_uuid}"
