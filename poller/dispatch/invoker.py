"""One batch attempt: invoke the target, classify the result, count it and log it once.

Every source uses this, so invocation metrics and the canonical one-line-per-attempt log
(DESIGN §1.8) mean the same thing for SQS, streams and Kafka. It never retries: retrying is the
source's decision (SQS leaves it to the queue, streams follow spec §5.2).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from poller.core.batch_result import (
    BatchFailed,
    BatchNotInvoked,
    BatchPartiallyFailed,
    BatchResult,
    BatchSucceeded,
    IdentifierReader,
    classify,
    string_identifier,
)
from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded, TimedOut
from poller.core.redact import redact_urls
from poller.observability.metrics import MappingMetrics
from poller.targets.base import Target


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one invocation, with the raw outcome kept for failure records."""

    result: BatchResult
    outcome: InvokeOutcome
    duration_seconds: float


def outcome_label(outcome: InvokeOutcome, result: BatchResult) -> str:
    match outcome, result:
        case NotInvoked(), _:
            return "throttled"
        case TimedOut(), _:
            return "timeout"
        case FunctionFailed(), _:
            return "error"
        case Succeeded(), BatchPartiallyFailed():
            return "partial"
        case Succeeded(), BatchFailed():
            return "error"
        case _:
            return "success"


Classifier = Callable[[InvokeOutcome, Collection[str]], BatchResult]
"""Turns one outcome into a batch result for the batch's item ids, where a source's responses follow
rules of their own (tumbling windows: `poller.core.tumbling_window.window_classifier`)."""


def request_id_of(outcome: InvokeOutcome) -> str:
    return "" if isinstance(outcome, NotInvoked) else outcome.request_id


class Invoker:
    def __init__(
        self,
        *,
        target: Target,
        metrics: MappingMetrics,
        source_kind: str,
        report_batch_item_failures: bool,
    ) -> None:
        self.target = target
        self.metrics = metrics
        self.source_kind = source_kind
        self.report_batch_item_failures = report_batch_item_failures
        self.log = structlog.get_logger("poller.batch")

    def bound_log(self, **context: Any) -> Any:
        """A `batch_attempt` logger with `context` bound once, for a lane, shard or partition."""
        return self.log.bind(**context)

    async def invoke(
        self,
        payload: bytes,
        ids: Collection[str],
        *,
        attempt: int,
        log_fields: Mapping[str, Any],
        batch_id: str | None = None,
        identifier: IdentifierReader = string_identifier,
        log: Any = None,
        classifier: Classifier | None = None,
    ) -> Attempt:
        """Invoke once with `payload` (a batch whose item ids are `ids`), and account for it.

        `log` is the caller's `batch_attempt` logger, bound once per lane, shard or partition with
        what stays the same (mapping, shard, partition); `log_fields` are this batch's own."""
        count = len(ids)
        if attempt > 1:
            self.metrics.retries.inc()
        started = time.perf_counter()
        outcome = await self.target.invoke(payload)
        duration = time.perf_counter() - started
        result = (
            classify(
                outcome,
                ids,
                report_batch_item_failures=self.report_batch_item_failures,
                identifier=identifier,
            )
            if classifier is None
            else classifier(outcome, ids)
        )
        label = outcome_label(outcome, result)
        self.metrics.invocations[label].inc()
        if not isinstance(result, BatchNotInvoked):
            self.metrics.records_invoked.inc(count)
            if count:  # a tumbling window's final invocation carries no records (spec §8)
                self.metrics.batch_size.observe(count)
            self.metrics.invocation_duration.observe(duration)
        failed = _failed_count(result, count)
        if failed:
            self.metrics.records_failed.inc(failed)
        fields: dict[str, Any] = {
            "source": self.source_kind,
            "batch_id": batch_id or uuid.uuid4().hex[:16],
            "records": count,
            "attempt": attempt,
            "outcome": label,
            "duration_ms": round(duration * 1000, 3),
            "request_id": request_id_of(outcome),
            **log_fields,
        }
        if isinstance(result, BatchPartiallyFailed):
            fields["failed_records"] = len(result.failed_ids)
        elif isinstance(result, BatchFailed | BatchNotInvoked):
            fields |= _error_fields(outcome, result)
        (self.log if log is None else log).info("batch_attempt", **fields)
        return Attempt(result, outcome, duration)


def _failed_count(result: BatchResult, count: int) -> int:
    """FailedInvokeEventCount (spec §10) counts every event of an invocation that reported failures."""
    match result:
        case BatchFailed() | BatchPartiallyFailed():
            return count
        case BatchSucceeded() | BatchNotInvoked():
            return 0


ERROR_TEXT_LIMIT = 300


def _error_fields(outcome: InvokeOutcome, result: BatchFailed | BatchNotInvoked) -> dict[str, Any]:
    """What the log says about a failed attempt: never what the function sent (DESIGN §1.8).

    A function's error body can quote the records it failed on, so only its type and size are
    logged. Texts the engine wrote itself (a broken connection, a timeout, an unusable partial
    response, a throttle) are kept, short and with any URL's credentials masked.
    """
    match outcome:
        case FunctionFailed(payload=b""):  # no body: the failure was seen by the engine, not sent
            return {"error_type": outcome.error_type, "error": _engine_text(outcome.error_message)}
        case FunctionFailed():
            return {"error_type": outcome.error_type, "error_bytes": len(outcome.payload)}
        case TimedOut():
            # `detail` is the function side's own wording; the engine's is enough here.
            text = f"Task timed out after {outcome.timeout_seconds:.2f} seconds"
            return {"error_type": "Sandbox.Timedout", "error": text}
        case NotInvoked():
            return {"error": _engine_text(f"{outcome.reason}: {outcome.detail}")}
        case Succeeded():
            assert isinstance(result, BatchFailed)
            return {"error": _engine_text(result.reason), "response_bytes": len(outcome.payload)}


def _engine_text(text: str) -> str:
    # Masked before it is cut, so a cut cannot split a URL's credentials from the `@` that marks them.
    return redact_urls(text)[:ERROR_TEXT_LIMIT]
