"""PythonTarget: Lambda-style handlers called in-process, never on the engine's event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from poller.core.outcome import FunctionFailed, NotInvoked, Succeeded, TimedOut
from poller.errors import TargetConfigError
from poller.observability.metrics import Metrics
from poller.observability.status import MappingStatus
from poller.targets import python_handler
from poller.targets.base import Target
from poller.targets.factory import TargetSpec, open_target
from tests.waiting import wait_until

MAPPING = "orders-consumer"


def write_module(directory: Path, source: str) -> str:
    """A handler module with a name no other test uses (sys.modules outlives each test)."""
    name = f"handlers_{uuid.uuid4().hex}"
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def spec_for(directory: Path, function_name: str, timeout: float = 3.0) -> TargetSpec:
    return TargetSpec(
        function_name=function_name,
        mapping_name=MAPPING,
        timeout_seconds=timeout,
        region="eu-west-1",
        account_id="123456789012",
        endpoint_url=None,
        search_paths=(directory,),
    )


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Target]]]:
    """Opens targets on handler source and closes them all after the test."""
    targets: list[Target] = []

    async def open_source(source: str, attr: str = "handler", timeout: float = 3.0) -> Target:
        module = write_module(tmp_path, source)
        target = await open_target(spec_for(tmp_path, f"python:{module}.{attr}", timeout))
        targets.append(target)
        return target

    yield open_source
    for target in targets:
        await target.aclose()


def module_of(name_hint: Target) -> ModuleType:
    handler = name_hint._handler  # type: ignore[attr-defined]
    return sys.modules[handler.__module__]


class Ticker:
    """Proves the engine loop is free: counts iterations of a coroutine sharing the loop."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._task.cancel()


EVENT = {"Records": [{"messageId": "1", "body": "héllo", "attributes": {"n": [1, 2.5, None, True]}}]}


async def test_sync_handler_receives_the_event_and_its_response_is_returned(opened: Any) -> None:
    target = await opened("def handler(event, context):\n    return {'echo': event, 'ok': True}\n")
    outcome = await target.invoke(orjson.dumps(EVENT))
    assert isinstance(outcome, Succeeded)
    assert orjson.loads(outcome.payload) == {"echo": EVENT, "ok": True}
    assert outcome.status_code == 200
    assert target.kind == "python"


async def test_async_handler_receives_the_event_and_its_response_is_returned(opened: Any) -> None:
    target = await opened(
        """
        import asyncio
        async def handler(event, context):
            await asyncio.sleep(0)
            return {"echo": event}
        """
    )
    outcome = await target.invoke(orjson.dumps(EVENT))
    assert isinstance(outcome, Succeeded)
    assert orjson.loads(outcome.payload) == {"echo": EVENT}


async def test_sync_wrapper_around_an_async_handler_is_awaited(opened: Any) -> None:
    target = await opened(
        """
        import functools
        async def inner(event, context):
            return {"wrapped": event["n"]}
        def decorator(fn):
            @functools.wraps(fn)
            def wrapper(event, context):  # a sync decorator, as many Lambda decorators are
                return fn(event, context)
            return wrapper
        handler = decorator(inner)
        """
    )
    outcome = await target.invoke(b'{"n": 5}')
    assert isinstance(outcome, Succeeded)
    assert orjson.loads(outcome.payload) == {"wrapped": 5}


async def test_each_invocation_gets_a_fresh_event(opened: Any) -> None:
    target = await opened("def handler(event, context):\n    event['seen'] = True\n    return event\n")
    for _ in range(2):
        outcome = await target.invoke(b'{"a": 1}')
        assert isinstance(outcome, Succeeded)
        assert orjson.loads(outcome.payload) == {"a": 1, "seen": True}


async def test_none_is_returned_as_json_null(opened: Any) -> None:
    target = await opened("def handler(event, context):\n    pass\n")
    outcome = await target.invoke(b"{}")
    assert isinstance(outcome, Succeeded)
    assert outcome.payload == b"null"


