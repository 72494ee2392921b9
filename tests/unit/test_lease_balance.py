"""KCL-style lease taking (ops anchors §3.2): local-clock expiry, fair shares, one steal at a time."""

from __future__ import annotations

from collections import Counter

from poller.core.lease_balance import ExpiryWatch, LeaseRow, Plan, leases_to_release, plan_takes

FAILOVER = 10.0


def rows(owners: list[str | None], counter: int = 1) -> list[LeaseRow]:
    return [LeaseRow(f"s-{i}", owner, counter) for i, owner in enumerate(owners)]


def plan(table: list[LeaseRow], me: str, *, now: float = 0.0, watch: ExpiryWatch | None = None) -> Plan:
    watch = watch or ExpiryWatch()
    watch.observe(table, 0.0)
    return plan_takes(table, me=me, watch=watch, now=now, failover_seconds=FAILOVER)


def test_a_lone_replica_takes_every_free_lease() -> None:
    result = plan(rows([None] * 4), "a")
    assert [r.shard_id for r in result.take] == ["s-0", "s-1", "s-2", "s-3"]
    assert result.steal is None


def test_a_new_replica_takes_only_its_fair_share_of_free_leases() -> None:
    """6 shards, 3 replicas: each aims at ceil(6/3) = 2."""
    table = rows(["a", "a", None, None, None, None])
    table += [LeaseRow("s-9", "b", 1)]  # b is alive with one lease
    result = plan(table, "c")
    assert len(result.take) == 3  # ceil(7 / 3)


def test_live_leases_are_not_expired_until_their_counter_stays_still_for_the_failover_time() -> None:
    """Expiry on this replica's own clock: no agreement on wall-clock time is needed."""
    watch = ExpiryWatch()
    table = rows(["dead", "dead"])
    watch.observe(table, 0.0)
    assert plan_takes(table, me="me", watch=watch, now=9.0, failover_seconds=FAILOVER).take == ()
    later = plan_takes(table, me="me", watch=watch, now=10.5, failover_seconds=FAILOVER)
    assert [r.shard_id for r in later.take] == ["s-0", "s-1"]


def test_a_renewed_lease_restarts_its_expiry() -> None:
    watch = ExpiryWatch()
    watch.observe(rows(["b"], counter=1), 0.0)
    renewed = rows(["b"], counter=2)
    watch.observe(renewed, 8.0)
    assert plan_takes(renewed, me="me", watch=watch, now=15.0, failover_seconds=FAILOVER).take == ()
    assert plan_takes(renewed, me="me", watch=watch, now=18.5, failover_seconds=FAILOVER).take != ()


def test_stealing_takes_one_lease_from_the_most_loaded_replica() -> None:
    table = rows(["a", "a", "a", "a", "b", "b"])
    result = plan(table, "c")
    assert result.take == ()
    assert result.steal is not None
    assert result.steal.owner == "a"


def test_balanced_replicas_do_not_trade_leases() -> None:
    table = rows(["a", "a", "b", "b", "c"])
    assert plan(table, "c").steal is None  # c has 1, share 2, but a and b hold only the share
    assert plan(table, "a") == Plan((), None)


def test_repeated_planning_converges_to_fair_shares() -> None:
    """Three replicas joining one at a time on six shards settle at two each."""
    owners: list[str | None] = [None] * 6
    for _ in range(20):
        for me in ("a", "b", "c"):
            table = rows(owners)
            result = plan(table, me)
            for row in result.take:
                owners[int(row.shard_id[2:])] = me
            if result.steal is not None:
                owners[int(result.steal.shard_id[2:])] = me
    assert Counter(owners) == {"a": 2, "b": 2, "c": 2}


def test_finished_and_ineligible_shards_are_not_taken() -> None:
    table = [LeaseRow("parent", None, 3, finished=True), LeaseRow("child", None, 0, parent_ids=("parent",))]
    watch = ExpiryWatch()
    result = plan_takes(table, me="a", watch=watch, now=0.0, failover_seconds=FAILOVER, eligible={"child"})
    assert [r.shard_id for r in result.take] == ["child"]
    blocked = plan_takes(table, me="a", watch=watch, now=0.0, failover_seconds=FAILOVER, eligible=set())
    assert blocked.take == ()


def test_leases_held_here_but_owned_elsewhere_in_the_table_are_lost() -> None:
    held = {"s-0": LeaseRow("s-0", "me", 1), "s-1": LeaseRow("s-1", "me", 1)}
    assert leases_to_release(held, rows(["me", "other"]), "me") == {"s-1"}
