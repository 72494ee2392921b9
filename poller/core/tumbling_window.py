"""Tumbling windows of Kinesis and DynamoDB Streams (spec §8), as pure values and decisions.

A window is a fixed interval of record *arrival* time (`approximateArrivalTimestamp`,
`ApproximateCreationDateTime`), aligned on multiples of its length since the epoch, so every record
belongs to exactly one window whatever shard or replica reads it. The spec marks the exact alignment
UNVERIFIED; its example (`07:04:00Z`–`07:06:00Z` for 120 s) is consistent with epoch alignment.

One shard has at most one open window at a time (`WindowTracker`). Each batch of the window is a
normal batch (spec §5.2 retries, bisect, record age) whose event also carries the window, the state
the function last returned for it and the shard; the function must answer with a `state` object
(spec §4.1: without one, the invocation failed). The window closes with a *final invocation*
(`isFinalInvokeForWindow: true`, no records, the last state), made when the first of these happens:

- a record of a later window is read: nothing more of this one can follow (records of a shard
  arrive in order);
- a record of an *earlier* window is read (arrival times are the stream's approximate stamps, so a
  shard's order and theirs can disagree): the open window is closed with its final invocation first,
  and the record opens its own window with fresh state, so states are never mixed;
- the window's end has passed and a read that started after it found the shard caught up;
- the window's end has passed and no new record has been read for `IDLE_CLOSE_SECONDS` (spec §8:
  "if no new records arrive, Lambda waits up to 2 minutes"), e.g. while reads keep failing;
- the shard ends (spec §8: no resharding support, child shards start fresh);
- the state the function returned exceeds `STATE_LIMIT_BYTES`: the window is terminated early
  (`isWindowTerminatedEarly: true`), and the window's later records open a fresh instance of it.
  The oversized state is never sent: a batch's 6 MB budget reserves only `STATE_LIMIT_BYTES` for
  the state, so the invocations still due in that batch (a partial response's remainder, a bisected
  half) and the final invocation carry the last state the function returned within the limit
  (`{}` if none was).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

import orjson

from poller.core.batch_result import (
    BatchFailed,
    BatchResult,
    BatchSucceeded,
    classify,
    parse_partial_response,
)
from poller.core.outcome import InvokeOutcome, Succeeded
from poller.core.stream_event import STREAM_EVENT_OVERHEAD, STREAM_EVENT_PREFIX
from poller.core.stream_retry_types import StreamRecordRef

STATE_LIMIT_BYTES: Final = 1024 * 1024
"""spec §8: at most 1 MB of state per shard (as JSON); beyond it the window is terminated early."""
IDLE_CLOSE_SECONDS: Final = 120.0
"""spec §8: without new records, the window is closed at most this long after its end."""
CLOSE_MARGIN_SECONDS: Final = 1.0
"""A caught-up read counts only if it started this long after the window's end: arrival times are
stamped by the stream's clock, not ours."""
EMPTY_STATE: Final = b"{}"
"""The state of a window's first invocation (spec §8)."""


