"""The floor of `function-invoke`: the least any Runtime API server must add to an invocation.

The same awslambdaric child `FunctionPool` runs (started by poller's own `launch_command` and
`environment_variables`), served by a bare `asyncio.Protocol` that speaks only what a warm no-op
invocation needs: `/next` parked until an event is handed over and answered with the headers
awslambdaric demands, `/response` answered 202. No guard (deadline, memory, `/tmp`), no logs, no
metrics, no error handling, no HTTP beyond Content-Length bodies on one keep-alive connection. It
is a measuring stick, not a server: DESIGN §1.5.1 obliges poller to do all it leaves out.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

from bench.servers import ACCOUNT, REGION
from poller.core.outcome import InvokeOutcome, Succeeded
from poller.functions.definition import FunctionDefinition
from poller.functions.launch import environment_variables, launch_command

ACCEPTED = (
    b'HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"status":"OK"}\n'
)
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
"""The runtime poller's own interpreter is (no version warning; it runs awslambdaric either way)."""
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


class _Connection(asyncio.Protocol):
    def __init__(self, floor: FloorEnvironment) -> None:
        self._floor = floor
        self._buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            head, found, rest = self._buffer.partition(b"\r\n\r\n")
            if not found:
                return
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ")[1]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            body, self._buffer = rest[:length], rest[length:]
            if path.endswith(b"/invocation/next"):
                self._floor.parked(self)
            else:
                assert self.transport is not None
                self.transport.write(ACCEPTED)
                self._floor.answered(body)

    def send_event(self, event: bytes) -> None:
        assert self.transport is not None
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Lambda-Runtime-Aws-Request-Id: {uuid.uuid4()}\r\n"
            f"Lambda-Runtime-Deadline-Ms: {int(time.time() * 1000) + 60_000}\r\n"
            f"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:{REGION}:{ACCOUNT}:function:floor\r\n"
            f"Lambda-Runtime-Trace-Id: {TRACE}\r\nContent-Length: {len(event)}\r\n\r\n"
        )
        self.transport.write(head.encode() + event)


class FloorEnvironment:
    """One awslambdaric process behind the bare server; `invoke` one event at a time."""

    def __init__(self, code: Path, tmpdir: Path) -> None:
        self._definition = FunctionDefinition(
            name="floor", runtime=RUNTIME, handler="app.handler", code_uri=code, timeout_seconds=60
        )
        self._tmpdir = tmpdir
        self._server: asyncio.Server | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._waiting: _Connection | None = None
        self._ready = asyncio.Event()
        self._event: bytes | None = None
        self._reply: asyncio.Future[bytes] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        launch = launch_command(self._definition)
        self._tmpdir.mkdir(parents=True, exist_ok=True)
        env = environment_variables(
            self._definition,
            runtime_api=f"127.0.0.1:{port}",
            region=REGION,
            tmpdir=self._tmpdir,
            log_stream="floor",
            runtime_dir=launch.runtime_dir,
            credentials={},
            host_environ=os.environ,
        )
        self._proc = await asyncio.create_subprocess_exec(
            *launch.argv, cwd=launch.cwd, env=env, stdin=asyncio.subprocess.DEVNULL
        )
        await asyncio.wait_for(self._ready.wait(), 10)

    def parked(self, connection: _Connection) -> None:
        self._ready.set()
        if self._event is not None:
            event, self._event = self._event, None
            connection.send_event(event)
        else:
            self._waiting = connection

    def answered(self, body: bytes) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(body)

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        self._reply = asyncio.get_running_loop().create_future()
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting.send_event(payload)
        else:
            self._event = payload
        return Succeeded(await self._reply)

    async def aclose(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
