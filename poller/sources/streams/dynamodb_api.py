"""DynamoDB Streams behind the stream protocol (spec §3.3, §5.2, §9.2).

DynamoDB Streams has no AT_TIMESTAMP iterator (AWS refuses it for these mappings, spec §1.6); the
helper still asks for one to resume a LATEST mapping whose shard had delivered nothing before a
restart, and gets TRIM_HORIZON with the records created before that moment skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from poller.aws_errors import read_error
from poller.core.dynamodb_event import creation_epoch, dynamodb_record, item_key
from poller.core.shard_lineage import ShardInfo
from poller.core.stream_event import serialise_record
from poller.core.stream_retry import StreamRecordRef
from poller.sources.streams.api import (
    AfterSequence,
    AtTimestamp,
    IteratorExpired,
    Latest,
    PositionTrimmed,
    ReadResult,
    ReadThrottled,
    StartAt,
    StreamItem,
    TrimHorizon,
    not_found,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodbstreams import DynamoDBStreamsClient

RETENTION_SECONDS = 24 * 3600.0
"""DynamoDB Streams keep records for 24 hours; it is not configurable."""


class DynamoDbStreamsApi:
    kind: Literal["dynamodb"] = "dynamodb"
    max_read_records = 1_000
    idle_poll_seconds = 0.25

    def __init__(self, client: DynamoDBStreamsClient, *, stream_arn: str) -> None:
        self.client = client
        self.stream_arn = stream_arn
        self._skip_before: dict[str, float] = {}
        """Per shard: records created before this instant are skipped (the AT_TIMESTAMP stand-in)."""

    async def retention_seconds(self) -> float:
        return RETENTION_SECONDS

    async def list_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        after: str | None = None
        try:
            while True:
                args: dict[str, Any] = {"StreamArn": self.stream_arn}
                if after:
                    args["ExclusiveStartShardId"] = after
                page = (await self.client.describe_stream(**args))["StreamDescription"]
                for shard in page.get("Shards", []):
                    parents = (shard["ParentShardId"],) if shard.get("ParentShardId") else ()
                    ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                    shards.append(ShardInfo(shard["ShardId"], parents, ending))
                after = page.get("LastEvaluatedShardId")
                if not after:
                    return shards
        except ClientError as exc:
            raise not_found(exc, self.stream_arn) from exc

    async def iterator(self, shard_id: str, start: StartAt) -> str:
        args: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        self._skip_before.pop(shard_id, None)
        match start:
            case TrimHorizon():
                args["ShardIteratorType"] = "TRIM_HORIZON"
            case Latest():
                args["ShardIteratorType"] = "LATEST"
            case AtTimestamp(epoch_seconds=at):
                args["ShardIteratorType"] = "TRIM_HORIZON"
                self._skip_before[shard_id] = at
            case AfterSequence(sequence_number=sequence):
                args["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
                args["SequenceNumber"] = sequence
        try:
            reply = await self.client.get_shard_iterator(**args)
        except ClientError as exc:
            error = read_error(exc)
            if error.code == "TrimmedDataAccessException":
                raise PositionTrimmed(error.code) from exc
            if error.kind == "throttled":
                raise ReadThrottled(error.code) from exc
            raise not_found(exc, self.stream_arn, shard_id) from exc
        return reply["ShardIterator"]

    async def read(self, shard_id: str, iterator: str, limit: int) -> ReadResult:
        try:
            reply = await self.client.get_records(ShardIterator=iterator, Limit=limit)
        except ClientError as exc:
            error = read_error(exc)
            if error.code == "ExpiredIteratorException":
                raise IteratorExpired(error.code) from exc
            if error.code == "TrimmedDataAccessException":
                raise PositionTrimmed(error.code) from exc
            if error.kind == "throttled":
                raise ReadThrottled(error.code) from exc
            raise not_found(exc, self.stream_arn, shard_id) from exc
        skip_before = self._skip_before.get(shard_id)
        items = []
        for raw in reply.get("Records", []):
            created = creation_epoch(raw)
            if skip_before is not None:
                if created < skip_before:
                    continue
                del self._skip_before[shard_id]
                skip_before = None
            record = dynamodb_record(raw, stream_arn=self.stream_arn)
            encoded = serialise_record(record)
            ref = StreamRecordRef(raw["dynamodb"]["SequenceNumber"], created, len(encoded) + 1)
            items.append(StreamItem(ref, record, encoded, item_key(record)))
        return ReadResult(items, reply.get("NextShardIterator"), None)
