"""Splitting a runtime's stdout/stderr into log lines, each of bounded length (DESIGN §1.8).

Split on `\\n` only: the Python client joins a multi-line error report with `\\r` into one line, and
Node's turns embedded newlines into `\\r`, so each runtime log record stays one line (spec §3.2).
A line longer than the bound is cut into pieces rather than buffered without limit: a function that
writes megabytes without a newline must not grow poller's memory.
"""

from __future__ import annotations

MAX_LINE_BYTES = 16 * 1024


class LineSplitter:
    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_bytes
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        """The complete lines `chunk` ends (without their `\\n`), decoded leniently."""
        self._pending += chunk
        lines: list[str] = []
        while True:
            cut = self._pending.find(b"\n", 0, self._max + 1)
            if cut >= 0:
                lines.append(_text(self._pending[:cut]))
                del self._pending[: cut + 1]
            elif len(self._pending) >= self._max:
                lines.append(_text(self._pending[: self._max]))
                del self._pending[: self._max]
            else:
                return lines

    def flush(self) -> list[str]:
        """What is left when the stream ends: a last line without its newline."""
        rest, self._pending = self._pending, bytearray()
        return [_text(rest)] if rest else []


def _text(raw: bytes | bytearray) -> str:
    return bytes(raw).removesuffix(b"\r").decode("utf-8", "replace")
