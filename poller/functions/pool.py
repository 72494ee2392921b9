"""A function's execution environments: cold start, warm reuse, concurrency cap, reset, retire, close.

The decisions are `pool_state`'s; this module starts and stops processes and hands environments to
invocations. Every task it starts (output pumps, exit watchers, stops) lives in one task group owned
by the pool's runner task, which `aclose()` ends, so nothing outlives the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import structlog

from poller.core.clock import Clock
from poller.core.outcome import InvokeOutcome, NotInvoked
from poller.functions.definition import FunctionDefinition
from poller.functions.environment import ExecutionEnvironment
from poller.functions.environment_state import Withdrawn
from poller.functions.launch import python_version_warning, runtime_family
from poller.functions.pool_state import (
    Assignment,
    ColdStart,
    Handoff,
    PoolState,
    Refuse,
    Retire,
    UseIdle,
    Wait,
)
from poller.observability.function_metrics import FunctionMetrics


class FunctionPool:
    """The environments of one function. Use as `async with`, or call `aclose()` when done."""

    def __init__(
        self,
        definition: FunctionDefinition,
        *,
        clock: Clock,
        idle_seconds: float,
        metrics: FunctionMetrics,
        region: str,
        account_id: str,
        credentials_env: Mapping[str, str],
    ) -> None:
        self.definition = definition
        self._clock = clock
        self._region = region
        self._account_id = account_id
        self._credentials = dict(credentials_env)
        self._metrics = metrics.for_function(definition.name)
        self._state = PoolState(limit=definition.reserved_concurrency, idle_seconds=idle_seconds)
        self._envs: dict[int, ExecutionEnvironment] = {}
        self._waiters: dict[int, asyncio.Future[Assignment | None]] = {}
        self._stopped_for_close: set[int] = set()
        self._log = structlog.get_logger("poller.functions").bind(function=definition.name)
        self._runner: asyncio.Task[None] | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._running = asyncio.Event()
        self._changed = asyncio.Event()
        self._sleeping_until: float | None = None
        """When the runner next wakes on its own (None: it is not sleeping)."""
        self._closed = asyncio.Event()
        self._base: Path | None = None
        if runtime_family(definition.runtime) == "python":
            warning = python_version_warning(definition.runtime, sys.version_info[:2])
            if warning is not None:
                self._log.warning("function_runtime_version", runtime=definition.runtime, message=warning)

    async def __aenter__(self) -> FunctionPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # Invoking -----------------------------------------------------------------------------------

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        """Run one invocation in an idle environment, a new one, or the next one to free up."""
        if self._state.closing:
            return _closed()
        await self._start_runner()
        while True:
            decision = self._state.acquire()
            self._gauges()
            if isinstance(decision, Refuse):
                return _closed() if decision.reason == "closed" else _throttled()
            if isinstance(decision, Wait):
                handed = await self._wait(decision.token)
                if handed is None:
                    return _closed()
                decision = handed
            if isinstance(decision, UseIdle) and not self._envs[decision.env_id].usable:
                # Its runtime died while idle (a background thread exited the process): replace
                # it rather than fail an invocation that never reached it.
                self._release(decision.env_id, alive=False)
                continue
            return await self._run_on(decision, payload)

    async def _run_on(self, assignment: Assignment, payload: bytes) -> InvokeOutcome:
        request_id = str(uuid.uuid4())  # kept by a re-run: it is the same invocation
        while True:
            result = await self._attempt(assignment, payload, request_id)
            if not isinstance(result, Withdrawn):
                return result
            # Its runtime exited before taking it (between invocations): run it on a fresh one.
            replacement = self._replace(assignment.env_id)
            if replacement is None:
                return _closed()
            assignment = replacement

    async def _attempt(
        self, assignment: Assignment, payload: bytes, request_id: str
    ) -> InvokeOutcome | Withdrawn:
        env_id = assignment.env_id
        alive = False
        result: InvokeOutcome | Withdrawn | None = None
        try:
            if isinstance(assignment, ColdStart):
                env = await self._cold_start(assignment)
            else:
                env = self._envs[env_id]
            result = await env.invoke(payload, request_id=request_id)
            alive = not env.spent  # its process is checked again before it is reused
        except Exception as exc:  # poller's own fault (e.g. the Runtime API server): never the engine's end
            self._log.exception("function_environment_failed", error=str(exc))
            result = NotInvoked(
                "unreachable", f"execution environment of {self.definition.name} failed: {exc}"
            )
        finally:
            if not isinstance(result, Withdrawn):  # a withdrawn one keeps its slot for `_replace`
                self._release(env_id, alive=alive)  # also when cancelled: a half-done invocation resets it
        if env_id in self._stopped_for_close:
            if isinstance(result, Withdrawn):
                self._release(env_id, alive=False)
            # Killed by shutdown, not by its own fault: the batch is retried later without using
            # up an attempt, rather than failed for an error the function never made.
            return NotInvoked("unreachable", "the function's environment was stopped for shutdown")
        return result

    async def _wait(self, token: int) -> Assignment | None:
        future: asyncio.Future[Assignment | None] = asyncio.get_running_loop().create_future()
        self._waiters[token] = future
        try:
            return await future
        except asyncio.CancelledError:
            self._waiters.pop(token, None)
            if future.done() and not future.cancelled() and (handed := future.result()) is not None:
                self._release(handed.env_id, alive=isinstance(handed, UseIdle))  # give it to someone else
            else:
                self._state.cancel(token)
            raise

    async def _cold_start(self, assignment: ColdStart) -> ExecutionEnvironment:
        tmpdir = self._scratch(assignment.scratch)
        await asyncio.to_thread(tmpdir.mkdir, parents=True, exist_ok=True)
        env = ExecutionEnvironment(
            self.definition,
            clock=self._clock,
            tmpdir=tmpdir,
            region=self._region,
            account_id=self._account_id,
            credentials=self._credentials,
            metrics=self._metrics,
        )
        self._envs[assignment.env_id] = env
        self._metrics.cold_start()
        assert self._tasks is not None
        await env.start(self._tasks)
        return env

    def _replace(self, env_id: int) -> ColdStart | None:
        """Stop `env_id` and give its invocation a new environment in its place (None: closing)."""
        assignment = self._state.replace(env_id, now=self._clock.monotonic())
        env = self._envs.pop(env_id, None)
        if env is not None and self._tasks is not None:
            self._tasks.create_task(self._stop_and_forget(env, None))
        self._changed_now()
        return assignment

    def _release(self, env_id: int, *, alive: bool) -> None:
        handoff = self._state.release(env_id, alive=alive, now=self._clock.monotonic())
        if not (alive and env_id in self._envs) or self._state.closing:
            env = self._envs.pop(env_id, None)
            if env is not None and self._tasks is not None:
                self._tasks.create_task(self._stop_and_forget(env, None))
        if handoff is not None:
            self._hand(handoff)
        self._changed_now()

    def _hand(self, handoff: Handoff) -> None:
        future = self._waiters.pop(handoff.token)
        if future.done():  # its waiter was cancelled a moment ago: pass the environment on
            self._release(handoff.assignment.env_id, alive=isinstance(handoff.assignment, UseIdle))
        else:
            future.set_result(handoff.assignment)

    # Background: retiring idle environments, closing -----------------------------------------------

    async def _start_runner(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"function-pool:{self.definition.name}")
        await self._running.wait()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            self._running.set()
            while not self._state.closing:
                await self._retire_idle()
            # Open until aclose() has seen every invocation release its environment, so a release
            # can still hand the stop of its environment to this group.
            await self._closed.wait()

    async def _retire_idle(self) -> None:
        now = self._clock.monotonic()
        due = self._state.next_retirement()
        if due is None:
            # Nothing idle: what is released from now on retires `idle_seconds` later at the
            # earliest, so sleeping that long (≥ 1 s: no spinning) needs no wake at every release.
            due = now + max(self._state.idle_seconds, 1.0)
        self._sleeping_until = due
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, due - now))
        self._changed.clear()
        self._sleeping_until = None
        for retire in self._state.retire_due(self._clock.monotonic()):
            self._retire(retire)
        self._gauges()

    def _retire(self, retire: Retire) -> None:
        env = None if retire.env_id is None else self._envs.pop(retire.env_id, None)
        assert self._tasks is not None
        self._tasks.create_task(self._stop_and_forget(env, self._scratch(retire.scratch)))

    async def _stop_and_forget(self, env: ExecutionEnvironment | None, tmpdir: Path | None) -> None:
        """Stop an environment (and remove a retired one's `/tmp`) in the pool's task group.

        Never raises: a failure here must not end the group, and with it every environment.
        """
        try:
            if env is not None:
                await env.stop()
        except Exception as exc:
            self._log.exception("function_environment_stop_failed", error=str(exc))
        if tmpdir is not None:
            await asyncio.to_thread(shutil.rmtree, tmpdir, True)

    async def aclose(self, *, drain_seconds: float | None = None) -> None:
        """Stop: new invocations are refused, waiting ones return not-invoked, idle environments
        stop now; in-flight invocations get `drain_seconds` (None: until they end, which their
        `Timeout` bounds) to finish, then every environment is killed and `/tmp`s removed."""
        if not self._state.closing:
            waiters, idle = self._state.close()
            for token in waiters:
                self._waiters.pop(token).set_result(None)
            for retire in idle:
                self._retire(retire)
            self._changed_now()
            await self._drain(drain_seconds)
            for env_id, env in list(self._envs.items()):
                self._stopped_for_close.add(env_id)
                await self._stop_and_forget(env, None)
            await self._drain(None)  # the killed invocations return and release promptly
            self._closed.set()
        if self._runner is not None:
            await self._runner
        if self._base is not None:
            await asyncio.to_thread(shutil.rmtree, self._base, True)
        self._gauges()

    async def _drain(self, budget: float | None) -> None:
        deadline = None if budget is None else self._clock.monotonic() + budget
        while self._state.busy > 0:
            remaining = None if deadline is None else deadline - self._clock.monotonic()
            if remaining is not None and remaining <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    # Helpers -------------------------------------------------------------------------------------

    def _changed_now(self) -> None:
        """Wake the runner (and `_drain`) only if it must act sooner than it planned to: when
        closing, or when something is due to retire earlier than it sleeps until. A release after
        every invocation would otherwise wake it for nothing (an environment released now retires
        last)."""
        self._gauges()
        due = self._state.next_retirement()
        sleeping = self._sleeping_until
        if self._state.closing or (due is not None and (sleeping is None or due < sleeping)):
            self._changed.set()

    def _gauges(self) -> None:
        self._metrics.environments(idle=self._state.idle, busy=self._state.busy)

    def _scratch(self, scratch: int) -> Path:
        if self._base is None:
            self._base = Path(tempfile.mkdtemp(prefix=f"poller-{self.definition.name}-"))
        return self._base / f"tmp-{scratch}"


def _closed() -> NotInvoked:
    return NotInvoked("unreachable", "the function's environments are shutting down")


def _throttled() -> NotInvoked:
    return NotInvoked("throttled", "Rate Exceeded. (ReservedConcurrentExecutions is 0)")
