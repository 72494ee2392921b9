"""`file:///path.jsonl` (extension, DESIGN §1.4): failure records as JSON lines on local disk.

Each record is appended as one line and fsync'd before `deliver` returns, so a record the caller
has checkpointed past survives a crash. The file is opened per record: failure records are rare,
and reopening follows a file that was rotated or removed.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import orjson

from poller.destinations.base import DeliveryFailed, FailureDelivery


def _append_line(path: Path, line: bytes) -> None:
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as sink:
        size = sink.seek(0, os.SEEK_END)
        if size:
            sink.seek(size - 1)
            # A crash mid-write leaves a torn last line; start on a fresh line so only that one
            # record is unreadable, not the next one glued onto it.
            if sink.read(1) != b"\n":
                line = b"\n" + line
        sink.write(line)
        sink.flush()
        os.fsync(sink.fileno())
    if created:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # A new file's directory entry is durable only once the directory itself is synced.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileDestination:
    kind: str = "file"

    def __init__(self, path: Path) -> None:
        self._path = path
        # Appends from concurrent deliveries run in worker threads; one at a time keeps the torn
        # line check and the write together.
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self._path

    async def deliver(self, delivery: FailureDelivery) -> None:
        line = orjson.dumps(delivery.record, option=orjson.OPT_APPEND_NEWLINE)
        async with self._lock:
            try:
                await asyncio.to_thread(_append_line, self._path, line)
            except OSError as exc:
                code = errno.errorcode.get(exc.errno) if exc.errno is not None else None
                raise DeliveryFailed(f"appending to {self._path} failed: {exc}", code=code) from exc

    async def aclose(self) -> None:
        # Nothing is held open between deliveries.
        return None
