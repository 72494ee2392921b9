"""`python:package.module.function`: a Lambda-style handler called in-process.

The module is imported once and the handler reused, as in a warm Lambda execution environment.
Handler code never runs on the engine's event loop: a sync handler gets a fresh daemon thread per
invocation and an async one runs on the target's own loop thread (`_handler_threads`), so a
handler that hangs or blocks costs a thread, never the engine or other mappings.

Such a thread cannot be killed, so it is left running and counted against its mapping until it
returns; past `MAX_LEAKED_THREADS` the mapping's invocations are throttled rather than started on
yet another thread, and the count is on /status and the `handler_threads_leaked` gauge.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from poller.core.outcome import InvokeOutcome, NotInvoked, TimedOut
from poller.errors import TargetConfigError
from poller.targets._handler_threads import HandlerLoop, LeakedThreads, leaks_of
from poller.targets._marshal import failure_outcome, marshal_response
from poller.targets.context import ContextFactory, LambdaContext

Handler = Callable[[Any, LambdaContext], Any]

IMPORT_TIMEOUT_SECONDS = 10.0
"""Lambda's limit for a function's init phase; a module that takes longer to import is an error."""

MAX_LEAKED_THREADS = 8
"""Threads of one mapping left running past their timeout before its invocations are throttled.

A handler that overruns now and then leaves a few; one that hangs on every call would otherwise
add a thread per invocation until the process runs out. Throttling does not use up retry attempts
(spec §4.1), so the records wait for the hung calls to end instead of being failed for them."""


def leaked_handler_threads(mapping: str) -> int:
    """How many of `mapping`'s handler threads are still running after their timeout."""
    return leaks_of(mapping).count


def _is_async(handler: Handler) -> bool:
    # A callable object with `async def __call__` is as asynchronous as an `async def` function.
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - we want the method, not callable()
    )


def _import_handler(module_name: str, attr: str) -> Handler:
    """Import and look up the handler; every failure becomes a TargetConfigError worded as Lambda's."""
    importlib.invalidate_caches()  # modules written after start-up must still be found
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetConfigError(f"Unable to import module '{module_name}': {exc}") from exc
    except SyntaxError as exc:
        raise TargetConfigError(f"Syntax error in module '{module_name}': {exc}") from exc
    except BaseException as exc:  # module-level code may raise anything, SystemExit included
        raise TargetConfigError(
            f"Module '{module_name}' raised {type(exc).__name__} while being imported: {exc}"
        ) from exc
    try:
        handler = getattr(module, attr)
    except AttributeError as exc:
        raise TargetConfigError(f"Handler '{attr}' missing on module '{module_name}'") from exc
    if not callable(handler):
        raise TargetConfigError(f"Handler '{attr}' on module '{module_name}' is not callable")
    return handler  # type: ignore[no-any-return]


def _parse_event(payload: bytes) -> Any:
    return orjson.loads(payload)