def _iso_z(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """[start, end) in whole epoch seconds."""

    start: int
    end: int

    def contains(self, arrival_epoch_seconds: float) -> bool:
        return self.start <= arrival_epoch_seconds < self.end

    def as_json(self) -> dict[str, str]:
        """The event's `window` member (spec §8)."""
        return {"start": _iso_z(self.start), "end": _iso_z(self.end)}


def window_of(arrival_epoch_seconds: float, length_seconds: int) -> Window:
    """The window a record that arrived at `arrival_epoch_seconds` belongs to."""
    if not 1 <= length_seconds <= 900:
        raise ValueError(f"TumblingWindowInSeconds must be 1-900, not {length_seconds}")
    start = int(arrival_epoch_seconds // length_seconds) * length_seconds
    return Window(start, start + length_seconds)


# -- the event -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowInvocation:
    """What a windowed event carries besides its records (spec §8)."""

    window: Window
    state: bytes
    """The state as JSON (an object)."""
    shard_id: str
    event_source_arn: str
    final: bool = False
    terminated_early: bool = False

    def tail(self) -> bytes:
        """The members after `Records`, in the order of the spec's example."""
        return (
            b',"window":'
            + orjson.dumps(self.window.as_json())
            + b',"state":'
            + self.state
            + b',"shardId":'
            + orjson.dumps(self.shard_id)
            + b',"eventSourceARN":'
            + orjson.dumps(self.event_source_arn)
            + b',"isFinalInvokeForWindow":'
            + (b"true" if self.final else b"false")
            + b',"isWindowTerminatedEarly":'
            + (b"true" if self.terminated_early else b"false")
        )

    def overhead_bytes(self) -> int:
        """The event's size without its records (as `BatchLimits.envelope_bytes` counts it)."""
        return STREAM_EVENT_OVERHEAD + len(self.tail())


def encode_window_event(records: Sequence[bytes], invocation: WindowInvocation) -> bytes:
    """The normal `{"Records": [...]}` event (records serialised once, spec §3) plus the window's
    members."""
    return STREAM_EVENT_PREFIX + b",".join(records) + b"]" + invocation.tail() + b"}"


# -- the response --------------------------------------------------------------------------------


def response_state(payload: bytes) -> tuple[bytes | None, str]:
    """The `state` object of a function's response as compact JSON, or None and why it is unusable.

    spec §4.1, §8: a response without `state` is a failed invocation; a `null` or non-object state
    is treated the same, as the function must return `{"state": {...}}`.
    """
    try:
        body = orjson.loads(payload) if payload.strip() else None
    except orjson.JSONDecodeError:
        return None, "function response is not valid JSON, so it has no state (tumbling window)"
    if not isinstance(body, dict) or "state" not in body:
        return None, "function response has no state (a tumbling window requires one)"
    state = body["state"]
    if not isinstance(state, dict):
        return None, "function response's state is not a JSON object (tumbling window)"
    return orjson.dumps(state), ""


def classify_window_response(
    outcome: InvokeOutcome, batch_ids: Collection[str], *, report_batch_item_failures: bool
) -> BatchResult:
    """spec §4.1, §4.2, §8: as `classify`, but a successful response must carry a `state` object;
    `batchItemFailures` beside it count only with ReportBatchItemFailures."""
    if not isinstance(outcome, Succeeded):
        return classify(outcome, batch_ids, report_batch_item_failures=report_batch_item_failures)
    state, problem = response_state(outcome.payload)
    if state is None:
        return BatchFailed(problem)
    if not report_batch_item_failures:
        return BatchSucceeded()
    return parse_partial_response(outcome.payload, batch_ids)


def window_classifier(
    *, report_batch_item_failures: bool
) -> Callable[[InvokeOutcome, Collection[str]], BatchResult]:
    def classify_one(outcome: InvokeOutcome, batch_ids: Collection[str]) -> BatchResult:
        return classify_window_response(
            outcome, batch_ids, report_batch_item_failures=report_batch_item_failures
        )

    return classify_one


# -- one shard's open window ---------------------------------------------------------------------


class CloseReason(StrEnum):
    LATER_RECORD = "later_record"
    EARLIER_RECORD = "earlier_record"
    CAUGHT_UP = "caught_up"
    IDLE = "idle"
    SHARD_END = "shard_end"
    STATE_LIMIT = "state_limit"


@dataclass(slots=True)
class OpenWindow:
    window: Window
    first: StreamRecordRef
    last: StreamRecordRef
    records: int = 0
    """Records of the window handed to its batches (invoked, or discarded to the destination)."""
    state: bytes = EMPTY_STATE
    invocations: int = 0
    """Invocations so far, failed ones included (not the final one)."""
    terminated_early: bool = False

    def as_status(self) -> dict[str, object]:
        """What /status shows for a shard's open window."""
        return {
            "Start": _iso_z(self.window.start),
            "End": _iso_z(self.window.end),
            "Invocations": self.invocations,
            "Records": self.records,
            "StateBytes": len(self.state),
            "TerminatedEarly": self.terminated_early,
        }


class WindowTracker:
    """One shard's open window (at most one), its state, and when to close it (module docstring)."""

    def __init__(
        self,
        length_seconds: int,
        *,
        state_limit_bytes: int = STATE_LIMIT_BYTES,
        idle_close_seconds: float = IDLE_CLOSE_SECONDS,
        close_margin_seconds: float = CLOSE_MARGIN_SECONDS,
    ) -> None:
        window_of(0, length_seconds)  # refuses a length outside 1-900
        self.length_seconds = length_seconds
        self.state_limit_bytes = state_limit_bytes
        self.idle_close_seconds = idle_close_seconds
        self.close_margin_seconds = close_margin_seconds
        self.open: OpenWindow | None = None

    def window_for(self, record: StreamRecordRef) -> Window:
        return window_of(record.arrival_epoch_seconds, self.length_seconds)

    def same_window(self, first: StreamRecordRef, following: StreamRecordRef) -> bool:
        """Whether two records may share a batch: a batch never spans two windows (spec §8)."""
        return self.window_for(first) == self.window_for(following)

    def belongs_to_open(self, record: StreamRecordRef) -> bool:
        """Whether `record` continues the open window; False when none is open or it is a later one.

        A window terminated early still lets nothing more in: its records open a fresh instance."""
        opened = self.open
        return opened is not None and not opened.terminated_early and opened.window == self.window_for(record)

    def close_reason_for(self, record: StreamRecordRef) -> CloseReason:
        """Why the open window closes before `record`, which does not belong to it."""
        opened = self._require_open()
        if opened.terminated_early:
            return CloseReason.STATE_LIMIT
        if self.window_for(record) < opened.window:
            return CloseReason.EARLIER_RECORD
        return CloseReason.LATER_RECORD

    def take(self, records: Sequence[StreamRecordRef]) -> OpenWindow:
        """A batch of one window is about to be processed: open its window if none is, and count it."""
        if not records:
            raise ValueError("a window batch has at least one record")
        opened = self.open
        if opened is None:
            opened = self.open = OpenWindow(self.window_for(records[0]), records[0], records[-1])
        elif not self.belongs_to_open(records[0]):
            raise RuntimeError("the open window must be closed before a record of another window is taken")
        opened.last = records[-1]
        opened.records += len(records)
        return opened

    def invoked(self, state: bytes | None) -> None:
        """One invocation of the open window came back; `state` is what it returned when it did not
        fail (carried to the next invocation of the window), None when it failed (state unchanged).

        A state over the limit terminates the window early and is dropped: the state kept is the last
        one within the limit, so no later event of the window exceeds the 6 MB its batch was cut for."""
        opened = self._require_open()
        opened.invocations += 1
        if state is None:
            return
        if len(state) > self.state_limit_bytes:
            opened.terminated_early = True
        else:
            opened.state = state

    def invocation(self, shard_id: str, event_source_arn: str, *, final: bool) -> WindowInvocation:
        opened = self._require_open()
        return WindowInvocation(
            opened.window,
            opened.state,
            shard_id,
            event_source_arn,
            final=final,
            terminated_early=final and opened.terminated_early,
        )

    def close_due(
        self, now_epoch: float, *, caught_up_at: float | None, last_record_at: float | None
    ) -> CloseReason | None:
        """Whether the open window closes now for lack of records (or for its state's size).

        `caught_up_at`: when the latest read that found nothing new *started*; `last_record_at`:
        when a record was last read from the shard (both wall time, None if never)."""
        opened = self.open
        if opened is None:
            return None
        if opened.terminated_early:
            return CloseReason.STATE_LIMIT
        end = opened.window.end
        if now_epoch < end:
            return None
        if caught_up_at is not None and caught_up_at >= end + self.close_margin_seconds:
            return CloseReason.CAUGHT_UP
        quiet_since = max(float(end), last_record_at if last_record_at is not None else float("-inf"))
        if now_epoch >= quiet_since + self.idle_close_seconds:
            return CloseReason.IDLE
        return None

    def seconds_until_end(self, now_epoch: float) -> float | None:
        """How long until the open window's end (plus the margin); None when none is open."""
        opened = self.open
        if opened is None:
            return None
        return max(opened.window.end + self.close_margin_seconds - now_epoch, 0.0)

    def closed(self) -> OpenWindow:
        """The final invocation succeeded (or the window was given up): forget its state."""
        opened = self._require_open()
        self.open = None
        return opened

    def _require_open(self) -> OpenWindow:
        if self.open is None:
            raise RuntimeError("no window is open")
        return self.open
