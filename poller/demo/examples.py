"""The demo's example sources, one per example mapping: what each creates, feeds and accounts for.

Each example creates what its mapping reads and where its failures go, writes sample records (every
tenth one, at a fixed place, poison: its handler rejects it), and then answers two questions from
the running service and the emulated AWS / local Kafka:

* `snapshot`: how many records are accounted for so far — processed, or in the DLQ or on-failure
  destination — judged by the engine's own bookkeeping: SQS deletions and the DLQ's depth, the
  stream checkpoint (a stream record is checkpointed only once it succeeded or reached the
  destination, DESIGN §3), the Kafka group's committed offsets;
* `landing`: at the end, what the DLQ or destination holds, read back and matched to the records
  that were written, so the summary can say which records went where and why.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

REGION: Final = "us-east-1"
DEMO_ACCOUNT: Final = "123456789012"
"""The account of the example mappings' ARNs; the emulation is told to use it (MOTO_ACCOUNT_ID)."""
POISON_EVERY: Final = 10
BATCH_SIZE: Final = 10
"""The example mappings' BatchSize (the inventory example places its poison records by it)."""
FETCH_MAX_WAIT_MS: Final = 100
"""Tansu answers a waiting fetch only when this expires (DESIGN §4): keep it short."""


@dataclass(frozen=True)
class Snapshot:
    accounted: int
    """Records processed or in the DLQ / destination, as far as the engine has settled them."""
    landed: int
    """Records in the DLQ / destination."""


@dataclass
class Landing:
    """What the DLQ or on-failure destination holds at the end."""

    where: str
    records: int = 0
    poison: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, records: int, poison: int, reason: str) -> None:
        self.records += records
        self.poison += poison
        self.reasons[reason] += records


class Aws:
    """boto3 clients on the emulation (boto3 comes with moto, the demo's AWS emulation)."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        session = boto3.session.Session(region_name=REGION)
        self.sqs = session.client("sqs", endpoint_url=endpoint)
        self.kinesis = session.client("kinesis", endpoint_url=endpoint)
        self.dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        self.streams = session.client("dynamodbstreams", endpoint_url=endpoint)

    def queue(self, name: str, attributes: dict[str, str] | None = None) -> str:
        return str(self.sqs.create_queue(QueueName=name, Attributes=attributes or {})["QueueUrl"])

    def queue_arn(self, url: str) -> str:
        reply = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(reply["Attributes"]["QueueArn"])

    def depth(self, url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(attributes[name]) for name in names)

    def bodies(self, url: str) -> list[str]:
        """Every message body the queue holds now (left in the queue, hidden for a minute)."""
        bodies: list[str] = []
        while True:
            reply = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
            messages = reply.get("Messages", [])
            if not messages:
                return bodies
            bodies += [m["Body"] for m in messages]


def metric(service: Any, name: str, mapping: str, **labels: str) -> float:
    """A sample from the service's own metrics registry (what /metrics shows)."""
    return float(service.registry.get_sample_value(name, {"mapping": mapping, **labels}) or 0.0)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class Example(ABC):
    """One example mapping and its sample records."""

    # Set by each example class; an example made from a template's mapping sets them per instance.
    name: str
    """The mapping's Name, and its file `<name>.yaml`."""
    kind: str
    route: str
    """How the mapping handles failures, for the opening lines."""
    destination: str
    """Where its failed records go."""

    def __init__(self, count: int, poison: Iterable[int]) -> None:
        self.count = count
        self.poison_indexes = frozenset(poison)

    @property
    def file(self) -> str:
        return f"{self.name}.yaml"

    @abstractmethod
    def source(self) -> str:
        """What it reads, e.g. "SQS queue orders"."""

    def mapping_text(self, text: str) -> str:
        """The mapping file as the demo runs it (the packaged text, unless the example must adapt it)."""
        return text

    @abstractmethod
    async def snapshot(self, service: Any) -> Snapshot: ...

    @abstractmethod
    async def landing(self, service: Any) -> Landing: ...

    def processed(self, service: Any, snapshot: Snapshot, landing: Landing) -> int:
        return max(snapshot.accounted - landing.records, 0)

    def is_poison(self, index: int) -> bool:
        return index in self.poison_indexes


def every_tenth(count: int, offset: int) -> list[int]:
    return [i for i in range(count) if i % POISON_EVERY == offset]


# -- SQS -------------------------------------------------------------------------------------------


class Orders(Example):
    name = "orders"
    kind = "SQS"
    route = "partial batch responses; the queue's redrive policy (maxReceiveCount 2) → orders-dlq"
    destination = "SQS orders-dlq"
    MAX_RECEIVE_COUNT: ClassVar[int] = 2

    def __init__(self, aws: Aws, count: int) -> None:
        super().__init__(count, every_tenth(count, 7))
        self.aws = aws
        self.url = ""
        self.dlq_url = ""

    def source(self) -> str:
        return "SQS queue orders"

    def create(self) -> None:
        self.dlq_url = self.aws.queue("orders-dlq")
        redrive = {
            "deadLetterTargetArn": self.aws.queue_arn(self.dlq_url),
            "maxReceiveCount": self.MAX_RECEIVE_COUNT,
        }
        # VisibilityTimeout at least the function's timeout, as AWS requires for a mapping.
        self.url = self.aws.queue("orders", {"VisibilityTimeout": "2", "RedrivePolicy": json.dumps(redrive)})

    def feed(self) -> None:
        bodies = [json.dumps({"orderId": i, "poison": self.is_poison(i)}) for i in range(self.count)]
        for start in range(0, len(bodies), 10):
            chunk = enumerate(bodies[start : start + 10], start)
            entries = [{"Id": str(n), "MessageBody": body} for n, body in chunk]
            self.aws.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)

    async def snapshot(self, service: Any) -> Snapshot:
        dead = await asyncio.to_thread(self.aws.depth, self.dlq_url)
        deleted = int(metric(service, "poller_records_deleted_total", self.name))
        return Snapshot(deleted + dead, dead)

    async def landing(self, service: Any) -> Landing:
        landing = Landing(self.destination)
        for body in await asyncio.to_thread(self.aws.bodies, self.dlq_url):
            reason = f"the queue's redrive policy, maxReceiveCount {self.MAX_RECEIVE_COUNT}"
            landing.add(1, int(bool(json.loads(body).get("poison"))), reason)
        return landing

    def processed(self, service: Any, snapshot: Snapshot, landing: Landing) -> int:
        return int(metric(service, "poller_records_deleted_total", self.name))

    async def left_in_source(self) -> int:
        return await asyncio.to_thread(self.aws.depth, self.url)


# -- Kinesis and DynamoDB Streams ------------------------------------------------------------------
