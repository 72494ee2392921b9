"""When a batch is complete: the first of BatchSize, the 6 MB payload cap, or the window (spec §2).

The decision is a pure function of what has been gathered and the time, so the runtime only has to
feed records in and ask. Sizes are in bytes of the serialised event, envelope included, because
the cap is on the invoke payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous invoke payload limit; record metadata counts toward it (spec §2)."""


class FlushReason(StrEnum):
    SIZE = "size"
    BYTES = "bytes"
    WINDOW = "window"
    DRAINED = "drained"
    """Window 0: everything available was taken (spec §2: invoke as soon as records are available)."""
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class BatchLimits:
    batch_size: int
    window_seconds: float
    max_bytes: int = MAX_PAYLOAD_BYTES
    envelope_bytes: int = 0


@dataclass(slots=True)
class BatchBuilder:
    """Counts one batch being gathered. `started_at` is when its window opened."""

    limits: BatchLimits
    started_at: float
    count: int = 0
    size: int = 0

    def __post_init__(self) -> None:
        self.size = self.limits.envelope_bytes

    def fits(self, record_bytes: int) -> bool:
        """Whether one more record of `record_bytes` stays within count and payload limits.

        A first record always fits: a record that alone exceeds the cap is the source's to
        handle (SQS messages cannot reach it; Kafka reports MaximumPayloadSizeExceeded).
        """
        if self.count >= self.limits.batch_size:
            return False
        return self.count == 0 or self.size + record_bytes <= self.limits.max_bytes

    def add(self, record_bytes: int) -> None:
        self.count += 1
        self.size += record_bytes

    def deadline(self) -> float:
        return self.started_at + self.limits.window_seconds

    def full_reason(self, next_record_bytes: int | None) -> FlushReason | None:
        """Why the batch cannot take the next record, or None if it still can."""
        if self.count >= self.limits.batch_size:
            return FlushReason.SIZE
        if next_record_bytes is not None and not self.fits(next_record_bytes):
            return FlushReason.BYTES
        return None

    def window_elapsed(self, now: float) -> bool:
        return now >= self.deadline()
