"""SQS, SNS and S3 destinations against the session's moto server, read back byte for byte."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiobotocore.session
import boto3
import orjson
import pytest

from poller.core.failure_records import (
    FailureCondition,
    FailureContext,
    StreamBatchInfo,
    kinesis_failure_record,
    s3_object_key,
    with_s3_payload,
)
from poller.core.outcome import FunctionFailed
from poller.destinations import (
    DeliveryFailed,
    DeliveryRejected,
    Destination,
    FailureDelivery,
    S3KeyParts,
    open_destination,
    parse_destination,
)
from tests.integration.conftest import ACCOUNT, REGION

pytestmark = pytest.mark.integration

FAILED_AT = 1732270506.021
PAYLOAD = b'{"Records":[{"kinesis":{"data":"aGVsbG8=","sequenceNumber":"1"},"eventSource":"aws:kinesis"}]}'


def failure_record() -> dict[str, Any]:
    context = FailureContext(
        request_id="c9b8fa9f-5a7f-4a1e-af9c-0c604cde93a5",
        function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:my-function",
        condition=FailureCondition.RETRY_ATTEMPTS_EXHAUSTED,
        approximate_invoke_count=2,
        outcome=FunctionFailed(error_type="Boom", error_message="boom"),
        timestamp_epoch_seconds=FAILED_AT,
    )
    batch = StreamBatchInfo(
        shard_id="shardId-000000000001",
        stream_arn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/telemetry",
        start_sequence_number="4960",
        end_sequence_number="4961",
        first_arrival_epoch_seconds=1732270504.835,
        last_arrival_epoch_seconds=1732270505.58,
        batch_size=2,
    )
    return kinesis_failure_record(context, batch)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def boto(moto_endpoint: str) -> Callable[[str], Any]:
    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_endpoint, region_name=REGION)

    return client


@pytest.fixture
async def open_dest(moto_endpoint: str) -> AsyncIterator[Callable[[str], Any]]:
    session = aiobotocore.session.get_session()
    async with AsyncExitStack() as stack:

        async def open_(uri: str) -> Destination:
            return await open_destination(
                parse_destination(uri),
                session=session,
                endpoint_url=moto_endpoint,
                stack=stack,
                region=REGION,
            )

        yield open_


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    # Messages sent before this call are visible at once on moto: WaitTimeSeconds=0 is no race.
    return list(
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    )


async def test_sqs_destination_sends_the_record_as_the_body(boto: Any, open_dest: Any) -> None:
    sqs = boto("sqs")
    name = unique("dest")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    destination = await open_dest(f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
    assert destination.kind == "sqs"

    await destination.deliver(FailureDelivery(failure_record(), PAYLOAD))

    [message] = receive_all(sqs, url)
    assert message["Body"] == orjson.dumps(failure_record()).decode()


async def test_sns_destination_publishes_the_record_as_the_message(boto: Any, open_dest: Any) -> None:
    sqs, sns = boto("sqs"), boto("sns")
    topic_arn = sns.create_topic(Name=unique("topic"))["TopicArn"]
    url = sqs.create_queue(QueueName=unique("sub"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    destination = await open_dest(topic_arn)
    assert destination.kind == "sns"

    await destination.deliver(FailureDelivery(failure_record(), PAYLOAD))

    [message] = receive_all(sqs, url)
    envelope = json.loads(message["Body"])
    assert envelope["TopicArn"] == topic_arn
    assert envelope["Message"] == orjson.dumps(failure_record()).decode()


async def test_s3_destination_writes_the_spec_key_and_body(boto: Any, open_dest: Any) -> None:
    s3 = boto("s3")
    bucket = unique("failures")
    s3.create_bucket(Bucket=bucket)
    destination = await open_dest(f"arn:aws:s3:::{bucket}")
    assert destination.kind == "s3"
    parts = S3KeyParts(
        esm_uuid="orders-stream", shard_id="shardId-000000000001", timestamp_epoch_seconds=FAILED_AT
    )

    await destination.deliver(FailureDelivery(failure_record(), PAYLOAD, parts))

    [listed] = s3.list_objects_v2(Bucket=bucket)["Contents"]
    expected_key = (
        f"aws/lambda/orders-stream/shardId-000000000001/2024/11/22/2024-11-22T10.15.06-{parts.object_uuid}"
    )
    assert listed["Key"] == expected_key
    assert expected_key == s3_object_key(
        esm_uuid="orders-stream",
        shard_id="shardId-000000000001",
        timestamp_epoch_seconds=FAILED_AT,
        object_uuid=parts.object_uuid,
    )
    body = s3.get_object(Bucket=bucket, Key=expected_key)["Body"].read()
    assert body == orjson.dumps(with_s3_payload(failure_record(), PAYLOAD))
    # Spec §6.3: the payload is the invocation event as an escaped JSON *string*.
    assert json.loads(body)["payload"] == PAYLOAD.decode()


async def test_s3_retry_of_the_same_delivery_rewrites_the_same_object(boto: Any, open_dest: Any) -> None:
    s3 = boto("s3")
    bucket = unique("failures")
    s3.create_bucket(Bucket=bucket)
    destination = await open_dest(f"arn:aws:s3:::{bucket}")
    delivery = FailureDelivery(failure_record(), PAYLOAD, S3KeyParts("m", "shardId-0", FAILED_AT))

    await destination.deliver(delivery)
    await destination.deliver(delivery)

    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


async def test_missing_queue_fails_with_the_aws_code(open_dest: Any) -> None:
    destination = await open_dest(f"arn:aws:sqs:{REGION}:{ACCOUNT}:{unique('absent')}")
    with pytest.raises(DeliveryFailed) as caught:
        await destination.deliver(FailureDelivery(failure_record(), None))
    assert caught.value.retriable
    assert caught.value.code == "AWS.SimpleQueueService.NonExistentQueue"
    assert "AWS.SimpleQueueService.NonExistentQueue" in str(caught.value)


async def test_queue_created_after_a_failure_is_found_on_retry(boto: Any, open_dest: Any) -> None:
    name = unique("late")
    destination = await open_dest(f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
    with pytest.raises(DeliveryFailed):
        await destination.deliver(FailureDelivery(failure_record(), None))
    url = boto("sqs").create_queue(QueueName=name)["QueueUrl"]

    await destination.deliver(FailureDelivery(failure_record(), None))

    assert len(receive_all(boto("sqs"), url)) == 1


async def test_missing_bucket_fails_with_the_aws_code(open_dest: Any) -> None:
    destination = await open_dest(f"arn:aws:s3:::{unique('absent')}")
    with pytest.raises(DeliveryFailed) as caught:
        await destination.deliver(FailureDelivery(failure_record(), PAYLOAD, S3KeyParts("m", "s", FAILED_AT)))
    assert caught.value.retriable
    assert caught.value.code == "NoSuchBucket"
    assert "NoSuchBucket" in str(caught.value)


async def test_missing_topic_fails_with_the_aws_code(open_dest: Any) -> None:
    destination = await open_dest(f"arn:aws:sns:{REGION}:{ACCOUNT}:{unique('absent')}")
    with pytest.raises(DeliveryFailed) as caught:
        await destination.deliver(FailureDelivery(failure_record(), None))
    assert caught.value.code == "NotFound"
    assert "NotFound" in str(caught.value)


@pytest.mark.parametrize("kind", ["sqs", "sns"])
async def test_records_over_256_kib_are_rejected_not_retried(boto: Any, open_dest: Any, kind: str) -> None:
    if kind == "sqs":
        name = unique("big")
        url = boto("sqs").create_queue(QueueName=name)["QueueUrl"]
        destination = await open_dest(f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
    else:
        destination = await open_dest(boto("sns").create_topic(Name=unique("big"))["TopicArn"])
    huge = {**failure_record(), "padding": "x" * (256 * 1024)}

    with pytest.raises(DeliveryRejected) as caught:
        await destination.deliver(FailureDelivery(huge, None))

    assert not caught.value.retriable
    assert "262144-byte message limit" in str(caught.value)
    if kind == "sqs":
        assert receive_all(boto("sqs"), url) == []


async def test_unreachable_endpoint_is_a_retriable_failure(aws_env: dict[str, str]) -> None:
    from tests.integration.conftest import free_port

    async with AsyncExitStack() as stack:
        destination = await open_destination(
            parse_destination(f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"),
            session=aiobotocore.session.get_session(),
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            stack=stack,
        )
        with pytest.raises(DeliveryFailed) as caught:
            await destination.deliver(FailureDelivery(failure_record(), None))
    assert caught.value.retriable
    assert caught.value.code is None