async def test_context_is_shaped_like_the_lambda_runtime(opened: Any) -> None:
    target = await opened(
        """
        import time
        def handler(event, context):
            first = context.get_remaining_time_in_millis()
            time.sleep(0.05)  # let the clock move, to see the countdown
            return {
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "aws_request_id": context.aws_request_id,
                "log_group_name": context.log_group_name,
                "log_stream_name": context.log_stream_name,
                "identity": (context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id),
                "client_context": context.client_context,
                "remaining": [first, context.get_remaining_time_in_millis()],
            }
        """,
        timeout=2.0,
    )
    first, second = await target.invoke(b"{}"), await target.invoke(b"{}")
    assert isinstance(first, Succeeded)
    assert isinstance(second, Succeeded)
    ctx, ctx2 = orjson.loads(first.payload), orjson.loads(second.payload)
    assert ctx["function_name"] == MAPPING
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == f"arn:aws:lambda:eu-west-1:123456789012:function:{MAPPING}"
    assert ctx["memory_limit_in_mb"] == "128"
    assert ctx["log_group_name"] == f"/aws/lambda/{MAPPING}"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", ctx["log_stream_name"])
    assert ctx2["log_stream_name"] == ctx["log_stream_name"]  # one warm environment
    assert ctx["identity"] == [None, None]
    assert ctx["client_context"] is None
    before, after = ctx["remaining"]
    assert 1000 < before <= 2000
    assert before - after >= 40
    assert uuid.UUID(ctx["aws_request_id"]).version == 4
    assert ctx["aws_request_id"] == first.request_id
    assert ctx2["aws_request_id"] == second.request_id != first.request_id


async def test_module_is_imported_once_and_reused(opened: Any, tmp_path: Path) -> None:
    target = await opened(
        """
        IMPORTS = globals().get("IMPORTS", 0) + 1
        CALLS = 0
        def handler(event, context):
            global CALLS
            CALLS += 1
            return {"imports": IMPORTS, "calls": CALLS}
        """
    )
    replies = []
    for _ in range(3):
        outcome = await target.invoke(b"{}")
        assert isinstance(outcome, Succeeded)
        replies.append(orjson.loads(outcome.payload))
    assert replies == [{"imports": 1, "calls": n} for n in (1, 2, 3)]
    assert module_of(target).IMPORTS == 1


async def test_exception_is_a_function_error_shaped_like_the_runtime(opened: Any, tmp_path: Path) -> None:
    target = await opened(
        """
        def helper(n):
            raise ValueError(f"bad record {n}")

        def handler(event, context):
            return helper(event["n"])
        """
    )
    outcome = await target.invoke(b'{"n": 7}')
    assert isinstance(outcome, FunctionFailed)
    assert outcome.error_type == "ValueError"
    assert outcome.error_message == "bad record 7"
    assert outcome.function_error == "Unhandled"
    handler_file = str(module_of(target).__file__)
    # The runtime's format_list lines: the handler's frame first, none of poller's own.
    assert len(outcome.stack_trace) == 2
    assert outcome.stack_trace[0].startswith(f'  File "{handler_file}", line 6, in handler\n')
    assert "in helper" in outcome.stack_trace[1]
    assert 'raise ValueError(f"bad record {n}")' in outcome.stack_trace[1]
    assert not any("poller/targets" in line for line in outcome.stack_trace)
    document = orjson.loads(outcome.payload)
    assert list(document) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert document["errorType"] == "ValueError"
    assert document["errorMessage"] == "bad record 7"
    assert document["requestId"] == outcome.request_id
    assert document["stackTrace"] == list(outcome.stack_trace)


async def test_async_handler_exception_is_a_function_error(opened: Any) -> None:
    target = await opened("async def handler(event, context):\n    raise KeyError('missing')\n")
    outcome = await target.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed)
    assert outcome.error_type == "KeyError"
    assert outcome.stack_trace[0].endswith("in handler\n    raise KeyError('missing')\n")


async def test_system_exit_in_a_handler_is_only_a_function_error(opened: Any) -> None:
    target = await opened("import sys\ndef handler(event, context):\n    sys.exit(3)\n")
    outcome = await target.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed)
    assert outcome.error_type == "SystemExit"
    assert (await target.invoke(b"{}")).__class__ is FunctionFailed  # the target is still usable


