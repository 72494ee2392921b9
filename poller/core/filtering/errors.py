"""The one error a filter pattern can raise (spec §7.6)."""

from __future__ import annotations

INVALID_PATTERN = "Invalid filter pattern definition."
"""AWS's `InvalidParameterValueException` message for every malformed pattern (spec §1.6, §7.6)."""


class FilterPatternError(ValueError):
    """A pattern Lambda would refuse at create/update.

    `str()` is AWS's message verbatim so callers can surface it unchanged; AWS never says *why*,
    so `.detail` carries our own explanation (and `.index` which filter, when compiling a set).
    """

    def __init__(self, detail: str, *, index: int | None = None) -> None:
        super().__init__(INVALID_PATTERN)
        self.detail = detail
        self.index = index

    def at(self, index: int) -> FilterPatternError:
        """The same error, located at `FilterCriteria.Filters[index]`."""
        return FilterPatternError(self.detail, index=index)

    def __repr__(self) -> str:
        where = "" if self.index is None else f", index={self.index}"
        return f"FilterPatternError({self.detail!r}{where})"
