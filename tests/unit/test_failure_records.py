"""spec §6.2–§6.4 and §11 Q7/Q8: on-failure destination records, golden dicts from the spec's examples."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from poller.core.failure_records import (
    FailureCondition,
    FailureContext,
    KafkaBatchInfo,
    KafkaPartitionRange,
    StreamBatchInfo,
    dynamodb_failure_record,
    iso_millis,
    iso_seconds,
    kafka_failure_record,
    kinesis_failure_record,
    request_id_of,
    response_context,
    s3_object_key,
    with_s3_payload,
)
from poller.core.outcome import FunctionFailed, NotInvoked, Succeeded, TimedOut
from poller.core.stream_retry import StreamRecordRef

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-function"
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/telemetry"
START = "49601189658422359378836298521827638475320189012309704722"
END = "49601189658422359378836298522902373528957594348623495186"
FAILED_AT = 1732270506.021  # 2024-11-22T10:15:06.021Z
FIRST_ARRIVAL = 1732270504.835  # 2024-11-22T10:15:04.835Z
LAST_ARRIVAL = 1732270505.58  # 2024-11-22T10:15:05.580Z

UNHANDLED = FunctionFailed("Error", "boom", request_id="c9b8fa9f-5a7f-4a1e-af9c-0c604cde93a5")


def context(
    condition: FailureCondition = FailureCondition.RETRY_ATTEMPTS_EXHAUSTED,
    outcome: Succeeded | FunctionFailed | NotInvoked | TimedOut | None = UNHANDLED,
    count: int = 2,
) -> FailureContext:
    return FailureContext(
        request_id="c9b8fa9f-5a7f-4a1e-af9c-0c604cde93a5",
        function_arn=FUNCTION_ARN,
        condition=condition,
        approximate_invoke_count=count,
        outcome=outcome,
        timestamp_epoch_seconds=FAILED_AT,
    )


BATCH = StreamBatchInfo(
    shard_id="shardId-000000000001",
    stream_arn=STREAM_ARN,
    start_sequence_number=START,
    end_sequence_number=END,
    first_arrival_epoch_seconds=FIRST_ARRIVAL,
    last_arrival_epoch_seconds=LAST_ARRIVAL,
    batch_size=500,
)

SPEC_6_2_KINESIS: dict[str, Any] = {
    "requestContext": {
        "requestId": "c9b8fa9f-5a7f-4a1e-af9c-0c604cde93a5",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:my-function",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 2,
    },
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "version": "1.0",
    "timestamp": "2024-11-22T10:15:06.021Z",
    "KinesisBatchInfo": {
        "shardId": "shardId-000000000001",
        "startSequenceNumber": "49601189658422359378836298521827638475320189012309704722",
        "endSequenceNumber": "49601189658422359378836298522902373528957594348623495186",
        "approximateArrivalOfFirstRecord": "2024-11-22T10:15:04.835Z",
        "approximateArrivalOfLastRecord": "2024-11-22T10:15:05.580Z",
        "batchSize": 500,
        "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/telemetry",
    },
}


def test_kinesis_record_matches_the_spec_example() -> None:
    """spec §6.2: the Kinesis SQS/SNS record, field for field, in AWS's key order."""
    record = kinesis_failure_record(context(), BATCH)
    assert record == SPEC_6_2_KINESIS
    assert list(record) == list(SPEC_6_2_KINESIS)
    assert list(record["KinesisBatchInfo"]) == list(SPEC_6_2_KINESIS["KinesisBatchInfo"])
    assert orjson.loads(orjson.dumps(record)) == SPEC_6_2_KINESIS


def test_dynamodb_record_uses_its_key_and_second_precision_arrivals() -> None:
    """spec §6.2: DynamoDB uses `DDBStreamBatchInfo` with the same members and second-precision
    arrival times, while `timestamp` keeps milliseconds."""
    record = dynamodb_failure_record(context(), BATCH)
    assert "KinesisBatchInfo" not in record
    assert record["timestamp"] == "2024-11-22T10:15:06.021Z"
    assert record["DDBStreamBatchInfo"] == {
        **SPEC_6_2_KINESIS["KinesisBatchInfo"],
        "approximateArrivalOfFirstRecord": "2024-11-22T10:15:04Z",
        "approximateArrivalOfLastRecord": "2024-11-22T10:15:05Z",
    }


