"""Kinesis Data Streams behind the stream protocol (spec §3.2, §5.2, §9.2).

Only the calls: shards from ListShards, iterators, GetRecords turned into Lambda records. Batching,
retries and checkpoints are the rest of the package's (`poller.sources.streams`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from poller.aws_errors import read_error
from poller.core.kinesis_event import KinesisRecordContext, kinesis_record
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
    from types_aiobotocore_kinesis import KinesisClient


class KinesisApi:
    kind: Literal["kinesis"] = "kinesis"
    max_read_records = 10_000
    idle_poll_seconds = 1.0

    def __init__(
        self,
        client: KinesisClient,
        *,
        stream_name: str,
        stream_arn: str,
        region: str,
        invoke_identity_arn: str,
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.stream_arn = stream_arn
        self.region = region
        self.invoke_identity_arn = invoke_identity_arn

    async def retention_seconds(self) -> float:
        try:
            summary = await self.client.describe_stream_summary(StreamName=self.stream_name)
        except ClientError as exc:
            raise not_found(exc, self.stream_arn) from exc
        return float(summary["StreamDescriptionSummary"]["RetentionPeriodHours"]) * 3600.0

    async def list_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        token: str | None = None
        try:
            while True:
                page = await (
                    self.client.list_shards(NextToken=token)
                    if token
                    else self.client.list_shards(StreamName=self.stream_name)
                )
                for shard in page["Shards"]:
                    parents = tuple(
                        p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
                    )
                    ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                    shards.append(ShardInfo(shard["ShardId"], parents, ending))
                token = page.get("NextToken")
                if not token:
                    return shards
        except ClientError as exc:
            raise not_found(exc, self.stream_arn) from exc

    async def iterator(self, shard_id: str, start: StartAt) -> str:
        args: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": shard_id}
        match start:
            case TrimHorizon():
                args["ShardIteratorType"] = "TRIM_HORIZON"
            case Latest():
                args["ShardIteratorType"] = "LATEST"
            case AtTimestamp(epoch_seconds=at):
                args["ShardIteratorType"] = "AT_TIMESTAMP"
                args["Timestamp"] = datetime.fromtimestamp(at, tz=UTC)
            case AfterSequence(sequence_number=sequence):
                args["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
                args["StartingSequenceNumber"] = sequence
        try:
            reply = await self.client.get_shard_iterator(**args)
        except ClientError as exc:
            error = read_error(exc)
            if error.kind == "throttled":
                raise ReadThrottled(error.code) from exc
            if error.code == "InvalidArgumentException" and isinstance(start, AfterSequence):
                # A checkpoint older than the retention period no longer names a record.
                raise PositionTrimmed(str(exc)) from exc
            raise not_found(exc, self.stream_arn, shard_id) from exc
        return reply["ShardIterator"]

    async def read(self, shard_id: str, iterator: str, limit: int) -> ReadResult:
        try:
            reply = await self.client.get_records(ShardIterator=iterator, Limit=limit)
        except ClientError as exc:
            error = read_error(exc)
            if error.code == "ExpiredIteratorException":
                raise IteratorExpired(error.code) from exc
            if error.kind == "throttled":
                raise ReadThrottled(error.code) from exc
            raise not_found(exc, self.stream_arn, shard_id) from exc
        context = KinesisRecordContext(
            shard_id=shard_id,
            stream_arn=self.stream_arn,
            region=self.region,
            invoke_identity_arn=self.invoke_identity_arn,
        )
        items = []
        for raw in reply["Records"]:
            record = kinesis_record(raw, context)
            encoded = serialise_record(record)
            arrival = record["kinesis"]["approximateArrivalTimestamp"]
            ref = StreamRecordRef(raw["SequenceNumber"], arrival, len(encoded) + 1)
            items.append(StreamItem(ref, record, encoded, raw["PartitionKey"]))
        return ReadResult(items, reply.get("NextShardIterator"), reply.get("MillisBehindLatest"))
