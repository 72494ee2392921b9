"""Hot reload of the mappings (DESIGN §2, ops anchors §7.4): notice a change, decide, apply.

The mapping files are polled for changes (`file_watch`: settled changes only, ConfigMap symlink
swaps included); SIGHUP reloads at once.

A reload loads every mapping again and is all or nothing: if any file has an error, the running
set stays as it is and the problems are reported (/status `reload`, the `config_reloads_total` and
`config_last_reload_success` metrics, logs). Otherwise mappings are compared by Name with the
running set: removed and changed ones drain (the shutdown's two phases, within the drain budget),
added and changed ones start, and unchanged ones keep their supervisor untouched. Settings other
than `mappings` are not hot-reloaded: a change there is logged as needing a restart.

The watcher itself never stops the service: if the files cannot even be looked at (EACCES, EIO on
the mount), the failure is logged and counted (`config_watch_errors_total`) and the watch retries
with backoff, while the running mappings carry on as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import structlog

from poller.config import LoadedConfig, Location, Problem, ResolvedMapping, Settings
from poller.core.clock import Clock
from poller.observability.metrics import Metrics
from poller.observability.status import ReloadStatus, ServiceStatus
from poller.runtime.file_watch import ChangeDetector, Snapshot, changed_paths, take_snapshot, watched_paths
from poller.runtime.supervisor import SupervisorPool

log = structlog.get_logger("poller.reload")

Trigger = Literal["startup", "watch", "signal"]

_NOWHERE = Location(None, None)

WATCH_BACKOFF_MAX_SECONDS = 30.0
"""Longest pause between attempts while the watched paths cannot be read."""


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
    snapshot: Callable[[Iterable[Path]], Snapshot] = take_snapshot
    """How the watched paths are fingerprinted (runs in a thread)."""
    on_loaded: Callable[[LoadedConfig], None] = lambda loaded: None
    """Told of every load that is applied (the declared functions follow the files)."""
    kept: Callable[[], Sequence[ResolvedMapping]] = lambda: ()
    """Mappings that do not come from the files (made through the Lambda API, DESIGN §1.9): a
    reload of the files leaves them running."""
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    """Held while a change is planned and applied, so file reloads and API changes take turns."""

    def __post_init__(self) -> None:
        self.mapping_paths = self.mapping_paths or self.settings.mappings
        self.detector: ChangeDetector | None = None

    async def prime(self) -> ChangeDetector:
        """Take the first snapshot: changes from here on are noticed (call before start-up completes).

        If the paths cannot be read now, the baseline is empty: the first snapshot that can be taken
        then counts as a change, so a reload picks up whatever the files say by then.
        """
        try:
            baseline = await self._take_snapshot()
        except Exception as exc:
            self._watch_failed(exc, failures=1, retry_in=self.interval_seconds)
            baseline = {}
        self.detector = ChangeDetector(baseline)
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

    async def _take_snapshot(self) -> Snapshot:
        return await asyncio.to_thread(self.snapshot, self._paths())

    async def watch(self) -> None:
        """Poll the watched paths and reload on a settled change or a request, until stopping.

        Never raises (but for cancellation): it runs beside every mapping in the service's task
        group, where an exception would stop them all.
        """
        detector = self.detector or await self.prime()
        failures = 0
        while not self.stopping.is_set():
            with suppress(TimeoutError):
                async with asyncio.timeout(self.interval_seconds):
                    await self.requested.wait()
            try:
                await self._poll(detector)
            except Exception as exc:
                failures += 1
                # A SIGHUP that came meanwhile stays requested, so it is served once the paths read.
                delay = min(self.interval_seconds * 2 ** (failures - 1), WATCH_BACKOFF_MAX_SECONDS)
                self._watch_failed(exc, failures=failures, retry_in=delay)
                with suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.stopping.wait()
            else:
                if failures:
                    log.info("config_watch_recovered", failures=failures)
                failures = 0

    def _watch_failed(self, exc: Exception, *, failures: int, retry_in: float) -> None:
        self.metrics.config_watch_errors.inc()
        log.error(
            "config_watch_error",
            error=str(exc)[:300],
            errno=getattr(exc, "errno", None),
            failures=failures,
            retry_in_s=round(retry_in, 3),
            # An OSError is the file system's doing; anything else is a bug worth its traceback.
            exc_info=not isinstance(exc, OSError),
        )

    async def _poll(self, detector: ChangeDetector) -> None:
        """One look at the watched paths: reload if they settled on a change or a reload was asked for."""
        snapshot = await self._take_snapshot()
        before = detector.applied
        trigger: Trigger
        if self.requested.is_set():
            self.requested.clear()
            detector.accept(snapshot)
            trigger = "signal"
        elif detector.observe(snapshot):
            trigger = "watch"
        else:
            return
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
        async with self.lock:
            await self._reload_locked(trigger, loaded)

    async def _reload_locked(self, trigger: Trigger, loaded: LoadedConfig) -> None:
        kept = list(self.kept())
        kept_names = {mapping.name for mapping in kept}
        for mapping in loaded.mappings:
            if mapping.name in kept_names:
                log.error("config_name_taken", mapping=mapping.name, reason="made through the Lambda API")
        wanted = [m for m in loaded.mappings if m.name not in kept_names] + kept
        plan = plan_reload(self.running.values(), wanted, loaded.problems)
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
        self.on_loaded(loaded)
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

    async def apply_locked(self, diff: MappingDiff) -> None:
        """Apply a change decided elsewhere (the Lambda API); the caller holds `lock`."""
        await self._apply(diff)

    async def _apply(self, diff: MappingDiff) -> None:
        # Checked with no await before the starts below: once the shutdown has begun draining,
        # nothing new may start (the task group would wait for it forever).
        if self.stopping.is_set():
            return
        leaving = [*diff.removed, *(m.name for m in diff.changed)]
        for name in diff.removed:
            self._transition(name, "Deleting")
        for mapping in diff.changed:
            self._transition(mapping.name, _change_state(self.running.get(mapping.name), mapping))
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
        if status is not None and (status.state != "Disabled" or state == "Enabling"):
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


def _change_state(old: ResolvedMapping | None, new: ResolvedMapping) -> str:
    """spec §1.5: a change that turns a mapping on or off is Enabling / Disabling, others Updating."""
    if old is not None and old.enabled != new.enabled:
        return "Enabling" if new.enabled else "Disabling"
    return "Updating"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
