"""Measuring an environment as Lambda's sandbox limits it: resident memory, `/tmp` usage, liveness.

`/tmp` limit: the private directory is measured (allocated blocks, now and then) and a function
over `EphemeralStorage` is killed like one over `MemorySize`. Lambda's `/tmp` is a filesystem of
that size whose writes fail with ENOSPC; poller cannot mount one without privileges, and
`RLIMIT_FSIZE` bounds each file (everywhere, not just `/tmp`) rather than their total.

What each read costs decides where and how often it runs (issue 15: an environment may add at
most 1 ms to an invocation): `ProcessProbe.running` (one `waitid`) and `.peak` (one small /proc
file) cost a few µs and run on the event loop at every invocation; `.sample` walks the whole
process tree and `directory_bytes` a whole directory, so they run on a worker thread, paid by
time rather than per call (`LimitWatch`: a call's guard ticks, an audit between calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import psutil

from poller.core.clock import Clock
from poller.functions.environment_state import (
    DeadlineExceeded,
    Ending,
    EnvironmentState,
    MemorySample,
    OutOfMemory,
    StorageExceeded,
)

SAMPLE_SECONDS = 0.05
"""How often memory is sampled while the runtime initialises or invokes (from this long into the
call): a hog allocating 1 GB/s overshoots `MemorySize` by at most ~50 MB before it is caught."""
STORAGE_SECONDS = 0.5
"""`/tmp` is walked at most this often (a walk costs more than a memory sample)."""
PROCFS = os.path.exists("/proc/self/task")
"""Linux: processes are read straight from /proc, without psutil's objects or its process scan."""
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_WAITID = hasattr(os, "waitid")
_EXITED_NOW = (os.WEXITED | os.WNOHANG | os.WNOWAIT) if _WAITID else 0
_MAX_DESCENDANTS = 4096
"""A bound on the tree walk: a fork bomb must not turn one sample into a scan of the machine."""


