"""`poller demo --template`: a SAM or CloudFormation template end to end on the embedded AWS emulation.

The template runs as `poller run --template` runs it against an endpoint (DESIGN §1.10): the queues,
streams and tables it declares are created at the emulation, dead-letter queues first, and its
functions run in execution environments (§1.5.1). The demo then writes sample records to every source
a mapping reads — orders to queues (every tenth with quantity 0, which the example app's orders
function rejects), items to tables, readings to streams — and shows them flowing and where the failing
ones went, as `poller demo` does for the example mappings.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from importlib import resources
from pathlib import Path
from typing import Any, Final

from aiobotocore.session import get_session

from poller.api.template_requests import queue_name, redrive_target
from poller.api.template_sources import SourceResource
from poller.config import SqsMapping, StreamMapping
from poller.config.loader import load_settings
from poller.demo.examples import DEMO_ACCOUNT, REGION, Aws, Example, Landing, Snapshot, every_tenth, metric
from poller.demo.runner import PACKAGED_SAM_APP, copy_tree, free_port, say, serve, start_moto
from poller.demo.stream_examples import Inventory, StreamExample
from poller.observability.logging import configure_logging
from poller.runtime.app import Service
from poller.runtime.template_run import TemplateConfig, TemplateLoad, load_template

SAM_APP_OVERRIDES: Final = {"OrdersVisibilityTimeout": "3"}
"""The packaged app's orders wait 3 s between receives instead of 30, so a failing order reaches the
dead-letter queue within seconds (as `--parameter-overrides OrdersVisibilityTimeout=3` would)."""


async def template_demo(
    template: Path, overrides: Mapping[str, str] | None, messages: int, timeout_seconds: float
) -> int:
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        server, endpoint = start_moto()
        stack.callback(server.stop)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="poller-demo-")))
        given = dict(overrides or {})
        if template == PACKAGED_SAM_APP:
            copy_tree(resources.files("poller.demo") / "sam_app", tmp / "sam-app")
            template, given = tmp / "sam-app" / "template.yaml", {**SAM_APP_OVERRIDES, **given}
            shown = "the SAM app that ships with poller (examples/sam-app/template.yaml)"
        else:
            template = template.resolve()
            shown = str(template)
        port = free_port()
        settings_file = tmp / "poller.yaml"
        settings_file.write_text(json.dumps(_settings(endpoint, tmp, port)))
        settings, problems = load_settings(settings_file, {})
        configure_logging("console", "error")
        pairs = " ".join(f"{key}={value}" for key, value in given.items())
        say(f"poller demo: running {shown}" + (f" with --parameter-overrides {pairs}" if pairs else ""))
        target = TemplateConfig(template, given, settings_file, tmp, {})
        ran = await load_template(target, settings, get_session())
        for problem in (*problems, *ran.loaded.problems):
            say(f"  {problem}")
        aws = await asyncio.to_thread(Aws, endpoint)
        examples = _examples(aws, ran, messages)
        if not examples:
            say("poller demo: the template has no SQS, Kinesis or DynamoDB mapping the demo can feed")
            return 1
        await asyncio.to_thread(_feed, examples)
        say(
            f"poller demo: AWS emulation (moto) at {endpoint}; the template's queues, streams and tables "
            f"created there; set up in {time.monotonic() - started:.1f} s"
        )
        width = max(len(e.name) for e in examples)
        for example in examples:
            poison = len(example.poison_indexes)
            say(
                f"  {example.name:<{width}} {example.source():<40} {example.count} records, {poison} poison"
                f"   {example.route}"
            )
        outcome = await serve(Service(ran.loaded), examples, port, timeout_seconds)
    say(f"poller demo: finished in {time.monotonic() - started:.1f} s")
    return outcome


def _settings(endpoint: str, tmp: Path, port: int) -> dict[str, Any]:
    return {
        "aws": {"region": REGION, "endpoint_url": endpoint, "account_id": DEMO_ACCOUNT},
        "state": {"backend": "sqlite", "path": str(tmp / "state.sqlite3")},
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"format": "console", "level": "error"},
        "shutdown": {"drain_seconds": 5},
    }


def _feed(examples: list[Fed]) -> None:
    for example in examples:
        example.feed()


def _examples(aws: Aws, ran: TemplateLoad, count: int) -> list[Fed]:
    """One example per mapping the demo can write records for; a line for each it cannot."""
    queues = [s for s in ran.sources if s.type == "AWS::SQS::Queue"]
    examples: list[Fed] = []
    for mapping in ran.loaded.mappings:
        if not mapping.enabled:
            say(f"  {mapping.name}: Enabled is false; not fed")
            continue
        if isinstance(mapping, SqsMapping):
            source = next((q for q in queues if queue_name(q) == mapping.queue_name), None)
            if source is not None:
                examples.append(TemplateQueue(aws, ran, mapping, source, queues, count))
                continue
        elif isinstance(mapping, StreamMapping):
            kind = "AWS::Kinesis::Stream" if mapping.source_kind == "kinesis" else "AWS::DynamoDB::Table"
            source = next(
                (s for s in ran.sources if s.type == kind and s.physical_name == mapping.stream_name), None
            )
            if source is not None and mapping.starting_position == "LATEST":
                say(
                    f"  {mapping.name}: starts at LATEST: records written before it starts are not read;"
                    " not fed"
                )
                continue
            if source is not None:
                failures = _failures_url(ran, mapping.on_failure_destination, queues)
                table = source.type == "AWS::DynamoDB::Table"
                example_type = TemplateTable if table else TemplateStream
                examples.append(example_type(aws, ran, mapping, source, failures, count))
                continue
        say(f"  {mapping.name}: reads {mapping.event_source_arn}, not a source of the template; not fed")
    return examples


def _failures_url(ran: TemplateLoad, destination: str | None, queues: list[SourceResource]) -> str:
    if destination is None or not destination.startswith("arn:aws:sqs:"):
        return ""
    name = destination.rsplit(":", 1)[-1]
    source = next((q for q in queues if queue_name(q) == name), None)
    return ran.attributes.get(source.logical_id, {}).get("QueueUrl", "") if source is not None else ""


class TemplateQueue(Example):
    """A template queue read by a mapping: orders, every tenth one impossible (quantity 0)."""

    kind = "SQS"

    def __init__(
        self,
        aws: Aws,
        ran: TemplateLoad,
        mapping: SqsMapping,
        source: SourceResource,
        queues: list[SourceResource],
        count: int,
    ) -> None:
        super().__init__(count, every_tenth(count, 7))
        self.aws, self.name, self.queue = aws, mapping.name, queue_name(source)
        self.url = ran.attributes[source.logical_id]["QueueUrl"]
        target = redrive_target(source, queues)
        dlq = next((q for q in queues if q.logical_id == target), None)
        self.dlq_url = ran.attributes.get(target or "", {}).get("QueueUrl", "")
        policy = source.properties.get("RedrivePolicy")
        policy = json.loads(policy) if isinstance(policy, str) else policy or {}
        self.max_receive = policy.get("maxReceiveCount", "?")
        partial = "partial batch responses; " if mapping.report_batch_item_failures else ""
        if dlq is not None and self.dlq_url:
            self.destination = f"SQS {queue_name(dlq)}"
            redrive = f"the queue's redrive policy (maxReceiveCount {self.max_receive})"
            self.route = f"{partial}{redrive} → {queue_name(dlq)}"
        else:
            self.destination, self.route = "nowhere (no dead-letter queue)", f"{partial}no redrive policy"

    def source(self) -> str:
        return f"SQS queue {self.queue}"

    def feed(self) -> None:
        for start in range(0, self.count, 10):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": json.dumps(
                        {
                            "orderId": i,
                            "sku": f"sku-{i % 5}",
                            "quantity": 0 if self.is_poison(i) else 1 + i % 3,
                        }
                    ),
                }
                for i in range(start, min(start + 10, self.count))
            ]
            self.aws.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)

    async def snapshot(self, service: Any) -> Snapshot:
        dead = await asyncio.to_thread(self.aws.depth, self.dlq_url) if self.dlq_url else 0
        return Snapshot(int(metric(service, "poller_records_deleted_total", self.name)) + dead, dead)

    async def landing(self, service: Any) -> Landing:
        landing = Landing(self.destination)
        if self.dlq_url:
            for body in await asyncio.to_thread(self.aws.bodies, self.dlq_url):
                order = json.loads(body)
                reason = f"the queue's redrive policy, maxReceiveCount {self.max_receive}"
                landing.add(1, int(order.get("quantity", 1) <= 0), reason)
        return landing

    def processed(self, service: Any, snapshot: Snapshot, landing: Landing) -> int:
        return int(metric(service, "poller_records_deleted_total", self.name))


class TemplateStream(StreamExample):
    """A template Kinesis stream read by a mapping: readings, none of them poison."""

    kind = "Kinesis"
    batch_info_key = "KinesisBatchInfo"

    def __init__(
        self,
        aws: Aws,
        ran: TemplateLoad,
        mapping: StreamMapping,
        source: SourceResource,
        failures: str,
        count: int,
    ) -> None:
        super().__init__(aws, count, ())
        self.name, self.stream, self.failures_url = mapping.name, source.physical_name, failures
        self.destination = _destination(mapping, failures)
        self.route = f"{mapping.maximum_retry_attempts} retries → {self.destination}"

    def source(self) -> str:
        return f"Kinesis stream {self.stream}"

    def feed(self) -> None:
        for i in range(self.count):  # one writer, one record at a time (DESIGN §4)
            data = json.dumps({"deviceId": f"sensor-{i % 4}", "reading": i}).encode()
            written = self.aws.kinesis.put_record(
                StreamName=self.stream, PartitionKey=f"sensor-{i % 4}", Data=data
            )
            self.written.setdefault(written["ShardId"], {})[int(written["SequenceNumber"])] = False

    async def landing(self, service: Any) -> Landing:
        return await super().landing(service) if self.failures_url else Landing(self.destination)


class TemplateTable(Inventory):
    """A template DynamoDB table whose stream a mapping reads: items with a stock level, none poison."""

    def __init__(
        self,
        aws: Aws,
        ran: TemplateLoad,
        mapping: StreamMapping,
        source: SourceResource,
        failures: str,
        count: int,
    ) -> None:
        StreamExample.__init__(self, aws, count, ())
        self.name, self.table, self.failures_url = mapping.name, source.physical_name, failures
        self.stream_arn = mapping.event_source_arn
        self.keys = _key_types(source)
        self.destination = _destination(mapping, failures)
        self.route = f"{mapping.maximum_retry_attempts} retries → {self.destination}"

    def source(self) -> str:
        return f"DynamoDB table {self.table} (stream)"

    def feed(self) -> None:
        for i in range(self.count):
            item: dict[str, Any] = {"stock": {"N": str(i % 6)}}
            for name, kind in self.keys.items():
                item[name] = {"N": str(i)} if kind == "N" else {"S": f"{name}-{i:04d}"}
            self.aws.dynamodb.put_item(TableName=self.table, Item=item)
        self.written = self._read_stream()

    async def landing(self, service: Any) -> Landing:
        return await super().landing(service) if self.failures_url else Landing(self.destination)


Fed = TemplateQueue | TemplateStream | TemplateTable


def _destination(mapping: StreamMapping, failures_url: str) -> str:
    if failures_url:
        return f"SQS {failures_url.rsplit('/', 1)[-1]}"
    return mapping.on_failure_destination or "nowhere (no on-failure destination)"


def _key_types(source: SourceResource) -> dict[str, str]:
    """The table's key attributes and their types (S or N; B keys get strings, which AWS refuses)."""
    types = {
        d.get("AttributeName"): d.get("AttributeType", "S")
        for d in source.properties.get("AttributeDefinitions", [])
    }
    return {
        str(k["AttributeName"]): str(types.get(k["AttributeName"], "S"))
        for k in source.properties.get("KeySchema", [])
    }
