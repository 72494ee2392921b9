"""The one backoff of the engine: initial delay, factor, cap and jitter range, and the `Backoff`
decision the pure cores hand the dispatcher.

Retries of a function error (spec §14 item 2: from ~1 s, capped ~30 s), re-invokes after a throttle,
polls after a failed read and deliveries to an unwritable destination all wait by one of the
policies below; only the numbers differ. Deterministic: the jitter is drawn by whoever sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BackoffReason = Literal["function_error", "throttled"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    initial_seconds: float = 1.0
    multiplier: float = 2.0
    max_seconds: float = 30.0
    jitter: tuple[float, float] = (0.8, 1.2)
    """The waited time is the delay times a factor drawn uniformly from this range."""

    def __post_init__(self) -> None:
        if self.initial_seconds < 0 or self.multiplier < 1 or self.max_seconds < self.initial_seconds:
            raise ValueError(f"invalid backoff policy {self!r}")
        low, high = self.jitter
        if not 0 <= low <= high:
            raise ValueError(f"invalid jitter range {self.jitter!r}")

    def delay(self, failures: int) -> float:
        """The wait after the `failures`-th consecutive failure (1-based), before jitter."""
        delay = self.initial_seconds
        # Multiply step by step rather than raising to a power: 10,000 retries would overflow.
        for _ in range(failures - 1):
            if delay >= self.max_seconds or self.multiplier == 1:
                break
            delay *= self.multiplier
        return min(delay, self.max_seconds)

    def decision(self, failures: int, reason: BackoffReason) -> Backoff:
        return Backoff(self.delay(failures), reason, self.jitter)

    def jittered(self, failures: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """The wait after the `failures`-th failure, jitter drawn: for those who sleep themselves."""
        return self.delay(failures) * uniform(*self.jitter)

    def throttled(self, throttles: int, retry_after: float | None) -> Backoff:
        """The wait after the `throttles`-th throttle in a row. A Retry-After is waited exactly
        (spec §4.1: retried when the target said), but never longer than the longest backoff: a
        huge or bogus one would hold the batch, its shard or its FIFO group that long."""
        if retry_after is None:
            return self.decision(throttles, "throttled")
        return Backoff(min(max(retry_after, 0.0), self.max_seconds), "throttled", (1.0, 1.0))


@dataclass(frozen=True, slots=True)
class Backoff:
    """Wait `seconds` times a factor drawn from `jitter`, then ask for the next decision."""

    seconds: float
    reason: BackoffReason
    jitter: tuple[float, float] = (0.8, 1.2)


THROTTLE_BACKOFF = BackoffPolicy(jitter=(0.5, 1.0))
"""Throttled SQS invokes and failed polls: full jitter below the delay, so pollers spread out."""
DELIVERY_BACKOFF = BackoffPolicy()
"""Writes to an on-failure destination that failed: 1, 2, 4 … 30 s, ±20 %."""
