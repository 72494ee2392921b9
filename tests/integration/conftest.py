"""Real servers for integration tests: moto over HTTP, an HTTP function target, `poller run`.

The poller under test is the real console entry point in a child process, configured only through
its public contract (settings YAML, mapping YAML, POLLER_* environment), and observed only
through what a user sees: the function's invocations, the queues, /metrics, /status and its logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from aiohttp import web

from tests.waiting import wait_until

REGION = "us-east-1"
ACCOUNT = "123456789012"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def aws_env() -> Iterator[dict[str, str]]:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "MOTO_ACCOUNT_ID": ACCOUNT,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def moto_endpoint(aws_env: dict[str, str]) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from tests.moto_sqs import make_receive_atomic

    make_receive_atomic()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=moto_endpoint, region_name=REGION)


@dataclass
class Queue:
    name: str
    url: str
    arn: str


@pytest.fixture
def make_queue(sqs: Any, request: pytest.FixtureRequest) -> Callable[..., Queue]:
    counter = iter(range(1000))

    def make(
        *,
        visibility: int = 2,
        fifo: bool = False,
        dlq: Queue | None = None,
        max_receive: int = 2,
        name: str | None = None,
    ) -> Queue:
        base = name or f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{next(counter)}"
        qname = f"{base}.fifo" if fifo else base
        attributes = {"VisibilityTimeout": str(visibility)}
        if fifo:
            attributes |= {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        if dlq is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": max_receive}
            )
        url = sqs.create_queue(QueueName=qname, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Queue(qname, url, arn)

    return make


def queue_depth(sqs: Any, queue: Queue) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def drain_queue(sqs: Any, queue: Queue) -> list[dict[str, Any]]:
    """Receive (and delete) everything visible in a queue now."""
    out: list[dict[str, Any]] = []
    while True:
        reply = sqs.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
        )
        messages = reply.get("Messages", [])
        if not messages:
            return out
        out.extend(messages)
        for m in messages:
            sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=m["ReceiptHandle"])


Behaviour = Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]


def succeed_after(seconds: float) -> Behaviour:
    """A function that works for `seconds` (simulated work, not synchronisation), then succeeds."""

    async def behaviour(_: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.json_response(None)

    return behaviour


@dataclass
class FunctionServer:
    """An HTTP function target run by the test: records every event, answers as scripted."""

    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    concurrent: int = 0
    max_concurrent: int = 0
    behaviour: Behaviour | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for e in self.events for r in e["Records"]]

    def bodies(self) -> list[str]:
        return [r["body"] for r in self.records]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        event = json.loads(await request.read())
        self.events.append(event)
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.behaviour is None:
                return web.json_response(None)
            return await self.behaviour(event)
        finally:
            self.concurrent -= 1


@asynccontextmanager
async def serving_function() -> AsyncIterator[FunctionServer]:
    server = FunctionServer()
    app = web.Application(client_max_size=8 * 1024 * 1024)  # Lambda payloads reach 6 MB
    app.router.add_post("/invoke", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server.url = f"http://127.0.0.1:{port}/invoke"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def function_server() -> AsyncIterator[FunctionServer]:
    async with serving_function() as server:
        yield server


@pytest.fixture
async def other_function_server() -> AsyncIterator[FunctionServer]:
    """A second, independent function, for tests with two mappings."""
    async with serving_function() as server:
        yield server


@dataclass
class PollerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    config_path: Path

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def get(self, path: str) -> tuple[int, bytes]:
        http = urllib3.PoolManager(retries=False, timeout=2.0)
        reply = http.request("GET", f"http://127.0.0.1:{self.port}{path}")
        return reply.status, reply.data

    def metric(self, name: str, **labels: str) -> float:
        """The value of one series from /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        _, body = self.get("/metrics")
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def status(self) -> dict[str, Any]:
        _, body = self.get("/status")
        return dict(json.loads(body))

    def ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except Exception:
            return False

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


async def launch_poller(
    workdir: Path,
    moto_endpoint: str,
    *,
    settings: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    started: list[PollerProcess] | None = None,
    args: Sequence[str] = (),
) -> PollerProcess:
    """`poller run` on `workdir` (its `mappings/` already written) against the moto server, on a
    free port; `settings` are merged into the test defaults; `args` follow `run --config FILE`
    (e.g. `--template`). Waits for /readyz unless told not to. The caller kills it (`started`
    collects it for a fixture that does)."""
    port = free_port()
    base_settings: dict[str, Any] = {
        "aws": {"region": REGION, "account_id": ACCOUNT},
        "mappings": ["mappings/"],
        "shutdown": {"drain_seconds": 10},
    }
    for key, value in (settings or {}).items():
        base_settings[key] = {**base_settings.get(key, {}), **value} if isinstance(value, dict) else value
    config_path = workdir / "poller.yaml"
    config_path.write_text(json.dumps(base_settings))
    log_path = workdir / "poller.log"
    child_env = {
        **os.environ,
        "POLLER_AWS__ENDPOINT_URL": moto_endpoint,
        "POLLER_HTTP__PORT": str(port),
        "POLLER_HTTP__HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "poller", "run", "--config", str(config_path), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=workdir,
        )
    handle = PollerProcess(proc, port, log_path, config_path)
    if started is not None:
        started.append(handle)
    if wait_ready:
        try:
            await wait_until(lambda: handle.ready() or proc.poll() is not None, timeout=30, what="/readyz")
        except BaseException:
            handle.kill()  # never ready: nothing else would stop it
            raise
        if proc.poll() is not None:
            raise AssertionError(f"poller exited early:\n{log_path.read_text()}")
    return handle


StartPoller = Callable[..., Awaitable[PollerProcess]]


