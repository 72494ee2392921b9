"""The SQS source against an in-memory queue double: failed visibility changes, failed deletes, throttles.

SQS answers a ChangeMessageVisibilityBatch entry with `Failed` (a receipt handle gone stale, an
internal error) rarely and not on demand, so these paths run here: the real `SqsSource`, invoker,
metrics registry and a manual clock, against a queue double that implements just the calls
`poller.sources.sqs.calls` makes (not a mock of aiobotocore). The clock decides which deadlines are
near; the keeper's rounds run on real (short) sleeps, so waits are on observable effects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from poller.config import Location, SqsMapping
from poller.core.clock import ManualClock
from poller.core.outcome import InvokeOutcome, NotInvoked, Succeeded
from poller.dispatch.invoker import Invoker
from poller.observability.metrics import Metrics
from poller.observability.status import MappingStatus
from poller.sources.sqs import SqsSource
from tests.waiting import wait_until

ARN = "arn:aws:sqs:us-east-1:123456789012:q"
START = 1_000.0


def raw_message(n: int) -> dict[str, Any]:
    return {
        "MessageId": f"id-{n}",
        "ReceiptHandle": f"handle-{n}",
        "Body": f"body-{n}",
        "MD5OfBody": "",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
    }


@dataclass
class QueueDouble:
    """One receive of `messages`, then empty long polls; records every acknowledgement call."""

    visibility_timeout: int
    messages: list[dict[str, Any]]
    refuse_visibility: dict[str, int] = field(default_factory=dict)
    """Receipt handle -> how many more ChangeMessageVisibility entries for it come back `Failed`."""
    fail_visibility_calls: int = 0
    """How many more ChangeMessageVisibilityBatch calls fail as a whole."""
    refuse_delete: set[str] = field(default_factory=set)
    visibility_calls: list[tuple[int, list[str]]] = field(default_factory=list)
    """(VisibilityTimeout, receipt handles) of every ChangeMessageVisibilityBatch call."""
    deleted: list[str] = field(default_factory=list)

    async def get_queue_url(self, **_: Any) -> dict[str, Any]:
        return {"QueueUrl": "https://sqs.local/q"}

    async def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        return {"Attributes": {"VisibilityTimeout": str(self.visibility_timeout)}}

    async def receive_message(self, **_: Any) -> dict[str, Any]:
        if self.messages:
            out, self.messages = self.messages, []
            return {"Messages": out}
        await asyncio.Event().wait()  # a long poll with nothing to return, until `stop` cancels it
        raise AssertionError("unreachable")

    async def change_message_visibility_batch(self, **call: Any) -> dict[str, Any]:
        entries: list[dict[str, Any]] = call["Entries"]
        self.visibility_calls.append((entries[0]["VisibilityTimeout"], [e["ReceiptHandle"] for e in entries]))
        if self.fail_visibility_calls:
            self.fail_visibility_calls -= 1
            raise ClientError(
                {"Error": {"Code": "InternalError", "Message": "try again"}}, "ChangeMessageVisibilityBatch"
            )
        ok: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            handle = entry["ReceiptHandle"]
            if self.refuse_visibility.get(handle, 0) > 0:
                self.refuse_visibility[handle] -= 1
                failed.append({"Id": entry["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True})
            else:
                ok.append({"Id": entry["Id"]})
        return {"Successful": ok, "Failed": failed}

    async def delete_message_batch(self, **call: Any) -> dict[str, Any]:
        entries: list[dict[str, Any]] = call["Entries"]
        ok = [{"Id": e["Id"]} for e in entries if e["ReceiptHandle"] not in self.refuse_delete]
        failed = [
            {"Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True}
            for e in entries
            if e["ReceiptHandle"] in self.refuse_delete
        ]
        self.deleted += [e["ReceiptHandle"] for e in entries if e["ReceiptHandle"] not in self.refuse_delete]
        return {"Successful": ok, "Failed": failed}

    def calls_with(self, timeout: int | None = None) -> list[list[str]]:
        return [
            handles for seconds, handles in self.visibility_calls if timeout is None or seconds == timeout
        ]


Step = Callable[[], Awaitable[InvokeOutcome]]


@dataclass
class ScriptedTarget:
    """Answers the n-th invoke with `script[n]` (the last one repeats)."""

    script: list[Step]
    kind: str = "python"
    calls: int = 0

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return await step()

    async def aclose(self) -> None:
        return None


@dataclass
class Harness:
    queue: QueueDouble
    target: ScriptedTarget
    clock: ManualClock
    metrics: Metrics
    source: SqsSource

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, {"mapping": "m", **labels}) or 0.0


@asynccontextmanager
async def running(
    queue: QueueDouble,
    script: list[Step],
    *,
    function_timeout: int = 1,
    clock: ManualClock | None = None,
    batch_size: int = 10,
    maximum_concurrency: int | None = None,
) -> AsyncIterator[Harness]:
    clock = clock or ManualClock(now=START)
    metrics = Metrics(CollectorRegistry())
    mapping_metrics = metrics.for_mapping("m")
    target = ScriptedTarget(script)
    mapping = SqsMapping(
        name="m",
        location=Location(None, None),
        event_source_arn=ARN,
        region="us-east-1",
        account_id="123456789012",
        queue_name="q",
        fifo=False,
        function_name="python:h.handler",
        function_timeout_seconds=function_timeout,
        enabled=True,
        batch_size=batch_size,
        maximum_batching_window_seconds=0,
        report_batch_item_failures=False,
        maximum_concurrency=maximum_concurrency,
        minimum_pollers=None,
        maximum_pollers=None,
    )
    source = SqsSource(
        mapping,
        client=queue,  # type: ignore[arg-type]
        invoker=Invoker(
            target=target, metrics=mapping_metrics, source_kind="sqs", report_batch_item_failures=False
        ),
        metrics=mapping_metrics,
        status=MappingStatus("m", "sqs", ARN, "python:h.handler", mapping_metrics),
        clock=clock,
    )
    task = asyncio.create_task(source.run())
    try:
        yield Harness(queue, target, clock, metrics, source)
    finally:
        await source.stop()
        await asyncio.wait_for(task, timeout=10)


def succeed() -> Step:
    async def step() -> InvokeOutcome:
        return Succeeded(b"null")

    return step


def block_until(release: asyncio.Event) -> Step:
    async def step() -> InvokeOutcome:
        await release.wait()
        return Succeeded(b"null")

    return step


def throttle(retry_after: float, *, then: Callable[[], None] = lambda: None) -> Step:
    async def step() -> InvokeOutcome:
        then()
        return NotInvoked("throttled", "429", retry_after_seconds=retry_after)

    return step


async def test_an_extension_sqs_reports_failed_keeps_its_deadline_and_is_retried_and_counted() -> None:
    release = asyncio.Event()
    queue = QueueDouble(2, [raw_message(1), raw_message(2)], refuse_visibility={"handle-2": 1})
    async with running(queue, [block_until(release)]) as h:
        await wait_until(lambda: h.target.calls == 1, timeout=5, what="the batch invoked")
        # Visibility 2 s from the receive at START; the keeper extends within 0.5 s of the deadline.
        h.clock.advance(1.6)
        await wait_until(lambda: len(queue.visibility_calls) >= 2, timeout=5, what="the failed entry retried")
        first, second = queue.calls_with()[:2]
        assert sorted(first) == ["handle-1", "handle-2"]
        assert second == ["handle-2"], "only the entry SQS refused is tried again"
        assert h.sample("poller_ack_failures_total", kind="visibility") == 1
        held = h.source.keeper.held
        assert held["handle-1"].visibility.deadline == START + 1.6 + 31
        assert held["handle-2"].visibility.deadline == START + 1.6 + 31, "extended once SQS confirmed"
        release.set()
        await wait_until(lambda: len(queue.deleted) == 2, timeout=5, what="the batch deleted")


async def test_a_failed_call_moves_no_deadline_and_repeated_refusals_give_the_message_up() -> None:
    release = asyncio.Event()
    queue = QueueDouble(2, [raw_message(1), raw_message(2)], refuse_visibility={"handle-2": 99})
    queue.fail_visibility_calls = 1
    async with running(queue, [block_until(release)]) as h:
        await wait_until(lambda: h.target.calls == 1, timeout=5, what="the batch invoked")
        h.clock.advance(1.6)
        # The failed call (2 entries), then handle-2 refused twice more; handle-1 extended on the retry.
        await wait_until(
            lambda: h.sample("poller_ack_failures_total", kind="visibility") == 4, timeout=5, what="retries"
        )
        assert [sorted(handles) for handles in queue.calls_with()] == [
            ["handle-1", "handle-2"],
            ["handle-1", "handle-2"],
            ["handle-2"],
        ]
        held = h.source.keeper.held
        assert held["handle-2"].visibility.lost, "given up after the bounded tries"
        assert held["handle-2"].visibility.deadline == START + 2
        assert held["handle-1"].visibility.deadline == START + 1.6 + 31
        release.set()
        await wait_until(lambda: len(queue.deleted) == 2, timeout=5, what="the batch deleted")


async def test_a_delete_sqs_refuses_is_counted() -> None:
    queue = QueueDouble(2, [raw_message(1), raw_message(2)], refuse_delete={"handle-2"})
    async with running(queue, [succeed()]) as h:
        await wait_until(lambda: queue.deleted == ["handle-1"], timeout=5, what="the delete")
        await wait_until(
            lambda: h.sample("poller_ack_failures_total", kind="delete") == 1, timeout=5, what="counted"
        )
        assert h.sample("poller_records_deleted_total") == 1


async def test_a_throttled_batch_is_still_extended_while_it_is_reinvoked() -> None:
    release = asyncio.Event()
    queue = QueueDouble(4, [raw_message(1), raw_message(2)])
    async with running(queue, [throttle(0.01), block_until(release)]) as h:
        await wait_until(lambda: h.target.calls == 2, timeout=5, what="the re-invoke after the throttle")
        # Visibility 4 s from START; the keeper extends within 1 s of the deadline.
        h.clock.advance(3.2)
        await wait_until(lambda: queue.calls_with(31) != [], timeout=5, what="the throttled batch extended")
        assert sorted(queue.calls_with(31)[0]) == ["handle-1", "handle-2"]
        release.set()
        await wait_until(lambda: len(queue.deleted) == 2, timeout=5, what="the batch deleted")
        assert h.sample("poller_invocations_total", outcome="throttled") == 1


async def test_a_throttled_batch_is_given_back_when_the_reinvoke_would_outlive_its_visibility() -> None:
    """The 0.1 s wait fits before the deadline, the 2 s invoke after it does not (spec §5.1 item 6)."""
    clock = ManualClock(now=START)
    queue = QueueDouble(4, [raw_message(1), raw_message(2)])
    script = [throttle(0.1, then=lambda: clock.advance(1.5)), succeed()]
    async with running(queue, script, function_timeout=2, clock=clock) as h:
        await wait_until(lambda: queue.calls_with(0) != [], timeout=5, what="the batch given back")
        assert sorted(queue.calls_with(0)[0]) == ["handle-1", "handle-2"]
        assert h.target.calls == 1, "not invoked again"
        assert queue.deleted == []
        assert h.source.keeper.held == {}


async def test_a_buffered_message_whose_visibility_was_lost_is_never_invoked_but_given_back() -> None:
    """Issue 13 §2.2: a message the keeper could not keep invisible may already be someone else's;
    invoking it later could run it twice at once, so it is handed back to SQS instead."""
    release = asyncio.Event()
    messages = [raw_message(1), raw_message(2), raw_message(3)]
    queue = QueueDouble(2, messages, refuse_visibility={"handle-3": 99})
    async with running(queue, [block_until(release)], batch_size=1, maximum_concurrency=2) as h:
        await wait_until(lambda: h.target.calls == 2, timeout=5, what="two batches in flight, one buffered")
        h.clock.advance(1.6)
        await wait_until(
            lambda: h.source.keeper.held["handle-3"].visibility.lost, timeout=5, what="handle-3 given up"
        )
        h.clock.advance(1.0)  # past handle-3's last confirmed deadline
        release.set()
        await wait_until(lambda: len(queue.deleted) == 2, timeout=5, what="the two invoked ones deleted")
        await wait_until(lambda: queue.calls_with(0) != [], timeout=5, what="handle-3 handed back")
        assert queue.calls_with(0)[0] == ["handle-3"]
        assert h.target.calls == 2, "the lost message was not invoked"
        assert sorted(queue.deleted) == ["handle-1", "handle-2"]
