"""The metrics of DESIGN §1.7, on a registry passed in (never the global one in tests).

Every series carries `mapping`; other labels are small closed sets. Lambda's ESM metrics
(spec §10) map onto these: PolledEventCount → records_polled_total, InvokedEventCount →
records_invoked_total, FailedInvokeEventCount → records_failed_total, DeletedEventCount →
records_deleted_total, FilteredOutEventCount → records_filtered_total.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

INVOKE_OUTCOMES: Final = ("success", "partial", "error", "timeout", "throttled")
LEASE_TAKE_KINDS: Final = ("take", "steal")
MAPPING_STATES: Final = ("Creating", "Enabling", "Enabled", "Disabling", "Disabled", "Updating", "Deleting")
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
BATCH_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
RELOAD_RESULTS: Final = ("success", "failure")
ACK_KINDS: Final = ("delete", "visibility", "commit", "checkpoint")


class Metrics:
    """All poller metric families, registered once on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        m = ("mapping",)

        def counter(name: str, doc: str, labels: tuple[str, ...] = m) -> Counter:
            return Counter(f"poller_{name}", doc, labels, registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = m) -> Gauge:
            return Gauge(f"poller_{name}", doc, labels, registry=registry)

        self.registry = registry
        self.records_polled = counter("records_polled_total", "Records read from the source")
        self.records_filtered = counter("records_filtered_total", "Records dropped by FilterCriteria")
        self.records_invoked = counter(
            "records_invoked_total", "Records sent to the function (retries count again)"
        )
        self.records_failed = counter(
            "records_failed_total", "Records in failed or partially failed invocations"
        )
        self.records_dropped = counter(
            "records_dropped_total", "Records given up on without reaching a destination", (*m, "reason")
        )
        self.records_sent_to_destination = counter(
            "records_sent_to_destination_total", "Records delivered to the on-failure destination"
        )
        self.destination_delivery_failures = counter(
            "destination_delivery_failures_total", "Failed attempts to write the on-failure destination"
        )
        self.records_deleted = counter("records_deleted_total", "SQS messages deleted after success")
        self.invocations = counter("invocations_total", "Function invocations by outcome", (*m, "outcome"))
        self.retries = counter(
            "retries_total",
            "Invocations retrying a function error (not throttle re-invokes, not bisected halves)",
        )
        self.poll_errors = counter("poll_errors_total", "Failed reads from the source")
        self.invocation_duration = Histogram(
            "poller_invocation_duration_seconds",
            "Time the function took",
            m,
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self.batch_size = Histogram(
            "poller_batch_size_records", "Records per invocation", m, registry=registry, buckets=BATCH_BUCKETS
        )
        self.iterator_age = gauge("iterator_age_seconds", "Age of the last record of the latest stream batch")
        self.offset_lag = gauge("offset_lag", "Kafka records behind the topic's end")
        self.buffered_records = gauge("buffered_records", "Records received and not yet invoked")
        self.in_flight_batches = gauge("in_flight_batches", "Batches being invoked now")
        self.leases_held = gauge("leases_held", "Shard leases this replica holds")
        self.tumbling_windows_open = gauge(
            "tumbling_windows_open", "Shards with an open tumbling window on this replica (spec §8)"
        )
        self.lease_takes = counter(
            "lease_takes_total",
            "Shard leases taken by this replica: free or expired (take) or from a busier replica (steal)",
            (*m, "kind"),
        )
        self.ack_failures = counter(
            "ack_failures_total",
            "Failed acknowledgements: SQS deletes and visibility changes, Kafka commits, stream checkpoints",
            (*m, "kind"),
        )
        self.lease_renewal_failures = counter(
            "lease_renewal_failures_total", "Shard lease renewals that failed or missed their deadline"
        )
        self.handler_threads_leaked = gauge(
            "handler_threads_leaked",
            "python: handler threads still running past their timeout (sync calls, stuck loops, imports)",
        )
        self.mapping_state = gauge("mapping_state", "1 for the mapping's current State", (*m, "state"))
        # Service-wide, so no `mapping` label (ops anchors §7.4, §8.5: alert on last_reload_success == 0).
        self.config_reloads = counter(
            "config_reloads_total", "Reloads of the mapping definitions (file change or SIGHUP)", ("result",)
        )
        for result in RELOAD_RESULTS:
            self.config_reloads.labels(result)
        self.config_last_reload_success = gauge(
            "config_last_reload_success",
            "1 if the last load of the mappings had no error; 0 while the last good set runs instead",
            (),
        )
        self.config_last_reload_success_time = gauge(
            "config_last_reload_success_timestamp_seconds", "When the mappings last loaded without error", ()
        )
        self.config_watch_errors = counter(
            "config_watch_errors_total",
            "Failures of the mapping-file watcher (it retries; mappings run on)",
            (),
        )

    def for_mapping(self, mapping: str) -> MappingMetrics:
        return MappingMetrics(self, mapping)

    def config_loaded(self, *, ok: bool, at: float, reload: bool = True) -> None:
        """Record a load of the mappings: at start-up (`reload=False`, not counted) or a reload."""
        if reload:
            self.config_reloads.labels("success" if ok else "failure").inc()
        self.config_last_reload_success.set(1 if ok else 0)
        if ok:
            self.config_last_reload_success_time.set(at)

    def forget(self, mapping: str) -> None:
        """Drop a removed mapping's series so /metrics does not report ghosts."""
        for family in (
            self.records_polled,
            self.records_filtered,
            self.records_invoked,
            self.records_failed,
            self.records_sent_to_destination,
            self.destination_delivery_failures,
            self.records_deleted,
            self.retries,
            self.poll_errors,
            self.invocation_duration,
            self.batch_size,
            self.iterator_age,
            self.offset_lag,
            self.buffered_records,
            self.in_flight_batches,
            self.leases_held,
            self.tumbling_windows_open,
            self.lease_renewal_failures,
            self.handler_threads_leaked,
        ):
            with suppress(KeyError):
                family.remove(mapping)
        for outcome in INVOKE_OUTCOMES:
            with suppress(KeyError):
                self.invocations.remove(mapping, outcome)
        for state in MAPPING_STATES:
            with suppress(KeyError):
                self.mapping_state.remove(mapping, state)
        for kind in LEASE_TAKE_KINDS:
            with suppress(KeyError):
                self.lease_takes.remove(mapping, kind)
        for kind in ACK_KINDS:
            with suppress(KeyError):
                self.ack_failures.remove(mapping, kind)
        # Drop reasons are whatever the sources reported; find this mapping's from the samples.
        reasons = {
            sample.labels["reason"]
            for family in self.records_dropped.collect()
            for sample in family.samples
            if sample.labels.get("mapping") == mapping and "reason" in sample.labels
        }
        for reason in reasons:
            with suppress(KeyError):
                self.records_dropped.remove(mapping, reason)


class MappingMetrics:
    """One mapping's children, looked up once instead of on every record."""

    def __init__(self, family: Metrics, mapping: str) -> None:
        self.family = family
        self.mapping = mapping
        f, name = family, mapping
        self.records_polled = f.records_polled.labels(name)
        self.records_filtered = f.records_filtered.labels(name)
        self.records_invoked = f.records_invoked.labels(name)
        self.records_failed = f.records_failed.labels(name)
        self.records_sent_to_destination = f.records_sent_to_destination.labels(name)
        self.destination_delivery_failures = f.destination_delivery_failures.labels(name)
        self.records_deleted = f.records_deleted.labels(name)
        self.retries = f.retries.labels(name)
        self.poll_errors = f.poll_errors.labels(name)
        self.invocation_duration = f.invocation_duration.labels(name)
        self.batch_size = f.batch_size.labels(name)
        self.buffered_records = f.buffered_records.labels(name)
        self.iterator_age = f.iterator_age.labels(name)
        self.offset_lag = f.offset_lag.labels(name)
        self.in_flight_batches = f.in_flight_batches.labels(name)
        self.leases_held = f.leases_held.labels(name)
        self.tumbling_windows_open = f.tumbling_windows_open.labels(name)
        self.lease_takes = {k: f.lease_takes.labels(name, k) for k in LEASE_TAKE_KINDS}
        self.ack_failures = {k: f.ack_failures.labels(name, k) for k in ACK_KINDS}
        self.lease_renewal_failures = f.lease_renewal_failures.labels(name)
        self.handler_threads_leaked = f.handler_threads_leaked.labels(name)
        self.invocations = {o: f.invocations.labels(name, o) for o in INVOKE_OUTCOMES}

    def set_state(self, state: str) -> None:
        for candidate in MAPPING_STATES:
            self.family.mapping_state.labels(self.mapping, candidate).set(1 if candidate == state else 0)

    def dropped(self, reason: str, count: int) -> None:
        self.family.records_dropped.labels(self.mapping, reason).inc(count)
