"""moto's ReceiveMessage made atomic, as SQS's is, for the moto servers the tests run in-process.

moto 5 scans a queue without a lock: two concurrent ReceiveMessage calls (the engine runs several
receive loops per queue, as Lambda's pollers do) can both take one message, and on a FIFO queue
one call can take a group's next message while the other holds the message before it — each call
checks the groups in flight as they were when it began. Real SQS does neither. The scan is
serialised here; the long-poll wait stays outside the lock, so one waiting call never holds up
the others.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from moto.sqs.models import SQSBackend

_LOCK = threading.Lock()
_WAIT_STEP_SECONDS = 0.5


def make_receive_atomic() -> None:
    """Patch moto's SQS backend once per process (idempotent)."""
    original = SQSBackend.receive_message
    if getattr(original, "atomic", False):
        return

    @functools.wraps(original)
    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with _LOCK:
                result = original(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - time.monotonic()
            if result or remaining <= 0:
                return result
            self.get_queue(queue_name).wait_for_messages(min(_WAIT_STEP_SECONDS, remaining))  # type: ignore[arg-type]

    receive_message.atomic = True  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
