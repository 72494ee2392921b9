"""The composition root: settings and mappings in, a running service out (DESIGN §2).

Everything is built here and passed down; nothing below reads configuration or builds clients
on its own. Shutdown is two-phase (ops anchors §7.2): on SIGTERM readiness flips, every source
stops polling and finishes its in-flight batches within `shutdown.drain_seconds`; whatever is
still running then is cancelled and hands back what it holds; the process exits 0.

The supervisors run in one task group that stays open for the life of the service, so a hot
reload (`runtime/reload.py`: a change of the mapping files, or SIGHUP) can drain some and start
others while the rest run on untouched.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiobotocore.session import AioSession, get_session
from prometheus_client import CollectorRegistry

from poller.api.esm_routes import esm_routes
from poller.api.esm_service import EsmRuntime, EsmService
from poller.api.esm_store import ApiMappingStore
from poller.config import LoadedConfig, Problem, ResolvedMapping, Settings
from poller.config.documents import entry_from_document
from poller.config.functions import DeclaredFunctions
from poller.config.loader import load_mapping_files, load_settings
from poller.config.resolve import resolve_mapping
from poller.core.clock import Clock, SystemClock
from poller.destinations.kafka import KafkaProducers
from poller.functions.launch import service_credentials
from poller.observability.function_metrics import FunctionMetrics
from poller.observability.metrics import Metrics
from poller.observability.status import (
    MappingStatus,
    ServiceStatus,
    initial_processing_result,
    user_reason_for,
)
from poller.runtime.api_checks import source_problem
from poller.runtime.api_mappings import ApiMappings
from poller.runtime.assembly import MappingAssembly
from poller.runtime.clients import AwsClients
from poller.runtime.function_pools import FunctionPools
from poller.runtime.http_server import build_app, start_http
from poller.runtime.kafka_clients import connection_options
from poller.runtime.reload import Reloader
from poller.runtime.state_backends import StateBackend
from poller.runtime.supervisor import MappingSupervisor, SourceFactory, SupervisorPool
from poller.sources.base import Source
from poller.targets.factory import reported_function_arn
from poller.targets.python_handler import leaked_handler_threads

log = structlog.get_logger("poller.app")

API_STARTUP_SYNC_SECONDS = 15.0
"""How long start-up waits for the state store to hand over the API-made mappings."""


@dataclass
class Service:
    loaded: LoadedConfig
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    clock: Clock = field(default_factory=SystemClock)
    session: AioSession = field(default_factory=get_session)
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    """What `POLLER_*` overrides a reload of the settings file sees."""
    watch_interval_seconds: float = 1.0
    """How often the mapping files are checked for changes (hot reload)."""
    load_again: Callable[[], LoadedConfig] | None = None
    """How a hot reload reads the configuration again (run in a thread); None: the settings file and
    its mapping files. `poller run --template` reads its template again instead."""

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.registry)
        self.status = ServiceStatus()
        self.state: StateBackend | None = None
        self.clients = AwsClients(self.session, endpoint_url=self.settings.aws.endpoint_url)
        """Every mapping's AWS clients, shared, closed when the service stops (see clients.py)."""
        self._state_lock = asyncio.Lock()
        self._stack: AsyncExitStack | None = None
        self.kafka_producers: KafkaProducers | None = None
        self.running: dict[str, ResolvedMapping] = {}
        """The mappings in effect by Name (enabled or not): the last good set."""
        self.pool: SupervisorPool | None = None
        self.reloader: Reloader | None = None
        self.api_mappings: ApiMappings | None = None
        self.declared = DeclaredFunctions(self.loaded.functions, {})
        """The functions the files declare now: what an API-made mapping may name."""
        self.functions = FunctionPools(
            clock=self.clock,
            idle_seconds=self.settings.functions.idle_seconds,
            drain_seconds=self.settings.shutdown.drain_seconds,
            metrics=FunctionMetrics(self.registry),
            region=self.settings.aws.region,
            account_id=self.settings.aws.account_id,
            credentials_env=service_credentials(self.environ),
        )
        """The execution environments of the functions declared under `Functions:` (DESIGN §1.5.1)."""
        self.functions.define(self.loaded.functions)
        self.assembly = MappingAssembly(
            settings=self.settings,
            base_dir=self.loaded.base_dir,
            clock=self.clock,
            session=self.session,
            clients=self.clients,
            functions=self.functions,
            state_backend=self._state_backend,
            kafka_producers=self._producers,
        )

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    def request_stop(self) -> None:
        self.stop_requested.set()

    def _source_factory(self, mapping: ResolvedMapping, status: MappingStatus) -> SourceFactory:
        async def open_source(stack: AsyncExitStack) -> Source:
            return await self.assembly.open_source(mapping, status, stack)

        return open_source

    def _producers(self) -> KafkaProducers:
        """One producer per cluster for every kafka:// destination (closed when the service stops)."""
        if self.kafka_producers is None:
            # KafkaProducers' own producers: its request size fits §6.5 messages over 1 MB.
            self.kafka_producers = KafkaProducers(
                connection=connection_options(self.settings.kafka, self.loaded.base_dir)
            )
        return self.kafka_producers

    def request_reload(self) -> None:
        """Reload the mappings now (SIGHUP), as a change of their files would."""
        if self.reloader is not None:
            self.reloader.request()

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        settings = self.settings
        async with AsyncExitStack() as stack:
            routes = (
                esm_routes(self._esm_service(), settings.api.access_key_ids) if settings.api.enabled else []
            )
            runner = await start_http(
                build_app(self.status, self.registry, routes), settings.http.host, settings.http.port
            )
            stack.push_async_callback(runner.cleanup)
            if install_signal_handlers:
                loop = asyncio.get_running_loop()
                for sig, handler in (
                    (signal.SIGTERM, self.request_stop),
                    (signal.SIGINT, self.request_stop),
                    (signal.SIGHUP, self.request_reload),
                ):
                    loop.add_signal_handler(sig, handler)
                    stack.callback(loop.remove_signal_handler, sig)
            self._stack = stack
            stack.push_async_callback(self.clients.aclose)
            stack.push_async_callback(self._close_producers)
            # Pushed last, so closed first: environments stop once the mappings have drained.
            stack.push_async_callback(self.functions.aclose)
            async with asyncio.TaskGroup() as group:
                watchers: list[asyncio.Task[None]] = []
                self.pool = SupervisorPool(group)
                self.reloader = Reloader(
                    load=self.load_again or self._load_again,
                    running=self.running,
                    start=self._start_mapping,
                    pool=self.pool,
                    status=self.status,
                    metrics=self.metrics,
                    settings=settings,
                    settings_file=self.loaded.settings_file,
                    base_dir=self.loaded.base_dir,
                    clock=self.clock,
                    stopping=self.stop_requested,
                    interval_seconds=self.watch_interval_seconds,
                    on_loaded=self._on_loaded,
                    kept=self._api_mappings_running,
                )
                self.reloader.record_startup(self.loaded.problems)
                await self.reloader.prime()
                for mapping in self.loaded.mappings:
                    self._start_mapping(mapping)
                if settings.api.enabled:
                    self.api_mappings = ApiMappings(
                        reloader=self.reloader,
                        running=self.running,
                        open_store=self._api_store,
                        resolve=self._resolve_document,
                        stopping=self.stop_requested,
                    )
                    try:
                        # Bounded: an unreachable dynamodb backend must not hold up the file mappings.
                        async with asyncio.timeout(API_STARTUP_SYNC_SECONDS):
                            await self.api_mappings.sync()
                    except Exception as exc:  # retried by its watch; the file mappings run meanwhile
                        log.error("api_mappings_sync_failed", error=str(exc)[:300])
                    watchers.append(group.create_task(self.api_mappings.watch(), name="api-mappings-watch"))
                self.status.started = True
                log.info(
                    "service_started",
                    mappings=len(self.loaded.mappings),
                    http=f"{settings.http.host}:{settings.http.port}",
                )
                watchers.append(group.create_task(self.reloader.watch(), name="mappings-watch"))
                await self.stop_requested.wait()
                await self._drain(self.pool)
                for watcher in watchers:
                    watcher.cancel()
            log.info("service_stopped")
        return 0

    def _on_loaded(self, loaded: LoadedConfig) -> None:
        self.functions.define(loaded.functions)
        self.declared = DeclaredFunctions(loaded.functions, {})
        if self.api_mappings is not None:
            self.api_mappings.forget_resolved()

    def _api_mappings_running(self) -> list[ResolvedMapping]:
        return self.api_mappings.current() if self.api_mappings is not None else []

    def _api_names(self) -> set[str]:
        return set(self.api_mappings.names) if self.api_mappings is not None else set()

    def _api_changed(self) -> None:
        if self.api_mappings is not None:
            self.api_mappings.changed()

    async def _api_store(self) -> ApiMappingStore:
        backend = await self._state_backend()
        store: ApiMappingStore | None = backend.sqlite or backend.leases
        assert store is not None, "a state backend holds either"
        return store

    def _resolve_document(
        self, document: Mapping[str, object], origin: str
    ) -> tuple[ResolvedMapping | None, list[Problem]]:
        """An API request's mapping document through the one resolver, as the files' loader calls it."""
        entry, problems = entry_from_document(document, origin)
        if entry is None:
            return None, problems
        file_root = self.settings.destinations.file_root
        return resolve_mapping(
            entry,
            kafka_bootstrap_servers=self.settings.kafka.bootstrap_servers,
            file_root=Path(os.path.normpath(self.loaded.base_dir / file_root)),
            functions=self.declared,
        )

    def _esm_service(self) -> EsmService:
        return EsmService(
            EsmRuntime(
                settings=self.settings,
                status=self.status,
                running=self.running,
                api_names=self._api_names,
                open_store=self._api_store,
                resolve=self._resolve_document,
                function_arn=lambda mapping: reported_function_arn(self.assembly.target_spec(mapping)),
                source_problem=functools.partial(source_problem, self.clients),
                changed=self._api_changed,
                wall=self.clock.wall,
            )
        )

    def _start_mapping(self, mapping: ResolvedMapping) -> None:
        """Register a mapping's status and, if it is enabled, start its supervisor."""
        assert self.pool is not None, "the service is not running"
        previous = self.status.mappings.get(mapping.name)
        # A restart after a change keeps saying Updating / Enabling until it polls (spec §1.5).
        carried = (
            previous.state if previous is not None and previous.state in ("Updating", "Enabling") else None
        )
        status = MappingStatus(
            name=mapping.name,
            state=carried or "Creating",
            source_kind=mapping.source_kind,
            event_source=mapping.event_source_arn,
            function_name=mapping.function_name,
            metrics=self.metrics.for_mapping(mapping.name),
            user_reason=user_reason_for(mapping),
            last_processing_result=initial_processing_result(mapping),
            leaked_threads=functools.partial(leaked_handler_threads, mapping.name),
        )
        self.status.mappings[mapping.name] = status
        self.running[mapping.name] = mapping
        if not mapping.enabled:
            status.transition("Disabled")
            return
        self.pool.start(MappingSupervisor(mapping.name, self._source_factory(mapping, status), status))

    def _load_again(self) -> LoadedConfig:
        """Settings and mappings as the files say now, for a hot reload (runs in a thread).

        Kafka mappings that name no servers still get the running `kafka.bootstrap_servers`, and
        `file://` destinations are checked against the running `destinations.file_root`: settings
        other than `mappings` change only with a restart.
        """
        loaded = self.loaded
        settings, problems = load_settings(loaded.settings_file, self.environ)
        if any(p.severity == "error" for p in problems):
            return LoadedConfig(settings, loaded.settings_file, loaded.base_dir, (), tuple(problems))
        found = load_mapping_files(
            settings.mappings,
            loaded.base_dir,
            kafka_bootstrap_servers=self.settings.kafka.bootstrap_servers,
            file_root=self.settings.destinations.file_root,
        )
        return LoadedConfig(
            settings,
            loaded.settings_file,
            loaded.base_dir,
            found.mappings,
            (*problems, *found.problems),
            functions=found.functions,
        )

    async def _close_producers(self) -> None:
        if self.kafka_producers is not None:
            await self.kafka_producers.aclose()

    async def _state_backend(self) -> StateBackend:
        """The state backend (DESIGN §1.3), opened when the first stream mapping needs it and kept
        for the life of the service; a failure to open it fails that mapping, which retries."""
        async with self._state_lock:
            if self.state is None:
                assert self._stack is not None, "the service is not running"
                self.state = await StateBackend.open(
                    self.settings, self.loaded.base_dir, self.session, self._stack
                )
            return self.state

    async def _drain(self, pool: SupervisorPool) -> None:
        budget = self.settings.shutdown.drain_seconds
        self.status.draining = True
        log.info("drain_started", budget_s=budget, mappings=len(pool.active) + len(pool.leaving))
        abandoned = await pool.drain_all(budget)
        log.info("drain_finished", abandoned_mappings=abandoned)
