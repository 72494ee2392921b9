"""Hot reload decisions: the differ, all-or-nothing plans, change detection, applying (ops anchors §7.4)."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AsyncExitStack, suppress
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from poller.config import LoadedConfig, ResolvedMapping, Settings, load_mappings
from poller.config.settings import build_settings
from poller.core.clock import ManualClock
from poller.observability.metrics import Metrics
from poller.observability.status import MappingStatus, ServiceStatus
from poller.runtime.file_watch import ChangeDetector, changed_paths, take_snapshot
from poller.runtime.reload import (
    MappingDiff,
    Rejected,
    Reloader,
    diff_mappings,
    plan_reload,
    restart_required,
    same_mapping,
)
from poller.runtime.supervisor import MappingSupervisor, SupervisorPool
from poller.sources.base import Source
from tests.waiting import wait_until

ACCOUNT = "123456789012"


def sqs_yaml(name: str, *, queue: str | None = None, batch: int = 10, function: str = "f") -> str:
    """An SQS mapping; its queue is named after it unless given (AWS refuses two mappings of one
    queue and one function)."""
    return (
        f"Name: {name}\n"
        f"EventSourceArn: arn:aws:sqs:us-east-1:{ACCOUNT}:{queue or name}\n"
        f"FunctionName: {function}\n"
        f"BatchSize: {batch}\n"
    )


def load(directory: Path, files: dict[str, str]) -> tuple[list[ResolvedMapping], list[str]]:
    """Write `files` (name → text) as the only files of `directory` and load them."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    for name, text in files.items():
        (directory / name).write_text(text)
    mappings, problems = load_mappings([directory], directory)
    return mappings, [str(p) for p in problems]


def names(mappings: tuple[ResolvedMapping, ...]) -> list[str]:
    return [m.name for m in mappings]


# -- the differ --------------------------------------------------------------------------------------


def test_added_removed_changed_and_unchanged_by_name(tmp_path: Path) -> None:
    """Mappings are matched by Name; a different value of any setting is a change."""
    before, _ = load(
        tmp_path / "a",
        {
            "keep.yaml": sqs_yaml("keep"),
            "gone.yaml": sqs_yaml("gone"),
            "batch.yaml": sqs_yaml("batch"),
            "fn.yaml": sqs_yaml("fn"),
        },
    )
    after, _ = load(
        tmp_path / "a",
        {
            "keep.yaml": sqs_yaml("keep"),
            "new.yaml": sqs_yaml("new"),
            "batch.yaml": sqs_yaml("batch", batch=5),
            "fn.yaml": sqs_yaml("fn", function="g"),
        },
    )
    diff = diff_mappings(before, after)
    assert names(diff.added) == ["new"]
    assert diff.removed == ("gone",)
    assert sorted(names(diff.changed)) == ["batch", "fn"]
    assert names(diff.unchanged) == ["keep"]
    assert not diff.empty
    assert diff.summary() == {"added": ["new"], "removed": ["gone"], "changed": ["batch", "fn"]}
    changed = {m.name: m for m in diff.changed}
    assert changed["batch"].batch_size == 5  # the new values, ready to start
    assert changed["fn"].function_name == "g"


def test_a_mapping_that_only_moved_lines_or_files_is_unchanged(tmp_path: Path) -> None:
    """The resolved value carries its file and line; neither is part of what the mapping is."""
    before, _ = load(tmp_path / "m", {"orders.yaml": sqs_yaml("orders")})
    after, _ = load(
        tmp_path / "m",
        {
            "all.yaml": "# moved here, under other mappings\n\nEventSourceMappings:\n"
            + "  - "
            + sqs_yaml("other", queue="other").replace("\n", "\n    ").rstrip()
            + "\n"
            + "  - "
            + sqs_yaml("orders").replace("\n", "\n    ").rstrip()
            + "\n"
        },
    )
    old, new = before[0], next(m for m in after if m.name == "orders")
    assert old.location != new.location
    assert same_mapping(old, new)
    diff = diff_mappings(before, after)
    assert names(diff.unchanged) == ["orders"]
    assert diff.unchanged[0].location == new.location  # kept with its new location
    assert names(diff.added) == ["other"]
    assert diff.changed == ()
    assert diff.removed == ()


def test_a_different_source_kind_under_the_same_name_is_a_change(tmp_path: Path) -> None:
    before, _ = load(tmp_path / "m", {"x.yaml": sqs_yaml("x")})
    after, problems = load(
        tmp_path / "m",
        {
            "x.yaml": f"Name: x\nEventSourceArn: arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/s\n"
            "FunctionName: f\nStartingPosition: LATEST\n"
        },
    )
    assert not [p for p in problems if ": warning:" not in p]
    assert names(diff_mappings(before, after).changed) == ["x"]


