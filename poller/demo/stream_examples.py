"""The demo's stream and topic examples: Kinesis (`telemetry`), DynamoDB Streams (`inventory`) and
Kafka (`payments`); see `poller.demo.examples` for what an example does and the SQS one."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Iterable
from typing import Any, ClassVar

from poller.demo.examples import (
    BATCH_SIZE,
    FETCH_MAX_WAIT_MS,
    Aws,
    Example,
    Landing,
    Snapshot,
    every_tenth,
    metric,
    plural,
)


class StreamExample(Example):
    """A stream example: its records by shard and sequence number, its failures in an SQS queue."""

    failures_queue: ClassVar[str]
    batch_info_key: ClassVar[str]

    def __init__(self, aws: Aws, count: int, poison: Iterable[int]) -> None:
        super().__init__(count, poison)
        self.aws = aws
        self.failures_url = ""
        self.written: dict[str, dict[int, bool]] = {}
        """shard id → sequence number → poison?"""

    def create_failures_queue(self) -> None:
        self.failures_url = self.aws.queue(self.failures_queue)

    def checkpoints(self, service: Any) -> dict[str, int]:
        status = service.status.mappings.get(self.name)
        positions: dict[str, Any] = status.positions if status is not None else {}
        found: dict[str, int] = {}
        for shard, position in list(positions.items()):
            sequence = position.get("SequenceNumber") if isinstance(position, dict) else None
            if isinstance(sequence, str) and sequence.isdigit():
                found[shard] = int(sequence)
        return found

    async def snapshot(self, service: Any) -> Snapshot:
        checkpoints = self.checkpoints(service)
        accounted = sum(
            sum(1 for sequence in records if sequence <= checkpoints[shard])
            for shard, records in self.written.items()
            if shard in checkpoints
        )
        landed = int(metric(service, "poller_records_sent_to_destination_total", self.name))
        return Snapshot(accounted, landed)

    async def landing(self, service: Any) -> Landing:
        landing = Landing(self.destination)
        for body in await asyncio.to_thread(self.aws.bodies, self.failures_url):
            document = json.loads(body)
            info = document[self.batch_info_key]
            first, last = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
            shard = self.written.get(info["shardId"], {})
            covered = [poison for sequence, poison in shard.items() if first <= sequence <= last]
            context = document["requestContext"]
            reason = f"{context['condition']} after {plural(context['approximateInvokeCount'], 'invocation')}"
            landing.add(len(covered), sum(covered), reason)
        return landing


class Telemetry(StreamExample):
    name = "telemetry"
    kind = "Kinesis"
    route = "bisect on error, 2 retries → SQS telemetry-failures"
    failures_queue = "telemetry-failures"
    destination = "SQS telemetry-failures"
    batch_info_key = "KinesisBatchInfo"

    def __init__(self, aws: Aws, count: int) -> None:
        super().__init__(aws, count, every_tenth(count, 3))

    def source(self) -> str:
        return "Kinesis stream telemetry"

    def create(self) -> None:
        self.create_failures_queue()
        self.aws.kinesis.create_stream(StreamName="telemetry", ShardCount=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            summary = self.aws.kinesis.describe_stream_summary(StreamName="telemetry")
            if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                return
            time.sleep(0.05)

    def feed(self) -> None:
        records = [
            {
                "PartitionKey": f"sensor-{i % 4}",
                "Data": json.dumps(
                    {
                        "deviceId": f"sensor-{i % 4}",
                        "reading": i,
                        "celsius": round(20 + (i % 7) * 0.5, 1),
                        "poison": self.is_poison(i),
                    }
                ).encode(),
            }
            for i in range(self.count)
        ]
        # One writer, one request at a time: moto's Kinesis loses records under concurrent writes.
        for start in range(0, len(records), 500):
            chunk = records[start : start + 500]
            reply = self.aws.kinesis.put_records(StreamName="telemetry", Records=chunk)
            for offset, written in enumerate(reply["Records"]):
                if "SequenceNumber" not in written:
                    raise RuntimeError(f"Kinesis refused a sample record: {written.get('ErrorMessage')}")
                shard = self.written.setdefault(written["ShardId"], {})
                shard[int(written["SequenceNumber"])] = self.is_poison(start + offset)


_STREAM_ARN = re.compile(r"arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/inventory/stream/\S+")


class Inventory(StreamExample):
    name = "inventory"
    kind = "DynamoDB"
    route = "partial batch responses, 1 retry → SQS inventory-failures"
    failures_queue = "inventory-failures"
    destination = "SQS inventory-failures"
    batch_info_key = "DDBStreamBatchInfo"

    def __init__(self, aws: Aws, count: int) -> None:
        # With ReportBatchItemFailures a stream retries from the first failed record, so the records
        # after a poison one in its batch share its fate. Here each poison change is the last of its
        # batch of BatchSize, so only the poison changes end up in the destination.
        super().__init__(aws, count, every_tenth(count, BATCH_SIZE - 1))
        self.stream_arn = ""

    def source(self) -> str:
        return "DynamoDB table inventory (stream)"

    def create(self) -> None:
        self.create_failures_queue()
        reply = self.aws.dynamodb.create_table(
            TableName="inventory",
            KeySchema=[{"AttributeName": "sku", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "sku", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        self.stream_arn = str(reply["TableDescription"]["LatestStreamArn"])

    def mapping_text(self, text: str) -> str:
        # A stream ARN's label is the stream's creation time: use the one of the table just created.
        return _STREAM_ARN.sub(self.stream_arn, text)

    def feed(self) -> None:
        for i in range(self.count):
            item: dict[str, Any] = {"sku": {"S": f"sku-{i:04d}"}, "stock": {"N": str(10 + i % 5)}}
            if self.is_poison(i):
                item["poison"] = {"BOOL": True}
            self.aws.dynamodb.put_item(TableName="inventory", Item=item)
        self.written = self._read_stream()

    def _read_stream(self) -> dict[str, dict[int, bool]]:
        """The sequence numbers the writes got (PutItem does not say), read back from the stream."""
        written: dict[str, dict[int, bool]] = {}
        streams = self.aws.streams
        shards = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            iterator = streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                reply = streams.get_records(ShardIterator=iterator, Limit=1000)
                if not reply["Records"]:
                    break
                for record in reply["Records"]:
                    change = record["dynamodb"]
                    poison = bool(change.get("NewImage", {}).get("poison", {}).get("BOOL"))
                    written.setdefault(shard_id, {})[int(change["SequenceNumber"])] = poison
                iterator = reply.get("NextShardIterator")
        found = sum(len(records) for records in written.values())
        if found != self.count:
            raise RuntimeError(f"the inventory stream holds {found} changes, not the {self.count} written")
        return written


# -- Kafka -----------------------------------------------------------------------------------------


class Payments(Example):
    name = "payments"
    kind = "Kafka"
    route = "bisect on error, 1 retry → kafka://payments-failures"
    destination = "kafka://payments-failures"
    TOPIC: ClassVar[str] = "payments"
    FAILURES: ClassVar[str] = "payments-failures"
    PARTITIONS: ClassVar[int] = 2

    def __init__(self, bootstrap: str, count: int) -> None:
        super().__init__(count, every_tenth(count, 5))
        self.bootstrap = bootstrap
        self.ends: dict[int, int] = {}
        """partition → offset after its last sample record"""

    def source(self) -> str:
        return f"Kafka topic payments ({self.PARTITIONS} partitions)"

    async def create(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            wanted = {self.TOPIC: self.PARTITIONS, self.FAILURES: 1}
            reply = await admin.create_topics(
                [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in wanted.items()]
            )
            for topic, code, *message in reply.topic_errors:
                if code != 0:
                    raise RuntimeError(f"creating the Kafka topic {topic} failed: error {code} {message}")
            deadline = time.monotonic() + 10
            while True:  # a real Kafka elects partition leaders a moment after CreateTopics answers
                described = await admin.describe_topics(list(wanted))
                led = {
                    d["topic"]: sum(1 for p in d["partitions"] if p["error_code"] == 0 and p["leader"] >= 0)
                    for d in described
                }
                if led == wanted:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Kafka topics have no leaders after 10 s: {described}")
                await asyncio.sleep(0.05)
        finally:
            await admin.close()

    async def feed(self) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=10_000)
        await producer.start()
        try:
            for i in range(self.count):
                payment = {"paymentId": i, "cents": 100 + 25 * (i % 8), "poison": self.is_poison(i)}
                written = await producer.send_and_wait(
                    self.TOPIC,
                    json.dumps(payment).encode(),
                    key=f"customer-{i % 6}".encode(),
                    partition=i % self.PARTITIONS,
                )
                self.ends[written.partition] = max(self.ends.get(written.partition, 0), written.offset + 1)
        finally:
            await producer.stop()

    async def snapshot(self, service: Any) -> Snapshot:
        status = service.status.mappings.get(self.name)
        positions: dict[str, Any] = status.positions if status is not None else {}
        accounted = 0
        for partition, end in self.ends.items():
            position = positions.get(f"{self.TOPIC}-{partition}")
            committed = position.get("CommittedOffset") if isinstance(position, dict) else None
            accounted += min(committed, end) if isinstance(committed, int) else 0
        landed = int(metric(service, "poller_records_sent_to_destination_total", self.name))
        return Snapshot(accounted, landed)

    async def landing(self, service: Any) -> Landing:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        expected = int(metric(service, "poller_records_sent_to_destination_total", self.name))
        landing = Landing(self.destination)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            request_timeout_ms=10_000,
        )
        await consumer.start()
        try:
            partition = TopicPartition(self.FAILURES, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            deadline = time.monotonic() + 5
            messages: list[Any] = []
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                messages += [m for batch in batches.values() for m in batch]
                highwater = consumer.highwater(partition)
                read_all = highwater is not None and await consumer.position(partition) >= highwater
                if (read_all and len(messages) >= expected) or time.monotonic() > deadline:
                    break
        finally:
            await consumer.stop()
        for message in messages:
            document = json.loads(message.value)
            [record] = [r for records in document["payload"]["records"].values() for r in records]
            payment = json.loads(base64.b64decode(record["value"]))
            context = document["requestContext"]
            reason = f"{context['condition']} after {plural(context['approximateInvokeCount'], 'invocation')}"
            landing.add(1, int(bool(payment.get("poison"))), reason)
        return landing
