"""What /status, /readyz and the mapping_state gauge report about each mapping (DESIGN §1.6).

States are Lambda's (spec §1.5). A mapping that cannot start stays `Creating` (or goes back to
`Enabling` after a crash) with the reason in `StateTransitionReason`, so "not Enabled" is the one
signal to alert on. While a hot reload drains a mapping it is `Deleting` (removed) or `Updating`
(changed, about to start again); the last load of the mapping files is under `reload`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from poller.config.resolved import KafkaMapping, ResolvedMapping, StreamMapping
from poller.core.redact import redact_url, redact_urls
from poller.observability.metrics import MappingMetrics


def user_reason_for(mapping: ResolvedMapping | None) -> str:
    """spec §1.5: AWS's StateTransitionReason for a user's change, `User action` for stream mappings
    and `USER_INITIATED` for the others."""
    return "User action" if isinstance(mapping, StreamMapping) else "USER_INITIATED"


def initial_processing_result(mapping: ResolvedMapping | None) -> str | None:
    """spec §1.5: `LastProcessingResult` before the first batch; SQS mappings have none."""
    return "No records processed" if isinstance(mapping, StreamMapping | KafkaMapping) else None


class StatusReport(Protocol):
    """What a source reports into (DESIGN §2): that it runs, each attempt's result, and where it
    stands per shard or partition. `MappingStatus` is the one implementation."""

    positions: dict[str, Any]
    """Per shard or partition: position and lag, as /status shows them."""
    leases: dict[str, Any] | None
    """This replica's id and the shard leases it holds (dynamodb state backend)."""

    def running(self) -> None: ...

    def record_result(self, ok: bool) -> None: ...


@dataclass
class MappingStatus:
    name: str
    source_kind: str
    event_source: str
    function_name: str
    metrics: MappingMetrics
    state: str = "Creating"
    user_reason: str = "USER_INITIATED"
    """What AWS says for a user-initiated change: `USER_INITIATED` (SQS, Kafka) or `User action`
    (Kinesis, DynamoDB Streams), spec §1.5."""
    state_transition_reason: str = ""
    last_processing_result: str | None = None
    settled: bool = False
    """True once the mapping has polled or failed its first start: what /readyz waits for."""
    positions: dict[str, Any] = field(default_factory=dict)
    leases: dict[str, Any] | None = None
    """dynamodb state backend: this replica's id and the shard leases it holds."""
    leaked_threads: Callable[[], int] = lambda: 0
    """Sync `python:` handler threads still running after their timeout (the target counts them;
    the composition root passes its reader, so this model imports nothing above it)."""

    def __post_init__(self) -> None:
        self.state_transition_reason = self.state_transition_reason or self.user_reason
        self.metrics.set_state(self.state)
        self.metrics.handler_threads_leaked.set_function(self.leaked_threads)

    def transition(self, state: str, reason: str | None = None) -> None:
        self.state = state
        self.state_transition_reason = reason or self.user_reason
        self.metrics.set_state(state)

    def record_result(self, ok: bool) -> None:
        """LastProcessingResult after a batch attempt, in Lambda's words (spec §1.5)."""
        self.last_processing_result = "OK" if ok else "PROBLEM: Function call failed"

    def running(self) -> None:
        self.transition("Enabled")
        self.settled = True

    def failing(self, reason: str) -> None:
        """Could not start or crashed: report why, and let readiness move on without it."""
        self.transition("Creating" if not self.settled else "Enabling", reason)
        self.settled = True

    def as_json(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Source": self.source_kind,
            "EventSource": self.event_source,
            # A URL FunctionName may carry credentials, and error texts may quote it (or another URL).
            "FunctionName": redact_url(self.function_name),
            "State": self.state,
            "StateTransitionReason": redact_urls(self.state_transition_reason),
            "LastProcessingResult": self.last_processing_result,
            "Positions": self.positions,
            "LeakedHandlerThreads": self.leaked_threads(),
            **({"Leases": self.leases} if self.leases is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class ReloadStatus:
    """The last load of the mapping files: at start-up, on a file change (`watch`) or on SIGHUP."""

    ok: bool
    """False if any file had an error: at start-up the valid mappings run, on a reload the last
    good set keeps running unchanged."""
    trigger: str
    at: str
    """ISO 8601, UTC."""
    problems: tuple[str, ...] = ()
    """Each as `poller validate` prints it (`file:line: Mapping 'name': field: message`)."""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()
    """Settings sections that changed but apply only after a restart."""
    last_success_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "trigger": self.trigger,
            "at": self.at,
            "problems": [redact_urls(problem) for problem in self.problems],  # they may quote a FunctionName
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "restart_required": list(self.restart_required),
            "last_success_at": self.last_success_at,
        }


@dataclass
class ServiceStatus:
    mappings: dict[str, MappingStatus] = field(default_factory=dict)
    started: bool = False
    draining: bool = False
    reload: ReloadStatus | None = None
    startup_complete: bool = False
    """Latched: once start-up is complete, a mapping added by a hot reload does not make the
    service unready again (/readyz is about start-up and draining, DESIGN §1.6)."""

    def ready(self) -> bool:
        if self.draining or not self.started:
            return False
        if not self.startup_complete:
            self.startup_complete = all(s.settled for s in self.mappings.values() if s.state != "Disabled")
        return self.startup_complete

    def as_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready(),
            "draining": self.draining,
            "reload": None if self.reload is None else self.reload.as_json(),
            "mappings": [s.as_json() for s in self.mappings.values()],
        }