def test_partial_batch_exhaustion_has_a_null_function_error() -> None:
    """spec §11 Q7: after partial-batch failures the record says statusCode 200, functionError null,
    and describes only the failing remainder."""
    partial = Succeeded(b'{"batchItemFailures": [{"itemIdentifier": "3"}]}', executed_version="7")
    remainder = StreamBatchInfo.from_records(
        [StreamRecordRef("3", FIRST_ARRIVAL, 10)], shard_id="shardId-000000000001", stream_arn=STREAM_ARN
    )
    record = kinesis_failure_record(context(outcome=partial, count=4), remainder)
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "7", "functionError": None}
    assert record["requestContext"]["approximateInvokeCount"] == 4
    info = record["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == ("3", "3", 1)


@pytest.mark.parametrize("outcome", [None, UNHANDLED])
def test_record_age_exceeded_has_no_response_context(outcome: FunctionFailed | None) -> None:
    """spec §11 Q8: RecordAgeExceeded records have requestContext (with the invoke count) but no
    responseContext key at all, even after invocations."""
    record = kinesis_failure_record(context(FailureCondition.RECORD_AGE_EXCEEDED, outcome, count=1), BATCH)
    assert "responseContext" not in record
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 1


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (FunctionFailed("E", "m", function_error="Handled"), (200, "$LATEST", "Handled")),
        (FunctionFailed("E", "m", executed_version="3"), (200, "3", "Unhandled")),
        (TimedOut(3.0), (200, "$LATEST", "Unhandled")),
        (Succeeded(b"[]"), (200, "$LATEST", None)),
        # An HTTP target's own status is not the Invoke call's: still 200.
        (FunctionFailed(error_type="E", error_message="m", status_code=500), (200, "$LATEST", "Unhandled")),
        (Succeeded(b"", status_code=204), (200, "$LATEST", None)),
    ],
)
def test_response_context_comes_from_the_last_invoke(
    outcome: FunctionFailed | TimedOut | Succeeded, expected: tuple[int, str, str | None]
) -> None:
    """spec §6.2: responseContext carries statusCode (200 even for function errors), executedVersion
    and functionError (Handled/Unhandled; a timeout is Unhandled; null for partial failures)."""
    status, version, error = expected
    assert response_context(outcome) == {
        "statusCode": status,
        "executedVersion": version,
        "functionError": error,
    }


def test_never_invoked_outcomes_have_no_response_context() -> None:
    """spec §4.1/§6.2: a throttle is no invocation result, so there is nothing to report."""
    assert response_context(NotInvoked("throttled", "429")) is None
    record = kinesis_failure_record(context(outcome=NotInvoked("throttled", "429")), BATCH)
    assert "responseContext" not in record


def test_request_id_comes_from_the_outcome_when_the_target_reported_one() -> None:
    """spec §6.2: requestId is that of an invocation of the failed batch; none if it never ran."""
    assert request_id_of(UNHANDLED) == "c9b8fa9f-5a7f-4a1e-af9c-0c604cde93a5"
    assert request_id_of(TimedOut(1.0, request_id="r-1")) == "r-1"
    assert request_id_of(Succeeded(b"")) is None
    assert request_id_of(NotInvoked("throttled", "429")) is None
    assert request_id_of(None) is None


def test_batch_info_from_records_describes_exactly_those_records() -> None:
    """spec §6.2: start/end sequence numbers, arrivals and batchSize describe the discarded records."""
    refs = [
        StreamRecordRef(START, FIRST_ARRIVAL, 1),
        StreamRecordRef("x", 0.0, 1),
        StreamRecordRef(END, LAST_ARRIVAL, 1),
    ]
    info = StreamBatchInfo.from_records(refs, shard_id="shardId-000000000001", stream_arn=STREAM_ARN)
    assert info == dataclasses.replace(BATCH, batch_size=3)
    with pytest.raises(ValueError, match="at least one"):
        StreamBatchInfo.from_records([], shard_id="s", stream_arn=STREAM_ARN)


@pytest.mark.parametrize(
    ("epoch", "millis", "seconds"),
    [
        (1732270504.835, "2024-11-22T10:15:04.835Z", "2024-11-22T10:15:04Z"),
        (1732270505.58, "2024-11-22T10:15:05.580Z", "2024-11-22T10:15:05Z"),
        (1732270505.9996, "2024-11-22T10:15:06.000Z", "2024-11-22T10:15:05Z"),
        (0.0, "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00Z"),
    ],
)
def test_timestamps_are_utc_iso_8601_with_z(epoch: float, millis: str, seconds: str) -> None:
    """spec §6.2: `timestamp` is ISO-8601 UTC with milliseconds and `Z`; DynamoDB arrivals are to the
    second (truncated: the creation time is a whole second)."""
    assert iso_millis(epoch) == millis
    assert iso_seconds(epoch) == seconds


# --- §6.3 S3 -----------------------------------------------------------------------------------------


def test_s3_record_adds_the_whole_event_as_an_escaped_json_string() -> None:
    """spec §6.3: the S3 object is the same document plus `payload`, the original invocation event
    as an escaped JSON string."""
    event = b'{"Records":[{"kinesis":{"sequenceNumber":"1","data":"eyJ0ZW1wIjogMjEuNX0="}}]}'
    record = with_s3_payload(kinesis_failure_record(context(), BATCH), event)
    assert record == {**SPEC_6_2_KINESIS, "payload": event.decode()}
    assert b'"payload":"{\\"Records\\":[{\\"kinesis\\"' in orjson.dumps(record)
    assert orjson.loads(orjson.loads(orjson.dumps(record))["payload"]) == orjson.loads(event)