def test_nothing_changed_is_an_empty_diff(tmp_path: Path) -> None:
    mappings, _ = load(tmp_path / "m", {"a.yaml": sqs_yaml("a"), "b.yaml": sqs_yaml("b")})
    again, _ = load(tmp_path / "m", {"a.yaml": sqs_yaml("a"), "b.yaml": sqs_yaml("b")})
    diff = diff_mappings(mappings, again)
    assert diff.empty
    assert names(diff.unchanged) == ["a", "b"]


# -- all or nothing --------------------------------------------------------------------------------


def test_a_bad_file_rejects_the_whole_reload(tmp_path: Path) -> None:
    """One error anywhere keeps the last good set: nothing is added, removed or restarted."""
    running, _ = load(tmp_path / "m", {"a.yaml": sqs_yaml("a"), "b.yaml": sqs_yaml("b")})
    (tmp_path / "m" / "a.yaml").write_text(sqs_yaml("a", batch=50))  # 50 needs a batching window
    (tmp_path / "m" / "c.yaml").write_text(sqs_yaml("c"))
    mappings, problem_list = load_mappings([tmp_path / "m"], tmp_path)
    plan = plan_reload(running, mappings, problem_list)
    assert isinstance(plan, Rejected)
    assert [str(p) for p in plan.problems] == [
        f"{tmp_path / 'm' / 'a.yaml'}:4: Mapping 'a': BatchSize: Maximum batch window in seconds must be "
        "greater than 0 if maximum batch size is greater than 10"
    ]


def test_a_file_that_is_not_yaml_rejects_the_reload(tmp_path: Path) -> None:
    running, _ = load(tmp_path / "m", {"a.yaml": sqs_yaml("a")})
    (tmp_path / "m" / "a.yaml").write_text("Name: [unclosed\n")
    mappings, problems = load_mappings([tmp_path / "m"], tmp_path)
    plan = plan_reload(running, mappings, problems)
    assert isinstance(plan, Rejected)
    assert str(plan.problems[0]).startswith(f"{tmp_path / 'm' / 'a.yaml'}:")


def test_warnings_alone_do_not_reject(tmp_path: Path) -> None:
    """Removing every file leaves an empty directory (a warning): the mappings are removed."""
    running, _ = load(tmp_path / "m", {"a.yaml": sqs_yaml("a")})
    mappings, problems = load(tmp_path / "m", {})
    assert problems
    assert all(": warning:" in p for p in problems)
    _, problem_values = load_mappings([tmp_path / "m"], tmp_path)
    plan = plan_reload(running, mappings, problem_values)
    assert isinstance(plan, MappingDiff)
    assert plan.removed == ("a",)


def test_settings_other_than_mappings_need_a_restart() -> None:
    running = build_settings({}, {})
    assert restart_required(running, build_settings({"mappings": ["elsewhere/"]}, {})) == ()
    changed = build_settings({"shutdown": {"drain_seconds": 3}, "http": {"port": 9999}}, {})
    assert restart_required(running, changed) == ("http", "shutdown")


# -- noticing a change -------------------------------------------------------------------------------


def test_a_change_is_reported_once_after_it_holds_still_for_one_poll() -> None:
    a, b, c = {"m.yaml": "sha256:a"}, {"m.yaml": "sha256:b"}, {"m.yaml": "sha256:c"}
    detector = ChangeDetector(a)
    assert detector.observe(a) is False
    assert detector.observe(b) is False  # just changed: maybe still being written
    assert detector.observe(c) is False  # changed again
    assert detector.observe(c) is True  # held still: reload
    assert detector.observe(c) is False  # once
    assert detector.observe(a) is False
    assert detector.observe(a) is True  # back to the old content is a change too
    detector.accept(b)  # reloaded for another reason (SIGHUP) with the files as they are
    assert detector.observe(b) is False
    assert changed_paths(a, {"m.yaml": "sha256:a", "n.yaml": "sha256:n"}) == ("n.yaml",)


@pytest.fixture
def configmap(tmp_path: Path) -> Iterator[Path]:
    """A directory laid out as the kubelet mounts a ConfigMap: files → ..data/ → ..<timestamp>/."""
    mount = tmp_path / "mappings"
    (mount / "..2026_01_01").mkdir(parents=True)
    (mount / "..2026_01_01" / "m.yaml").write_text(sqs_yaml("m"))
    os.symlink("..2026_01_01", mount / "..data")
    os.symlink("..data/m.yaml", mount / "m.yaml")
    return mount