async def test_hung_sync_handler_times_out_without_blocking_the_engine(opened: Any) -> None:
    hung = await opened(
        """
        import threading, time
        STARTED = threading.Event()
        def handler(event, context):
            STARTED.set()
            time.sleep(30)
        """,
        timeout=0.5,
    )
    other = await opened("def handler(event, context):\n    return 'still here'\n")
    ticker = Ticker()
    try:
        started = time.monotonic()
        pending = asyncio.create_task(hung.invoke(b"{}"))
        await wait_until(module_of(hung).STARTED.is_set)
        ticks_at_start = ticker.ticks
        answered = await other.invoke(b"{}")  # another mapping's target, while the first hangs
        assert isinstance(answered, Succeeded)
        assert answered.payload == b'"still here"'
        assert not pending.done()
        outcome = await pending
        elapsed = time.monotonic() - started
    finally:
        ticker.stop()
    assert isinstance(outcome, TimedOut)
    assert outcome.timeout_seconds == 0.5
    assert outcome.request_id
    assert outcome.error_message == "Task timed out after 0.50 seconds"
    assert elapsed < 1.0
    assert ticker.ticks - ticks_at_start >= 10  # the loop kept running while the handler slept


async def test_async_handler_blocking_its_loop_times_out_and_the_target_recovers(opened: Any) -> None:
    target = await opened(
        """
        import threading, time
        STARTED = threading.Event()
        async def handler(event, context):
            if event.get("block"):
                STARTED.set()
                time.sleep(30)  # a sync call inside async def: blocks the handler's loop
            return "fine"
        """,
        timeout=0.5,
    )
    ticker = Ticker()
    try:
        started = time.monotonic()
        pending = asyncio.create_task(target.invoke(b'{"block": true}'))
        await wait_until(module_of(target).STARTED.is_set)
        ticks_at_start = ticker.ticks
        outcome = await pending
        elapsed = time.monotonic() - started
        ticks_during = ticker.ticks - ticks_at_start
    finally:
        ticker.stop()
    assert isinstance(outcome, TimedOut)
    assert elapsed < 1.0
    assert ticks_during >= 10
    # Like Lambda after a timeout, the next invocation runs in a fresh environment (a new loop),
    # not behind the handler that is still blocking the old one.
    recovered = await target.invoke(b"{}")
    assert isinstance(recovered, Succeeded)
    assert recovered.payload == b'"fine"'


async def test_overrunning_async_handler_is_cancelled(opened: Any) -> None:
    target = await opened(
        """
        import asyncio, threading
        CANCELLED = threading.Event()
        async def handler(event, context):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                CANCELLED.set()
                raise
        """,
        timeout=0.2,
    )
    outcome = await target.invoke(b"{}")
    assert isinstance(outcome, TimedOut)
    await wait_until(module_of(target).CANCELLED.is_set)


async def test_unserialisable_response_is_a_marshal_error(opened: Any) -> None:
    target = await opened("def handler(event, context):\n    return {'ids': {1, 2}}\n")
    outcome = await target.invoke(b"{}")
    assert isinstance(outcome, FunctionFailed)
    assert outcome.error_type == "Runtime.MarshalError"
    assert outcome.error_message == "Unable to marshal response: Object of type set is not JSON serializable"
    assert outcome.stack_trace == ()
    assert orjson.loads(outcome.payload)["errorType"] == "Runtime.MarshalError"


async def test_responses_encode_as_the_runtime_encodes_them(opened: Any) -> None:
    target = await opened(
        """
        from decimal import Decimal
        def handler(event, context):
            return {
                "bytes": b"raw\\x00bytes",  # passed through untouched, as the runtime does
                "decimal": {"price": Decimal("10.10"), 1: "int key"},
                "bigint": {"big": 2**70},
            }[event["kind"]]
        """
    )
    replies = {}
    for kind in ("bytes", "decimal", "bigint"):
        outcome = await target.invoke(orjson.dumps({"kind": kind}))
        assert isinstance(outcome, Succeeded), outcome
        replies[kind] = outcome.payload
    assert replies["bytes"] == b"raw\x00bytes"
    assert replies["decimal"] == b'{"price":10.10,"1":"int key"}'  # exact digits, str keys
    assert json.loads(replies["bigint"]) == {"big": 2**70}  # beyond orjson's 64 bits


