"""Which shard leases a replica should take, in the style of the Kinesis Client Library (ops anchors
§3.2): expiry judged on this replica's own clock, fair shares, one steal at a time.

Pure: the lease table's rows and this replica's observations come in, decisions go out. A lease is
expired when this replica has seen the same `counter` for longer than the failover time on its own
monotonic clock, so replicas never need to agree on wall-clock time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """One row of the lease table, as last read."""

    shard_id: str
    owner: str | None
    counter: int
    finished: bool = False
    """The shard was read to its end (checkpoint SHARD_END): nobody needs to hold it."""
    parent_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class ExpiryWatch:
    """When this replica first saw each lease at its current counter (monotonic seconds)."""

    seen: dict[str, tuple[int, float]] = field(default_factory=dict)

    def observe(self, rows: Sequence[LeaseRow], now: float) -> None:
        for row in rows:
            previous = self.seen.get(row.shard_id)
            if previous is None or previous[0] != row.counter:
                self.seen[row.shard_id] = (row.counter, now)
        current = {row.shard_id for row in rows}
        for gone in set(self.seen) - current:
            del self.seen[gone]

    def expired(self, row: LeaseRow, now: float, failover_seconds: float) -> bool:
        """Unowned, or owned but unchanged for longer than the failover time as seen from here."""
        if row.owner is None:
            return True
        counter, since = self.seen.get(row.shard_id, (row.counter, now))
        return counter == row.counter and now - since > failover_seconds


@dataclass(frozen=True, slots=True)
class Plan:
    take: tuple[LeaseRow, ...]
    """Unowned or expired leases to take, conditional on the counter in the row."""
    steal: LeaseRow | None
    """At most one live lease of the most loaded replica, when nothing could be taken."""


def plan_takes(
    rows: Sequence[LeaseRow],
    *,
    me: str,
    watch: ExpiryWatch,
    now: float,
    failover_seconds: float,
    eligible: Collection[str] | None = None,
) -> Plan:
    """What this replica should take to reach its fair share of the workable leases.

    `eligible` limits taking to shards whose parents are finished (children wait, spec §5.2);
    finished shards are never taken. Fair share = ceil(workable leases / live replicas), where
    the live replicas are the owners of unexpired leases plus this one.
    """
    workable = [row for row in rows if not row.finished and (eligible is None or row.shard_id in eligible)]
    live = [
        row for row in workable if row.owner is not None and not watch.expired(row, now, failover_seconds)
    ]
    load: Counter[str] = Counter(row.owner for row in live if row.owner is not None)
    replicas = set(load) | {me}
    share = math.ceil(len(workable) / len(replicas)) if workable else 0
    mine = load.get(me, 0)
    wanted = share - mine
    if wanted <= 0:
        return Plan((), None)
    free = [row for row in workable if row.owner != me and watch.expired(row, now, failover_seconds)]
    if free:
        return Plan(tuple(free[:wanted]), None)
    # Nothing free: steal one lease from the most loaded replica, if it holds more than its share
    # (or more than one above us), so two replicas never trade a lease back and forth.
    busiest, held = max(
        ((owner, n) for owner, n in load.items() if owner != me), key=_by_load, default=(None, 0)
    )
    if busiest is None or (held <= share and held <= mine + 1):
        return Plan((), None)
    victims = sorted((row for row in live if row.owner == busiest), key=lambda r: r.shard_id)
    return Plan((), victims[-1] if victims else None)


def _by_load(item: tuple[str, int]) -> tuple[int, str]:
    return item[1], item[0]


def leases_to_release(held: Mapping[str, LeaseRow], rows: Sequence[LeaseRow], me: str) -> set[str]:
    """Leases this replica believes it holds but the table says it does not: lost, stop them."""
    current = {row.shard_id: row for row in rows}
    return {shard for shard in held if shard not in current or current[shard].owner != me}