def swap(mount: Path, version: str, text: str) -> None:
    (mount / version).mkdir()
    (mount / version / "m.yaml").write_text(text)
    os.symlink(version, mount / "..data_tmp")
    os.replace(mount / "..data_tmp", mount / "..data")


def test_the_configmap_symlink_swap_changes_the_snapshot(configmap: Path) -> None:
    before = take_snapshot([configmap])
    assert set(before) == {str(configmap), str(configmap / "m.yaml")}  # dot entries are not read
    assert before[str(configmap / "m.yaml")].startswith("link:..data/m.yaml sha256:")
    swap(configmap, "..2026_01_02", sqs_yaml("m", batch=5))
    after = take_snapshot([configmap])
    assert changed_paths(before, after) == (str(configmap / "m.yaml"),)
    mappings, problems = load_mappings([configmap], configmap)
    assert problems == []
    assert [m.batch_size for m in mappings] == [5]


def test_touching_a_file_or_adding_other_files_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(sqs_yaml("a"))
    before = take_snapshot([tmp_path])
    os.utime(tmp_path / "a.yaml", (1, 1))
    (tmp_path / ".a.yaml.swp").write_text("editor state")
    (tmp_path / "README.txt").write_text("notes")
    assert take_snapshot([tmp_path]) == before
    (tmp_path / "b.yml").write_text(sqs_yaml("b"))
    (tmp_path / "a.yaml").unlink()
    assert changed_paths(before, take_snapshot([tmp_path])) == (
        str(tmp_path / "a.yaml"),
        str(tmp_path / "b.yml"),
    )
    assert take_snapshot([tmp_path / "missing"]) == {str(tmp_path / "missing"): "missing"}


# -- applying ------------------------------------------------------------------------------------------


class IdleSource:
    """Polls nothing; runs until stopped, like a source with nothing to do."""

    kind = "sqs"

    def __init__(self, status: MappingStatus) -> None:
        self.status = status
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        self.status.running()
        await self.stopping.wait()

    async def stop(self) -> None:
        self.stopping.set()


class Harness:
    def __init__(self, directory: Path, group: asyncio.TaskGroup) -> None:
        self.directory = directory
        self.metrics = Metrics(CollectorRegistry())
        self.status = ServiceStatus()
        self.running: dict[str, ResolvedMapping] = {}
        self.pool = SupervisorPool(group)
        self.settings: Settings = build_settings({"mappings": [str(directory)]}, {})
        self.stopping = asyncio.Event()
        self.reloader = Reloader(
            load=self.load,
            running=self.running,
            start=self.start,
            pool=self.pool,
            status=self.status,
            metrics=self.metrics,
            settings=self.settings,
            settings_file=None,
            base_dir=directory,
            clock=ManualClock(),
            stopping=self.stopping,
        )

    def load(self) -> LoadedConfig:
        mappings, problems = load_mappings([self.directory], self.directory)
        return LoadedConfig(self.settings, None, self.directory, tuple(mappings), tuple(problems))

    def start(self, mapping: ResolvedMapping) -> None:
        status = MappingStatus(
            mapping.name,
            mapping.source_kind,
            mapping.event_source_arn,
            mapping.function_name,
            self.metrics.for_mapping(mapping.name),
        )
        self.status.mappings[mapping.name] = status
        self.running[mapping.name] = mapping

        async def open_source(_: AsyncExitStack) -> Source:
            return IdleSource(status)

        self.pool.start(MappingSupervisor(mapping.name, open_source, status))

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