class PythonTarget:
    kind: str = "python"

    def __init__(
        self,
        handler: Handler,
        *,
        contexts: ContextFactory,
        timeout_seconds: float,
        leaks: LeakedThreads | None = None,
    ) -> None:
        self._handler = handler
        self._contexts = contexts
        self._timeout = timeout_seconds
        self._is_async = _is_async(handler)
        self._loop: HandlerLoop | None = None
        self._thread_name = f"poller-handler:{contexts.function_name}"
        self._closed = False
        self._leaks = leaks_of(contexts.function_name) if leaks is None else leaks
        """Shared by every target of this mapping (the function name is the mapping's Name)."""

    @classmethod
    async def open(
        cls,
        handler_path: str,
        *,
        contexts: ContextFactory,
        timeout_seconds: float,
        search_paths: Sequence[Path] = (),
    ) -> PythonTarget:
        """Import `package.module.function` once. Raises TargetConfigError if that is impossible."""
        module_name, _, attr = handler_path.rpartition(".")
        if not module_name or not attr or not all(p.isidentifier() for p in handler_path.split(".")):
            raise TargetConfigError(
                f"Bad handler 'python:{handler_path}': expected python:package.module.function"
            )
        for directory in search_paths:
            # Appended, not prepended: the normal search path wins, as DESIGN §1.5 says "plus".
            if str(directory) not in sys.path:
                sys.path.append(str(directory))
        leaks = leaks_of(contexts.function_name)
        if leaks.count >= MAX_LEAKED_THREADS:
            # Each restart of a mapping whose import hangs would otherwise leave one more thread.
            raise TargetConfigError(
                f"Not importing module '{module_name}': {_leaked(leaks.count)} of this mapping still "
                "running after their timeout"
            )
        # Import on a daemon thread too: module-level code is user code and may hang or be slow.
        imported, abandon = leaks.run(
            lambda: _import_handler(module_name, attr), name=f"poller-import:{module_name}"
        )
        try:
            handler = await asyncio.wait_for(imported, IMPORT_TIMEOUT_SECONDS)
        except TimeoutError:
            abandon()
            raise TargetConfigError(
                f"Importing module '{module_name}' took longer than {IMPORT_TIMEOUT_SECONDS:g} seconds"
            ) from None
        except asyncio.CancelledError:
            abandon()
            raise
        return cls(handler, contexts=contexts, timeout_seconds=timeout_seconds, leaks=leaks)

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        if self._closed:
            return NotInvoked("unreachable", "the target is closed")
        request_id = str(uuid.uuid4())
        context = self._contexts.new(request_id, time.monotonic())
        try:
            if self._is_async:
                return await self._invoke_async(payload, context)
            return await self._invoke_sync(payload, context)
        except TimeoutError:
            return TimedOut(self._timeout, request_id)
        except Exception as exc:  # our own plumbing failed; still an outcome, never a raise
            return failure_outcome(exc, request_id)

    def _too_many_leaked(self) -> NotInvoked | None:
        leaked = self._leaks.count
        if leaked < MAX_LEAKED_THREADS:
            return None
        # Lambda's word for "no concurrency left": the hung invocations hold it.
        return NotInvoked(
            "throttled",
            f"TooManyRequestsException: {_leaked(leaked)} of {self._contexts.function_name} still "
            f"running after their {self._timeout:g} s timeout (at most {MAX_LEAKED_THREADS}); "
            "no new invocation starts until some return",
        )

    async def _invoke_sync(self, payload: bytes, context: LambdaContext) -> InvokeOutcome:
        if (refused := self._too_many_leaked()) is not None:
            return refused
        done, abandon = self._leaks.run(lambda: self._call_sync(payload, context), name=self._thread_name)
        try:
            return await asyncio.wait_for(done, self._timeout)
        except (TimeoutError, asyncio.CancelledError):
            abandon()  # the handler runs on: its thread counts as leaked until it returns
            raise

    async def _invoke_async(self, payload: bytes, context: LambdaContext) -> InvokeOutcome:
        loop = self._handler_loop()
        if isinstance(loop, NotInvoked):
            return loop
        done, handle = loop.submit(self._call_async(payload, context))
        try:
            async with asyncio.timeout(self._timeout):
                return await done
        except TimeoutError:
            loop.abandon(handle)
            raise
        except asyncio.CancelledError:  # the engine gave up on this batch: so does the handler
            handle.cancel()
            raise

    def _handler_loop(self) -> HandlerLoop | NotInvoked:
        """The loop to run on, or the refusal if a new one is needed and too many threads leaked."""
        if self._loop is not None and self._loop.stuck:
            self._loop.retire()  # its thread counts as leaked until the blocked handler returns
            self._loop = None
        if self._loop is None:
            if (refused := self._too_many_leaked()) is not None:
                return refused
            self._loop = HandlerLoop(self._thread_name, self._leaks)
        return self._loop

    def _call_sync(self, payload: bytes, context: LambdaContext) -> InvokeOutcome:
        """Runs on the invocation's own thread; returns an outcome whatever the handler does."""
        request_id = context.aws_request_id
        try:
            event = _parse_event(payload)
        except orjson.JSONDecodeError as exc:
            return _unparsable(exc)
        try:
            response = self._handler(event, context)
            if inspect.iscoroutine(response):
                # A sync wrapper (a decorator) around an async handler: finish it on this thread.
                response = asyncio.run(response)
        except BaseException as exc:  # SystemExit from a handler ends this invocation, not poller
            return failure_outcome(exc, request_id)
        return marshal_response(response, request_id)

    async def _call_async(self, payload: bytes, context: LambdaContext) -> InvokeOutcome:
        """Runs on the handler loop; CancelledError (timeout, close) is reported like any error."""
        request_id = context.aws_request_id
        try:
            event = _parse_event(payload)
        except orjson.JSONDecodeError as exc:
            return _unparsable(exc)
        try:
            response = await self._handler(event, context)
        except BaseException as exc:
            return failure_outcome(exc, request_id)
        return marshal_response(response, request_id)

    async def aclose(self) -> None:
        self._closed = True
        if self._loop is not None:
            self._loop.close()
            self._loop = None


def _leaked(count: int) -> str:
    return f"{count} handler thread{'' if count == 1 else 's'}"


def _unparsable(exc: Exception) -> InvokeOutcome:
    # Lambda refuses such a request before any function runs (InvalidRequestContentException).
    return NotInvoked("unreachable", f"InvalidRequestContentException: Could not parse event JSON: {exc}")