def test_s3_object_key_follows_the_documented_scheme() -> None:
    """spec §6.3: aws/lambda/<ESM-UUID>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>, from
    the failure timestamp in UTC."""
    key = s3_object_key(
        esm_uuid="a1b2c3d4-0000-1111-2222-333344445555",
        shard_id="shardId-000000000001",
        timestamp_epoch_seconds=FAILED_AT,
        object_uuid="9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff",
    )
    assert key == (
        "aws/lambda/a1b2c3d4-0000-1111-2222-333344445555/shardId-000000000001/2024/11/22/"
        "2024-11-22T10.15.06-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"
    )


# --- §6.4 Kafka --------------------------------------------------------------------------------------

KAFKA_BATCH = KafkaBatchInfo(
    batch_size=500,
    event_source_arn="arn:aws:kafka:us-east-1:123456789012:cluster/demo/...",
    bootstrap_servers="b-1.demo.example:9092,b-2.demo.example:9092",
    payload_size=2039086,
    partitions=[KafkaPartitionRange("orders", 0, 100, 599, FIRST_ARRIVAL, LAST_ARRIVAL)],
)

SPEC_6_4_KAFKA: dict[str, Any] = {
    "requestContext": {
        "requestId": "316aa6d0-8154-4c1e-9af7-85d5f4a6bc81",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:my-function",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 1,
    },
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "version": "1.0",
    "timestamp": "2024-11-22T10:15:06.021Z",
    "KafkaBatchInfo": {
        "batchSize": 500,
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/demo/...",
        "bootstrapServers": "b-1.demo.example:9092,b-2.demo.example:9092",
        "payloadSize": 2039086,
        "recordsInfo": {
            "orders-0": {
                "firstRecordOffset": "100",
                "lastRecordOffset": "599",
                "firstRecordTimestamp": "2024-11-22T10:15:04.835Z",
                "lastRecordTimestamp": "2024-11-22T10:15:05.580Z",
            }
        },
    },
}


def kafka_context(condition: FailureCondition, outcome: FunctionFailed | None = UNHANDLED) -> FailureContext:
    return FailureContext(
        request_id="316aa6d0-8154-4c1e-9af7-85d5f4a6bc81",
        function_arn=FUNCTION_ARN,
        condition=condition,
        approximate_invoke_count=1,
        outcome=outcome,
        timestamp_epoch_seconds=FAILED_AT,
    )


def test_kafka_record_matches_the_spec_example() -> None:
    """spec §6.4: KafkaBatchInfo with recordsInfo keyed `<topic>-<partition>` and string offsets."""
    record = kafka_failure_record(kafka_context(FailureCondition.RETRY_ATTEMPTS_EXHAUSTED), KAFKA_BATCH)
    assert record == SPEC_6_4_KAFKA
    assert list(record["KafkaBatchInfo"]) == list(SPEC_6_4_KAFKA["KafkaBatchInfo"])


def test_kafka_payload_size_exceeded_has_a_null_response_context() -> None:
    """spec §6.2 (Kafka docs): `responseContext` is null — present, unlike Q8 — for
    MaximumPayloadSizeExceeded."""
    record = kafka_failure_record(
        kafka_context(FailureCondition.MAXIMUM_PAYLOAD_SIZE_EXCEEDED, None), KAFKA_BATCH
    )
    assert record["responseContext"] is None
    assert record["requestContext"]["condition"] == "MaximumPayloadSizeExceeded"


def test_self_managed_kafka_record_has_no_event_source_arn() -> None:
    """spec §3.4/§6.4: self-managed Kafka has no cluster ARN, so the key is left out, as in its events."""
    batch = KafkaBatchInfo(
        batch_size=2,
        bootstrap_servers="localhost:9092",
        payload_size=10,
        partitions=[
            KafkaPartitionRange("orders", 0, 7, 7, 1.0, 1.0),
            KafkaPartitionRange("orders", 3, 9, 9, 2.5, 2.5),
        ],
    )
    info = kafka_failure_record(kafka_context(FailureCondition.RETRY_ATTEMPTS_EXHAUSTED), batch)[
        "KafkaBatchInfo"
    ]
    assert "eventSourceArn" not in info
    assert list(info["recordsInfo"]) == ["orders-0", "orders-3"]
    assert info["recordsInfo"]["orders-3"]["firstRecordTimestamp"] == "1970-01-01T00:00:02.500Z"


def test_kafka_s3_record_also_carries_the_payload() -> None:
    """spec §6.4: S3 adds `payload` (escaped JSON of the invocation event) to the Kafka record too."""
    event = b'{"eventSource":"aws:kafka","records":{}}'
    record = with_s3_payload(
        kafka_failure_record(kafka_context(FailureCondition.RETRY_ATTEMPTS_EXHAUSTED), KAFKA_BATCH), event
    )
    assert record["payload"] == '{"eventSource":"aws:kafka","records":{}}'