async def test_a_reload_restarts_only_what_changed_and_a_bad_file_keeps_the_old_set(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    load(
        directory,
        {"keep.yaml": sqs_yaml("keep"), "change.yaml": sqs_yaml("change"), "gone.yaml": sqs_yaml("gone")},
    )
    async with asyncio.TaskGroup() as group:
        h = Harness(directory, group)
        for mapping in h.load().mappings:
            h.start(mapping)
        h.metrics.for_mapping("gone").dropped("max_age", 2)
        tasks = {name: s.task for name, s in h.pool.active.items()}
        await wait_until(lambda: all(s.state == "Enabled" for s in h.status.mappings.values()))

        (directory / "keep.yaml").rename(directory / "moved.yaml")
        (directory / "change.yaml").write_text(sqs_yaml("change", batch=3))
        (directory / "gone.yaml").unlink()
        (directory / "new.yaml").write_text(sqs_yaml("new"))
        await h.reloader.reload("watch")

        assert set(h.pool.active) == {"keep", "change", "new"}
        assert h.pool.active["keep"].task is tasks["keep"]  # untouched
        assert not tasks["keep"].done()
        assert tasks["change"].done()
        assert h.pool.active["change"].task is not tasks["change"]
        assert tasks["gone"].done()
        assert h.running["change"].batch_size == 3
        assert h.running["keep"].location.file == directory / "moved.yaml"
        assert list(h.status.mappings) == ["change", "keep", "new"]  # a restart keeps its place
        assert h.sample("poller_records_polled_total", mapping="gone") is None  # forgotten
        assert h.sample("poller_records_dropped_total", mapping="gone", reason="max_age") is None
        assert h.sample("poller_config_reloads_total", result="success") == 1
        assert h.sample("poller_config_last_reload_success") == 1
        assert h.status.reload is not None
        assert h.status.reload.as_json() | {"at": "-", "last_success_at": "-"} == {
            "ok": True,
            "trigger": "watch",
            "at": "-",
            "problems": [],
            "added": ["new"],
            "removed": ["gone"],
            "changed": ["change"],
            "restart_required": [],
            "last_success_at": "-",
        }

        (directory / "change.yaml").write_text("Name: change\nBatchSize: nope\n")
        (directory / "another.yaml").write_text(sqs_yaml("another"))
        before = {name: s.task for name, s in h.pool.active.items()}
        await h.reloader.reload("signal")
        assert {name: s.task for name, s in h.pool.active.items()} == before  # the last good set runs
        assert "another" not in h.status.mappings
        assert h.sample("poller_config_reloads_total", result="failure") == 1
        assert h.sample("poller_config_last_reload_success") == 0
        reload = h.status.reload
        assert reload is not None
        assert not reload.ok
        assert reload.trigger == "signal"
        assert any("change.yaml" in p and "BatchSize" in p for p in reload.problems)
        assert reload.last_success_at is not None

        (directory / "change.yaml").write_text(sqs_yaml("change", batch=3))
        await h.reloader.reload("watch")
        assert set(h.pool.active) == {"keep", "change", "new", "another"}
        assert h.pool.active["change"].task is before["change"]  # fixed back to what runs: unchanged
        assert h.sample("poller_config_last_reload_success") == 1

        h.stopping.set()
        assert await h.pool.drain_all(5.0) == 0
    assert all(task.done() for task in before.values())


async def test_a_reload_caught_by_the_shutdown_starts_nothing(tmp_path: Path) -> None:
    """SIGTERM while the files are being read: the shutdown's drain has begun, so a mapping started
    now would never be stopped and the service would never exit."""
    directory = tmp_path / "m"
    load(directory, {"a.yaml": sqs_yaml("a")})
    async with asyncio.TaskGroup() as group:
        h = Harness(directory, group)
        for mapping in h.load().mappings:
            h.start(mapping)
        (directory / "b.yaml").write_text(sqs_yaml("b"))
        (directory / "a.yaml").write_text(sqs_yaml("a", batch=2))
        loaded = h.load()

        def load_while_sigterm_arrives() -> LoadedConfig:
            h.stopping.set()
            return loaded

        h.reloader.load = load_while_sigterm_arrives
        await h.reloader.reload("watch")
        assert set(h.pool.active) == {"a"}  # the old "a", left for the shutdown to drain
        assert h.running["a"].batch_size == 10
        assert await h.pool.drain_all(5.0) == 0


async def test_a_mapping_that_does_not_stop_in_the_budget_is_cancelled_and_awaited(tmp_path: Path) -> None:
    """The drain's second phase: past the budget the supervisor's task is cancelled, never orphaned."""
    directory = tmp_path / "m"
    load(directory, {"stuck.yaml": sqs_yaml("stuck")})
    cancelled = asyncio.Event()

    class Stuck(IdleSource):
        async def run(self) -> None:
            self.status.running()
            try:
                await asyncio.Event().wait()  # ignores stop
            finally:
                cancelled.set()

    async with asyncio.TaskGroup() as group:
        pool = SupervisorPool(group)
        status = MappingStatus("stuck", "sqs", "arn", "f", Metrics(CollectorRegistry()).for_mapping("stuck"))

        async def open_source(_: AsyncExitStack) -> Source:
            return Stuck(status)

        pool.start(MappingSupervisor("stuck", open_source, status))
        await wait_until(lambda: status.state == "Enabled")
        task = pool.active["stuck"].task
        assert await pool.drain(["stuck"], 0.05) == 1
        assert task.done()
        assert cancelled.is_set()
        assert pool.active == {}
        assert pool.leaving == []


def test_readiness_is_about_start_up_so_a_mapping_added_later_does_not_unready() -> None:
    metrics = Metrics(CollectorRegistry())
    status = ServiceStatus(started=True)
    status.mappings["a"] = MappingStatus("a", "sqs", "arn", "f", metrics.for_mapping("a"))
    assert not status.ready()
    status.mappings["a"].running()
    assert status.ready()
    status.mappings["b"] = MappingStatus("b", "sqs", "arn", "f", metrics.for_mapping("b"))
    assert status.ready()
    status.draining = True
    assert not status.ready()


# -- watching through file-system errors -----------------------------------------------------------


async def watch_until(h: Harness, done: Callable[[], bool], what: str) -> None:
    """Run the watcher beside the mappings until `done`, then stop it as the service does."""
    watcher = asyncio.create_task(h.reloader.watch())
    try:
        await wait_until(lambda: done() or watcher.done(), what=what)
        if watcher.done():
            watcher.result()  # raise what stopped it
            raise AssertionError("the watcher stopped")
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher


async def test_a_watch_that_cannot_read_the_files_retries_and_the_mappings_run_on(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    load(directory, {"a.yaml": sqs_yaml("a")})
    async with asyncio.TaskGroup() as group:
        h = Harness(directory, group)
        h.reloader.interval_seconds = 0.01
        for mapping in h.load().mappings:
            h.start(mapping)
        await h.reloader.prime()
        await wait_until(lambda: h.status.mappings["a"].state == "Enabled")
        running = h.pool.active["a"].task
        refusals = 2

        def unreadable_at_first(paths: Iterable[Path]) -> dict[str, str]:
            nonlocal refusals
            if refusals:
                refusals -= 1
                raise PermissionError(errno.EACCES, "Permission denied", str(directory))
            return take_snapshot(paths)

        h.reloader.snapshot = unreadable_at_first
        (directory / "b.yaml").write_text(sqs_yaml("b"))
        await watch_until(h, lambda: "b" in h.pool.active, "the change after the errors")
        assert h.sample("poller_config_watch_errors_total") == 2
        assert h.pool.active["a"].task is running  # never stopped
        assert not running.done()
        assert h.status.reload is not None
        assert (h.status.reload.ok, h.status.reload.trigger, h.status.reload.added) == (True, "watch", ("b",))
        h.stopping.set()
        assert await h.pool.drain_all(5.0) == 0


def name_too_long_raises() -> bool:
    """Whether `Path.is_dir` raises for a symlink to a name longer than NAME_MAX (it does before 3.14)."""
    with tempfile.TemporaryDirectory() as scratch:
        link = Path(scratch) / "link"
        os.symlink("x" * 300, link)
        try:
            link.is_dir()
        except OSError:
            return True
    return False


@pytest.mark.skipif(not name_too_long_raises(), reason="is_dir does not raise on this Python")
async def test_a_mappings_directory_that_cannot_be_looked_at_stops_nothing(tmp_path: Path) -> None:
    """A real fault, root or not: the watched directory becomes a symlink to a name the kernel
    refuses (ENAMETOOLONG), so `is_dir` raises while the snapshot is taken."""
    directory = tmp_path / "m"
    load(directory, {"a.yaml": sqs_yaml("a")})
    async with asyncio.TaskGroup() as group:
        h = Harness(directory, group)
        h.reloader.interval_seconds = 0.01
        for mapping in h.load().mappings:
            h.start(mapping)
        await h.reloader.prime()
        await wait_until(lambda: h.status.mappings["a"].state == "Enabled")
        running = h.pool.active["a"].task
        directory.rename(tmp_path / "aside")
        os.symlink("x" * 300, directory)

        def restore_once_failing() -> bool:
            errors = h.sample("poller_config_watch_errors_total") or 0
            if errors >= 2 and directory.is_symlink():
                directory.unlink()
                (tmp_path / "aside").rename(directory)
                (directory / "b.yaml").write_text(sqs_yaml("b"))
            return "b" in h.pool.active

        await watch_until(h, restore_once_failing, "the watch to recover")
        assert h.pool.active["a"].task is running
        assert not running.done()
        h.stopping.set()
        assert await h.pool.drain_all(5.0) == 0
