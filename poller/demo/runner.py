"""`poller demo`: the example mappings end to end on an embedded AWS emulation (moto).

Nothing else needs to be installed or running: it starts moto in-process on 127.0.0.1, creates the
queues the example mappings read, sends sample orders (some of them poison), runs the real service
on them, shows progress, and ends with where every message went.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

DEMO_ACCOUNT = "123456789012"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_moto() -> tuple[Any, str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        sys.stderr.write("poller demo needs the embedded AWS emulation: pip install 'poller[demo]'\n")
        raise SystemExit(2) from None
    # moto's HTTP server logs every request through werkzeug; the demo shows its own progress.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    wsgi = server._server
    assert wsgi is not None, "ThreadedMotoServer.start() returns once it listens"
    return server, f"http://127.0.0.1:{wsgi.server_port}"


def _create_queues(endpoint: str) -> tuple[Any, str, str]:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    dlq_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName="orders",
        Attributes={
            "VisibilityTimeout": "2",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    return sqs, url, dlq_url


def _depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@dataclass(frozen=True)
class DemoRun:
    sqs: Any
    url: str
    dlq_url: str
    total: int
    poison: int
    timeout_seconds: float


def run_demo(messages: int = 20, timeout_seconds: float = 60.0) -> int:
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "demo"),
        ("AWS_SECRET_ACCESS_KEY", "demo"),
        ("AWS_DEFAULT_REGION", REGION),
        ("MOTO_ACCOUNT_ID", DEMO_ACCOUNT),
    ):
        os.environ.setdefault(key, value)
    server, endpoint = _start_moto()
    try:
        sqs, url, dlq_url = _create_queues(endpoint)
        poison = {i for i in range(messages) if i % 10 == 7}
        for i in range(messages):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"orderId": i, "poison": i in poison}))
        print(
            f"poller demo: moto at {endpoint}; sent {messages} orders to queue 'orders' "
            f"({len(poison)} poison, which the handler rejects)"
        )
        run = DemoRun(sqs, url, dlq_url, messages, len(poison), timeout_seconds)
        return asyncio.run(_serve(endpoint, run))
    finally:
        server.stop()


async def _serve(endpoint: str, run: DemoRun) -> int:
    from poller.config import load_config
    from poller.observability.logging import configure_logging
    from poller.runtime.app import Service

    mappings_dir = resources.files("poller.demo") / "mappings"
    with tempfile.TemporaryDirectory() as tmp:
        settings_file = Path(tmp) / "poller.yaml"
        settings_file.write_text(
            json.dumps(
                {
                    "aws": {"region": REGION, "endpoint_url": endpoint, "account_id": DEMO_ACCOUNT},
                    "http": {"host": "127.0.0.1", "port": _free_port()},
                    "mappings": [str(mappings_dir)],
                    "log": {"format": "console", "level": "warning"},
                    "shutdown": {"drain_seconds": 5},
                }
            )
        )
        loaded = load_config(settings_file, environ={}, cwd=Path(tmp))
        for problem in loaded.problems:
            print(f"  {problem}")
        configure_logging("console", "warning")
        service = Service(loaded)
        runner = asyncio.create_task(service.run())
        outcome = await _watch(service, run)
        service.request_stop()
        await runner
    return outcome


async def _watch(service: Any, run: DemoRun) -> int:
    registry = service.registry
    started = time.monotonic()
    total, poison = run.total, run.poison

    def value(name: str, **labels: str) -> float:
        return float(registry.get_sample_value(name, {"mapping": "orders", **labels}) or 0.0)

    dead = 0
    while time.monotonic() - started < run.timeout_seconds:
        await asyncio.sleep(0.5)
        deleted = value("poller_records_deleted_total")
        failed = value("poller_records_failed_total")
        invoked = value("poller_records_invoked_total")
        dead = await asyncio.to_thread(_depth, run.sqs, run.dlq_url)
        elapsed = time.monotonic() - started
        sys.stdout.write(
            f"\r  {elapsed:5.1f}s  invoked {invoked:4.0f} ({invoked / elapsed:5.1f} rec/s)"
            f"  processed {deleted:3.0f}/{total - poison}  in failed batches {failed:3.0f}"
            f"  in DLQ {dead}/{poison}   "
        )
        sys.stdout.flush()
        if deleted >= total - poison and dead >= poison:
            break
    print()
    left = await asyncio.to_thread(_depth, run.sqs, run.url)
    ok = value("poller_records_deleted_total") >= total - poison and dead >= poison and left == 0
    print("summary:")
    print(f"  {value('poller_records_deleted_total'):.0f} orders processed and deleted from 'orders'")
    print(
        f"  {dead} poison orders retried (maxReceiveCount 2), "
        "then moved by the queue's redrive policy to 'orders-dlq'"
    )
    print(f"  {left} messages left in 'orders'")
    print(
        f"  invocations: {value('poller_invocations_total', outcome='success'):.0f} success, "
        f"{value('poller_invocations_total', outcome='partial'):.0f} partial"
    )
    return 0 if ok else 1
