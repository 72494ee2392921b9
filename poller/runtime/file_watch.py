"""Noticing that the mapping files changed, for hot reload (`reload.py`).

A Kubernetes ConfigMap mounted as a directory is updated by swapping its `..data` symlink, so
inotify on the files themselves misses it. Instead the watched paths (the settings file and the
settings' `mappings:` entries) are fingerprinted every second: for each mapping file the loader
would read, its symlink target and a hash of the content it resolves to. A swap of `..data`
changes the content behind `m.yaml -> ..data/m.yaml`, and touching a file without changing it
changes nothing. A change is acted on once it has held still for one poll, so a file caught
half-written is not reported as broken.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from poller.config.loader import MAPPING_SUFFIXES

Snapshot = Mapping[str, str]
"""Watched path → fingerprint (what it is, where it links to, a hash of what it holds)."""


class ChangeDetector:
    """Turns the snapshots of successive polls into "reload now": once per change, after it settles.

    A change is reported when a snapshot differs from the last one acted on and equals the one
    before it, so a file seen half-written (or a directory half-copied) is not loaded until the
    writer is done.
    """

    def __init__(self, baseline: Snapshot) -> None:
        self.applied: Snapshot = baseline
        self.last: Snapshot = baseline

    def observe(self, snapshot: Snapshot) -> bool:
        settled = snapshot == self.last
        self.last = snapshot
        if settled and snapshot != self.applied:
            self.applied = snapshot
            return True
        return False

    def accept(self, snapshot: Snapshot) -> None:
        """A reload happened for another reason (SIGHUP) with the files as they are now."""
        self.applied = self.last = snapshot


def changed_paths(before: Snapshot, after: Snapshot) -> tuple[str, ...]:
    """The watched paths that appeared, disappeared or changed between two snapshots (for logs)."""
    return tuple(sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p)))


# -- watching (the I/O) ----------------------------------------------------------------------------


def watched_paths(settings_file: Path | None, mapping_paths: Iterable[Path], base_dir: Path) -> list[Path]:
    """The settings file and each `mappings:` entry, as the loader resolves them."""
    paths = [settings_file] if settings_file is not None else []
    paths += [Path(os.path.normpath(p if p.is_absolute() else base_dir / p)) for p in mapping_paths]
    return paths


def take_snapshot(paths: Iterable[Path]) -> dict[str, str]:
    """Fingerprint each path and, for a directory, each entry the loader would read in it."""
    snapshot: dict[str, str] = {}
    for path in paths:
        snapshot[str(path)] = fingerprint(path)
        if not path.is_dir():
            continue
        try:
            children = sorted(path.iterdir())
        except OSError as exc:
            snapshot[str(path)] = f"unlistable:{exc.errno}"
            continue
        for child in children:
            # As the loader: dot entries (`..data`, `..2026_…`) are reached through the symlinked
            # files, whose content changes when `..data` is swapped.
            if not child.name.startswith(".") and child.suffix in MAPPING_SUFFIXES:
                snapshot[str(child)] = fingerprint(child)
    return snapshot


def fingerprint(path: Path) -> str:
    """What a path is now: missing, a directory, or a file's content hash (through symlinks)."""
    parts: list[str] = []
    try:
        if stat.S_ISLNK(path.lstat().st_mode):
            parts.append(f"link:{os.readlink(path)}")
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            parts.append("dir")
        elif stat.S_ISREG(mode):
            parts.append("sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            parts.append("other")
    except FileNotFoundError:
        parts.append("missing")
    except OSError as exc:
        parts.append(f"error:{exc.errno}")
    return " ".join(parts)
