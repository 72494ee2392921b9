"""One assembly of a mapping's parts (DESIGN §2): what every source kind needs is built once here —
the target, the invoker, the on-failure destination and its sender — and only what is particular
to a kind (its client or API, its store and leases, its consumer) is chosen by kind at the end.

The service hands in what it shares between mappings (clients, the state backend, Kafka producers,
the function pools); the assembly never closes those, only what it opened for this mapping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from aiobotocore.session import AioSession

from poller.config import KafkaMapping, ResolvedMapping, Settings, SqsMapping, StreamMapping
from poller.config.resolved import UnstartableMapping
from poller.core.clock import Clock
from poller.destinations.base import Destination
from poller.destinations.factory import open_destination, parse_destination
from poller.destinations.kafka import KafkaProducers
from poller.dispatch.driver import Driver
from poller.dispatch.failures import FailureSender
from poller.dispatch.invoker import Invoker
from poller.observability.status import MappingStatus
from poller.runtime.clients import AwsClients
from poller.runtime.function_pools import FunctionPools
from poller.runtime.kafka_clients import build_consumer, mapping_group_timeouts
from poller.runtime.state_backends import StateBackend
from poller.sources.base import Source
from poller.sources.kafka import KafkaSource
from poller.sources.sqs import MAX_RECEIVERS, SqsSource
from poller.sources.streams import DynamoDbStreamsApi, KinesisApi, StreamApi, StreamSource
from poller.targets.base import Target
from poller.targets.environment import EnvironmentTarget
from poller.targets.factory import TargetSpec, open_target, reported_function_arn


@dataclass
class MappingAssembly:
    settings: Settings
    base_dir: Path
    clock: Clock
    session: AioSession
    clients: AwsClients
    functions: FunctionPools
    state_backend: Callable[[], Awaitable[StateBackend]]
    kafka_producers: Callable[[], KafkaProducers]

    def target_spec(self, mapping: ResolvedMapping) -> TargetSpec:
        aws = self.settings.aws
        return TargetSpec(
            function_name=mapping.function_name,
            mapping_name=mapping.name,
            timeout_seconds=mapping.function_timeout_seconds,
            region=aws.region,
            account_id=aws.account_id,
            endpoint_url=aws.endpoint_url,
            search_paths=(self.base_dir,),
            http_headers=self.settings.targets.http_headers,
        )

    async def open_source(
        self, mapping: ResolvedMapping, status: MappingStatus, stack: AsyncExitStack
    ) -> Source:
        """Every part of `mapping` for one run of its supervisor; `stack` closes what is its own."""
        if isinstance(mapping, UnstartableMapping):
            return UnstartableSource(mapping, status)
        metrics = status.metrics
        invoker = Invoker(
            target=await self._target(mapping, stack),
            metrics=metrics,
            source_kind=mapping.source_kind,
            report_batch_item_failures=mapping.report_batch_item_failures,
        )
        if isinstance(mapping, SqsMapping):
            # The queue is the DLQ's owner (its redrive policy): SQS has no on-failure destination.
            client = await self.clients.sqs_source(stack, region=mapping.region, receivers=MAX_RECEIVERS)
            return SqsSource(
                mapping, client=client, invoker=invoker, metrics=metrics, status=status, clock=self.clock
            )
        stopping = asyncio.Event()
        failures = FailureSender(
            mapping_name=mapping.name,
            destination=await self._destination(mapping, stack),
            function_arn=reported_function_arn(self.target_spec(mapping)),
            metrics=metrics,
            clock=self.clock,
            stopping=stopping,
        )
        if isinstance(mapping, StreamMapping):
            store, leases = (await self.state_backend()).for_mapping(
                mapping.name, clock=self.clock, metrics=metrics, status=status
            )
            return StreamSource(
                mapping,
                api=await self._stream_api(mapping),
                invoker=invoker,
                store=store,
                failures=failures,
                metrics=metrics,
                status=status,
                clock=self.clock,
                stopping=stopping,
                leases=leases,
            )
        timeouts = mapping_group_timeouts(mapping, self.settings.kafka)
        return KafkaSource(
            mapping,
            consumer_factory=lambda _: build_consumer(mapping, self.settings.kafka, self.base_dir),
            invoker=invoker,
            driver=Driver(clock=self.clock, status=status),
            failures=failures,
            metrics=metrics,
            status=status,
            clock=self.clock,
            stopping=stopping,
            # A revoked partition's batch in flight may run to its function timeout; the
            # consumer's group timeouts are derived from the same budget (build_consumer).
            revoke_budget_seconds=timeouts.revoke_wait_seconds,
            revoke_commit_seconds=timeouts.revoke_commit_seconds,
        )

    async def _target(self, mapping: ResolvedMapping, stack: AsyncExitStack) -> Target:
        if mapping.declared_function is not None:
            return EnvironmentTarget(self.functions, mapping.declared_function)
        target = await open_target(self.target_spec(mapping), self.session)
        stack.push_async_callback(target.aclose)
        return target

    async def _destination(
        self, mapping: StreamMapping | KafkaMapping, stack: AsyncExitStack
    ) -> Destination | None:
        if mapping.on_failure_destination is None:
            return None
        spec = parse_destination(mapping.on_failure_destination)
        if isinstance(mapping, StreamMapping):
            return await open_destination(spec, clients=self.clients, stack=stack, region=mapping.region)
        return await open_destination(
            spec,
            clients=self.clients,
            stack=stack,
            region=self.settings.aws.region,
            # A kafka:// destination is on the source's own cluster (spec §6.1).
            kafka_bootstrap_servers=",".join(mapping.bootstrap_servers),
            kafka_producers=self.kafka_producers(),
        )

    async def _stream_api(self, mapping: StreamMapping) -> StreamApi:
        if mapping.source_kind == "kinesis":
            return KinesisApi(
                await self.clients.kinesis(region=mapping.region),
                stream_name=mapping.stream_name,
                stream_arn=mapping.event_source_arn,
                region=mapping.region,
                invoke_identity_arn=self.settings.effective_role_arn,
            )
        return DynamoDbStreamsApi(
            await self.clients.dynamodb_streams(region=mapping.region), stream_arn=mapping.event_source_arn
        )


class UnstartableSource:
    """A mapping poller accepts and cannot read (`poller.config.unstartable`): it opens nothing,
    reports why, and waits to be stopped, so start, reload and shutdown treat it as any other.

    `Disabled` (spec §1.5) because it does not poll and is not on its way to polling, as Lambda shows a
    consumer stopped for good; the reason carries Lambda's code for it (`ESM_CONFIG_NOT_VALID`).
    """

    def __init__(self, mapping: UnstartableMapping, status: MappingStatus) -> None:
        self.kind: str = mapping.source_kind
        self.reason = mapping.reason
        self.status = status
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        self.status.transition("Disabled", self.reason)
        self.status.settled = True
        await self.stopping.wait()

    async def stop(self) -> None:
        self.stopping.set()
