"""`poller status`: the table from a /status document, the throughput, finding the service (DESIGN §1.2)."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from poller.runtime.status_command import (
    format_status,
    lag_text,
    polled_totals,
    rates,
    run_status,
    service_url,
)

DOCUMENT: dict[str, Any] = {
    "ready": True,
    "draining": False,
    "reload": {
        "ok": True,
        "trigger": "watch",
        "at": "2026-01-01T00:00:00.000Z",
        "problems": [],
        "added": [],
        "removed": [],
        "changed": [],
        "restart_required": [],
        "last_success_at": "2026-01-01T00:00:00.000Z",
    },
    "mappings": [
        {
            "Name": "orders",
            "Source": "sqs",
            "State": "Enabled",
            "StateTransitionReason": "USER_INITIATED",
            "LastProcessingResult": None,
            "Positions": {},
        },
        {
            "Name": "telemetry",
            "Source": "kinesis",
            "State": "Enabled",
            "StateTransitionReason": "User action",
            "LastProcessingResult": "OK",
            "Positions": {
                "shardId-000000000000": {"SequenceNumber": "1", "IteratorAgeSeconds": 1.25},
                "shardId-000000000001": {"SequenceNumber": "2", "IteratorAgeSeconds": 3.2},
            },
        },
        {
            "Name": "payments",
            "Source": "kafka",
            "State": "Enabled",
            "StateTransitionReason": "USER_INITIATED",
            "LastProcessingResult": "PROBLEM: Function call failed",
            "Positions": {
                "payments-0": {"CommittedOffset": 10, "HighWatermark": 15, "Lag": 5},
                "payments-1": {"CommittedOffset": 3, "HighWatermark": 40, "Lag": 37},
                "payments-2": {"CommittedOffset": None, "HighWatermark": None, "Lag": None},
            },
        },
        {
            "Name": "missing-queue",
            "Source": "sqs",
            "State": "Creating",
            "StateTransitionReason": "The specified queue does not exist.",
            "LastProcessingResult": None,
            "Positions": {},
        },
        {
            "Name": "paused",
            "Source": "dynamodb",
            "State": "Disabled",
            "StateTransitionReason": "User action",
            "LastProcessingResult": "No records processed",
            "Positions": {},
        },
    ],
}


def test_the_table_has_one_row_per_mapping_with_lag_and_throughput() -> None:
    """Kafka lag is the partitions' sum, stream lag the oldest shard's iterator age; reasons follow."""
    out = format_status(DOCUMENT, {"orders": 12.04, "telemetry": 0.0, "payments": 250.5})
    assert out.splitlines() == [
        "ready, 5 mappings",
        "",
        "MAPPING        SOURCE    STATE     LAST RESULT                    LAG       RECORDS/S",
        "orders         sqs       Enabled   -                              -              12.0",
        "telemetry      kinesis   Enabled   OK                             age 3.2s        0.0",
        "payments       kafka     Enabled   PROBLEM: Function call failed  42            250.5",
        "missing-queue  sqs       Creating  -                              -                 -",
        "paused         dynamodb  Disabled  No records processed           -                 -",
        "",
        "missing-queue: Creating: The specified queue does not exist.",
    ]


def test_without_throughput_the_column_shows_dashes() -> None:
    out = format_status({"ready": False, "draining": False, "mappings": DOCUMENT["mappings"][:1]})
    assert out.splitlines() == [
        "not ready, 1 mapping",
        "",
        "MAPPING  SOURCE  STATE    LAST RESULT  LAG  RECORDS/S",
        "orders   sqs     Enabled  -            -            -",
    ]


def test_a_failed_reload_and_settings_needing_a_restart_are_shown() -> None:
    document = {
        "ready": True,
        "draining": True,
        "reload": {
            "ok": False,
            "trigger": "signal",
            "at": "2026-01-01T00:00:05.000Z",
            "problems": [
                "mappings/orders.yaml:4: Mapping 'orders': BatchSize: Input should be a valid integer"
            ],
            "restart_required": ["http", "shutdown"],
        },
        "mappings": [],
    }
    assert format_status(document).splitlines() == [
        "draining, 0 mappings",
        "",
        "config: the last load (signal, 2026-01-01T00:00:05.000Z) has errors; the last good mappings keep running:",
        "  mappings/orders.yaml:4: Mapping 'orders': BatchSize: Input should be a valid integer",
        "",
        "config: settings changed (http, shutdown); they apply after a restart",
    ]


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({"Source": "sqs", "Positions": {}}, "-"),
        ({"Source": "kafka", "Positions": {}}, "-"),
        ({"Source": "kafka", "Positions": {"t-0": {"Lag": None}}}, "-"),
        ({"Source": "kafka", "Positions": {"t-0": {"Lag": 0}, "t-1": {"Lag": 7}}}, "7"),
        ({"Source": "dynamodb", "Positions": {"s": {"IteratorAgeSeconds": 0.04}}}, "age 0.0s"),
        ({"Source": "kinesis", "Positions": None}, "-"),
    ],
)
def test_lag_per_source_kind(mapping: dict[str, Any], expected: str) -> None:
    assert lag_text(mapping) == expected


def test_throughput_from_two_metrics_samples() -> None:
    first = polled_totals(
        "# HELP poller_records_polled_total Records read from the source\n"
        "# TYPE poller_records_polled_total counter\n"
        'poller_records_polled_total{mapping="a"} 10.0\n'
        'poller_records_polled_total{mapping="b"} 5.0\n'
        'poller_records_polled_created{mapping="a"} 1.7e9\n'
        'poller_records_invoked_total{mapping="a"} 99.0\n'
    )
    assert first == {"a": 10.0, "b": 5.0}
    second = {"a": 40.0, "b": 5.0, "c": 3.0}
    assert rates(first, second, 2.0) == {"a": 15.0, "b": 0.0}  # c was not there the first time
    assert rates(first, {"a": 1.0}, 1.0) == {"a": 0.0}  # a counter reset (restart) is not negative
    assert rates(first, second, 0.0) == {}


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("10.1.2.3", "http://10.1.2.3:8080"),
        ("poller.internal", "http://poller.internal:8080"),
    ],
)
def test_service_url_from_the_listen_address(host: str, url: str) -> None:
    assert service_url(host, 8080) == url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_service_is_a_clear_error_and_exit_1(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    url = f"http://127.0.0.1:{free_port()}"
    code = run_status(url, None, interval_seconds=0, environ={}, cwd=tmp_path, out=out, err=err)
    assert code == 1
    assert out.getvalue() == ""
    assert err.getvalue().startswith(f"poller status: cannot reach {url}/status: ")
    assert "is `poller run` running there?" in err.getvalue()


def test_broken_settings_without_url_exit_2(tmp_path: Path) -> None:
    (tmp_path / "poller.yaml").write_text("http: {port: not-a-port}\n")
    out, err = io.StringIO(), io.StringIO()
    code = run_status(None, tmp_path / "poller.yaml", environ={}, cwd=tmp_path, out=out, err=err)
    assert code == 2
    assert "http.port" in err.getvalue()


class FakeService(BaseHTTPRequestHandler):
    polled = 0.0

    def do_GET(self) -> None:
        if self.path == "/status":
            body = json.dumps(
                {"ready": True, "draining": False, "mappings": DOCUMENT["mappings"][:1]}
            ).encode()
        elif self.path == "/metrics":
            FakeService.polled += 10
            body = f'poller_records_polled_total{{mapping="orders"}} {FakeService.polled}\n'.encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_service() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_the_service_is_found_through_the_settings(tmp_path: Path, fake_service: int) -> None:
    """Without --url: http.host (0.0.0.0 → loopback) and http.port, with POLLER_* overrides."""
    (tmp_path / "poller.yaml").write_text("http: {host: 0.0.0.0, port: 1}\n")
    out, err = io.StringIO(), io.StringIO()
    code = run_status(
        None,
        Path("poller.yaml"),
        interval_seconds=0.05,
        environ={"POLLER_HTTP__PORT": str(fake_service)},
        cwd=tmp_path,
        out=out,
        err=err,
    )
    assert (code, err.getvalue()) == (0, "")
    header, row = out.getvalue().splitlines()[2:4]
    assert header.split() == ["MAPPING", "SOURCE", "STATE", "LAST", "RESULT", "LAG", "RECORDS/S"]
    assert row.split()[:5] == ["orders", "sqs", "Enabled", "-", "-"]
    assert float(row.split()[5]) > 0  # 10 more records between the two reads


def test_a_server_that_is_not_a_poller_is_reported(tmp_path: Path, fake_service: int) -> None:
    out, err = io.StringIO(), io.StringIO()
    url = f"http://127.0.0.1:{fake_service}/nothing-here"
    code = run_status(url, None, interval_seconds=0, environ={}, cwd=tmp_path, out=out, err=err)
    assert code == 1
    assert f"{url}/status answered HTTP 404" in err.getvalue()
