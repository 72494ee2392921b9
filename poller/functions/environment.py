"""ONE execution environment: a runtime process, the Runtime API it talks to, and its lifecycle.

The process runs in its own process group (`start_new_session`), so killing the environment kills
whatever the runtime started too. While it initialises or invokes, `_race` waits for the first of:
the answer, the process's exit, the deadline, or a limit overrun — resident memory (the process
and all its children, as Lambda's cgroup counts them) or the size of its `/tmp`.

Watching the limits must not cost more than the invocation (issue 15: ≤ 1 ms added per call), so
it is paid by time, not per call (`probes.LimitWatch`): a call shorter than `SAMPLE_SECONDS` costs
a timer and one read of the kernel's high-water mark after the reply; the guard's task starts only
at that timer; the tree and `/tmp` are audited after a reply, off its path, now and then. An
overrun an audit finds ends the invocation then running, or else the next one, as the guard would.

Everything the environment decides — deadlines, outcomes, report fields — is `environment_state`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import structlog

from poller.core.clock import Clock
from poller.core.outcome import InvokeOutcome
from poller.functions.definition import VERSION, FunctionDefinition
from poller.functions.environment_state import (
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
from poller.functions.probes import SAMPLE_SECONDS, LimitWatch
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

EXIT_GRACE_SECONDS = 0.5
"""A runtime may answer just before it exits (an init error, a 413'd response): prefer the answer."""
STOP_GRACE_SECONDS = 2.0
"""How long output pumps may run on after a kill (a grandchild that left the group may hold a pipe)."""


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
        self._exited: asyncio.Future[None] | None = None
        """Done once the process has been reaped (`_watch_exit`)."""
        self._tasks: asyncio.TaskGroup | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._limits: LimitWatch | None = None
        self._request_id: str | None = None
        self._alarm: asyncio.Future[Ending] | None = None
        """The running `_race`'s: a guard or an audit that finds an overrun (or the deadline) sets it."""
        self._found: Ending | None = None
        """An overrun an audit found between invocations: it ends the next one."""

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def spent(self) -> bool:
        """Reset (killed, or its Init failed) or its process reaped: it takes no more invocations."""
        return self._state.reset or (self._exited is not None and self._exited.done())

    @property
    def usable(self) -> bool:
        """It can take another invocation: initialised, never reset, its process still running."""
        return not self.spent and (self._limits is None or self._limits.probe.running())

    async def start(self, tasks: asyncio.TaskGroup) -> None:
        """Init: start the runtime and wait (≤ 10 s) for its first `/next`. Never raises for the
        function's faults: a failed Init is remembered and fails every invocation (spec §2.2)."""
        self._log.info("platform.initStart", initializationType="on-demand", phase="init")
        deadline = self._state.begin_init()
        self._tasks = tasks
        ending = await self._launch(tasks)
        if ending is None:
            ending = await self._race(asyncio.ensure_future(self._server_ready()), deadline)
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
        self._limits = LimitWatch(self._proc.pid, self.tmpdir, self._state, self._clock)
        self._exited = asyncio.get_running_loop().create_future()
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
        ending: Ending
        if self._state.init_failure is not None:
            ending = self._state.init_failure
        elif self._found is not None:
            ending, self._found = self._found, None  # overran between invocations: killed now
        else:
            assert self._server is not None
            assert self._limits is not None
            ids = os.urandom(20).hex()  # the trace header's root and parent ids
            reply = await self._race(
                self._server.submit(
                    request_id=request_id,
                    payload=payload,
                    deadline_ms=invocation.deadline_epoch_ms,
                    invoked_function_arn=self._arn,
                    trace_id=trace_header(self._clock.wall(), ids[:24], ids[24:]),
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
            if isinstance(ending, Responded | Errored) and self._limits.over_after_reply():
                # It answered before (or between) samples but went over on the way: the kernel's
                # high-water mark shows it. Lambda would have killed it mid-invocation, and its
                # next invocation must not pay for it.
                ending = OutOfMemory()
        finished = self._state.finish(ending)
        if finished.reset:
            await self._kill()
        else:
            self._audit_if_due()
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
        if self._limits is not None:
            self._limits.probe.close()
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
        assert self._exited is not None
        # SIGKILL cannot be ignored; the timeout is only a backstop.
        await asyncio.wait((self._exited,), timeout=STOP_GRACE_SECONDS)

    async def _race(self, work: asyncio.Future[T], deadline: float) -> T | Ending:
        """`work`'s result, unless the deadline passes, the process exits or a limit is overrun first.

        A call shorter than `SAMPLE_SECONDS` costs one timer: the guard's task is started by it.
        `work` is cancelled (and awaited) if it loses; it failing with `RuntimeGone` (the process
        exited, the server closed) means the exit or the guard tells how the call ended.
        """
        assert self._exited is not None
        loop = asyncio.get_running_loop()
        exited = self._exited
        alarm: asyncio.Future[Ending] = loop.create_future()
        self._alarm = alarm
        guards: list[asyncio.Task[None]] = []
        async with asyncio.TaskGroup() as group:

            def start_guard() -> None:
                assert self._limits is not None
                guards.append(group.create_task(self._limits.guard(deadline, alarm)))

            first = max(0.0, min(SAMPLE_SECONDS, deadline - self._clock.monotonic()))
            timer = loop.call_later(first, start_guard)
            try:
                await asyncio.wait((work, exited, alarm), return_when=asyncio.FIRST_COMPLETED)
                if exited.done() and not work.done() and not alarm.done():
                    # A runtime may answer just before it exits: prefer the answer.
                    await asyncio.wait((work,), timeout=EXIT_GRACE_SECONDS)
                if work.done() and not work.cancelled():
                    if (error := work.exception()) is None:
                        return work.result()
                    if not isinstance(error, RuntimeGone):
                        raise error
                if not (exited.done() or alarm.done()):  # the server closed under a live process
                    await asyncio.wait((exited, alarm), return_when=asyncio.FIRST_COMPLETED)
                if alarm.done():
                    return alarm.result()
                return Exited(self._returncode if self._returncode is not None else -signal.SIGKILL)
            finally:
                timer.cancel()
                self._alarm = None
                for guard in guards:
                    guard.cancel()
                if not work.done():
                    work.cancel()
                    await asyncio.wait((work,))  # a task (Init's wait) ends before the group does

    def _audit_if_due(self) -> None:
        if self._limits is not None and self._tasks is not None and self._limits.claim_audit():
            self._tasks.create_task(self._audit(self._limits))

    async def _audit(self, limits: LimitWatch) -> None:
        """In the pool's task group, so it never raises: a failure to measure is logged."""
        try:
            ending = await limits.audit()
        except Exception as exc:
            self._log.warning("function_audit_failed", error=str(exc))
            return
        if ending is None or self._state.reset:
            return
        if self._alarm is not None and not self._alarm.done():
            self._alarm.set_result(ending)  # an invocation started meanwhile: it ends with it
        else:
            self._found = ending

    async def _watch_exit(self, proc: asyncio.subprocess.Process) -> None:
        try:
            self._returncode = await proc.wait()
        finally:
            if self._exited is not None and not self._exited.done():
                self._exited.set_result(None)
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
