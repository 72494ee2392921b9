"""Running handler code off the engine's event loop, so a stuck handler only ever wastes its own thread.

Python cannot kill a thread. A handler that never returns is therefore abandoned, not stopped:
every thread here is a daemon (so it never holds up interpreter exit), and nothing on the engine
side ever joins or blocks on one. `concurrent.futures.ThreadPoolExecutor` is avoided on purpose:
its workers are joined at exit, so one stuck handler would hang shutdown.

Abandoned threads are counted per mapping (`LeakedThreads`) until they finish, so a target can
refuse to start more once too many are left running: otherwise a handler that always hangs would
cost a thread per invocation, without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LeakedThreads:
    """Handler threads still running after the engine stopped waiting for them; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def add(self) -> None:
        with self._lock:
            self._count += 1

    def remove(self) -> None:
        with self._lock:
            self._count -= 1

    def run(self, fn: Callable[[], T], *, name: str) -> tuple[asyncio.Future[T], Callable[[], None]]:
        """`run_on_daemon_thread`, plus the call that abandons it: from then until `fn` returns,
        the thread counts as leaked (not at all if it has already finished)."""
        finished = leaked = False

        def tracked() -> T:
            nonlocal finished
            try:
                return fn()
            finally:
                with self._lock:
                    finished = True
                    if leaked:
                        self._count -= 1

        def abandon() -> None:
            nonlocal leaked
            with self._lock:
                if not finished and not leaked:
                    leaked = True
                    self._count += 1

        return run_on_daemon_thread(tracked, name=name), abandon


_LEAKS: dict[str, LeakedThreads] = {}
_LEAKS_LOCK = threading.Lock()


def leaks_of(mapping: str) -> LeakedThreads:
    """The one count of a mapping's leaked handler threads, shared by every target opened for it
    (a mapping reopens its target after a crash or a hot reload; its old threads still run)."""
    with _LEAKS_LOCK:
        return _LEAKS.setdefault(mapping, LeakedThreads())


def _deliver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[T], settle: Callable[[], None]) -> None:
    """Settle an engine-side future from another thread; a no-op if nobody is waiting any more."""

    def settle_if_pending() -> None:
        # The engine may have given up (timeout, cancellation) before the handler finished.
        if not future.done():
            settle()

    with contextlib.suppress(RuntimeError):  # the engine's loop closed while the handler ran
        loop.call_soon_threadsafe(settle_if_pending)


def run_on_daemon_thread(fn: Callable[[], T], *, name: str) -> asyncio.Future[T]:
    """Run `fn` on a fresh daemon thread; its result (or exception) arrives on the returned future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def main() -> None:
        try:
            result = fn()
        except BaseException as exc:
            # SystemExit from a thread must not be re-raised on the engine loop; and the name
            # `exc` is unbound once this block ends, so the callback captures `error` instead.
            error = exc if isinstance(exc, Exception) else RuntimeError(f"{type(exc).__name__}: {exc}")
            _deliver(loop, future, lambda: future.set_exception(error))
            return
        _deliver(loop, future, lambda: future.set_result(result))

    threading.Thread(target=main, name=name, daemon=True).start()
    return future


class Running:
    """The engine's handle on a coroutine submitted to a `HandlerLoop`: `cancel` from any thread."""

    __slots__ = ("_cancelled", "_loop", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    def started(self, task: asyncio.Task[Any]) -> None:
        """On the handler loop, as the task starts; a cancel that came first applies now."""
        self._task = task
        if self._cancelled:
            task.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to cancel
            self._loop.call_soon_threadsafe(self._cancel_here)

    def _cancel_here(self) -> None:
        if self._task is not None:
            self._task.cancel()


class HandlerLoop:
    """A private event loop on a daemon thread, where one target's async handler runs.

    A handler that blocks this loop (a sync call inside `async def`) stalls only this loop. After
    a timeout the engine asks for a probe; if the loop has not run it by the next invocation, the
    loop is presumed stuck and the target replaces it, much as Lambda replaces an execution
    environment after a timeout.
    """

    def __init__(self, name: str, leaks: LeakedThreads | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._retired = False
        self._leaks = leaks
        self._leaked = False
        self._ended = False
        self._probe: threading.Event | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> tuple[asyncio.Future[T], Running]:
        """Start `coro` here; returns the engine-side future and the handle that cancels it.

        The engine-side future is never cancelled by this class: if the coroutine is cancelled
        before it produces a value, the future gets an exception, so an `await` on it cannot be
        mistaken for the cancellation of the awaiting task. One wake-up each way and no
        intermediate `concurrent.futures.Future`: this runs once per invocation, and a thread
        hand-off is the dearest step of an in-process invocation.
        """
        engine_loop = asyncio.get_running_loop()
        result: asyncio.Future[T] = engine_loop.create_future()
        running = Running(self._loop)

        def finished(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                cancelled = RuntimeError("the handler was cancelled before it returned")
                _deliver(engine_loop, result, lambda: result.set_exception(cancelled))
            elif (exc := task.exception()) is not None:
                _deliver(engine_loop, result, lambda: result.set_exception(exc))
            else:
                value = task.result()
                _deliver(engine_loop, result, lambda: result.set_result(value))
            self._finished()

        def start() -> None:
            task = self._loop.create_task(coro)
            running.started(task)
            task.add_done_callback(finished)

        with self._lock:
            self._in_flight += 1
        try:
            self._loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop is closed: the caller should have replaced it
            coro.close()
            self._finished()
            raise
        return result, running

    def abandon(self, handle: Running) -> None:
        """Cancel an overrun invocation and check, lazily, whether the loop still answers."""
        handle.cancel()
        probe = threading.Event()
        self._probe = probe
        self._call_soon(probe.set)

    @property
    def stuck(self) -> bool:
        """True if a probe sent after a timeout has not run: something is blocking this loop."""
        return self._probe is not None and not self._probe.is_set()

    def retire(self) -> None:
        """Take no new work; stop once what is running finishes (never, if it is truly stuck).

        Until it stops, its thread counts as leaked.
        """
        with self._lock:
            self._retired = True
            idle = self._in_flight == 0
            if not idle and not self._ended and self._leaks is not None and not self._leaked:
                self._leaked = True
                self._leaks.add()
        if idle:
            self._call_soon(self._loop.stop)

    def close(self) -> None:
        """Stop now: running handlers are cancelled at their next await. Never waits."""
        self._retired = True
        self._call_soon(self._loop.stop)

    def _finished(self) -> None:
        with self._lock:
            self._in_flight -= 1
            stop = self._retired and self._in_flight == 0
        if stop:
            self._call_soon(self._loop.stop)

    def _call_soon(self, callback: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # already closed
            self._loop.call_soon_threadsafe(callback)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            # Cancel what is left (handlers of a closed target, their background tasks) and let
            # it unwind, so handlers see CancelledError instead of being silently dropped.
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()
            with self._lock:
                self._ended = True
                if self._leaked and self._leaks is not None:
                    self._leaks.remove()
