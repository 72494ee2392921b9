"""ONE execution environment: a runtime process, the Runtime API it talks to, and its lifecycle.

The process runs in its own process group (`start_new_session`), so killing the environment kills
whatever the runtime started too. While it initialises or invokes, a guard watches for the
deadline, the process's exit, its resident memory (the process and all its children, as Lambda's
cgroup counts them) and the size of its `/tmp`, and the first of those that fires ends the wait.

Everything the environment decides — deadlines, outcomes, report fields — is `environment_state`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import structlog

from poller.core.clock import Clock
from poller.core.outcome import InvokeOutcome
from poller.functions.definition import VERSION, FunctionDefinition
from poller.functions.environment_state import (
    DeadlineExceeded,
    Ending,
    EnvironmentState,
    Errored,
    Exited,
    OutOfMemory,
    Responded,
    ResponseTooLarge,
    StorageExceeded,
    Unstartable,
    Withdrawn,
    trace_header,
)
from poller.functions.error_types import exit_reason
from poller.functions.launch import (
    INVALID_ENTRYPOINT,
    LaunchError,
    environment_variables,
    launch_command,
    log_stream_name,
)
from poller.functions.output_lines import LineSplitter
from poller.functions.probes import MemoryProbe, directory_bytes, is_running
from poller.functions.runtime_api import (
    InitFailed,
    Replied,
    RuntimeApiServer,
    RuntimeErrored,
    RuntimeGone,
    RuntimeReply,
    TooLarge,
)
from poller.observability.function_metrics import BoundFunctionMetrics

T = TypeVar("T")

SAMPLE_SECONDS = 0.05
"""How often memory is sampled while the runtime initialises or invokes: a hog allocating 1 GB/s
overshoots `MemorySize` by at most ~50 MB before it is caught."""
STORAGE_EVERY = 10
"""`/tmp` is walked every this many memory samples (a walk costs more than a memory sample)."""
EXIT_GRACE_SECONDS = 0.5
"""A runtime may answer just before it exits (an init error, a 413'd response): prefer the answer."""
STOP_GRACE_SECONDS = 2.0
"""How long output pumps may run on after a kill (a grandchild that left the group may hold a pipe)."""


_GONE: Final = object()
"""The Runtime API released a waiter because the process exited: the guard says how it ended."""


class ExecutionEnvironment:
    def __init__(
        self,
        definition: FunctionDefinition,
        *,
        clock: Clock,
        tmpdir: Path,
        region: str,
        account_id: str,
        credentials: Mapping[str, str],
        metrics: BoundFunctionMetrics,
    ) -> None:
        self.definition = definition
        self._clock = clock
        self.tmpdir = tmpdir
        self._region = region
        self._arn = definition.arn(region, account_id)
        self._credentials = credentials
        self._metrics = metrics
        self._state = EnvironmentState(
            memory_size_mb=definition.memory_size_mb,
            timeout_seconds=definition.timeout_seconds,
            ephemeral_storage_mb=definition.ephemeral_storage_mb,
            clock=clock,
        )
        self._log = structlog.get_logger("poller.functions").bind(function=definition.name)
        self._server: RuntimeApiServer | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._returncode: int | None = None
        self._killed = False
        self._exited = asyncio.Event()
        self._pumps: list[asyncio.Task[None]] = []
        self._probe: MemoryProbe | None = None
        self._request_id: str | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def usable(self) -> bool:
        """It can take another invocation: initialised, never reset, its process still running."""
        if self._state.reset or self._exited.is_set():
            return False
        return self._proc is None or is_running(self._proc.pid)

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        """Init: start the runtime and wait (≤ 10 s) for its first `/next`. Never raises for the
        function's faults: a failed Init is remembered and fails every invocation (spec §2.2)."""
        self._log.info("platform.initStart", initializationType="on-demand", phase="init")
        deadline = self._state.begin_init()
        ending = await self._launch(tasks)
        if ending is None:
            ending = await self._race(self._server_ready(), deadline)
        if ending is None:
            report = self._state.init_succeeded()
        else:
            report = self._state.init_failed(ending)
            await self.stop()
        fields: dict[str, object] = {"initDurationMs": report.init_duration_ms, "status": report.status}
        if report.error_type is not None:
            fields["errorType"] = report.error_type
        self._log.info("platform.initReport", initializationType="on-demand", phase="init", **fields)
        self._metrics.init_finished(report.init_duration_ms / 1000.0)

    async def _launch(self, tasks: asyncio.TaskGroup) -> Ending | None:
        try:
            launch = launch_command(self.definition)
        except LaunchError as exc:
            return Unstartable(exc.error_type, exc.message)
        self._server = RuntimeApiServer(clock=self._clock)
        address = await self._server.start()
        env = environment_variables(
            self.definition,
            runtime_api=address,
            region=self._region,
            tmpdir=self.tmpdir,
            log_stream=log_stream_name(self._clock.wall(), uuid.uuid4().hex),
            runtime_dir=launch.runtime_dir,
            credentials=self._credentials,
            host_environ=os.environ,
        )
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *launch.argv,
                cwd=launch.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: a kill takes its children too
            )
        except OSError as exc:  # e.g. a bootstrap script without a #! line: exec format error
            return Unstartable(INVALID_ENTRYPOINT, f"fork/exec {launch.argv[0]}: {exc.strerror or exc}")
        self._probe = MemoryProbe(self._proc.pid)
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._pumps = [
            tasks.create_task(self._pump(self._proc.stdout)),
            tasks.create_task(self._pump(self._proc.stderr)),
        ]
        tasks.create_task(self._watch_exit(self._proc))
        return None

    async def _server_ready(self) -> Ending | None:
        assert self._server is not None
        match await self._server.wait_ready():
            case InitFailed(error_type=error_type, body=body):
                return Errored(error_type or None, body)
            case _:
                return None

    async def invoke(self, payload: bytes, *, request_id: str) -> InvokeOutcome | Withdrawn:
        """One invocation; the environment is killed if it timed out, exited or overran a limit.

        `Withdrawn` (no outcome, no report): the runtime exited before it took the invocation, which
        the caller runs again elsewhere (`EnvironmentState.withdraw`).
        """
        invocation = self._state.begin_invocation(request_id)
        self._request_id = request_id
        self._log.info("platform.start", requestId=request_id, version=VERSION)
        if self._state.init_failure is not None:
            ending: Ending = self._state.init_failure
        else:
            assert self._server is not None
            trace = trace_header(self._clock.wall(), uuid.uuid4().hex, uuid.uuid4().hex)
            reply = await self._race(
                self._server.invoke(
                    request_id=request_id,
                    payload=payload,
                    deadline_ms=invocation.deadline_epoch_ms,
                    invoked_function_arn=self._arn,
                    trace_id=trace,
                ),
                invocation.deadline,
            )
            if not isinstance(reply, Replied | RuntimeErrored | TooLarge):
                self._server.abandon(request_id)  # a late post for it gets 410 InvokeTimeout
            ending = _ending_of(reply)
            withdrawn = self._state.withdraw(ending, delivered=self._server.delivered(request_id))
            if withdrawn is not None:
                await self._kill()  # what the runtime may have left running in its group
                self._log.warning(
                    "function_invocation_withdrawn",
                    requestId=request_id,
                    reason=exit_reason(withdrawn.returncode),
                )
                return withdrawn
            if isinstance(ending, Responded | Errored) and await self._over_memory():
                # It answered between two samples but went over on the way: Lambda would have
                # killed it mid-invocation, and its next invocation must not pay for it.
                ending = OutOfMemory()
        finished = self._state.finish(ending)
        if finished.reset:
            await self._kill()
        if isinstance(ending, OutOfMemory | StorageExceeded):
            self._log.warning(
                "function_killed",
                requestId=request_id,
                reason="memory" if isinstance(ending, OutOfMemory) else "ephemeral_storage",
                maxMemoryUsedMB=finished.report.max_memory_used_mb,
            )
        self._log.info("platform.report", **finished.report.fields())
        self._metrics.invocation_finished(
            seconds=finished.report.duration_ms / 1000.0,
            error_type=finished.metric_error_type,
            max_memory_bytes=self._state.max_memory_bytes,
        )
        return finished.outcome

    async def stop(self) -> None:
        """Kill the process group and close the Runtime API; output already written is still logged."""
        await self._kill()
        if self._pumps:
            _, pending = await asyncio.wait(self._pumps, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
        if self._server is not None:
            server, self._server = self._server, None
            await server.close()

    async def _kill(self) -> None:
        self._state.reset = True
        if self._proc is None:
            return
        if not self._killed:
            # Once: the group outlives its leader while children remain, but once empty its id
            # could in time belong to another process group.
            self._killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):  # SIGKILL cannot be ignored; this is only a backstop
            await asyncio.wait_for(self._exited.wait(), STOP_GRACE_SECONDS)

    async def _race(self, work: Coroutine[Any, Any, T], deadline: float) -> T | Ending:
        """`work`'s result, unless the deadline passes, the process exits or a limit is overrun first."""

        async def attempt() -> T | object:
            try:
                return await work
            except RuntimeGone:
                return _GONE

        async with asyncio.TaskGroup() as group:
            work_task = group.create_task(attempt())
            guard = group.create_task(self._guard(deadline))
            await asyncio.wait({work_task, guard}, return_when=asyncio.FIRST_COMPLETED)
            if not work_task.done() and isinstance(guard.result(), Exited):
                await asyncio.wait({work_task}, timeout=EXIT_GRACE_SECONDS)
            if work_task.done() and (result := work_task.result()) is not _GONE:
                guard.cancel()
                return result  # type: ignore[return-value]
            work_task.cancel()
            return await guard

    async def _guard(self, deadline: float) -> Ending:
        ticks = 0
        while True:
            if self._exited.is_set():
                return Exited(self._returncode if self._returncode is not None else -signal.SIGKILL)
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return DeadlineExceeded()
            if await self._over_memory():
                return OutOfMemory()
            if ticks % STORAGE_EVERY == 0 and self._state.storage_exceeded(
                await asyncio.to_thread(directory_bytes, self.tmpdir)
            ):
                return StorageExceeded()
            ticks += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._exited.wait(), timeout=min(SAMPLE_SECONDS, max(remaining, 0.001))
                )

    async def _over_memory(self) -> bool:
        assert self._probe is not None
        sample = await asyncio.to_thread(self._probe.sample)
        return self._state.observe_memory(sample.resident, peak=sample.peak)

    async def _watch_exit(self, proc: asyncio.subprocess.Process) -> None:
        try:
            self._returncode = await proc.wait()
        finally:
            self._exited.set()
            if self._server is not None:
                self._server.process_exited()  # releases its waiters; later requests get 500

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        """Every line the runtime writes becomes one `function_output` log line (DESIGN §1.8).

        These tasks run in the pool's task group: they never raise, so a broken pipe or an odd
        byte cannot take the pool (and the engine) down with them.
        """
        splitter = LineSplitter()
        try:
            while chunk := await stream.read(65536):
                for line in splitter.feed(chunk):
                    self._output(line)
        except (OSError, ValueError) as exc:
            self._log.warning("function_output_lost", error=str(exc))
        for line in splitter.flush():
            self._output(line)

    def _output(self, line: str) -> None:
        self._log.info("function_output", requestId=self._request_id, message=line)


def _ending_of(reply: RuntimeReply | Ending) -> Ending:
    match reply:
        case Replied(body=body):
            return Responded(body)
        case RuntimeErrored(error_type=error_type, body=body):
            return Errored(error_type or None, body)
        case TooLarge():
            return ResponseTooLarge()
        case _:
            return reply
