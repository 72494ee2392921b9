"""Fixtures for the fault-injection tests: the integration servers, plus an AWS endpoint that can be
taken away and brought back, and the helpers that tell a live service from a crashed one.

The servers are the integration suite's (moto over HTTP, the scriptable HTTP function, the real
`poller run` in a child process, Tansu); they are re-exported here so pytest finds them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from tests.integration.conftest import (  # noqa: F401  (fixtures, found by name)
    PollerProcess,
    aws_env,
    dynamodb,
    free_port,
    function_server,
    kinesis,
    make_queue,
    make_stream,
    make_table,
    moto_endpoint,
    other_function_server,
    sqs,
    start_poller,
)
from tests.integration.kafka_broker import kafka_bootstrap  # noqa: F401  (a fixture)
from tests.moto_sqs import make_receive_atomic

SOAK_ENV = "POLLER_SOAK"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests run for minutes: opt-in with POLLER_SOAK=1; fault tests always run."""
    if os.environ.get(SOAK_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"soak tests are opt-in: set {SOAK_ENV}=1")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


# -- the service is alive --------------------------------------------------------------------------


def healthy(poller: PollerProcess) -> bool:
    """The process runs and /healthz answers 200 (DESIGN §1.6: liveness)."""
    if poller.proc.poll() is not None:
        return False
    try:
        return poller.get("/healthz")[0] == 200
    except Exception:
        return False


def assert_alive(poller: PollerProcess) -> None:
    assert poller.proc.poll() is None, f"poller exited with {poller.proc.returncode}:\n{tail(poller)}"
    assert healthy(poller), f"/healthz does not answer 200:\n{tail(poller)}"


def tail(poller: PollerProcess, chars: int = 6000) -> str:
    return poller.log_path.read_text(errors="replace")[-chars:]


def crashes(poller: PollerProcess) -> list[dict[str, Any]]:
    """Log lines that say a mapping's source died and was restarted by its supervisor, or that an
    unexpected exception escaped (structlog's `exception` field)."""
    return [
        line
        for line in poller.logs()
        if line.get("event") in ("mapping_failed", "config_reload_error") or "exception" in line
    ]


def moto_receive_races(deliveries: dict[str, list[tuple[str, float]]]) -> int:
    """Duplicates the queue made, not the poller: moto's SQS is not thread-safe, and two concurrent
    ReceiveMessage calls now and then both take the same message (new receipt handles, within
    milliseconds of each other, long before any visibility timeout could have expired). Standard
    SQS is at-least-once too, so these are not the redeliveries the crash caused."""
    races = 0
    for handed in deliveries.values():
        for (handle, at), (next_handle, next_at) in pairwise(handed):
            if next_handle != handle and next_at - at < 1.0:
                races += 1
    return races


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


# -- an AWS endpoint that can go away --------------------------------------------------------------


class RestartableMotoServer(ThreadedMotoServer):
    """moto's threaded server on a fixed port, that can be stopped and started again.

    moto's backends live in this process, not in the server thread, so what was created before a
    stop is still there after the restart (the tests check it). `stop` also severs the connections
    clients hold open: werkzeug serves each keep-alive connection in a daemon thread that outlives
    `shutdown()`, so without this a stopped server would go on answering its existing clients.
    """

    def __init__(self, port: int) -> None:
        make_receive_atomic()
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.port = port
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        accept = server.process_request

        def process_request(request: socket.socket, client_address: Any) -> None:
            with self._lock:
                self._connections.add(request)
            accept(request, client_address)

        server.process_request = process_request  # type: ignore[method-assign,assignment]
        # A severed connection makes its handler thread fail; that is the point, not news.
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        self._server_ready_event.set()
        server.serve_forever()

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server_ready_event.clear()
        self._thread = threading.Thread(target=self._server_entry, daemon=True)
        self._thread.start()
        if not self._server_ready_event.wait(timeout=15):
            raise RuntimeError(f"moto did not start on port {self.port}")

    def stop(self) -> None:
        super().stop()  # stop accepting, close the listening socket
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False
