"""The pure core of a function's environment pool (DESIGN §1.5.1; spec §2.2)."""

from __future__ import annotations

from poller.functions.pool_state import ColdStart, Handoff, PoolState, Refuse, Retire, UseIdle, Wait


def test_an_invocation_cold_starts_then_reuses_the_idle_environment() -> None:
    pool = PoolState(limit=None, idle_seconds=60)
    first = pool.acquire()
    assert first == ColdStart(env_id=1, scratch=1)
    assert (pool.idle, pool.busy) == (0, 1)
    assert pool.release(1, alive=True, now=0.0) is None
    assert (pool.idle, pool.busy) == (1, 0)
    assert pool.acquire() == UseIdle(1)


def test_without_a_limit_concurrent_invocations_each_get_an_environment() -> None:
    pool = PoolState(limit=None, idle_seconds=60)
    assert [pool.acquire() for _ in range(3)] == [ColdStart(1, 1), ColdStart(2, 2), ColdStart(3, 3)]


def test_the_most_recently_used_idle_environment_is_reused_first() -> None:
    pool = PoolState(limit=None, idle_seconds=60)
    pool.acquire()
    pool.acquire()
    pool.release(2, alive=True, now=1.0)
    pool.release(1, alive=True, now=2.0)
    assert pool.acquire() == UseIdle(1)


def test_reserved_concurrency_counts_idle_environments_and_queues_the_rest() -> None:
    pool = PoolState(limit=1, idle_seconds=60)
    assert pool.acquire() == ColdStart(1, 1)
    assert pool.acquire() == Wait(1)
    assert pool.acquire() == Wait(2)
    assert pool.waiting == 2
    # Released alive: straight to the first waiter, never idle in between.
    assert pool.release(1, alive=True, now=0.0) == Handoff(1, UseIdle(1))
    assert pool.release(1, alive=True, now=0.0) == Handoff(2, UseIdle(1))
    assert pool.release(1, alive=True, now=0.0) is None
    assert (pool.idle, pool.busy) == (1, 0)


def test_a_reset_environment_is_replaced_with_its_tmp() -> None:
    pool = PoolState(limit=1, idle_seconds=60)
    pool.acquire()
    assert pool.acquire() == Wait(1)
    # Timed out / exited: the waiter gets a new environment that inherits scratch 1.
    assert pool.release(1, alive=False, now=0.0) == Handoff(1, ColdStart(env_id=2, scratch=1))
    assert pool.busy == 1
    assert pool.release(2, alive=False, now=0.0) is None
    assert pool.busy == 0
    assert pool.acquire() == ColdStart(env_id=3, scratch=1)


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    pool = PoolState(limit=1, idle_seconds=60)
    pool.acquire()
    pool.acquire()
    assert pool.acquire() == Wait(2)
    pool.cancel(1)
    assert pool.release(1, alive=True, now=0.0) == Handoff(2, UseIdle(1))


def test_idle_environments_and_unclaimed_tmp_retire_after_idle_seconds() -> None:
    pool = PoolState(limit=None, idle_seconds=10)
    pool.acquire()
    pool.acquire()
    pool.release(1, alive=True, now=100.0)
    pool.release(2, alive=False, now=105.0)
    assert pool.next_retirement() == 110.0
    assert pool.retire_due(109.9) == []
    assert pool.retire_due(110.0) == [Retire(1, 1)]
    assert pool.next_retirement() == 115.0
    assert pool.retire_due(115.0) == [Retire(None, 2)]
    assert pool.next_retirement() is None
    assert (pool.idle, pool.busy) == (0, 0)
    assert pool.acquire() == ColdStart(env_id=3, scratch=3)  # no /tmp left to inherit


def test_zero_reserved_concurrency_throttles() -> None:
    assert PoolState(limit=0, idle_seconds=60).acquire() == Refuse("throttled")


def test_closing_refuses_new_work_releases_waiters_and_ends_in_flight_environments() -> None:
    pool = PoolState(limit=2, idle_seconds=60)
    pool.acquire()
    pool.acquire()
    assert pool.acquire() == Wait(1)
    assert pool.close() == ([1], [])
    assert pool.acquire() == Refuse("closed")
    # In-flight ones are released as stopped, whatever their health, and hand nothing on.
    assert pool.release(1, alive=True, now=4.0) is None
    assert pool.release(2, alive=True, now=4.0) is None
    assert (pool.idle, pool.busy, pool.waiting) == (0, 0, 0)


def test_closing_returns_idle_environments_to_stop() -> None:
    pool = PoolState(limit=None, idle_seconds=60)
    pool.acquire()
    pool.release(1, alive=True, now=0.0)
    assert pool.close() == ([], [Retire(1, 1)])
