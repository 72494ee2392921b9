"""The Grafana dashboard and the alert rules in `config/` against a real Prometheus scraping a real
`poller run` (DESIGN §1.7): every panel query and every alert expression parses and evaluates on the
series poller exports, the panels that traffic must fill are not empty, every rule is healthy, and
the alerts that this traffic should raise are raised (and only for the right mappings). A declared
function (DESIGN §1.5.1), run by the real awslambdaric, fills the Functions row; its panels filter
on `$function`, as the `function_*` series carry `function` instead of `mapping`."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from aiohttp import web

from tests.integration.conftest import (
    ACCOUNT,
    REGION,
    FunctionServer,
    StartPoller,
    free_port,
    put_kinesis,
    stream_mapping,
)
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "poller-dashboard.json"
ALERTS = ROOT / "config" / "prometheus" / "alerts.yaml"
RATE_INTERVAL = "30s"  # what $__rate_interval / $__interval become: the whole test fits in it
FUNCTION = "prom-fn"
"""The declared function of the scenario."""
FUNCTION_CODE = """\
import time


def handler(event, context):
    # Overrun the function's Timeout (1 s) on a "slow" record: Sandbox.Timedout, environment killed.
    if any("slow" in record["body"] for record in event["Records"]):
        time.sleep(30)
"""


# -- the assets --------------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def panel_targets() -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) of every query of every panel."""
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def is_function_panel(expr: str) -> bool:
    """A query on the `function_*` series: labelled `function`, filtered by $function, not $mapping."""
    return "poller_function_" in expr


def instantiate(expr: str, mapping_regex: str, function_regex: str = ".*") -> str:
    """The query Grafana sends: template variables replaced."""
    for variable in ("$__rate_interval", "${__rate_interval}", "$__interval", "${__interval}"):
        expr = expr.replace(variable, RATE_INTERVAL)
    expr = expr.replace("${mapping}", mapping_regex).replace("$mapping", mapping_regex)
    expr = expr.replace("${function}", function_regex).replace("$function", function_regex)
    assert "$" not in expr, f"unknown template variable left in {expr!r}"
    return expr


def alert_rules() -> list[tuple[str, dict[str, Any]]]:
    """(group name, rule) of every rule in alerts.yaml."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [(group["name"], rule) for group in groups for rule in group["rules"]]


def test_dashboard_is_importable_and_parameterised() -> None:
    """The JSON Grafana imports: datasource, mapping and function variables, every query on
    ${datasource} and filtered by $mapping (the function panels by $function), unique panel ids,
    units, and the panels the Operations and Functions issues ask for."""
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["uid"]
    assert board["title"]
    assert board.get("id") is None
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    query = variables["mapping"]["query"]
    query = query["query"] if isinstance(query, dict) else query
    assert query == "label_values(poller_mapping_state, mapping)"
    assert variables["mapping"]["includeAll"]
    assert variables["mapping"]["allValue"] == ".*"
    query = variables["function"]["query"]
    query = query["query"] if isinstance(query, dict) else query
    assert query == "label_values(poller_function_environments, function)"
    assert variables["function"]["includeAll"]
    assert variables["function"]["allValue"] == ".*"
    panels = list(all_panels(board["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("description"), panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            if is_function_panel(target["expr"]):
                assert 'function=~"$function"' in target["expr"], (panel["title"], target["expr"])
                assert "mapping" not in target["expr"], (panel["title"], target["expr"])
            else:
                assert 'mapping=~"$mapping"' in target["expr"], (panel["title"], target["expr"])
        if panel["type"] == "timeseries":
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
    exprs = " ".join(expr for _, expr in panel_targets())
    for needle in (
        "rate(poller_records_polled_total",
        "rate(poller_records_invoked_total",
        "rate(poller_invocations_total",
        "histogram_quantile(0.5, sum by (le, mapping) (rate(poller_invocation_duration_seconds_bucket",
        "histogram_quantile(0.9, sum by (le, mapping) (rate(poller_invocation_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, mapping) (rate(poller_invocation_duration_seconds_bucket",
        "poller_iterator_age_seconds",
        "poller_offset_lag",
        "poller_buffered_records",
        "poller_in_flight_batches",
        "poller_records_sent_to_destination_total",
        "poller_destination_delivery_failures_total",
        "sum by (mapping, reason) (rate(poller_records_dropped_total",
        "poller_records_filtered_total",
        "poller_records_deleted_total",
        "poller_retries_total",
        "poller_poll_errors_total",
        'poller_mapping_state{mapping=~"$mapping"} == 1',
        # Issue 13: failures that were only logged are counted and shown.
        "sum by (mapping, kind) (rate(poller_ack_failures_total",
        "poller_lease_renewal_failures_total",
        "poller_handler_threads_leaked",
        # Issue 15: execution environments.
        "sum by (function, state) (poller_function_environments",
        "rate(poller_function_cold_starts_total",
        "histogram_quantile(0.5, sum by (le, function) (rate(poller_function_init_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, function) (rate(poller_function_init_duration_seconds_bucket",
        "histogram_quantile(0.5, sum by (le, function) (rate(poller_function_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, function) (rate(poller_function_duration_seconds_bucket",
        "sum by (function, error_type) (rate(poller_function_errors_total",
        "poller_function_max_memory_bytes",
    ):
        assert needle in exprs, needle


def test_dashboard_and_alerts_use_only_exported_metrics() -> None:
    """A typo in a metric name would leave a panel or an alert silently empty."""
    from prometheus_client import CollectorRegistry

    from poller.observability.function_metrics import FunctionMetrics
    from poller.observability.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    FunctionMetrics(registry)
    exported: set[str] = set()
    for family in registry.collect():
        exported.add(family.name)
        if family.type == "counter":
            exported |= {f"{family.name}_total", f"{family.name}_created"}
        if family.type == "histogram":
            exported |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
    used = {name for _, expr in panel_targets() for name in re.findall(r"\bpoller_[a-z_]+", expr)}
    used |= {name for _, rule in alert_rules() for name in re.findall(r"\bpoller_[a-z_]+", rule["expr"])}
    assert used - exported == set()


# -- Prometheus --------------------------------------------------------------------------------------


@dataclass
class Prometheus:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def get(self, path: str, **fields: str) -> dict[str, Any]:
        http = urllib3.PoolManager(retries=False, timeout=5.0)
        reply = http.request("GET", f"{self.url}{path}", fields=fields)
        body: dict[str, Any] = json.loads(reply.data)
        return body

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query that must succeed; its result vector."""
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", f"{expr}: {body}"
        assert body["data"]["resultType"] == "vector", expr
        return list(body["data"]["result"])

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log_path.read_text()}")
        try:
            http = urllib3.PoolManager(retries=False, timeout=1.0)
            return http.request("GET", f"{self.url}/-/ready").status == 200
        except urllib3.exceptions.HTTPError:
            return False

    def active_alerts(self) -> set[tuple[str, str, str]]:
        """(alertname, mapping or function, state) of every pending or firing alert."""
        alerts = self.get("/api/v1/alerts")["data"]["alerts"]
        return {
            (
                a["labels"]["alertname"],
                a["labels"].get("mapping", a["labels"].get("function", "")),
                a["state"],
            )
            for a in alerts
        }


