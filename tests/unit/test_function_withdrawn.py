"""An invocation its runtime never took is re-run, not failed (DESIGN §1.5.1; spec §2.2).

aws-lambda-ric posts `/error` for an uncaught exception and then exits; an invocation handed to the
dying process in that moment was never the function's. The pure cores decide: the environment
withdraws it (`EnvironmentState.withdraw`) and the pool gives it a replacement in its place
(`PoolState.replace`).
"""

from __future__ import annotations

import pytest

from poller.core.clock import ManualClock
from poller.core.outcome import FunctionFailed
from poller.functions.environment_state import (
    DeadlineExceeded,
    EnvironmentState,
    Exited,
    OutOfMemory,
    Responded,
    Withdrawn,
)
from poller.functions.pool_state import ColdStart, Handoff, PoolState, UseIdle, Wait
from poller.functions.runtime_state import RuntimeSession


def warm(clock: ManualClock) -> EnvironmentState:
    """An environment that initialised and has served one invocation."""
    state = EnvironmentState(memory_size_mb=128, timeout_seconds=3, ephemeral_storage_mb=512, clock=clock)
    state.begin_init()
    state.init_succeeded()
    state.begin_invocation("first")
    state.finish(Responded(b"1"))
    return state


def test_an_exit_before_any_next_delivered_it_withdraws_the_invocation() -> None:
    clock = ManualClock()
    state = warm(clock)
    state.begin_invocation("second")
    clock.advance(0.05)
    assert state.withdraw(Exited(129), delivered=False) == Withdrawn("second", 129)
    assert state.reset  # the environment is never used again
    # The invocation is over here (no outcome, no report): nothing is left in flight.
    state.begin_invocation("third")


def test_an_exit_after_a_next_delivered_it_is_the_functions_exit_error() -> None:
    state = warm(ManualClock())
    state.begin_invocation("second")
    assert state.withdraw(Exited(1), delivered=True) is None
    finished = state.finish(Exited(1))
    assert isinstance(finished.outcome, FunctionFailed)
    assert finished.outcome.error_type == "Runtime.ExitError"


def test_a_cold_environments_first_invocation_is_never_withdrawn() -> None:
    """Init ends at the first `/next`, which takes the first invocation at once: a runtime that dies
    before taking it fails it, which also bounds re-runs (a replacement is always cold) to one."""
    clock = ManualClock()
    state = EnvironmentState(memory_size_mb=128, timeout_seconds=3, ephemeral_storage_mb=512, clock=clock)
    state.begin_init()
    state.init_succeeded()
    state.begin_invocation("first")
    assert state.withdraw(Exited(0), delivered=False) is None
    assert not state.reset
    finished = state.finish(Exited(0))
    assert isinstance(finished.outcome, FunctionFailed)
    assert finished.report.init_duration_ms is not None  # still billed as the cold start


@pytest.mark.parametrize("ending", [DeadlineExceeded(), OutOfMemory(), Responded(b"x")])
def test_only_an_exit_withdraws(ending: object) -> None:
    state = warm(ManualClock())
    state.begin_invocation("second")
    assert state.withdraw(ending, delivered=False) is None  # type: ignore[arg-type]


def test_the_replacement_takes_the_invocations_place_ahead_of_waiters_with_its_tmp() -> None:
    pool = PoolState(limit=1, idle_seconds=60)
    assert pool.acquire() == ColdStart(env_id=1, scratch=1)
    pool.release(1, alive=True, now=0.0)
    assert pool.acquire() == UseIdle(1)
    assert pool.acquire() == Wait(1)
    # Env 1 died before taking its invocation: that invocation gets env 2 (same /tmp), not the waiter.
    assert pool.replace(1, now=1.0) == ColdStart(env_id=2, scratch=1)
    assert (pool.busy, pool.waiting) == (1, 1)  # the cap of 1 still holds
    assert pool.release(2, alive=True, now=2.0) == Handoff(1, UseIdle(2))


def test_while_closing_a_withdrawn_invocation_gets_nothing_and_frees_its_slot() -> None:
    pool = PoolState(limit=None, idle_seconds=60)
    pool.acquire()
    pool.close()
    assert pool.replace(1, now=1.0) is None
    assert (pool.idle, pool.busy) == (0, 0)


def test_the_session_knows_whether_a_next_delivered_an_invocation() -> None:
    """What `withdraw` is told: queued behind a runtime that never polls again is not delivered."""
    s = RuntimeSession(clock=ManualClock())
    s.next_requested()
    s.invoke("first", b"{}", 1_700_000_003_000, "arn:aws:lambda:r:1:function:f", "Root=1-0-0")
    assert not s.delivered("first")
    assert s.parked_next() is not None
    assert s.delivered("first")
    s.response("first", b"1", content_type="application/json")
    # The runtime posted its answer and never asks `/next` again (it is about to exit).
    s.invoke("second", b"{}", 1_700_000_003_000, "arn:aws:lambda:r:1:function:f", "Root=1-0-0")
    s.process_exited()
    assert s.delivered("first")
    assert not s.delivered("second")