def _read(path: str, size: int = 4096) -> bytes:
    """One small /proc file (os-level: no buffered file object for a few hundred bytes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def _high_water_mark(status: bytes) -> int:
    """`VmHWM` of a /proc/<pid>/status, in bytes (0 for a kernel without it)."""
    start = status.find(b"VmHWM:")
    if start < 0:
        return 0
    start += 6
    try:
        return int(status[start : status.index(b"kB", start)]) * 1024
    except ValueError:
        return 0


class ProcessProbe:
    """The runtime process and its descendants, as Lambda's cgroup would count them.

    A sample is the resident total now plus the runtime process's own high-water mark (`VmHWM`,
    kept by the kernel): a spike between two samples still shows in the peak, so an invocation
    that briefly overran `MemorySize` is caught, and a short one still reports what it used.

    On Linux, descendants are found from `/proc/<pid>/task/<tid>/children` (the kernel's list of
    each thread's children), so a sample reads only the tree's own files, every time. Elsewhere
    (or a kernel without `CONFIG_PROC_CHILDREN`) psutil finds them by scanning every process on
    the machine, so that list is refreshed only every few samples.
    """

    REFRESH_EVERY = 10

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._root = f"/proc/{pid}"
        self._children_files = PROCFS
        self._process: psutil.Process | None = None
        self._procs: list[psutil.Process] = []
        self._samples = 0
        self._status: int | None = None
        """`/proc/<pid>/status`, kept open and read again with `pread` (cheaper than reopening, and
        tied to this process: once it is reaped reads fail, whoever gets its pid). The event loop's
        only: a worker thread reading it while `close()` runs could read whatever reuses the fd."""
        self._closed = False

    def close(self) -> None:
        """Release the open /proc file; the probe then reports the process gone."""
        self._closed = True
        fd, self._status = self._status, None
        if fd is not None:
            os.close(fd)

    # Cheap, on the event loop -------------------------------------------------------------------

    def running(self) -> bool:
        """It has not exited: it may have exited a moment before asyncio reaps it.

        `waitid(WNOWAIT)` asks the kernel without reaping (asyncio's child watcher still gets the
        status) and reads no file; it needs the process to be poller's child, as a runtime is.
        """
        if self._closed:
            return False
        if _WAITID:
            try:
                return os.waitid(os.P_PID, self._pid, _EXITED_NOW) is None
            except OSError:  # ECHILD: reaped already
                return False
        try:
            return self._psutil().status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def peak(self) -> int:
        """The process's own resident high-water mark in bytes (`VmHWM`); 0 once it is gone.

        Without /proc, its resident size now (psutil), the best figure there is."""
        if self._closed:
            return 0
        if not PROCFS:
            try:
                return int(self._psutil().memory_info().rss)
            except psutil.Error:
                return 0
        try:
            if self._status is None:
                self._status = os.open(f"{self._root}/status", os.O_RDONLY)
            return _high_water_mark(os.pread(self._status, 8192, 0))
        except OSError:
            return 0

    # Blocking (a tree of /proc reads): off the event loop ------------------------------------------

    def sample(self) -> MemorySample:
        """Resident bytes of the process and every descendant, and its peak. Zeros once it is gone."""
        if self._children_files:
            tree = self._tree()
            if tree is not None:
                total = 0
                for pid in tree:
                    with contextlib.suppress(OSError, ValueError, IndexError):
                        total += int(_read(f"/proc/{pid}/statm").split()[1]) * _PAGE
                return MemorySample(total, self._peak_by_path())
            self._children_files = False  # no children files on this kernel: psutil's scan
        return self._sample_psutil()

    def _tree(self) -> list[int] | None:
        """The process and its descendants (pids), or None if this kernel has no children files."""
        try:
            threads = os.listdir(f"{self._root}/task")
        except OSError:
            return []  # gone
        if threads and not os.path.exists(f"{self._root}/task/{threads[0]}/children"):
            return None
        tree, stack = [self._pid], [(self._pid, threads)]
        seen = {self._pid}
        while stack and len(tree) < _MAX_DESCENDANTS:
            pid, tids = stack.pop()
            for tid in tids:
                try:
                    children = _read(f"/proc/{pid}/task/{tid}/children", 65536).split()
                except OSError:
                    continue  # the thread or the process ended meanwhile
                for child in map(int, children):
                    if child in seen:
                        continue
                    seen.add(child)
                    tree.append(child)
                    with contextlib.suppress(OSError):
                        stack.append((child, os.listdir(f"/proc/{child}/task")))
        return tree

    def _sample_psutil(self) -> MemorySample:
        if self._samples % self.REFRESH_EVERY == 0:
            try:
                root = self._psutil()
                self._procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                self._procs = []
        self._samples += 1
        total = 0
        for proc in self._procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return MemorySample(total, self._peak_by_path() if PROCFS else 0)

    def _peak_by_path(self) -> int:
        """`peak()` for a worker thread: by path, never through the loop's open files."""
        try:
            return _high_water_mark(_read(f"{self._root}/status", 8192))
        except OSError:
            return 0

    def _psutil(self) -> psutil.Process:
        if self._process is None:
            self._process = psutil.Process(self._pid)
        return self._process


class LimitWatch:
    """One environment's process tree and `/tmp` against `MemorySize` and `EphemeralStorage`.

    A call shorter than `SAMPLE_SECONDS` costs one read of the kernel's high-water mark after the
    reply (`over_after_reply`), which catches a spike no sample saw; from `SAMPLE_SECONDS` into a
    call, `guard` samples the tree every tick and walks `/tmp` when due. What only the tree and
    `/tmp` show (a child's memory, a file left behind by short calls) is `audit`ed after a reply,
    off the call's path, at most every `STORAGE_SECONDS`. `EnvironmentState` judges every figure.
    """

    def __init__(self, pid: int, tmpdir: Path, state: EnvironmentState, clock: Clock) -> None:
        self.probe = ProcessProbe(pid)
        self._tmpdir = tmpdir
        self._state = state
        self._clock = clock
        self._walk_due = 0.0
        self._auditing = False

    def over_after_reply(self) -> bool:
        """On the loop, after the runtime answered: its high-water mark over `MemorySize`?"""
        return self._state.observe_memory(0, peak=self.probe.peak())

    async def guard(self, deadline: float, alarm: asyncio.Future[Ending]) -> None:
        """The deadline and the limits, every `SAMPLE_SECONDS`, until one ends the call (`alarm`)."""
        while True:
            remaining = deadline - self._clock.monotonic()
            ending = DeadlineExceeded() if remaining <= 0 else await self.measure()
            if ending is not None:
                if not alarm.done():
                    alarm.set_result(ending)
                return
            await asyncio.sleep(min(SAMPLE_SECONDS, max(remaining, 0.001)))

    def claim_audit(self) -> bool:
        """True (and then `audit()` must run) if `/tmp` is due a walk and no audit is under way."""
        if self._auditing or self._clock.monotonic() < self._walk_due:
            return False
        self._auditing = True
        return True

    async def audit(self) -> Ending | None:
        try:
            return await self.measure()
        finally:
            self._auditing = False

    async def measure(self) -> OutOfMemory | StorageExceeded | None:
        """Resident memory of the whole process tree and, when due, `/tmp`: an overrun, or None."""
        sample = await asyncio.to_thread(self.probe.sample)
        if self._state.observe_memory(sample.resident, peak=sample.peak):
            return OutOfMemory()
        if (now := self._clock.monotonic()) >= self._walk_due:
            self._walk_due = now + STORAGE_SECONDS
            if self._state.storage_exceeded(await asyncio.to_thread(directory_bytes, self._tmpdir)):
                return StorageExceeded()
        return None


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
