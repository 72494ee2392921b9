"""What a function's environment pool decides, without I/O: which environment serves an invocation.

Lambda's rules (DESIGN §1.5.1, spec §2.2): one invocation at a time per environment; an invocation
that finds no idle environment cold-starts a new one, up to `ReservedConcurrentExecutions`
environments in all (idle ones included), beyond which it waits for one to free up; an environment
that was reset (timeout, exit, out of memory) is never reused, and the next cold start gets the
`/tmp` it left ("scratch"), as Lambda's reset keeps `/tmp`; idle environments retire after
`idle_seconds`, and so does scratch nobody has claimed for that long.

An invocation whose environment's runtime exited before taking it (`replace`) is not failed: it
keeps its place and cold-starts a replacement, as Lambda would have given it a fresh environment.

The most recently used idle environment is reused first, so when load drops the others stay idle
long enough to retire.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class UseIdle:
    env_id: int


@dataclass(frozen=True, slots=True)
class ColdStart:
    env_id: int
    scratch: int
    """The id of the `/tmp` directory to give it: a reset environment's, else a new one."""


@dataclass(frozen=True, slots=True)
class Wait:
    token: int


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: Literal["throttled", "closed"]


Assignment = UseIdle | ColdStart


@dataclass(frozen=True, slots=True)
class Handoff:
    """A released (or replaced) environment goes straight to the waiter holding `token`."""

    token: int
    assignment: Assignment


@dataclass(frozen=True, slots=True)
class Retire:
    env_id: int | None
    """None: only unclaimed scratch is retired."""
    scratch: int


@dataclass
class _Slot:
    scratch: int
    busy: bool = True  # starting or invoking
    idle_since: float = 0.0


class PoolState:
    def __init__(self, *, limit: int | None, idle_seconds: float) -> None:
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.closing = False
        self._slots: dict[int, _Slot] = {}
        self._idle: list[int] = []  # most recently released last
        self._waiters: deque[int] = deque()
        self._free_scratch: list[tuple[int, float]] = []  # (scratch, freed at), newest last
        self._next_env = 0
        self._next_scratch = 0
        self._next_token = 0

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def busy(self) -> int:
        return len(self._slots) - len(self._idle)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def acquire(self) -> UseIdle | ColdStart | Wait | Refuse:
        if self.closing:
            return Refuse("closed")
        if self.limit == 0:
            return Refuse("throttled")  # ReservedConcurrentExecutions: 0 throttles every invoke, as Lambda
        if self._idle:
            return self._use(self._idle.pop())
        if self.limit is None or len(self._slots) < self.limit:
            return self._cold_start()
        self._next_token += 1
        self._waiters.append(self._next_token)
        return Wait(self._next_token)

    def cancel(self, token: int) -> None:
        """A waiter gave up before it was handed anything."""
        if token in self._waiters:
            self._waiters.remove(token)

    def release(self, env_id: int, *, alive: bool, now: float) -> Handoff | None:
        """The invocation on `env_id` ended (or its start was abandoned); `alive` = reusable."""
        slot = self._slots[env_id]
        if alive and not self.closing:
            if self._waiters:
                return Handoff(self._waiters.popleft(), UseIdle(env_id))
            slot.busy = False
            slot.idle_since = now
            self._idle.append(env_id)
            return None
        del self._slots[env_id]
        self._free_scratch.append((slot.scratch, now))
        if self._waiters and not self.closing:
            return Handoff(self._waiters.popleft(), self._cold_start())
        return None

    def replace(self, env_id: int, *, now: float) -> ColdStart | None:
        """`env_id`'s runtime exited before it took its invocation: the same invocation gets a new
        environment in its place (with the `/tmp` the dead one leaves), ahead of any waiter, since
        it was admitted already and the cap is unchanged. None while closing: the slot is freed."""
        if self.closing:
            self.release(env_id, alive=False, now=now)
            return None
        slot = self._slots.pop(env_id)
        self._free_scratch.append((slot.scratch, now))
        return self._cold_start()

    def retire_due(self, now: float) -> list[Retire]:
        """Idle environments and unclaimed scratch past `idle_seconds`, removed from the pool."""
        due: list[Retire] = []
        for env_id in [e for e in self._idle if now - self._slots[e].idle_since >= self.idle_seconds]:
            self._idle.remove(env_id)
            due.append(Retire(env_id, self._slots.pop(env_id).scratch))
        kept = [(s, at) for s, at in self._free_scratch if now - at < self.idle_seconds]
        due += [Retire(None, s) for s, at in self._free_scratch if now - at >= self.idle_seconds]
        self._free_scratch = kept
        return due

    def next_retirement(self) -> float | None:
        """When `retire_due` will next have something to say (monotonic), if ever."""
        times = [self._slots[e].idle_since for e in self._idle] + [at for _, at in self._free_scratch]
        return min(times) + self.idle_seconds if times else None

    def close(self) -> tuple[list[int], list[Retire]]:
        """Stop handing out environments: the waiters to refuse, and the idle ones to stop now.

        Busy environments finish their invocation and are released as dead (`alive` is ignored).
        """
        self.closing = True
        waiters, self._waiters = list(self._waiters), deque()
        idle = [Retire(e, self._slots.pop(e).scratch) for e in self._idle]
        self._idle = []
        return waiters, idle

    def _use(self, env_id: int) -> UseIdle:
        self._slots[env_id].busy = True
        return UseIdle(env_id)

    def _cold_start(self) -> ColdStart:
        if self._free_scratch:
            scratch, _ = self._free_scratch.pop()
        else:
            self._next_scratch += 1
            scratch = self._next_scratch
        self._next_env += 1
        self._slots[self._next_env] = _Slot(scratch)
        return ColdStart(self._next_env, scratch)