@pytest.mark.parametrize(
    ("source", "handler_path", "message"),
    [
        (None, "no_such_module_for_poller.handler", "Unable to import module 'no_such_module_for_poller'"),
        ("x = 1\n", "{module}.handler", "Handler 'handler' missing on module"),
        ("handler = 42\n", "{module}.handler", "is not callable"),
        ("import no_such_dependency_for_poller\n", "{module}.handler", "No module named"),
        ("raise RuntimeError('no config')\n", "{module}.handler", "raised RuntimeError"),
        ("def handler(:\n", "{module}.handler", "Syntax error in module"),
        (None, "handler_without_module", "expected python:package.module.function"),
        (None, "pkg..handler", "expected python:package.module.function"),
    ],
)
async def test_impossible_handlers_fail_at_open(
    tmp_path: Path, source: str | None, handler_path: str, message: str
) -> None:
    module = write_module(tmp_path, source) if source is not None else "unused"
    with pytest.raises(TargetConfigError, match=re.escape(message)):
        await open_target(spec_for(tmp_path, "python:" + handler_path.format(module=module)))


async def test_closed_target_does_not_invoke(opened: Any) -> None:
    target = await opened("async def handler(event, context):\n    return 1\n")
    assert isinstance(await target.invoke(b"{}"), Succeeded)
    await target.aclose()
    await target.aclose()  # idempotent
    outcome = await target.invoke(b"{}")
    assert isinstance(outcome, NotInvoked)


async def test_module_that_hangs_on_import_fails_at_open_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(python_handler, "IMPORT_TIMEOUT_SECONDS", 0.3)
    module = write_module(tmp_path, "import time\ntime.sleep(30)\ndef handler(event, context):\n    pass\n")
    ticker = Ticker()
    try:
        with pytest.raises(TargetConfigError, match=r"took longer than 0\.3 seconds"):
            await open_target(spec_for(tmp_path, f"python:{module}.handler"))
    finally:
        ticker.stop()
    assert ticker.ticks >= 10


# -- handler threads left running after their timeout ------------------------------------------------

BLOCKING_SYNC = """
import threading
RELEASE = threading.Event()
CALLS = []
def handler(event, context):
    CALLS.append(event)
    RELEASE.wait(30)
    return "done"
"""

BLOCKING_ASYNC = """
import threading
RELEASE = threading.Event()
CALLS = []
async def handler(event, context):
    CALLS.append(event)
    if event.get("block"):
        RELEASE.wait(30)  # a sync wait inside async def: blocks the handler's loop
    return "done"
"""


@pytest.fixture
async def leaky(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[str], Awaitable[tuple[Target, str, ModuleType]]]]:
    """Opens a target of a blocking handler for a mapping of its own, at most 2 leaked threads;
    releases every handler after the test."""
    monkeypatch.setattr(python_handler, "MAX_LEAKED_THREADS", 2)
    opened: list[tuple[Target, ModuleType]] = []

    async def open_blocking(source: str) -> tuple[Target, str, ModuleType]:
        mapping = f"leaky-{uuid.uuid4().hex}"
        module = write_module(tmp_path, source)
        spec = spec_for(tmp_path, f"python:{module}.handler", timeout=0.2)
        target = await open_target(dataclasses.replace(spec, mapping_name=mapping))
        opened.append((target, module_of(target)))
        return target, mapping, opened[-1][1]

    yield open_blocking
    for target, module in opened:
        module.RELEASE.set()
        await target.aclose()


def handler_threads(mapping: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == f"poller-handler:{mapping}")


async def test_sync_handler_threads_left_running_are_bounded_and_counted_until_they_return(
    leaky: Callable[[str], Awaitable[tuple[Target, str, ModuleType]]],
) -> None:
    target, mapping, module = await leaky(BLOCKING_SYNC)
    for n in (1, 2):
        assert isinstance(await target.invoke(b'{"n": %d}' % n), TimedOut)
        assert python_handler.leaked_handler_threads(mapping) == n
    refused = await target.invoke(b'{"n": 3}')
    assert isinstance(refused, NotInvoked)
    assert refused.reason == "throttled"  # retried later without using up an attempt
    assert refused.detail == (
        f"TooManyRequestsException: 2 handler threads of {mapping} still running after their 0.2 s "
        "timeout (at most 2); no new invocation starts until some return"
    )
    assert module.CALLS == [{"n": 1}, {"n": 2}]  # the third never started a thread
    assert handler_threads(mapping) == 2

    module.RELEASE.set()
    await wait_until(lambda: python_handler.leaked_handler_threads(mapping) == 0, what="the threads return")
    answered = await target.invoke(b'{"n": 4}')
    assert isinstance(answered, Succeeded)
    assert module.CALLS[-1] == {"n": 4}


