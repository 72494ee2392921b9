"""Measuring an environment as Lambda's sandbox limits it: resident memory and `/tmp` usage.

`/tmp` limit: the private directory is measured (allocated blocks, every few memory samples) and a
function over `EphemeralStorage` is killed like one over `MemorySize`. Lambda's `/tmp` is a
filesystem of that size whose writes fail with ENOSPC; poller cannot mount one without privileges,
and `RLIMIT_FSIZE` bounds each file (everywhere, not just `/tmp`) rather than their total.

Both probes block on /proc or the filesystem: the environment runs them off the event loop.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil

from poller.functions.environment_state import MemorySample


class MemoryProbe:
    """Resident memory of a process and all its descendants, as Lambda's cgroup would count it.

    A sample is the resident total now plus the runtime process's own high-water mark (`VmHWM`,
    kept by the kernel): a spike between two samples still shows in the peak, so an invocation
    that briefly overran `MemorySize` is caught, and a short one still reports what it used.
    Reading one process's memory is one small /proc read; finding its descendants scans every
    process on the machine, so the list of descendants is refreshed only every few samples.
    """

    REFRESH_EVERY = 10

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._procs: list[psutil.Process] = []
        self._samples = 0

    def sample(self) -> MemorySample:
        """Blocking (/proc reads): run it off the event loop. Zeros once the process is gone."""
        if self._samples % self.REFRESH_EVERY == 0:
            try:
                root = psutil.Process(self._pid)
                self._procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                self._procs = []
        self._samples += 1
        total = 0
        for proc in self._procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return MemorySample(total, _peak_resident(self._pid))


def _peak_resident(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return 0  # not Linux, or already gone


def directory_bytes(path: Path) -> int:
    """Bytes allocated under `path` (blocks, so a sparse file counts what it really uses)."""
    total = 0
    stack = [str(path)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
    return total


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie: it may have exited a moment before asyncio reaps it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
