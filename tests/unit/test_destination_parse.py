"""parse_destination: every destination form of DESIGN §1.4, and the refusals of spec §6.1."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import aiobotocore.session
import pytest

from poller.config.destinations import (
    FileDestinationSpec,
    KafkaDestinationSpec,
    S3DestinationSpec,
    SnsDestinationSpec,
    SqsDestinationSpec,
    parse_destination,
)
from poller.destinations.factory import open_destination


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "arn:aws:sqs:us-east-1:123456789012:failures",
            SqsDestinationSpec(
                "arn:aws:sqs:us-east-1:123456789012:failures", "us-east-1", "123456789012", "failures"
            ),
        ),
        (
            "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:dlq_1-a",
            SqsDestinationSpec(
                "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:dlq_1-a",
                "us-gov-west-1",
                "123456789012",
                "dlq_1-a",
            ),
        ),
        (
            "arn:aws:sns:eu-west-2:210987654321:alerts",
            SnsDestinationSpec(
                "arn:aws:sns:eu-west-2:210987654321:alerts", "eu-west-2", "210987654321", "alerts"
            ),
        ),
        (
            "arn:aws:s3:::my-bucket.failures",
            S3DestinationSpec("arn:aws:s3:::my-bucket.failures", "my-bucket.failures"),
        ),
        ("arn:aws-cn:s3:::bkt", S3DestinationSpec("arn:aws-cn:s3:::bkt", "bkt")),
        ("kafka://orders.failed-1", KafkaDestinationSpec("kafka://orders.failed-1", "orders.failed-1")),
        (
            "file:///var/lib/poller/failures.jsonl",
            FileDestinationSpec(
                "file:///var/lib/poller/failures.jsonl", Path("/var/lib/poller/failures.jsonl")
            ),
        ),
        (
            "file:///tmp/with%20space.jsonl",
            FileDestinationSpec("file:///tmp/with%20space.jsonl", Path("/tmp/with space.jsonl")),
        ),
    ],
)
def test_valid_destinations_parse_to_their_spec(uri: str, expected: object) -> None:
    assert parse_destination(uri) == expected


def test_kind_is_a_bounded_label() -> None:
    kinds = {
        parse_destination(uri).kind
        for uri in (
            "arn:aws:sqs:us-east-1:123456789012:q",
            "arn:aws:sns:us-east-1:123456789012:t",
            "arn:aws:s3:::bkt",
            "kafka://t",
            "file:///x.jsonl",
        )
    }
    assert kinds == {"sqs", "sns", "s3", "kafka", "file"}


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("arn:aws:sqs:us-east-1:123456789012:failures.fifo", "FIFO queue"),
        ("arn:aws:sns:us-east-1:123456789012:alerts.fifo", "FIFO topic"),
    ],
)
def test_fifo_queues_and_topics_are_refused(uri: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_destination(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "failures",
        "https://sqs.us-east-1.amazonaws.com/123456789012/failures",
        "arn:aws:sqs:us-east-1:1234:failures",  # account is 12 digits
        "arn:aws:sqs:us-east-1:123456789012:",  # no queue name
        "arn:aws:sqs:us-east-1:123456789012:bad name",
        "arn:aws:sqs::123456789012:failures",  # no region
        "arn:aws:kinesis:us-east-1:123456789012:stream/s",  # not an allowed destination
        "arn:aws:lambda:us-east-1:123456789012:function:f",
        "arn:aws:s3:::Bad_Bucket",
        "arn:aws:s3:::bucket/prefix",
        "arn:aws:s3:us-east-1:123456789012:bucket",
        "arn:aws:sns:us-east-1:123456789012:a/b",
        " arn:aws:sqs:us-east-1:123456789012:failures",
        "kafka://",
        "kafka://bad topic",
        "kafka://..",
    ],
)
def test_garbage_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="destination"):
        parse_destination(uri)


@pytest.mark.parametrize(
    "uri",
    ["file://failures.jsonl", "file://relative/dir/failures.jsonl", "file:failures.jsonl", "file:./x.jsonl"],
)
def test_file_destinations_must_be_absolute(uri: str) -> None:
    with pytest.raises(ValueError, match="absolute"):
        parse_destination(uri)


@pytest.mark.parametrize("uri", ["file:///var/log/", "file:///x.jsonl?mode=a", "file:///x.jsonl#frag"])
def test_file_destinations_name_a_plain_file(uri: str) -> None:
    with pytest.raises(ValueError, match="destination"):
        parse_destination(uri)


async def test_kafka_destinations_are_recognised_but_not_opened_yet() -> None:
    spec = parse_destination("kafka://failures")
    async with AsyncExitStack() as stack:
        with pytest.raises(ValueError, match="Kafka destinations arrive with the Kafka source"):
            await open_destination(
                spec, session=aiobotocore.session.get_session(), endpoint_url=None, stack=stack
            )
