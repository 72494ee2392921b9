"""The mappings made through the Lambda API, kept running as the state store says (DESIGN §1.9).

The store is the truth: every replica reads it (at start-up, when its own API changes something,
and every `interval_seconds`, so with the dynamodb backend a change made through one replica
reaches the others) and applies the difference to its running set through the hot reload's one
path (`Reloader.apply`: drain what leaves or changes, start what arrives), so an API change moves
the mapping's State exactly as a file change does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import structlog

from poller.api.esm_store import ApiMappingStore, load_records
from poller.config import Problem, ResolvedMapping
from poller.runtime.reload import Reloader, diff_mappings

log = structlog.get_logger("poller.api")

STORE_POLL_SECONDS = 2.0
"""How often a replica looks for changes other replicas made through their API."""
BACKOFF_MAX_SECONDS = 30.0


@dataclass
class ApiMappings:
    reloader: Reloader
    running: dict[str, ResolvedMapping]
    open_store: Callable[[], Awaitable[ApiMappingStore]]
    resolve: Callable[[Mapping[str, Any], str], tuple[ResolvedMapping | None, list[Problem]]]
    stopping: asyncio.Event
    interval_seconds: float = STORE_POLL_SECONDS
    names: set[str] = field(default_factory=set)
    """The Names in `running` that were made through the API."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _reported: set[tuple[str, str]] = field(default_factory=set)
    _resolved: dict[str, tuple[Mapping[str, Any], ResolvedMapping | None, list[Problem]]] = field(
        default_factory=dict
    )
    """By UUID, the last document read and what it resolved to: a poll every 2 s re-resolves (on the
    event loop) only what changed, not every stored mapping."""

    def forget_resolved(self) -> None:
        """What the documents resolve to changed (the files declare other functions): resolve anew."""
        self._resolved.clear()

    def changed(self) -> None:
        """The store was written here: apply it now rather than at the next poll."""
        self.wake.set()

    def current(self) -> list[ResolvedMapping]:
        """The API-made mappings running now (a reload of the files keeps them)."""
        return [self.running[name] for name in self.names if name in self.running]

    async def sync(self) -> None:
        """Read the store and apply the difference to the running API-made mappings."""
        records = await load_records(await self.open_store())
        wanted: dict[str, ResolvedMapping] = {}
        for record in records.values():
            name = record.name
            if name in self.running and name not in self.names:
                self._report(record.uuid, name, f"the Name '{name}' is used by a mapping file")
                continue
            mapping, problems = self._resolve(record.uuid, record.document)
            if mapping is None:
                # Validated when it was written; a newer poller with stricter rules may disagree.
                self._report(record.uuid, name, "; ".join(str(problem) for problem in problems))
                continue
            wanted[name] = mapping
        for uuid in set(self._resolved) - set(records):
            del self._resolved[uuid]
        async with self.reloader.lock:
            diff = diff_mappings(self.current(), wanted.values())
            if diff.empty:
                for mapping in diff.unchanged:
                    self.running[mapping.name] = mapping
                return
            log.info("api_mappings_applying", **diff.summary())
            # Names leaving stay API-made until they have drained, so the API reads them as Deleting.
            self.names = set(wanted) | set(diff.removed)
            try:
                await self.reloader.apply_locked(diff)
            finally:
                self.names = set(wanted)

    def _resolve(
        self, uuid: str, document: Mapping[str, Any]
    ) -> tuple[ResolvedMapping | None, list[Problem]]:
        cached = self._resolved.get(uuid)
        if cached is not None and cached[0] == document:
            return cached[1], cached[2]
        mapping, problems = self.resolve(document, f"api:{uuid}")
        self._resolved[uuid] = (document, mapping, problems)
        return mapping, problems

    def _report(self, uuid: str, name: str, why: str) -> None:
        if (uuid, why) not in self._reported:
            self._reported.add((uuid, why))
            log.error("api_mapping_not_started", uuid=uuid, mapping=name, reason=why[:500])

    async def watch(self) -> None:
        """Sync on every local change and every `interval_seconds`, until stopping; never raises."""
        failures = 0
        while not self.stopping.is_set():
            with suppress(TimeoutError):
                async with asyncio.timeout(
                    self.interval_seconds if not failures else self._backoff(failures)
                ):
                    await self.wake.wait()
            self.wake.clear()
            if self.stopping.is_set():
                return
            try:
                await self.sync()
            except Exception as exc:  # the store is unreachable: the running mappings carry on
                failures += 1
                log.error("api_mappings_sync_failed", error=str(exc)[:300], failures=failures)
            else:
                failures = 0

    def _backoff(self, failures: int) -> float:
        return float(min(self.interval_seconds * 2 ** (failures - 1), BACKOFF_MAX_SECONDS))
