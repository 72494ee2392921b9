"""Tumbling windows through the real `poller run` on moto (spec §8, §4.1, §5.2): a Kinesis mapping
with an HTTP function the test scripts, and a DynamoDB Streams mapping with a `python:` handler that
counts records per window. Windows are 2 s long; every wait is on a condition with a deadline."""

from __future__ import annotations

import asyncio
import calendar
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import FunctionServer, StartPoller, Stream, put_kinesis, stream_mapping
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

WINDOW = 2


def epoch(iso: str) -> int:
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def by_window(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    windows: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        windows.setdefault(event["window"]["start"], []).append(event)
    return windows


def check_carry_over(events: list[dict[str, Any]], arrival_key: tuple[str, str]) -> int:
    """Every window's invocations: first state {}, then the count so far, the final one last with the
    window's total; every record inside its window's bounds. Returns the records counted by finals."""
    counted = 0
    for start, invocations in by_window(events).items():
        assert epoch(invocations[0]["window"]["end"]) - epoch(start) == WINDOW
        assert epoch(start) % WINDOW == 0
        assert invocations[0]["state"] == {}
        running = 0
        for event in invocations:
            assert event["state"] == ({"count": running} if running else {})
            outer, inner = arrival_key
            for record in event["Records"]:
                assert epoch(start) <= record[outer][inner] < epoch(start) + WINDOW
            running += len(event["Records"])
        final = invocations[-1]
        assert final["isFinalInvokeForWindow"] is True
        assert final["Records"] == []
        assert final["state"] == {"count": running}
        assert [e["isFinalInvokeForWindow"] for e in invocations[:-1]] == [False] * (len(invocations) - 1)
        counted += running
    return counted


def count(event: dict[str, Any]) -> dict[str, Any]:
    state = dict(event["state"])
    if event["Records"]:
        state["count"] = state.get("count", 0) + len(event["Records"])
    return {"state": state}


async def test_kinesis_windows_carry_state_retry_failures_and_hold_the_checkpoint(
    make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §8: state carried within a window, fresh in the next, a final invocation with
    isFinalInvokeForWindow; spec §4.1: a response without state fails and is retried like a function
    error (spec §5.2), with the same records and state; the checkpoint moves past a window only once
    its final invocation succeeded, and /status and the gauge show the open window meanwhile."""
    stream: Stream = make_stream()
    failed_once: set[str] = set()
    allow_final = asyncio.Event()
    replies: list[str] = []

    async def behaviour(event: dict[str, Any]) -> web.StreamResponse:
        data = [r["kinesis"]["partitionKey"] for r in event["Records"]]
        if "poison" in data and "poison" not in failed_once:
            failed_once.add("poison")
            replies.append("error")
            return web.json_response(
                {"errorType": "Poison", "errorMessage": "once"}, headers={"X-Amz-Function-Error": "Unhandled"}
            )
        if "nostate" in data and "nostate" not in failed_once:
            failed_once.add("nostate")
            replies.append("no-state")
            return web.json_response({"batchItemFailures": []})
        if event["isFinalInvokeForWindow"] and not allow_final.is_set():
            replies.append("final-refused")
            return web.json_response({"errorType": "NotYet"}, headers={"X-Amz-Function-Error": "Unhandled"})
        replies.append("ok")
        return web.json_response(count(event))

    function_server.behaviour = behaviour
    poller = await start_poller(
        [
            stream_mapping(
                "windows",
                stream.arn,
                function_server.url,
                TumblingWindowInSeconds=WINDOW,
                BatchSize=1,
                MaximumRetryAttempts=5,
            )
        ]
    )
    put = put_kinesis(kinesis, stream, [("a", b"1"), ("poison", b"2"), ("nostate", b"3"), ("b", b"4")])
    last_sequence = put[-1]["SequenceNumber"]
    await wait_until(lambda: "final-refused" in replies, timeout=30, what="a final invocation")
    # While the final invocation fails, the window is open and the checkpoint is held before it.
    status = poller.status()["mappings"][0]
    [(shard_id, position)] = status["Positions"].items()
    window = position["TumblingWindow"]
    assert window is not None
    assert window["Invocations"] >= 1
    assert poller.metric("poller_tumbling_windows_open", mapping="windows") == 1
    assert position["SequenceNumber"] != last_sequence
    allow_final.set()
    await wait_until(
        lambda: check_total(successful(function_server.events, replies)) == 4,
        timeout=30,
        what="every window closed by a successful final invocation",
    )
    events = function_server.events
    assert check_carry_over(successful(events, replies), ("kinesis", "approximateArrivalTimestamp")) == 4
    # The failed invocations were retried with the same records and the same state.
    for label in ("error", "no-state"):
        index = replies.index(label)
        assert events[index + 1]["Records"] == events[index]["Records"]
        assert events[index + 1]["state"] == events[index]["state"]
    for event in events:
        assert event["shardId"] == shard_id
        assert event["eventSourceARN"] == stream.arn
        assert event["isWindowTerminatedEarly"] is False
    await wait_until(
        lambda: poller.status()["mappings"][0]["Positions"][shard_id]["SequenceNumber"] == last_sequence,
        timeout=10,
        what="the checkpoint past the last window",
    )
    assert poller.status()["mappings"][0]["Positions"][shard_id]["TumblingWindow"] is None
    assert poller.metric("poller_tumbling_windows_open", mapping="windows") == 0


def successful(events: list[dict[str, Any]], replies: list[str]) -> list[dict[str, Any]]:
    """The invocations the function answered with a state."""
    return [event for event, reply in zip(events, replies, strict=False) if reply == "ok"]


def check_total(events: list[dict[str, Any]]) -> int:
    """Records counted by the final invocations among `events` (their state's count)."""
    finals = [e for e in events if e["isFinalInvokeForWindow"]]
    totals = {e["window"]["start"]: e["state"].get("count", 0) for e in finals}
    return sum(totals.values())


HANDLER = """\
import json
import os

LOG = os.path.join(os.path.dirname(__file__), "events.jsonl")


def handle(event, context):
    with open(LOG, "a") as log:
        log.write(json.dumps(event) + "\\n")
    state = dict(event["state"])
    if event["Records"]:
        state["count"] = state.get("count", 0) + len(event["Records"])
    return {"state": state}
"""


async def test_dynamodb_windows_count_records_per_window_with_a_python_handler(
    make_table: Any, dynamodb: Any, start_poller: StartPoller
) -> None:
    """spec §8 on DynamoDB Streams: windows of ApproximateCreationDateTime, the count per window
    carried as state, a final invocation per window with the window's total."""
    table = make_table("NEW_IMAGE")
    poller = await start_poller(
        [
            stream_mapping(
                "items",
                table.stream_arn,
                "python:counter.handle",
                TumblingWindowInSeconds=WINDOW,
                BatchSize=2,
                MaximumRetryAttempts=2,
            )
        ],
        handlers={"counter": HANDLER},
    )
    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName=table.name, Item={"id": {"S": key}})
    log = Path(poller.config_path).parent / "events.jsonl"

    def events() -> list[dict[str, Any]]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def counted() -> int:
        return sum(e["state"].get("count", 0) for e in events() if e["isFinalInvokeForWindow"])

    await wait_until(lambda: counted() == 3, timeout=30, what="three records counted by final invocations")
    seen = events()
    assert check_carry_over(seen, ("dynamodb", "ApproximateCreationDateTime")) == 3
    assert {e["eventSourceARN"] for e in seen} == {table.stream_arn}
    keys = [r["dynamodb"]["Keys"]["id"]["S"] for e in seen for r in e["Records"]]
    assert keys == ["a", "b", "c"]


async def test_a_restart_mid_window_reads_the_window_again_with_empty_state(
    tmp_path: Path, make_stream: Any, kinesis: Any, function_server: FunctionServer, start_poller: StartPoller
) -> None:
    """spec §8 (state per shard, at least once): state is held in memory, so after kill -9 mid-window
    the checkpoint is still before the window and the next run reads the window again from its first
    record, with empty state; its final invocation then moves the checkpoint past it."""
    stream: Stream = make_stream()
    allow_final = asyncio.Event()

    async def behaviour(event: dict[str, Any]) -> web.StreamResponse:
        if event["isFinalInvokeForWindow"] and not allow_final.is_set():
            return web.json_response({"errorType": "NotYet"}, headers={"X-Amz-Function-Error": "Unhandled"})
        return web.json_response(count(event))

    function_server.behaviour = behaviour
    mapping = stream_mapping("windows", stream.arn, function_server.url, TumblingWindowInSeconds=WINDOW)
    state = {"state": {"path": str(tmp_path / "state.sqlite3")}}
    put = put_kinesis(kinesis, stream, [("a", b"1"), ("b", b"2")])
    first = await start_poller([mapping], settings=state)
    await wait_until(
        lambda: any(e["isFinalInvokeForWindow"] for e in function_server.events), timeout=30, what="a final"
    )
    first.kill()
    before = len(function_server.events)
    second = await start_poller([mapping], settings=state)
    await wait_until(lambda: len(function_server.events) > before, timeout=30, what="the window read again")
    again = function_server.events[before]
    assert again["state"] == {}
    assert again["Records"][0]["kinesis"]["sequenceNumber"] == put[0]["SequenceNumber"]
    allow_final.set()
    await wait_until(
        lambda: (
            next(iter(second.status()["mappings"][0]["Positions"].values()))["SequenceNumber"]
            == put[-1]["SequenceNumber"]
        ),
        timeout=30,
        what="the checkpoint past the window",
    )
