"""Which records of one shard (or partition) are finished, and so where its checkpoint may be.

Records are read in order but finish out of order: under ParallelizationFactor several lanes of a
shard run at once, and filtered-out records finish the moment they are read. A checkpoint may only
pass records that are all finished (DESIGN §3), so the position to store is the last record of the
finished prefix, never simply the last record some batch acknowledged.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Entry:
    sequence_number: str
    done: bool = False


@dataclass(slots=True)
class ShardProgress:
    """Tickets handed out in read order; `complete` returns the new checkpoint when it moves."""

    watermark: str | None = None
    """The last record of the finished prefix: what the store holds, or should."""
    _entries: deque[_Entry] = field(default_factory=deque)
    _base: int = 0
    """The ticket of `_entries[0]`."""

    def read(self, sequence_number: str) -> int:
        """Register the next record read; returns its ticket."""
        self._entries.append(_Entry(sequence_number))
        return self._base + len(self._entries) - 1

    def complete(self, ticket: int) -> str | None:
        """Mark a record finished; returns the new watermark if the finished prefix grew, else None."""
        index = ticket - self._base
        if index < 0:
            return None  # finished before: a prefix already passed, nothing to move
        if index >= len(self._entries):
            raise ValueError(f"ticket {ticket} was never handed out")
        self._entries[index].done = True
        moved = False
        while self._entries and self._entries[0].done:
            self.watermark = self._entries.popleft().sequence_number
            self._base += 1
            moved = True
        return self.watermark if moved else None

    @property
    def outstanding(self) -> int:
        """Records read and not yet finished (or finished behind an unfinished one)."""
        return len(self._entries)
