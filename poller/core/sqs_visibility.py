"""When SQS messages in hand need their visibility extended, and when a throttled batch may run again.

Only what SQS confirmed is trusted. A message's deadline moves forward only when a
ChangeMessageVisibility(Batch) reply lists it as `Successful`, and it is timed from when the request
was sent (SQS cannot have started the new timeout any earlier). An extension that failed is tried
again while the confirmed deadline has not passed, a bounded number of times; after that the message
is lost to us: it may be visible again and received by another consumer.

Pure decisions over clock readings the caller passes in; the keeper in
`poller.sources.sqs.visibility` makes the calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

K = TypeVar("K")

MAX_EXTEND_TRIES = 3
"""Failed extensions of one message before it is given up as lost."""
REINVOKE_SAFETY_SECONDS = 1.0
"""Slack between the end of a re-invoke and the deadline: network latency and SQS's own clock."""


@dataclass(frozen=True, slots=True)
class Visibility:
    """One received message's visibility as SQS last confirmed it."""

    received_at: float
    deadline: float
    """When SQS makes the message visible again, by the last timeout it confirmed."""
    failed_tries: int = 0
    """Extensions in a row that SQS did not confirm."""
    lost: bool = False
    """No extension was confirmed in time: the message may already be someone else's."""


def received(now: float, visibility_timeout: float) -> Visibility:
    """A message ReceiveMessage just returned: invisible for the queue's timeout."""
    return Visibility(received_at=now, deadline=now + visibility_timeout)


def keeper_margin(visibility_timeout: float) -> float:
    """How long before its deadline a message is extended: room for a few tries."""
    return min(5.0, max(0.5, visibility_timeout / 4))


def extension_seconds(visibility_timeout: int, window_seconds: int, function_timeout_seconds: int) -> int:
    """How far to push the visibility of a message still in hand (spec §5.1 item 7)."""
    return max(visibility_timeout, window_seconds + function_timeout_seconds + 30)


def effective_visibility_seconds(
    visibility_timeout: int, window_seconds: int, function_timeout_seconds: int
) -> int:
    """The visibility timeout Lambda works with: the queue's, or window + timeout + 30 s when the
    queue's is too short for both (spec §5.1 item 7)."""
    if window_seconds + function_timeout_seconds > visibility_timeout:
        return window_seconds + function_timeout_seconds + 30
    return visibility_timeout


def due_for_extension(entries: Mapping[K, Visibility], now: float, margin: float) -> list[K]:
    """The messages to extend now: close to a deadline that has not passed yet, and not lost.

    A deadline already passed is not extended: SQS may have handed the message to someone else, so
    whatever a late call answers, the message can no longer be counted on.
    """
    return [key for key, entry in entries.items() if not entry.lost and now < entry.deadline <= now + margin]


def after_extension(
    entry: Visibility,
    *,
    confirmed: bool,
    sent_at: float,
    seconds: float,
    now: float,
    max_tries: int = MAX_EXTEND_TRIES,
) -> Visibility:
    """The entry once SQS answered an extension sent at `sent_at` (`now` is when it answered)."""
    if confirmed:
        return replace(entry, deadline=max(entry.deadline, sent_at + seconds), failed_tries=0)
    tries = entry.failed_tries + 1
    return replace(entry, failed_tries=tries, lost=tries >= max_tries or entry.deadline <= now)


def invocable(entry: Visibility | None, now: float) -> bool:
    """Whether a message in hand is still surely ours to invoke: not lost, deadline not passed."""
    return entry is not None and not entry.lost and entry.deadline > now


def trusted_deadline(entries: Sequence[Visibility | None], now: float) -> float | None:
    """The earliest confirmed deadline of a batch; None if any message is no longer surely ours."""
    if not entries or any(e is None or e.lost or e.deadline <= now for e in entries):
        return None
    return min(e.deadline for e in entries if e is not None)


def reinvoke_fits(
    entries: Sequence[Visibility | None],
    *,
    now: float,
    wait: float,
    invoke_seconds: float,
    retry_seconds: float,
    safety: float = REINVOKE_SAFETY_SECONDS,
) -> bool:
    """Whether a throttled batch may be invoked again after waiting `wait` seconds (spec §5.1 item 6).

    Lambda retries a throttled batch until its visibility timeout (`retry_seconds`, counted from the
    receive) expires. The invoke that follows the wait may last `invoke_seconds` (the function's
    timeout) and must end before the deadline SQS confirmed, or the messages could reappear in the
    middle of it and run twice at once.
    """
    deadline = trusted_deadline(entries, now)
    if deadline is None:
        return False
    start = now + wait
    first_received = min(e.received_at for e in entries if e is not None)
    return start < first_received + retry_seconds and start + invoke_seconds + safety <= deadline
