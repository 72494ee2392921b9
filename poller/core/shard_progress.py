"""Which records of one shard (or partition) are finished, and so where its checkpoint may be.

Records are read in order but finish out of order: under ParallelizationFactor several lanes of a
shard run at once, and filtered-out records finish the moment they are read. A checkpoint may only
pass records that are all finished (DESIGN §3), so the position to store is the last record of the
finished prefix, never simply the last record some batch acknowledged.

Behind a batch that keeps failing, the reader goes on reading records the filter drops (they take
no room in a lane), and other lanes go on finishing theirs. So finished records are kept as runs:
neighbours that are both finished become one, and what is held is at most twice the unfinished
records plus one, however many finished records wait behind them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class _Run:
    """Consecutive records in read order: all finished, or one that is not."""

    last: str
    """The sequence number of the run's last record: the checkpoint once the run is a prefix."""
    records: int = 1
    done: bool = False
    previous: _Run | None = None
    following: _Run | None = None


class ShardProgress:
    """Tickets handed out in read order; `complete` returns the new checkpoint when it moves."""

    __slots__ = ("_first", "_held", "_last", "_next_ticket", "_open", "_records", "watermark")

    def __init__(self, watermark: str | None = None) -> None:
        self.watermark = watermark
        """The last record of the finished prefix: what the store holds, or should."""
        self._first: _Run | None = None
        self._last: _Run | None = None
        self._open: dict[int, _Run] = {}
        """The unfinished records by ticket (each is a run of its own)."""
        self._next_ticket = 0
        self._records = 0
        self._held = 0

    def read(self, sequence_number: str) -> int:
        """Register the next record read; returns its ticket."""
        run = _Run(sequence_number, previous=self._last)
        if self._last is None:
            self._first = run
        else:
            self._last.following = run
        self._last = run
        ticket = self._next_ticket
        self._next_ticket += 1
        self._open[ticket] = run
        self._records += 1
        self._held += 1
        return ticket

    def complete(self, ticket: int) -> str | None:
        """Mark a record finished; returns the new watermark if the finished prefix grew, else None."""
        run = self._open.pop(ticket, None)
        if run is None:
            if ticket >= self._next_ticket or ticket < 0:
                raise ValueError(f"ticket {ticket} was never handed out")
            return None  # finished before: nothing changes
        run.done = True
        before = run.previous
        if before is not None and before.done:
            self._absorb(before, run)
            run = before
        after = run.following
        if after is not None and after.done:
            self._absorb(run, after)
        if run is not self._first:
            return None
        self.watermark = run.last
        self._first = run.following
        if self._first is None:
            self._last = None
        else:
            self._first.previous = None
        self._records -= run.records
        self._held -= 1
        return self.watermark

    def _absorb(self, into: _Run, run: _Run) -> None:
        """`run` directly follows `into`; both are finished: one run now."""
        into.last = run.last
        into.records += run.records
        into.following = run.following
        if run.following is None:
            self._last = into
        else:
            run.following.previous = into
        self._held -= 1

    @property
    def outstanding(self) -> int:
        """Records read and not yet finished (or finished behind an unfinished one)."""
        return self._records

    @property
    def held(self) -> int:
        """Entries kept in memory: at most 2 × the unfinished records + 1."""
        return self._held
