"""Hot reload of the mappings (DESIGN §2, ops anchors §7.4): notice a change, decide, apply.

A Kubernetes ConfigMap mounted as a directory is updated by swapping its `..data` symlink, so
inotify on the files themselves misses it. Instead the watched paths (the settings file and the
settings' `mappings:` entries) are fingerprinted every second: for each mapping file the loader
would read, its symlink target and a hash of the content it resolves to. A swap of `..data`
changes the content behind `m.yaml -> ..data/m.yaml`, and touching a file without changing it
changes nothing. A change is acted on once it has held still for one poll, so a file caught
half-written is not reported as broken; SIGHUP reloads at once.

A reload loads every mapping again and is all or nothing: if any file has an error, the running
set stays as it is and the problems are reported (/status `reload`, the `config_reloads_total` and
`config_last_reload_success` metrics, logs). Otherwise mappings are compared by Name with the
running set: removed and changed ones drain (the shutdown's two phases, within the drain budget),
added and changed ones start, and unchanged ones keep their supervisor untouched. Settings other
than `mappings` are not hot-reloaded: a change there is logged as needing a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import structlog

from poller.config import LoadedConfig, Location, Problem, ResolvedMapping, Settings
from poller.config.loader import MAPPING_SUFFIXES
from poller.core.clock import Clock
from poller.observability.metrics import Metrics
from poller.runtime.status import ReloadStatus, ServiceStatus
from poller.runtime.supervisor import SupervisorPool

log = structlog.get_logger("poller.reload")

Trigger = Literal["startup", "watch", "signal"]
Snapshot = Mapping[str, str]
"""Watched path → fingerprint (what it is, where it links to, a hash of what it holds)."""

_NOWHERE = Location(None, None)


# -- deciding (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MappingDiff:
    """A valid new set of mappings compared with the running one, by Name."""

    added: tuple[ResolvedMapping, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[ResolvedMapping, ...] = ()
    """The new values of mappings whose settings differ: they drain and start again."""
    unchanged: tuple[ResolvedMapping, ...] = ()
    """The new values (perhaps at a new location) of mappings whose supervisor stays as it is."""

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> dict[str, list[str]]:
        return {
            "added": [m.name for m in self.added],
            "removed": list(self.removed),
            "changed": [m.name for m in self.changed],
        }


@dataclass(frozen=True, slots=True)
class Rejected:
    """A new set with errors: nothing changes, the running set stays."""

    problems: tuple[Problem, ...]


def same_mapping(a: ResolvedMapping, b: ResolvedMapping) -> bool:
    """Equal in everything but where they were written: moving lines or files changes nothing."""
    return type(a) is type(b) and dataclasses.replace(a, location=_NOWHERE) == dataclasses.replace(
        b, location=_NOWHERE
    )


def diff_mappings(running: Iterable[ResolvedMapping], wanted: Iterable[ResolvedMapping]) -> MappingDiff:
    """What to start, drain, restart and leave alone to go from `running` to `wanted`."""
    before = {m.name: m for m in running}
    after = {m.name: m for m in wanted}
    added: list[ResolvedMapping] = []
    changed: list[ResolvedMapping] = []
    unchanged: list[ResolvedMapping] = []
    for name, mapping in after.items():
        old = before.get(name)
        if old is None:
            added.append(mapping)
        elif same_mapping(old, mapping):
            unchanged.append(mapping)
        else:
            changed.append(mapping)
    removed = tuple(name for name in before if name not in after)
    return MappingDiff(tuple(added), removed, tuple(changed), tuple(unchanged))


def plan_reload(
    running: Iterable[ResolvedMapping], wanted: Iterable[ResolvedMapping], problems: Iterable[Problem]
) -> MappingDiff | Rejected:
    """The diff to apply, or `Rejected` if any file has an error (warnings do not count)."""
    errors = tuple(p for p in problems if p.severity == "error")
    if errors:
        return Rejected(errors)
    return diff_mappings(running, wanted)


def restart_required(running: Settings, loaded: Settings) -> tuple[str, ...]:
    """The settings sections, other than `mappings`, that differ: they apply only after a restart."""
    return tuple(
        name
        for name in type(running).model_fields
        if name != "mappings" and getattr(running, name) != getattr(loaded, name)
    )


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


# -- applying ----------------------------------------------------------------------------------------


@dataclass
class Reloader:
    """Watches the mapping files and applies valid changes to the running set.

    `running` (Name → mapping) is shared with the service; `start` builds a mapping's status and,
    if it is enabled, its supervisor in `pool`; `load` reads settings and mappings again (in a
    thread). Reloads run one at a time, in the one `watch` task.
    """

    load: Callable[[], LoadedConfig]
    running: dict[str, ResolvedMapping]
    start: Callable[[ResolvedMapping], None]
    pool: SupervisorPool
    status: ServiceStatus
    metrics: Metrics
    settings: Settings
    """The settings the service runs with (only `mappings` is hot-reloaded)."""
    settings_file: Path | None
    base_dir: Path
    clock: Clock
    stopping: asyncio.Event
    interval_seconds: float = 1.0
    requested: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    mapping_paths: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        self.mapping_paths = self.mapping_paths or self.settings.mappings
        self.detector: ChangeDetector | None = None

    async def prime(self) -> ChangeDetector:
        """Take the first snapshot: changes from here on are noticed (call before start-up completes)."""
        self.detector = ChangeDetector(await asyncio.to_thread(take_snapshot, self._paths()))
        return self.detector

    def request(self) -> None:
        """Reload as soon as possible (SIGHUP)."""
        self.requested.set()

    def record_startup(self, problems: Sequence[Problem]) -> None:
        """The first load's outcome, so /status and the gauge say whether every file loaded."""
        ok = not any(p.severity == "error" for p in problems)
        at = self.clock.wall()
        self.metrics.config_loaded(ok=ok, at=at, reload=False)
        self.status.reload = ReloadStatus(
            ok=ok, trigger="startup", at=_iso(at), problems=tuple(str(p) for p in problems)
        )

    def _paths(self) -> list[Path]:
        return watched_paths(self.settings_file, self.mapping_paths, self.base_dir)

    async def watch(self) -> None:
        """Poll the watched paths and reload on a settled change or a request, until stopping."""
        detector = self.detector or await self.prime()
        while not self.stopping.is_set():
            with suppress(TimeoutError):
                async with asyncio.timeout(self.interval_seconds):
                    await self.requested.wait()
            snapshot = await asyncio.to_thread(take_snapshot, self._paths())
            before = detector.applied
            trigger: Trigger
            if self.requested.is_set():
                self.requested.clear()
                detector.accept(snapshot)
                trigger = "signal"
            elif detector.observe(snapshot):
                trigger = "watch"
            else:
                continue
            log.info("config_reload_started", trigger=trigger, changed=list(changed_paths(before, snapshot)))
            try:
                await self.reload(trigger)
            except Exception as exc:  # a bug here must not take the running mappings down
                log.exception("config_reload_error", trigger=trigger, error=str(exc)[:300])
                self._record(ok=False, trigger=trigger, problems=(f"internal error: {exc}",))

    async def reload(self, trigger: Trigger) -> None:
        """Load everything again; apply the difference, or keep the running set on any error."""
        if self.stopping.is_set():
            return
        loaded = await asyncio.to_thread(self.load)
        if self.stopping.is_set():
            return  # the shutdown began while the files were read
        plan = plan_reload(self.running.values(), loaded.mappings, loaded.problems)
        if isinstance(plan, Rejected):
            for problem in loaded.problems:
                (log.error if problem.severity == "error" else log.warning)(
                    "config_problem", problem=str(problem)
                )
            log.error(
                "config_reload_failed",
                trigger=trigger,
                errors=len(plan.problems),
                kept=sorted(self.running),
            )
            self._record(ok=False, trigger=trigger, problems=tuple(str(p) for p in loaded.problems))
            return
        sections = restart_required(self.settings, loaded.settings)
        if sections:
            log.warning("settings_change_needs_restart", sections=list(sections))
        self.mapping_paths = loaded.settings.mappings
        await self._apply(plan)
        log.info(
            "config_reloaded",
            trigger=trigger,
            **plan.summary(),
            unchanged=len(plan.unchanged),
        )
        self._record(
            ok=True,
            trigger=trigger,
            problems=tuple(str(p) for p in loaded.problems),
            diff=plan,
            restart_required=sections,
        )

    async def _apply(self, diff: MappingDiff) -> None:
        # Checked with no await before the starts below: once the shutdown has begun draining,
        # nothing new may start (the task group would wait for it forever).
        if self.stopping.is_set():
            return
        leaving = [*diff.removed, *(m.name for m in diff.changed)]
        for name in diff.removed:
            self._transition(name, "Deleting")
        for mapping in diff.changed:
            self._transition(mapping.name, "Updating")
        for mapping in diff.unchanged:
            self.running[mapping.name] = mapping  # a new location at most; its supervisor stays
        for mapping in diff.added:
            log.info("mapping_added", mapping=mapping.name)
            self.start(mapping)
        if leaving:
            for name in leaving:
                reason = "removed" if name in diff.removed else "changed"
                log.info("mapping_draining", mapping=name, reason=reason)
            abandoned = await self.pool.drain(leaving, self.settings.shutdown.drain_seconds)
            log.info("mapping_drain_finished", mappings=leaving, abandoned=abandoned)
        for name in diff.removed:
            self.running.pop(name, None)
            self.status.mappings.pop(name, None)
            self.metrics.forget(name)
        if self.stopping.is_set():
            return  # shutting down: the changed mappings stay stopped
        for mapping in diff.changed:
            log.info("mapping_restarting", mapping=mapping.name)
            self.start(mapping)

    def _transition(self, name: str, state: str) -> None:
        status = self.status.mappings.get(name)
        if status is not None and status.state != "Disabled":
            status.transition(state)

    def _record(
        self,
        *,
        ok: bool,
        trigger: Trigger,
        problems: tuple[str, ...],
        diff: MappingDiff | None = None,
        restart_required: tuple[str, ...] = (),
    ) -> None:
        at = self.clock.wall()
        self.metrics.config_loaded(ok=ok, at=at)
        summary = diff.summary() if diff is not None else {}
        self.status.reload = ReloadStatus(
            ok=ok,
            trigger=trigger,
            at=_iso(at),
            problems=problems,
            added=tuple(summary.get("added", ())),
            removed=tuple(summary.get("removed", ())),
            changed=tuple(summary.get("changed", ())),
            restart_required=restart_required,
            last_success_at=_iso(at) if ok else self._last_success_at(),
        )

    def _last_success_at(self) -> str | None:
        previous = self.status.reload
        if previous is None:
            return None
        return previous.at if previous.ok else previous.last_success_at


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
