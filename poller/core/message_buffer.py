"""The local queue of received, not yet invoked SQS messages, and the FIFO ordering rule.

Pure bookkeeping; the source does the waiting. For a FIFO queue a message group may have only one
batch in flight (spec §5.1 item 8, §9.1), so a message whose group is in flight stays here, in
order, until that batch is done; and when a batch fails, the group's later messages must not
overtake the ones that will be retried, so they are handed back to the queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from poller.core.batching import BatchBuilder
from poller.core.sqs_event import SqsMessage


class MessageBuffer:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._messages: deque[SqsMessage] = deque()
        self.groups_in_flight: set[str] = set()

    def __len__(self) -> int:
        return len(self._messages)

    def has_room_for(self, count: int) -> bool:
        return len(self._messages) + count <= self.capacity or not self._messages

    def extend(self, messages: Iterable[SqsMessage]) -> None:
        self._messages.extend(messages)

    def _eligible(self, message: SqsMessage) -> bool:
        return message.group_id is None or message.group_id not in self.groups_in_flight

    def has_eligible(self) -> bool:
        return any(self._eligible(m) for m in self._messages)

    def take(self, builder: BatchBuilder, into: list[SqsMessage]) -> bool:
        """Move eligible messages, in order, into `into` while they fit `builder`.

        Returns True when the batch is full (the next eligible message does not fit), so the
        caller stops waiting for its window.
        """
        kept: deque[SqsMessage] = deque()
        full = False
        while self._messages:
            message = self._messages.popleft()
            if full or not self._eligible(message):
                kept.append(message)
                continue
            if not builder.fits(message.size):
                full = True
                kept.append(message)
                continue
            builder.add(message.size)
            into.append(message)
        self._messages = kept
        return full or builder.count >= builder.limits.batch_size

    def put_back_front(self, messages: list[SqsMessage]) -> None:
        """Return messages taken for a batch that will not be sent, ahead of newer ones."""
        self._messages.extendleft(reversed(messages))

    def remove_groups(self, groups: set[str]) -> list[SqsMessage]:
        """Take out every buffered message of `groups` (to hand back after a FIFO failure)."""
        removed = [m for m in self._messages if m.group_id in groups]
        if removed:
            self._messages = deque(m for m in self._messages if m.group_id not in groups)
        return removed

    def drain(self) -> list[SqsMessage]:
        out = list(self._messages)
        self._messages.clear()
        return out