StartPrometheus = Callable[[list[int]], Awaitable[Prometheus]]


@pytest.fixture
async def start_prometheus(tmp_path: Path) -> AsyncIterator[StartPrometheus]:
    """A real Prometheus on 127.0.0.1, scraping the given ports every second with alerts.yaml loaded."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the `prometheus` server is not installed: `apt-get install prometheus` (Debian), as .ci/run does"
        )
    started: list[Prometheus] = []

    async def start(ports: list[int]) -> Prometheus:
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "poller", "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log_path = workdir / "prometheus.log"
        with log_path.open("wb") as sink:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        server = Prometheus(proc, f"http://127.0.0.1:{port}", log_path)
        started.append(server)
        await wait_until(server.ready, timeout=20, what="prometheus /-/ready")
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.terminate()
            try:
                server.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait(timeout=10)


# -- traffic -----------------------------------------------------------------------------------------


def payload(record: dict[str, Any]) -> str:
    if "kinesis" in record:
        return base64.b64decode(record["kinesis"]["data"]).decode()
    return str(record["body"])


async def fail_on_bad(event: dict[str, Any]) -> web.StreamResponse:
    """The function: an unhandled error for any batch holding a record that says "bad"."""
    if any("bad" in payload(r) for r in event["Records"]):
        return web.json_response(
            {"errorType": "Poison", "errorMessage": "cannot process"},
            headers={"X-Amz-Function-Error": "Unhandled"},
        )
    return web.json_response(None)


def on_failure(destination: str) -> dict[str, Any]:
    return {"DestinationConfig": {"OnFailure": {"Destination": destination}}}


@pytest.mark.integration
async def test_dashboard_queries_and_alert_rules_on_a_real_prometheus(
    sqs: Any,
    kinesis: Any,
    make_queue: Any,
    make_stream: Any,
    function_server: FunctionServer,
    start_poller: StartPoller,
    start_prometheus: StartPrometheus,
) -> None:
    function_server.behaviour = fail_on_bad
    url = function_server.url
    dlq = make_queue(visibility=30)
    orders = make_queue(visibility=1, dlq=dlq, max_receive=2)
    inbox = make_queue(visibility=30)
    parked = make_queue()
    drops, to_destination, blocked = make_stream(), make_stream(), make_stream()
    # The declared function's queue: a record that times out goes to the DLQ on its next receive.
    function_dlq = make_queue(visibility=30)
    function_queue = make_queue(visibility=1, dlq=function_dlq, max_receive=1)
    missing_queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:prometheus-assets-missing"
    poller = await start_poller(
        [
            {
                "Name": "sqs-orders",
                "EventSourceArn": orders.arn,
                "FunctionName": url,
                "BatchSize": 1,
                "FilterCriteria": {"Filters": [{"Pattern": json.dumps({"body": {"kind": ["order"]}})}]},
            },
            # No destination: exhausted records are dropped.
            stream_mapping("kinesis-drops", drops.arn, url, BatchSize=2, MaximumRetryAttempts=0),
            stream_mapping(
                "kinesis-dest",
                to_destination.arn,
                url,
                BatchSize=2,
                MaximumRetryAttempts=1,
                **on_failure(inbox.arn),
            ),
            # A destination that cannot be written: the shard waits, failures are counted.
            stream_mapping(
                "kinesis-blocked",
                blocked.arn,
                url,
                BatchSize=1,
                MaximumRetryAttempts=0,
                **on_failure(missing_queue),
            ),
            {"Name": "parked", "EventSourceArn": parked.arn, "FunctionName": url, "Enabled": False},
            # A declared function in execution environments; its code is prom_fn.py beside the
            # settings, one directory up from the mapping file.
            {
                "Functions": {
                    FUNCTION: {
                        "Runtime": f"python3.{sys.version_info.minor}",
                        "Handler": "prom_fn.handler",
                        "CodeUri": "..",
                        "Timeout": 1,
                    }
                },
                "Name": "sqs-function",
                "EventSourceArn": function_queue.arn,
                "FunctionName": FUNCTION,
                "BatchSize": 1,
            },
            # Cannot start: stays Creating.
            {
                "Name": "broken",
                "EventSourceArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:no-such-queue",
                "FunctionName": url,
            },
        ],
        handlers={"prom_fn": FUNCTION_CODE},
    )
    prometheus = await start_prometheus([poller.port])
    await wait_until(
        lambda: prometheus.value('up{job="poller"}') == 1, timeout=15, what="a first successful scrape"
    )

    # Traffic only now, so Prometheus sees every counter move from its first value.
    for i in range(4):
        sqs.send_message(QueueUrl=orders.url, MessageBody=json.dumps({"kind": "order", "id": i}))
    for i in range(2):
        sqs.send_message(QueueUrl=orders.url, MessageBody=json.dumps({"kind": "order", "id": f"bad-{i}"}))
        sqs.send_message(QueueUrl=orders.url, MessageBody=json.dumps({"kind": "noise", "id": i}))
    records = [(f"k{i}", data.encode()) for i, data in enumerate(["bad-0", "bad-1", "good-0", "good-1"])]
    put_kinesis(kinesis, drops, records)
    put_kinesis(kinesis, to_destination, records)
    put_kinesis(kinesis, blocked, [("k", b"bad-0")])
    for body in ("fast-0", "fast-1", "slow", "fast-2"):
        sqs.send_message(QueueUrl=function_queue.url, MessageBody=body)

    expected = {
        ('poller_records_deleted_total{mapping="sqs-orders"}', 4),
        ('poller_records_filtered_total{mapping="sqs-orders"}', 2),
        ('poller_invocations_total{mapping="sqs-orders", outcome="error"}', 2),
        ('poller_records_dropped_total{mapping="kinesis-drops"}', 2),
        ('poller_records_invoked_total{mapping="kinesis-drops"}', 4),
        ('poller_records_sent_to_destination_total{mapping="kinesis-dest"}', 2),
        ('poller_retries_total{mapping="kinesis-dest"}', 1),
        ('poller_destination_delivery_failures_total{mapping="kinesis-blocked"}', 1),
        ('poller_records_deleted_total{mapping="sqs-function"}', 3),
        (f'poller_function_cold_starts_total{{function="{FUNCTION}"}}', 1),
        (f'poller_function_duration_seconds_count{{function="{FUNCTION}"}}', 4),
        (f'poller_function_errors_total{{function="{FUNCTION}", error_type="Sandbox.Timedout"}}', 1),
    }

    def seen_by(get: Callable[[str], float]) -> bool:
        return all(get(series) >= at_least for series, at_least in expected)

    def in_poller(series: str) -> float:
        name, _, labels = series.partition("{")
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        return poller.metric(name, **pairs)

    await wait_until(lambda: seen_by(in_poller), timeout=30, what="the traffic processed")
    await wait_until(
        lambda: seen_by(lambda s: prometheus.value(f"sum({s})")), timeout=15, what="prometheus to scrape it"
    )
    await wait_until(
        lambda: prometheus.value('count_over_time(up{job="poller"}[1m])') >= 5,
        timeout=15,
        what="a few scrapes",
    )
    # The function's error series is born with the first timeout: rate() needs two samples of it.
    await wait_until(
        lambda: (
            prometheus.value(f'count_over_time(poller_function_errors_total{{function="{FUNCTION}"}}[1m])')
            >= 2
        ),
        timeout=15,
        what="two scrapes of the function's errors",
    )

    # The mapping variable: label_values(poller_mapping_state, mapping).
    reply = prometheus.get("/api/v1/label/mapping/values", **{"match[]": "poller_mapping_state"})
    assert set(reply["data"]) == {
        "sqs-orders",
        "kinesis-drops",
        "kinesis-dest",
        "kinesis-blocked",
        "parked",
        "broken",
        "sqs-function",
    }
    # The function variable: label_values(poller_function_environments, function).
    reply = prometheus.get("/api/v1/label/function/values", **{"match[]": "poller_function_environments"})
    assert set(reply["data"]) == {FUNCTION}

    # Every panel query, for all mappings: it evaluates, and this traffic fills it.
    targets = panel_targets()
    assert len(targets) >= 20
    for title, expr in targets:
        result = prometheus.query(instantiate(expr, ".*"))
        assert result, f"panel {title!r} is empty: {instantiate(expr, '.*')}"
    # ... and for one mapping: only that mapping's series. A stream mapping that dropped records fills
    # every panel; an SQS mapping never drops, so its dropped-records panel stays empty.
    for mapping, empty in (("kinesis-drops", set()), ("sqs-orders", {"Dropped records by reason / A"})):
        for title, expr in targets:
            if is_function_panel(expr):
                continue  # not filtered by mapping: below, by function
            result = prometheus.query(instantiate(expr, mapping))
            assert {r["metric"].get("mapping") for r in result} <= {mapping}, (title, result)
            assert bool(result) == (title not in empty), f"panel {title!r} for {mapping}: {result}"

    # ... and for one function: only its series, every function panel filled; none for another name.
    function_targets = [(title, expr) for title, expr in targets if is_function_panel(expr)]
    assert len(function_targets) >= 6
    for function, filled in ((FUNCTION, True), ("no-such-function", False)):
        for title, expr in function_targets:
            result = prometheus.query(instantiate(expr, ".*", function))
            assert {r["metric"].get("function") for r in result} <= {function}, (title, result)
            assert bool(result) == filled, f"panel {title!r} for {function}: {result}"

    # PollerRecordsDropped and PollerDestinationDeliveryFailures also read the `_created` samples
    # prometheus-client exports, to catch a counter born with a value (alerts.yaml, top).
    assert prometheus.query('poller_records_dropped_created{mapping="kinesis-drops"}')
    assert prometheus.query('poller_destination_delivery_failures_created{mapping="kinesis-blocked"}')

    # Every alert expression parses and evaluates; every rule is loaded and healthy.
    rules = alert_rules()
    for _, rule in rules:
        prometheus.query(rule["expr"])

    def rule_health() -> dict[tuple[str, str], tuple[str, str]]:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        return {
            (g["name"], r["name"]): (r["health"], r.get("lastError", "")) for g in groups for r in g["rules"]
        }

    await wait_until(
        lambda: all(h == "ok" for h, _ in rule_health().values()) and len(rule_health()) == len(rules),
        timeout=10,
        what="every rule evaluated",
    )
    assert rule_health() == {(group, rule["alert"]): ("ok", "") for group, rule in rules}

    # What this traffic must raise: data at risk fires at once, the others wait for their `for`.
    must = {
        ("PollerRecordsDropped", "kinesis-drops", "firing"),
        ("PollerDestinationDeliveryFailures", "kinesis-blocked", "firing"),
        ("PollerErrorRatioHigh", "sqs-orders", "pending"),
        ("PollerMappingNotEnabled", "broken", "pending"),
        ("PollerFunctionTimeouts", FUNCTION, "firing"),
    }
    await wait_until(lambda: must <= prometheus.active_alerts(), timeout=15, what=f"alerts {sorted(must)}")
    active = prometheus.active_alerts()
    # A mapping that is Disabled on purpose, or running, is not "not Enabled".
    assert {m for name, m, _ in active if name == "PollerMappingNotEnabled"} == {"broken"}
    # Only kinesis-drops dropped; kinesis-dest delivered its failures.
    assert {m for name, m, _ in active if name == "PollerRecordsDropped"} == {"kinesis-drops"}
    assert {m for name, m, _ in active if name == "PollerDestinationDeliveryFailures"} == {"kinesis-blocked"}
    # A timeout is not running out of memory.
    assert not {m for name, m, _ in active if name == "PollerFunctionOutOfMemory"}
    assert prometheus.proc.poll() is None, prometheus.log_path.read_text()
