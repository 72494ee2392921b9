"""`poller status`: a running service's /status as a table (DESIGN §1.2, §1.6).

The service is found by `--url`, else by the settings' `http.host`/`http.port` (a service
listening on every interface, 0.0.0.0 or ::, is asked on loopback). Columns:

- LAG: Kafka, the sum of the partitions' `Lag` (records behind the end of the topic); Kinesis and
  DynamoDB Streams, the largest shard `IteratorAgeSeconds` as `age 3.2s`; SQS has none (`-`).
- RECORDS/S: measured here, not by the service: `poller_records_polled_total` is read from
  /metrics twice, `--interval` seconds apart (default 1), and the difference divided by the time
  between the reads. `--interval 0` skips it.

Exit status: 0 when the service answered, 1 when it could not be reached or answered badly, 2 when
the settings (needed to find it without `--url`) have errors. Formatting is pure
(`format_status`), so it is tested on a /status document without a service.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from prometheus_client.parser import text_string_to_metric_families

from poller.config.loader import find_settings_file, load_settings
from poller.core.redact import redact_url, redact_urls

DEFAULT_INTERVAL_SECONDS = 1.0
TIMEOUT_SECONDS = 5.0
POLLED = "poller_records_polled_total"
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
_USER_REASONS = ("USER_INITIATED", "User action", "")
COLUMNS = ("MAPPING", "SOURCE", "STATE", "LAST RESULT", "LAG", "RECORDS/S")


class Unreachable(Exception):
    """The service did not answer, or not with what a poller answers."""


def service_url(host: str, port: int) -> str:
    """Where to reach a service listening on `host:port` from this machine."""
    host = _LOOPBACK.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def polled_totals(metrics_text: str) -> dict[str, float]:
    """`poller_records_polled_total` per mapping, from a /metrics body."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == POLLED and "mapping" in sample.labels:
                mapping = sample.labels["mapping"]
                totals[mapping] = totals.get(mapping, 0.0) + sample.value
    return totals


def rates(before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Records per second per mapping present in both samples (a counter reset counts as 0)."""
    if seconds <= 0:
        return {}
    return {name: max(after[name] - before[name], 0.0) / seconds for name in after if name in before}


def lag_text(mapping: Mapping[str, Any]) -> str:
    positions = mapping.get("Positions") or {}
    source = mapping.get("Source")
    if source == "kafka":
        lags = [p["Lag"] for p in positions.values() if isinstance(p, dict) and p.get("Lag") is not None]
        return str(sum(lags)) if lags else "-"
    if source in ("kinesis", "dynamodb"):
        ages = [
            float(p["IteratorAgeSeconds"])
            for p in positions.values()
            if isinstance(p, dict) and p.get("IteratorAgeSeconds") is not None
        ]
        return f"age {max(ages):.1f}s" if ages else "-"
    return "-"


def format_status(document: Mapping[str, Any], throughput: Mapping[str, float] | None = None) -> str:
    """The table `poller status` prints, with notes for failing mappings and a failed reload.

    `throughput` is records/s by mapping (None or a missing mapping: `-`).
    """
    mappings: Sequence[Mapping[str, Any]] = document.get("mappings") or []
    rows = [
        (
            str(m.get("Name", "?")),
            str(m.get("Source", "?")),
            str(m.get("State", "?")),
            str(m.get("LastProcessingResult") or "-"),
            lag_text(m),
            f"{throughput[m['Name']]:.1f}" if throughput and m.get("Name") in throughput else "-",
        )
        for m in mappings
    ]
    readiness = "draining" if document.get("draining") else "ready" if document.get("ready") else "not ready"
    lines = [f"{readiness}, {len(rows)} mapping{'' if len(rows) == 1 else 's'}"]
    if rows:
        lines += ["", *_table(COLUMNS, rows)]
    notes = [
        # A service that predates redaction may still quote a URL with credentials in a reason.
        redact_urls(f"{m.get('Name')}: {m.get('State')}: {m.get('StateTransitionReason')}")
        for m in mappings
        if m.get("State") not in ("Enabled", "Disabled")
        and m.get("StateTransitionReason") not in _USER_REASONS
    ]
    if notes:
        lines += ["", *notes]
    reload = document.get("reload")
    if isinstance(reload, Mapping) and not reload.get("ok", True):
        when = f"{reload.get('trigger')}, {reload.get('at')}"
        kept = "the last good mappings keep running" if reload.get("trigger") != "startup" else "others run"
        lines += ["", f"config: the last load ({when}) has errors; {kept}:"]
        lines += [f"  {redact_urls(str(problem))}" for problem in reload.get("problems") or []]
    if isinstance(reload, Mapping) and reload.get("restart_required"):
        sections = ", ".join(reload["restart_required"])
        lines += ["", f"config: settings changed ({sections}); they apply after a restart"]
    return "\n".join(lines) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    right = {len(header) - 1}  # numbers line up on the right

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in pairs]
        return "  ".join(padded).rstrip()

    return [line(header), *(line(row) for row in rows)]


def fetch(url: str) -> bytes:
    shown = redact_url(url)  # `--url` may carry credentials; the messages below end up in terminals
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as reply:
            body: bytes = reply.read()
            return body
    except urllib.error.HTTPError as exc:
        raise Unreachable(f"{shown} answered HTTP {exc.code}") from exc
    except urllib.error.URLError as exc:
        raise Unreachable(redact_urls(f"cannot reach {shown}: {exc.reason}")) from exc
    except (OSError, ValueError) as exc:
        raise Unreachable(redact_urls(f"cannot reach {shown}: {exc}")) from exc


def read_status(base_url: str, interval_seconds: float) -> tuple[dict[str, Any], dict[str, float] | None]:
    """The /status document and, unless `interval_seconds` is 0, records/s per mapping."""
    body = fetch(f"{base_url}/status")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise Unreachable(f"{redact_url(base_url)}/status did not answer JSON") from exc
    if not isinstance(document, dict) or "mappings" not in document:
        raise Unreachable(f"{redact_url(base_url)}/status is not a poller's status document")
    throughput: dict[str, float] | None = None
    if interval_seconds > 0:
        first, started = polled_totals(fetch(f"{base_url}/metrics").decode()), time.monotonic()
        time.sleep(interval_seconds)
        second, elapsed = polled_totals(fetch(f"{base_url}/metrics").decode()), time.monotonic() - started
        throughput = rates(first, second, elapsed)
    return document, throughput


def run_status(
    url: str | None,
    config: Path | None,
    *,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    environ: Mapping[str, str],
    cwd: Path,
    out: TextIO,
    err: TextIO,
) -> int:
    if url is None:
        settings, problems = load_settings(find_settings_file(config, cwd), environ)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            for problem in errors:
                print(problem, file=err)
            print("poller status: the settings have errors; pass --url to skip them", file=err)
            return 2
        url = service_url(settings.http.host, settings.http.port)
    base_url = url.rstrip("/")
    try:
        document, throughput = read_status(base_url, interval_seconds)
    except Unreachable as exc:
        print(f"poller status: {exc} (is `poller run` running there? see --url, --config)", file=err)
        return 1
    out.write(format_status(document, throughput))
    return 0