async def test_a_handler_that_returns_just_in_time_is_not_counted(
    leaky: Callable[[str], Awaitable[tuple[Target, str, ModuleType]]],
) -> None:
    target, mapping, module = await leaky(BLOCKING_SYNC)
    module.RELEASE.set()
    for _ in range(5):
        assert isinstance(await target.invoke(b"{}"), Succeeded)
    assert python_handler.leaked_handler_threads(mapping) == 0


async def test_a_cancelled_invocation_leaves_its_thread_counted(
    leaky: Callable[[str], Awaitable[tuple[Target, str, ModuleType]]],
) -> None:
    """The engine gave up on the batch (the drain's second phase): the handler still runs."""
    target, mapping, module = await leaky(BLOCKING_SYNC)
    pending = asyncio.create_task(target.invoke(b"{}"))
    await wait_until(lambda: module.CALLS != [], what="the handler running")
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert python_handler.leaked_handler_threads(mapping) == 1
    module.RELEASE.set()
    await wait_until(lambda: python_handler.leaked_handler_threads(mapping) == 0, what="the thread returns")


async def test_async_handler_loops_left_stuck_are_bounded_too(
    leaky: Callable[[str], Awaitable[tuple[Target, str, ModuleType]]],
) -> None:
    """Each stuck loop is replaced by a new one (a new thread): past the bound no new loop starts."""
    target, mapping, module = await leaky(BLOCKING_ASYNC)
    for _ in range(2):
        assert isinstance(await target.invoke(b'{"block": true}'), TimedOut)
    # The first stuck loop was replaced for the second call; the second is replaced now, making two.
    refused = await target.invoke(b"{}")
    assert isinstance(refused, NotInvoked)
    assert refused.reason == "throttled"
    assert python_handler.leaked_handler_threads(mapping) == 2
    assert len(module.CALLS) == 2
    module.RELEASE.set()
    await wait_until(lambda: python_handler.leaked_handler_threads(mapping) == 0, what="the loops end")
    answered = await target.invoke(b"{}")
    assert isinstance(answered, Succeeded)
    assert answered.payload == b'"done"'


async def test_leaked_threads_are_on_status_and_the_gauge(
    leaky: Callable[[str], Awaitable[tuple[Target, str, ModuleType]]],
) -> None:
    target, mapping, module = await leaky(BLOCKING_SYNC)
    metrics = Metrics(CollectorRegistry())
    status = MappingStatus(
        mapping,
        "sqs",
        "arn",
        "python:x.handler",
        metrics.for_mapping(mapping),
        leaked_threads=lambda: python_handler.leaked_handler_threads(mapping),
    )

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("poller_handler_threads_leaked", {"mapping": mapping})

    assert status.as_json()["LeakedHandlerThreads"] == 0
    assert gauge() == 0
    assert isinstance(await target.invoke(b"{}"), TimedOut)
    assert status.as_json()["LeakedHandlerThreads"] == 1
    assert gauge() == 1
    module.RELEASE.set()
    await wait_until(lambda: gauge() == 0, what="the gauge back to 0")
    assert status.as_json()["LeakedHandlerThreads"] == 0


async def test_an_import_left_hanging_counts_and_stops_further_imports_past_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each restart of a mapping whose module hangs on import would leave one more thread."""
    monkeypatch.setattr(python_handler, "IMPORT_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(python_handler, "MAX_LEAKED_THREADS", 1)
    module = write_module(tmp_path, "import time\ntime.sleep(1.5)\ndef handler(event, context):\n    pass\n")
    spec = dataclasses.replace(
        spec_for(tmp_path, f"python:{module}.handler"), mapping_name=f"slow-import-{uuid.uuid4().hex}"
    )
    with pytest.raises(TargetConfigError, match="took longer than"):
        await open_target(spec)
    assert python_handler.leaked_handler_threads(spec.mapping_name) == 1
    with pytest.raises(TargetConfigError, match=f"Not importing module '{module}': 1 handler thread of this"):
        await open_target(spec)
    await wait_until(lambda: python_handler.leaked_handler_threads(spec.mapping_name) == 0, what="the import")
    target = await open_target(spec)  # the import finished meanwhile
    await target.aclose()
