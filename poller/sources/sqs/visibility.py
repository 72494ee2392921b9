"""Keeps the SQS messages in hand invisible, trusting only what SQS confirmed (spec §5.1 item 7).

A message is in hand from its receive until its batch is finished or it is given back. While in
hand, its visibility is extended shortly before the deadline SQS last confirmed; an extension SQS
did not confirm (the call failed, or its entry came back `Failed`) leaves the deadline where it was
and is tried again on the next rounds, until the deadline passes or the tries run out. The
decisions are `poller.core.sqs_visibility`'s; this module makes the calls and counts failures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from poller.config import SqsMapping
from poller.core import sqs_visibility
from poller.core.clock import Clock
from poller.core.sqs_event import SqsMessage
from poller.core.sqs_visibility import Visibility
from poller.errors import ConfigError
from poller.observability.metrics import MappingMetrics
from poller.sources.sqs import calls

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

GIVE_BACK_SECONDS = 5.0
"""How long a stopping source spends handing its unstarted messages back."""


@dataclass(slots=True)
class Held:
    """A received message still in hand, and its visibility as SQS confirmed it."""

    message: SqsMessage
    visibility: Visibility


class VisibilityKeeper:
    def __init__(
        self, mapping: SqsMapping, *, client: SQSClient, metrics: MappingMetrics, clock: Clock
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.clock = clock
        self.log = structlog.get_logger("poller.sqs").bind(mapping=mapping.name)
        self.window_seconds = mapping.maximum_batching_window_seconds
        self.function_timeout_seconds = mapping.function_timeout_seconds
        self.held: dict[str, Held] = {}
        """In-hand messages by receipt handle."""
        self.queue_url = ""
        self.configure("", 30)

    def configure(self, queue_url: str, visibility_timeout: int) -> None:
        """Set the queue once it is known (its visibility timeout sets every interval here)."""
        self.queue_url = queue_url
        self.visibility_timeout = visibility_timeout
        self.margin = sqs_visibility.keeper_margin(visibility_timeout)
        self.extension = sqs_visibility.extension_seconds(
            visibility_timeout, self.window_seconds, self.function_timeout_seconds
        )
        self.retry_seconds = sqs_visibility.effective_visibility_seconds(
            visibility_timeout, self.window_seconds, self.function_timeout_seconds
        )

    def configure_checked(self, queue_url: str, visibility_timeout: int) -> None:
        """`configure`, refusing a queue whose timeout is shorter than the function's."""
        if visibility_timeout < self.function_timeout_seconds:
            # AWS rejects this mapping at create time with this message (spec §1.6).
            raise ConfigError(
                f"Queue visibility timeout: {visibility_timeout} seconds is less than "
                f"Function timeout: {self.function_timeout_seconds} seconds"
            )
        self.configure(queue_url, visibility_timeout)

    def hold(self, messages: Iterable[SqsMessage], received_at: float) -> None:
        for message in messages:
            self.held[message.receipt_handle] = Held(
                message, sqs_visibility.received(received_at, self.visibility_timeout)
            )

    def release(self, messages: Iterable[SqsMessage]) -> None:
        for message in messages:
            self.held.pop(message.receipt_handle, None)

    def visibilities(self, messages: Iterable[SqsMessage]) -> list[Visibility | None]:
        out: list[Visibility | None] = []
        for message in messages:
            held = self.held.get(message.receipt_handle)
            out.append(None if held is None else held.visibility)
        return out

    def split_lost(self, batch: list[SqsMessage]) -> tuple[list[SqsMessage], list[SqsMessage]]:
        """(what may be invoked, what is no longer surely ours), FIFO order kept.

        A lost message may be visible again and received elsewhere, so invoking it could run it
        twice at once: it is left to SQS. A FIFO message behind a lost one in its group must not
        overtake it, so it goes with it (the caller gives it back).
        """
        now = self.clock.monotonic()
        lost_groups: set[str | None] = set()
        keep: list[SqsMessage] = []
        dropped: list[SqsMessage] = []
        for message, entry in zip(batch, self.visibilities(batch), strict=True):
            if sqs_visibility.invocable(entry, now) and (
                message.group_id is None or message.group_id not in lost_groups
            ):
                keep.append(message)
                continue
            dropped.append(message)
            if message.group_id is not None:
                lost_groups.add(message.group_id)
        if dropped:
            self.log.warning("lost_messages_not_invoked", messages=len(dropped))
        return keep, dropped

    def reinvoke_fits(self, messages: list[SqsMessage], wait: float) -> bool:
        """Whether a throttled batch may be invoked again after `wait` seconds (spec §5.1 item 6)."""
        return sqs_visibility.reinvoke_fits(
            self.visibilities(messages),
            now=self.clock.monotonic(),
            wait=wait,
            invoke_seconds=self.function_timeout_seconds,
            retry_seconds=self.retry_seconds,
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.margin / 2))
            await self.extend_due()

    async def extend_due(self) -> None:
        """One round: extend the messages close to their deadline, trusting only SQS's confirmations."""
        sent_at = self.clock.monotonic()
        due = sqs_visibility.due_for_extension(
            {handle: held.visibility for handle, held in self.held.items()}, sent_at, self.margin
        )
        if not due:
            return
        handles = [(self.held[handle].message.message_id, handle) for handle in due]
        confirmed = await calls.change_visibility(self.client, self.queue_url, handles, self.extension)
        answered_at = self.clock.monotonic()
        failed = lost = 0
        for handle in due:
            held = self.held.get(handle)
            if held is None:  # its batch finished while the call was out
                continue
            held.visibility = sqs_visibility.after_extension(
                held.visibility,
                confirmed=handle in confirmed,
                sent_at=sent_at,
                seconds=self.extension,
                now=answered_at,
            )
            if handle not in confirmed:
                failed += 1
                lost += int(held.visibility.lost)
        if failed:
            self.metrics.ack_failures["visibility"].inc(failed)
            self.log.warning("visibility_not_extended", messages=failed, given_up=lost)
        if confirmed:
            self.log.debug("visibility_extended", messages=len(confirmed), seconds=self.extension)

    async def give_back(self, messages: list[SqsMessage]) -> None:
        """Make messages visible again at once: received, never invoked (DESIGN §3).

        One try: a message SQS did not take back reappears at its deadline anyway.
        """
        self.release(messages)
        if not messages or not self.queue_url:
            return
        confirmed = await calls.change_visibility(
            self.client, self.queue_url, [(m.message_id, m.receipt_handle) for m in messages], 0
        )
        if failed := len(messages) - len(confirmed):
            self.metrics.ack_failures["visibility"].inc(failed)

    async def give_back_on_exit(self, messages: list[SqsMessage]) -> None:
        """Give back what a stopping source never started, within a bound (the drain is timed)."""
        try:
            async with asyncio.timeout(GIVE_BACK_SECONDS):
                await self.give_back(messages)
        except TimeoutError:
            self.log.warning("give_back_timed_out", messages=len(messages))
        self.log.info("messages_given_back", messages=len(messages))
