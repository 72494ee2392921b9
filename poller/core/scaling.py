"""How many SQS batches a mapping runs at once (spec §9.1).

Lambda starts an SQS mapping at 5 concurrent batches, adds up to 300 a minute while messages
remain, never exceeds `ScalingConfig.MaximumConcurrency` (or 1,250 without it), and backs off when
invocations are throttled. The decision is a pure function of what the caller observes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AWS_INITIAL_CONCURRENCY = 5
AWS_MAX_CONCURRENCY = 1250
STEP_PER_SECOND = 5  # 300 a minute
IDLE_SECONDS_BEFORE_SCALE_DOWN = 60.0


@dataclass(slots=True)
class ConcurrencyScaler:
    cap: int
    initial: int
    floor: int
    target: int = field(init=False)
    _last_change: float = field(init=False, default=float("-inf"))
    _last_backlog: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.target = self.initial

    @classmethod
    def for_mapping(
        cls, maximum_concurrency: int | None, minimum_pollers: int | None, maximum_pollers: int | None
    ) -> ConcurrencyScaler:
        if minimum_pollers is not None and maximum_pollers is not None:
            # Provisioned mode: a poller runs up to 10 concurrent invokes (spec §9.1).
            return cls(cap=maximum_pollers * 10, initial=minimum_pollers, floor=minimum_pollers)
        cap = maximum_concurrency or AWS_MAX_CONCURRENCY
        initial = min(AWS_INITIAL_CONCURRENCY, cap)
        return cls(cap=cap, initial=initial, floor=min(2, cap))

    def observe(self, now: float, *, backlog: bool, busy: int) -> int:
        """Scale up while a backlog waits and every slot is busy; settle back when idle."""
        if backlog:
            self._last_backlog = now
            if busy >= self.target and now - self._last_change >= 1.0 and self.target < self.cap:
                self.target = min(self.cap, self.target + STEP_PER_SECOND)
                self._last_change = now
        elif now - self._last_backlog >= IDLE_SECONDS_BEFORE_SCALE_DOWN and self.target > self.initial:
            self.target = self.initial
            self._last_change = now
        return self.target

    def throttled(self, now: float) -> int:
        """Halve on a throttle, as Lambda reduces an SQS mapping's concurrency (spec §5.1 item 6)."""
        self.target = max(self.floor, self.target // 2)
        self._last_change = now
        return self.target
