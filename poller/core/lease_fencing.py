"""When this replica renews a shard lease it holds, and when it must stop working the shard because
it can no longer be sure the lease is still its own (ops anchors §3.2).

Another replica takes a lease once it has seen the lease's counter unchanged for `lease_seconds`
on its own clock. It can only see a counter after the write that set it, and that write started no
earlier than when this replica sent it; so the lease is surely this replica's until
`lease_seconds` after the start of its last successful write (take, renew or checkpoint). The shard
is stopped a margin before that moment (room for the stop itself and for clocks that run at
slightly different rates), and every renewal gets a deadline that ends by then, so a slow or
unreachable table can never leave two replicas working one shard.

Pure: times in, decisions out (monotonic seconds of this replica's clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["renew", "wait", "fence"]


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    timeout: float
    """For `renew`: how long the renewal may take, retries included, before it counts as failed."""
    wake_at: float
    """When this lease next needs a look (for `wait`; a renewal's outcome is looked at directly)."""


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    lease_seconds: float

    @property
    def renew_every(self) -> float:
        """Three renewals per lease period: two may fail before the lease is in danger."""
        return self.lease_seconds / 3

    @property
    def renew_timeout(self) -> float:
        """Shorter than `renew_every`, so one round of renewals ends before the next is due."""
        return self.lease_seconds / 4

    @property
    def retry_after(self) -> float:
        """Pause after a failed renewal before the next try, so a failing table is not hammered."""
        return self.lease_seconds / 12

    @property
    def fence_after(self) -> float:
        """Seconds after the last confirmed write at which the shard must be stopped."""
        return self.lease_seconds * 3 / 4

    def fence_at(self, confirmed_at: float) -> float:
        return confirmed_at + self.fence_after

    def safe(self, now: float, confirmed_at: float) -> bool:
        """Whether the shard may still be worked: nobody else can take the lease for a while yet."""
        return now < self.fence_at(confirmed_at)

    def step(self, now: float, *, confirmed_at: float, attempted_at: float | None = None) -> Step:
        """What to do with one held lease now.

        `confirmed_at`: when the last successful write to the lease started; `attempted_at`: when
        the last renewal attempt started, successful or not (None: none since the take).
        """
        fence_at = self.fence_at(confirmed_at)
        if now >= fence_at:
            return Step("fence", 0.0, now)
        attempted = confirmed_at if attempted_at is None else max(attempted_at, confirmed_at)
        due_at = max(confirmed_at + self.renew_every, attempted + self.retry_after)
        if now >= due_at:
            return Step("renew", min(self.renew_timeout, fence_at - now), now)
        return Step("wait", 0.0, min(due_at, fence_at))