@pytest.fixture
async def start_poller(tmp_path: Path, moto_endpoint: str) -> AsyncIterator[StartPoller]:
    started: list[PollerProcess] = []

    async def start(
        mappings: list[dict[str, Any]],
        *,
        settings: dict[str, Any] | None = None,
        handlers: dict[str, str] | None = None,
        wait_ready: bool = True,
        env: dict[str, str] | None = None,
    ) -> PollerProcess:
        workdir = tmp_path / f"poller-{len(started)}"
        (workdir / "mappings").mkdir(parents=True)
        for name, source in (handlers or {}).items():
            (workdir / f"{name}.py").write_text(source)
        for i, mapping in enumerate(mappings):
            # Test queues use 1-2 s visibility timeouts for quick retries, and AWS rejects a function
            # timeout above the queue's (spec §1.6): default to 1 s unless the test says otherwise.
            (workdir / "mappings" / f"m{i}.yaml").write_text(json.dumps({"FunctionTimeout": 1, **mapping}))
        return await launch_poller(
            workdir, moto_endpoint, settings=settings, env=env, wait_ready=wait_ready, started=started
        )

    yield start
    for handle in started:
        handle.kill()


# -- templates (poller run --template) -------------------------------------------------------------


RunTemplate = Callable[..., Awaitable[PollerProcess]]


@pytest.fixture
async def run_template(tmp_path: Path, moto_endpoint: str) -> AsyncIterator[RunTemplate]:
    """`poller run --template FILE [--parameter-overrides ...]` against the moto server (DESIGN §1.10)."""
    started: list[PollerProcess] = []

    async def start(
        template: Path, *overrides: str, wait_ready: bool = True, env: dict[str, str] | None = None
    ) -> PollerProcess:
        workdir = tmp_path / f"poller-{len(started)}"
        workdir.mkdir()
        args = ["--template", str(template)]
        if overrides:
            args += ["--parameter-overrides", *overrides]
        return await launch_poller(
            workdir, moto_endpoint, args=args, started=started, wait_ready=wait_ready, env=env
        )

    yield start
    for handle in started:
        handle.kill()


@pytest.fixture
def aws(moto_endpoint: str) -> dict[str, Any]:
    """boto3 clients on the moto server, by service: what a test uses to feed a template's sources."""
    return {
        kind: boto3.client(kind, endpoint_url=moto_endpoint, region_name=REGION)
        for kind in ("sqs", "kinesis", "dynamodb")
    }


# -- streams -------------------------------------------------------------------------------------


@dataclass
class Stream:
    name: str
    arn: str


@pytest.fixture
def kinesis(moto_endpoint: str) -> Any:
    return boto3.client("kinesis", endpoint_url=moto_endpoint, region_name=REGION)


@pytest.fixture
def make_stream(kinesis: Any, request: pytest.FixtureRequest) -> Callable[..., Stream]:
    def make(shards: int = 1) -> Stream:
        name = f"{request.node.name[:80]}-{len(made)}".replace("[", "-").replace("]", "")
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        made.append(name)
        return Stream(name, summary["StreamARN"])

    made: list[str] = []
    return make


def put_kinesis(kinesis: Any, stream: Stream, records: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Write records one at a time, in order, from this one writer (moto's Kinesis loses records
    under concurrent PutRecords, DESIGN §4); returns PutRecord's replies (ShardId, SequenceNumber)."""
    return [kinesis.put_record(StreamName=stream.name, PartitionKey=key, Data=data) for key, data in records]


@dataclass
class Table:
    name: str
    stream_arn: str


@pytest.fixture
def dynamodb(moto_endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)


@pytest.fixture
def make_table(dynamodb: Any, request: pytest.FixtureRequest) -> Callable[..., Table]:
    def make(view_type: str = "NEW_AND_OLD_IMAGES") -> Table:
        name = f"{request.node.name[:80]}-{len(made)}".replace("[", "-").replace("]", "")
        reply = dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
        )
        made.append(name)
        return Table(name, reply["TableDescription"]["LatestStreamArn"])

    made: list[str] = []
    return make


def stream_mapping(name: str, arn: str, url: str, **settings: Any) -> dict[str, Any]:
    """A stream mapping with the test defaults: TRIM_HORIZON, and a destination-less warning accepted."""
    return {
        "Name": name,
        "EventSourceArn": arn,
        "FunctionName": url,
        "StartingPosition": "TRIM_HORIZON",
        **settings,
    }


NODE_RIC_BIN = Path(__file__).resolve().parents[2] / ".cache" / "aws-lambda-ric" / "node_modules" / ".bin"
"""Where scripts/test installs AWS's Node.js runtime client (`npm install --prefix .cache/aws-lambda-ric
aws-lambda-ric@3.3.0`)."""


@pytest.fixture(scope="session")
def node_function_path() -> str:
    """The `PATH` to give a Node.js function so that poller finds aws-lambda-ric: scripts/test's copy
    in `.cache/aws-lambda-ric` first, then this machine's PATH (where `npm install -g` puts it).

    Skips only where node or npm is missing (scripts/test installs the client only where npm is);
    with both present, a client that is not installed fails the test rather than hiding it.
    """
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"Node.js functions need node and npm; not installed here: {', '.join(missing)}")
    path = f"{NODE_RIC_BIN}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    if shutil.which("aws-lambda-ric", path=path) is None:
        pytest.fail(
            "aws-lambda-ric is not installed: run scripts/test, which installs it, or "
            "`npm install --prefix .cache/aws-lambda-ric aws-lambda-ric@3.3.0`"
        )
    return path


from tests.integration.kafka_broker import kafka_bootstrap  # noqa: E402,F401  (Tansu broker fixture)
