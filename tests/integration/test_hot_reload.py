"""Hot reload of mapping files through the real `poller run`, and `poller status` (DESIGN §1.2, §2;
ops anchors §7.4): added, changed, removed, broken and fixed files, SIGHUP, a ConfigMap's `..data` swap."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import (
    FunctionServer,
    PollerProcess,
    StartPoller,
    queue_depth,
    stream_mapping,
    wait_until,
)

pytestmark = pytest.mark.integration


def mappings_dir(poller: PollerProcess) -> Path:
    return poller.config_path.parent / "mappings"


def write_mapping(path: Path, mapping: dict[str, Any]) -> None:
    # As conftest writes them: 1 s function timeout for the tests' short visibility timeouts.
    path.write_text(json.dumps({"FunctionTimeout": 1, **mapping}))


def states(poller: PollerProcess) -> dict[str, str]:
    return {m["Name"]: m["State"] for m in poller.status()["mappings"]}


def logged(poller: PollerProcess, event: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        line
        for line in poller.logs()
        if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
    ]


def reloads(poller: PollerProcess, result: str) -> float:
    return poller.metric("poller_config_reloads_total", result=result)


REDELIVERY_TIMEOUT = 35.0
"""For a message sent to a queue right after its mapping restarted: a long poll the old source
abandoned (WaitTimeSeconds 20) may still take it on the server, and it comes back only after the
visibility timeout (at-least-once, DESIGN §3), so allow for the abandoned polls to run out."""


async def test_an_added_mapping_file_starts_and_delivers(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    first, second = make_queue(), make_queue()
    poller = await start_poller(
        [{"Name": "first", "EventSourceArn": first.arn, "FunctionName": function_server.url}]
    )
    assert poller.status()["reload"]["trigger"] == "startup"
    write_mapping(
        mappings_dir(poller) / "second.yaml",
        {"Name": "second", "EventSourceArn": second.arn, "FunctionName": function_server.url},
    )
    await wait_until(lambda: states(poller).get("second") == "Enabled", what="the new mapping running")
    sqs.send_message(QueueUrl=second.url, MessageBody="hello")
    sqs.send_message(QueueUrl=first.url, MessageBody="still here")
    await wait_until(lambda: sorted(function_server.bodies()) == ["hello", "still here"], what="both deliver")
    reload = poller.status()["reload"]
    assert (reload["ok"], reload["trigger"], reload["added"], reload["changed"]) == (
        True,
        "watch",
        ["second"],
        [],
    )
    assert reloads(poller, "success") == 1
    assert poller.metric("poller_config_last_reload_success") == 1
    assert poller.ready()


async def test_a_changed_mapping_restarts_with_its_new_settings_and_an_unchanged_one_runs_on(
    sqs: Any,
    make_queue: Any,
    function_server: FunctionServer,
    other_function_server: FunctionServer,
    start_poller: StartPoller,
) -> None:
    """The changed mapping drains and starts again; the unchanged one (even moved to another file)
    keeps its supervisor: its source starts once, its counters run on."""
    steady, moving = make_queue(), make_queue()
    poller = await start_poller(
        [
            {"Name": "steady", "EventSourceArn": steady.arn, "FunctionName": function_server.url},
            {"Name": "moving", "EventSourceArn": moving.arn, "FunctionName": function_server.url},
        ]
    )
    sqs.send_message(QueueUrl=steady.url, MessageBody="s1")
    sqs.send_message(QueueUrl=moving.url, MessageBody="m1")
    await wait_until(lambda: sorted(function_server.bodies()) == ["m1", "s1"], what="first deliveries")

    directory = mappings_dir(poller)
    os.replace(directory / "m0.yaml", directory / "steady.yaml")  # same mapping, another file
    write_mapping(
        directory / "m1.yaml",
        {
            "Name": "moving",
            "EventSourceArn": moving.arn,
            "FunctionName": other_function_server.url,
            "BatchSize": 5,
        },
    )
    await wait_until(lambda: logged(poller, "mapping_restarting", mapping="moving"), what="the restart")
    await wait_until(lambda: states(poller).get("moving") == "Enabled", what="the changed mapping running")
    sqs.send_message(QueueUrl=moving.url, MessageBody="m2")
    sqs.send_message(QueueUrl=steady.url, MessageBody="s2")
    await wait_until(
        lambda: other_function_server.bodies() == ["m2"],
        timeout=REDELIVERY_TIMEOUT,
        what="m2 to the new function",
    )
    await wait_until(lambda: "s2" in function_server.bodies(), what="the unchanged mapping delivers s2")
    assert sorted(function_server.bodies()) == ["m1", "s1", "s2"]

    assert len(logged(poller, "mapping_started", mapping="steady")) == 1
    assert len(logged(poller, "mapping_started", mapping="moving")) == 2
    assert not logged(poller, "mapping_draining", mapping="steady")
    assert poller.metric("poller_records_polled_total", mapping="steady") == 2  # never reset
    assert poller.metric("poller_records_polled_total", mapping="moving") == 2  # kept across the restart
    reload = poller.status()["reload"]
    assert (reload["added"], reload["removed"], reload["changed"]) == ([], [], ["moving"])


async def test_a_removed_mapping_drains_its_batch_in_flight_and_disappears(
    sqs: Any,
    make_queue: Any,
    function_server: FunctionServer,
    other_function_server: FunctionServer,
    start_poller: StartPoller,
) -> None:
    keep, gone = make_queue(), make_queue(visibility=30)
    poller: PollerProcess | None = None
    invoked = asyncio.Event()

    async def hold_until_draining(_: dict[str, Any]) -> web.StreamResponse:
        # The function is still running when the poller starts draining the removed mapping.
        invoked.set()
        assert poller is not None
        await wait_until(lambda: bool(logged(poller, "mapping_draining", mapping="gone")), what="drain")
        return web.json_response(None)

    other_function_server.behaviour = hold_until_draining
    poller = await start_poller(
        [
            {"Name": "keep", "EventSourceArn": keep.arn, "FunctionName": function_server.url},
            {
                "Name": "gone",
                "EventSourceArn": gone.arn,
                "FunctionName": other_function_server.url,
                "FunctionTimeout": 25,
            },
        ]
    )
    sqs.send_message(QueueUrl=gone.url, MessageBody="last words")
    await asyncio.wait_for(invoked.wait(), 20)
    (mappings_dir(poller) / "m1.yaml").unlink()

    await wait_until(lambda: "gone" not in states(poller), what="the mapping gone from /status")
    assert other_function_server.bodies() == ["last words"]
    assert queue_depth(sqs, gone) == (0, 0)  # finished and deleted, not left invisible for 30 s
    drained = logged(poller, "mapping_drain_finished")
    assert [(d["mappings"], d["abandoned"]) for d in drained] == [(["gone"], 0)]
    _, metrics = poller.get("/metrics")
    assert 'mapping="gone"' not in metrics.decode()
    assert 'mapping="keep"' in metrics.decode()
    assert poller.status()["reload"]["removed"] == ["gone"]
    sqs.send_message(QueueUrl=keep.url, MessageBody="kept")
    await wait_until(lambda: function_server.bodies() == ["kept"], what="the other mapping delivers")


async def test_a_broken_file_keeps_the_last_good_set_until_it_is_fixed(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    queue, extra = make_queue(), make_queue()
    mapping = {"Name": "orders", "EventSourceArn": queue.arn, "FunctionName": function_server.url}
    poller = await start_poller([mapping])
    assert poller.metric("poller_config_last_reload_success") == 1
    path = mappings_dir(poller) / "m0.yaml"
    path.write_text("Name: orders\nEventSourceArn: [unclosed\n")
    write_mapping(
        mappings_dir(poller) / "extra.yaml",
        {"Name": "extra", "EventSourceArn": extra.arn, "FunctionName": function_server.url},
    )

    await wait_until(lambda: reloads(poller, "failure") == 1, what="the failed reload counted")
    reload = poller.status()["reload"]
    assert reload["ok"] is False
    assert reload["problems"]
    assert reload["problems"][0].startswith(f"{path}:")
    assert reload["last_success_at"] is not None  # the start-up load
    assert poller.metric("poller_config_last_reload_success") == 0
    assert states(poller) == {"orders": "Enabled"}  # not removed, and the new file not started
    assert logged(poller, "config_reload_failed", kept=["orders"])
    sqs.send_message(QueueUrl=queue.url, MessageBody="still running")
    await wait_until(lambda: function_server.bodies() == ["still running"], what="the old set delivers")

    write_mapping(path, {**mapping, "BatchSize": 2})
    await wait_until(lambda: reloads(poller, "success") == 1, what="the fixed reload")
    reload = poller.status()["reload"]
    assert (reload["ok"], reload["problems"], reload["added"], reload["changed"]) == (
        True,
        [],
        ["extra"],
        ["orders"],
    )
    assert poller.metric("poller_config_last_reload_success") == 1
    await wait_until(lambda: states(poller) == {"orders": "Enabled", "extra": "Enabled"}, what="both run")
    sqs.send_message(QueueUrl=extra.url, MessageBody="recovered")
    await wait_until(lambda: "recovered" in function_server.bodies(), what="the added mapping delivers")


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
async def test_a_mappings_directory_that_cannot_be_looked_at_stops_no_mapping(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """The watch's own failure is counted and retried, and every mapping runs on. The fault is a
    `stat` of the mappings directory that fails (a symlink to a name too long: ENAMETOOLONG), which
    holds for root too, unlike a chmod."""
    queue, extra = make_queue(), make_queue()
    poller = await start_poller(
        [{"Name": "orders", "EventSourceArn": queue.arn, "FunctionName": function_server.url}]
    )
    directory = mappings_dir(poller)
    aside = directory.with_name("mappings.aside")
    directory.rename(aside)
    os.symlink("x" * 300, directory)
    await wait_until(
        lambda: poller.metric("poller_config_watch_errors_total") >= 2, what="the watch errors counted"
    )
    assert poller.proc.poll() is None
    assert poller.get("/healthz")[0] == 200
    assert states(poller) == {"orders": "Enabled"}
    assert logged(poller, "config_watch_error", errno=36)
    sqs.send_message(QueueUrl=queue.url, MessageBody="still running")
    await wait_until(lambda: function_server.bodies() == ["still running"], what="the mapping delivers")

    directory.unlink()
    aside.rename(directory)
    write_mapping(
        directory / "extra.yaml",
        {"Name": "extra", "EventSourceArn": extra.arn, "FunctionName": function_server.url},
    )
    await wait_until(
        lambda: states(poller).get("extra") == "Enabled", timeout=40, what="the watch back at work"
    )
    assert len(logged(poller, "mapping_started", mapping="orders")) == 1  # never restarted
    assert poller.terminate() == 0


async def test_a_reload_holds_file_destinations_to_the_running_file_root(
    make_stream: Any, function_server: FunctionServer, start_poller: StartPoller, tmp_path: Path
) -> None:
    """`destinations.file_root` applies to mappings added by a reload as at start-up."""
    stream = make_stream()
    root = tmp_path / "failures"
    poller = await start_poller([], settings={"destinations": {"file_root": str(root)}})
    path = mappings_dir(poller) / "clicks.yaml"
    outside = tmp_path / "elsewhere.jsonl"
    destination = {"DestinationConfig": {"OnFailure": {"Destination": f"file://{outside}"}}}
    write_mapping(path, stream_mapping("clicks", stream.arn, function_server.url, **destination))
    await wait_until(lambda: reloads(poller, "failure") == 1, what="the reload refused")
    [problem] = poller.status()["reload"]["problems"]
    assert problem.startswith(f"{path}:")
    assert f"Destination 'file://{outside}' is not inside destinations.file_root ({root})" in problem
    assert "clicks" not in states(poller)

    inside = {"DestinationConfig": {"OnFailure": {"Destination": f"file://{root}/clicks.jsonl"}}}
    write_mapping(path, stream_mapping("clicks", stream.arn, function_server.url, **inside))
    await wait_until(lambda: states(poller).get("clicks") == "Enabled", what="the mapping inside the root")


async def test_sighup_reloads_now(
    make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    queue = make_queue()
    poller = await start_poller(
        [{"Name": "orders", "EventSourceArn": queue.arn, "FunctionName": function_server.url}]
    )
    poller.proc.send_signal(signal.SIGHUP)
    await wait_until(lambda: reloads(poller, "success") == 1, what="a reload on SIGHUP")
    assert poller.proc.poll() is None
    reload = poller.status()["reload"]
    assert (reload["trigger"], reload["added"], reload["removed"], reload["changed"]) == (
        "signal",
        [],
        [],
        [],
    )
    assert states(poller) == {"orders": "Enabled"}
    assert len(logged(poller, "mapping_started", mapping="orders")) == 1
    assert poller.terminate() == 0


async def test_settings_other_than_mappings_are_reported_as_needing_a_restart(
    make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    queue = make_queue()
    poller = await start_poller(
        [{"Name": "orders", "EventSourceArn": queue.arn, "FunctionName": function_server.url}]
    )
    settings = json.loads(poller.config_path.read_text())
    settings["shutdown"] = {"drain_seconds": 3}
    poller.config_path.write_text(json.dumps(settings))
    await wait_until(
        lambda: bool(logged(poller, "settings_change_needs_restart", sections=["shutdown"])),
        what="the restart notice",
    )
    assert poller.status()["reload"]["restart_required"] == ["shutdown"]
    assert len(logged(poller, "mapping_started", mapping="orders")) == 1


async def test_a_configmap_symlink_swap_is_noticed(
    sqs: Any,
    make_queue: Any,
    function_server: FunctionServer,
    other_function_server: FunctionServer,
    start_poller: StartPoller,
) -> None:
    """The kubelet updates a ConfigMap volume by pointing `..data` at a new timestamped directory."""
    queue = make_queue()
    poller = await start_poller([])
    mount = mappings_dir(poller)
    mapping = {"Name": "cm", "EventSourceArn": queue.arn, "FunctionName": function_server.url}
    (mount / "..2026_01_01").mkdir()
    write_mapping(mount / "..2026_01_01" / "m.yaml", mapping)
    os.symlink("..2026_01_01", mount / "..data")
    os.symlink("..data/m.yaml", mount / "m.yaml")
    await wait_until(lambda: states(poller).get("cm") == "Enabled", what="the ConfigMap's mapping running")
    sqs.send_message(QueueUrl=queue.url, MessageBody="v1")
    await wait_until(lambda: function_server.bodies() == ["v1"], what="delivery by version 1")

    (mount / "..2026_01_02").mkdir()
    write_mapping(mount / "..2026_01_02" / "m.yaml", {**mapping, "FunctionName": other_function_server.url})
    os.symlink("..2026_01_02", mount / "..data_tmp")
    os.replace(mount / "..data_tmp", mount / "..data")
    (mount / "..2026_01_01" / "m.yaml").unlink()
    (mount / "..2026_01_01").rmdir()

    await wait_until(lambda: logged(poller, "mapping_restarting", mapping="cm"), what="the swap noticed")
    await wait_until(lambda: states(poller).get("cm") == "Enabled", what="version 2 running")
    sqs.send_message(QueueUrl=queue.url, MessageBody="v2")
    await wait_until(
        lambda: other_function_server.bodies() == ["v2"],
        timeout=REDELIVERY_TIMEOUT,
        what="delivery by version 2",
    )
    assert function_server.bodies() == ["v1"]


async def test_poller_status_prints_the_running_service(
    sqs: Any, make_queue: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    queue = make_queue()
    poller = await start_poller(
        [{"Name": "orders", "EventSourceArn": queue.arn, "FunctionName": function_server.url}]
    )
    sqs.send_message(QueueUrl=queue.url, MessageBody="one")
    await wait_until(lambda: function_server.bodies() == ["one"], what="a delivery")

    def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "poller", "status", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, **(env or {})},
        )

    by_url = await asyncio.to_thread(status, "--url", f"http://127.0.0.1:{poller.port}", "--interval", "0.2")
    assert by_url.returncode == 0, by_url.stderr
    lines = by_url.stdout.splitlines()
    assert lines[0] == "ready, 1 mapping"
    assert lines[2].split() == ["MAPPING", "SOURCE", "STATE", "LAST", "RESULT", "LAG", "RECORDS/S"]
    assert lines[3].split() == ["orders", "sqs", "Enabled", "-", "-", "0.0"]

    by_config = await asyncio.to_thread(
        status, "--config", str(poller.config_path), env={"POLLER_HTTP__PORT": str(poller.port)}
    )
    assert by_config.returncode == 0, by_config.stderr
    assert by_config.stdout.splitlines()[3].split()[:3] == ["orders", "sqs", "Enabled"]

    assert await asyncio.to_thread(poller.terminate) == 0
    gone = await asyncio.to_thread(status, "--url", f"http://127.0.0.1:{poller.port}")
    assert gone.returncode == 1
    assert gone.stdout == ""
    assert f"poller status: cannot reach http://127.0.0.1:{poller.port}/" in gone.stderr
