"""The composition root: settings and mappings in, a running service out (DESIGN §2).

Everything is built here and passed down; nothing below reads configuration or builds clients
on its own. Shutdown is two-phase (ops anchors §7.2): on SIGTERM readiness flips, every source
stops polling and finishes its in-flight batches within `shutdown.drain_seconds`; whatever is
still running then is cancelled and hands back what it holds; the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import structlog
from aiobotocore.session import AioSession, get_session
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from poller.config import KafkaMapping, LoadedConfig, ResolvedMapping, Settings, SqsMapping, StreamMapping
from poller.core.clock import Clock, SystemClock
from poller.core.kafka_event import KafkaEventShape
from poller.destinations.base import Destination
from poller.destinations.factory import open_destination, parse_destination
from poller.destinations.kafka import KafkaProducers, RoundRobinNullKeys
from poller.errors import ConfigError
from poller.observability.metrics import Metrics
from poller.runtime.clients import open_dynamodb_streams_client, open_kinesis_client, open_sqs_client
from poller.runtime.http_server import build_app, start_http
from poller.runtime.invoker import Invoker
from poller.runtime.kafka_clients import build_consumer, connection_options
from poller.runtime.status import MappingStatus, ServiceStatus
from poller.runtime.supervisor import MappingSupervisor, SourceFactory
from poller.sources.base import Source
from poller.sources.dynamodb_streams import DynamoDbStreamsApi
from poller.sources.kafka import KafkaSource
from poller.sources.kafka_failures import KafkaFailureSender
from poller.sources.kinesis import KinesisApi
from poller.sources.sqs import MAX_RECEIVERS, SqsSource
from poller.sources.stream_api import StreamApi
from poller.sources.stream_failures import FailureSender
from poller.sources.streams import StreamSource
from poller.state import CheckpointStore, SqliteCheckpointStore
from poller.targets.base import Target
from poller.targets.factory import TargetSpec, open_target, reported_function_arn

log = structlog.get_logger("poller.app")


@dataclass
class Service:
    loaded: LoadedConfig
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    clock: Clock = field(default_factory=SystemClock)
    session: AioSession = field(default_factory=get_session)
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.registry)
        self.status = ServiceStatus()
        self.store: CheckpointStore | None = None
        self.kafka_producers: KafkaProducers | None = None

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    def request_stop(self) -> None:
        self.stop_requested.set()

    def _target_spec(self, mapping: ResolvedMapping) -> TargetSpec:
        aws = self.settings.aws
        return TargetSpec(
            function_name=mapping.function_name,
            mapping_name=mapping.name,
            timeout_seconds=mapping.function_timeout_seconds,
            region=aws.region,
            account_id=aws.account_id,
            endpoint_url=aws.endpoint_url,
            search_paths=(self.loaded.base_dir,),
        )

    async def _open_target(self, mapping: ResolvedMapping, stack: AsyncExitStack) -> Target:
        target = await open_target(self._target_spec(mapping), self.session)
        stack.push_async_callback(target.aclose)
        return target

    def _source_factory(self, mapping: ResolvedMapping, status: MappingStatus) -> SourceFactory:
        if isinstance(mapping, StreamMapping):
            return self._stream_source_factory(mapping, status)
        if isinstance(mapping, KafkaMapping):
            return self._kafka_source_factory(mapping, status)
        return self._sqs_source_factory(mapping, status)

    def _sqs_source_factory(self, mapping: SqsMapping, status: MappingStatus) -> SourceFactory:
        aws = self.settings.aws

        async def open_source(stack: AsyncExitStack) -> Source:
            target = await self._open_target(mapping, stack)
            metrics = status.metrics
            invoker = Invoker(
                target=target,
                metrics=metrics,
                source_kind=mapping.source_kind,
                report_batch_item_failures=mapping.report_batch_item_failures,
            )
            return SqsSource(
                mapping,
                client=await open_sqs_client(
                    self.session,
                    stack,
                    region=mapping.region,
                    endpoint_url=aws.endpoint_url,
                    receivers=MAX_RECEIVERS,
                ),
                invoker=invoker,
                metrics=metrics,
                status=status,
                clock=self.clock,
            )

        return open_source

    def _stream_source_factory(self, mapping: StreamMapping, status: MappingStatus) -> SourceFactory:
        aws = self.settings.aws

        async def open_source(stack: AsyncExitStack) -> Source:
            store = self.store
            if store is None:
                raise ConfigError(
                    f"state.backend '{self.settings.state.backend}' is not available yet; "
                    "use the sqlite backend for Kinesis and DynamoDB Streams mappings"
                )
            target = await self._open_target(mapping, stack)
            metrics = status.metrics
            invoker = Invoker(
                target=target,
                metrics=metrics,
                source_kind=mapping.source_kind,
                report_batch_item_failures=mapping.report_batch_item_failures,
            )
            api: StreamApi
            if mapping.source_kind == "kinesis":
                api = KinesisApi(
                    await open_kinesis_client(
                        self.session, stack, region=mapping.region, endpoint_url=aws.endpoint_url
                    ),
                    stream_name=mapping.stream_name,
                    stream_arn=mapping.event_source_arn,
                    region=mapping.region,
                    invoke_identity_arn=self.settings.effective_role_arn,
                )
            else:
                api = DynamoDbStreamsApi(
                    await open_dynamodb_streams_client(
                        self.session, stack, region=mapping.region, endpoint_url=aws.endpoint_url
                    ),
                    stream_arn=mapping.event_source_arn,
                )
            destination: Destination | None = None
            if mapping.on_failure_destination is not None:
                destination = await open_destination(
                    parse_destination(mapping.on_failure_destination),
                    session=self.session,
                    endpoint_url=aws.endpoint_url,
                    stack=stack,
                    region=mapping.region,
                )
            stopping = asyncio.Event()
            failures = FailureSender(
                mapping,
                destination=destination,
                function_arn=reported_function_arn(self._target_spec(mapping)),
                metrics=metrics,
                clock=self.clock,
                stopping=stopping,
            )
            return StreamSource(
                mapping,
                api=api,
                invoker=invoker,
                store=store,
                failures=failures,
                metrics=metrics,
                status=status,
                clock=self.clock,
                stopping=stopping,
            )

        return open_source

    def _kafka_source_factory(self, mapping: KafkaMapping, status: MappingStatus) -> SourceFactory:
        settings = self.settings

        async def open_source(stack: AsyncExitStack) -> Source:
            target = await self._open_target(mapping, stack)
            metrics = status.metrics
            invoker = Invoker(
                target=target,
                metrics=metrics,
                source_kind=mapping.source_kind,
                report_batch_item_failures=mapping.report_batch_item_failures,
            )
            shape = KafkaEventShape(
                bootstrap_servers=",".join(mapping.bootstrap_servers), topic=mapping.topic
            )
            destination: Destination | None = None
            if mapping.on_failure_destination is not None:
                destination = await open_destination(
                    parse_destination(mapping.on_failure_destination),
                    session=self.session,
                    endpoint_url=settings.aws.endpoint_url,
                    stack=stack,
                    region=settings.aws.region,
                    kafka_bootstrap_servers=shape.bootstrap_servers,
                    kafka_producers=self._producers(),
                )
            stopping = asyncio.Event()
            failures = KafkaFailureSender(
                mapping,
                destination=destination,
                shape=shape,
                function_arn=reported_function_arn(self._target_spec(mapping)),
                metrics=metrics,
                clock=self.clock,
                stopping=stopping,
            )
            return KafkaSource(
                mapping,
                consumer_factory=lambda _: build_consumer(mapping, settings.kafka, self.loaded.base_dir),
                invoker=invoker,
                failures=failures,
                metrics=metrics,
                status=status,
                clock=self.clock,
                stopping=stopping,
                # A revoked partition's batch in flight may run to its function timeout.
                revoke_budget_seconds=mapping.function_timeout_seconds + 5.0,
            )

        return open_source

    def _producers(self) -> KafkaProducers:
        """One producer per cluster for every kafka:// destination (closed when the service stops)."""
        if self.kafka_producers is None:
            options = connection_options(self.settings.kafka, self.loaded.base_dir)

            def new_producer(servers: str) -> AIOKafkaProducer:
                return AIOKafkaProducer(
                    bootstrap_servers=servers, acks="all", partitioner=RoundRobinNullKeys(), **options
                )

            self.kafka_producers = KafkaProducers(factory=new_producer)
        return self.kafka_producers

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        settings = self.settings
        async with AsyncExitStack() as stack:
            runner = await start_http(
                build_app(self.status, self.registry), settings.http.host, settings.http.port
            )
            stack.push_async_callback(runner.cleanup)
            if install_signal_handlers:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, self.request_stop)
                    stack.callback(loop.remove_signal_handler, sig)
            await self._open_store(stack)
            stack.push_async_callback(self._close_producers)
            supervisors: list[MappingSupervisor] = []
            for mapping in self.loaded.mappings:
                streams = isinstance(mapping, StreamMapping | KafkaMapping)
                status = MappingStatus(
                    name=mapping.name,
                    source_kind=mapping.source_kind,
                    event_source=mapping.event_source_arn,
                    function_name=mapping.function_name,
                    metrics=self.metrics.for_mapping(mapping.name),
                    # spec §1.2, §1.5: what AWS reports for stream mappings.
                    user_reason="User action" if isinstance(mapping, StreamMapping) else "USER_INITIATED",
                    last_processing_result="No records processed" if streams else None,
                )
                self.status.mappings[mapping.name] = status
                if not mapping.enabled:
                    status.transition("Disabled")
                    continue
                supervisors.append(
                    MappingSupervisor(mapping.name, self._source_factory(mapping, status), status)
                )
            self.status.started = True
            log.info(
                "service_started",
                mappings=len(self.loaded.mappings),
                http=f"{settings.http.host}:{settings.http.port}",
            )
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(s.run(), name=f"mapping:{s.name}") for s in supervisors]
                group.create_task(self._drain_when_asked(supervisors, tasks))
            log.info("service_stopped")
        return 0

    async def _close_producers(self) -> None:
        if self.kafka_producers is not None:
            await self.kafka_producers.aclose()

    async def _open_store(self, stack: AsyncExitStack) -> None:
        """The checkpoint store, opened once for every stream mapping (DESIGN §1.3)."""
        state = self.settings.state
        if state.backend != "sqlite" or not any(isinstance(m, StreamMapping) for m in self.loaded.mappings):
            return
        path = state.path if state.path.is_absolute() else self.loaded.base_dir / state.path
        store = await SqliteCheckpointStore.open(path)
        stack.push_async_callback(store.aclose)
        self.store = store
        log.info("checkpoint_store_opened", backend="sqlite", path=str(path))

    async def _drain_when_asked(
        self, supervisors: list[MappingSupervisor], tasks: list[asyncio.Task[None]]
    ) -> None:
        await self.stop_requested.wait()
        budget = self.settings.shutdown.drain_seconds
        self.status.draining = True
        log.info("drain_started", budget_s=budget, mappings=len(supervisors))
        await asyncio.gather(*(s.stop() for s in supervisors))
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=budget)
        for task in pending:
            task.cancel()
        log.info("drain_finished", abandoned_mappings=len(pending))
