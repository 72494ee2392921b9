"""API-made mappings applied through hot reload's path (DESIGN §1.9, §2): the store is read, the
difference drains and starts, a reload of the files keeps them, and State reads Enabling /
Disabling / Updating as the change is applied (spec §1.5)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from poller.api.esm_store import ApiMappingRecord
from poller.config import Problem, ResolvedMapping
from poller.config.documents import entry_from_document
from poller.config.resolve import resolve_mapping
from poller.observability.status import MappingStatus
from poller.runtime.api_mappings import ApiMappings
from tests.unit.test_reload_diff import Harness, load, sqs_yaml
from tests.waiting import wait_until

QUEUE = "arn:aws:sqs:us-east-1:123456789012:api-queue"


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, str] = {}

    async def api_mappings(self) -> dict[str, str]:
        return dict(self.rows)

    async def put_api_mapping(self, uuid: str, body: str) -> None:
        self.rows[uuid] = body

    async def delete_api_mapping(self, uuid: str) -> None:
        self.rows.pop(uuid, None)

    def put(self, uuid: str, **document: Any) -> None:
        record = ApiMappingRecord(
            uuid, {"Name": uuid, "FunctionName": "f", "EventSourceArn": QUEUE, **document}
        )
        self.rows[uuid] = record.to_json()


class ServiceHarness(Harness):
    """The harness, starting mappings as the service does: a disabled one only gets its status."""

    def start(self, mapping: ResolvedMapping) -> None:
        if mapping.enabled:
            super().start(mapping)
            return
        status = MappingStatus(
            mapping.name,
            mapping.source_kind,
            mapping.event_source_arn,
            mapping.function_name,
            self.metrics.for_mapping(mapping.name),
        )
        status.transition("Disabled")
        self.status.mappings[mapping.name] = status
        self.running[mapping.name] = mapping


def resolve(document: Mapping[str, Any], origin: str) -> tuple[ResolvedMapping | None, list[Problem]]:
    entry, problems = entry_from_document(document, origin)
    return (None, problems) if entry is None else resolve_mapping(entry)


async def states_while(h: Harness, api: ApiMappings) -> list[str]:
    """The states api-1 shows, in order, while one sync applies a change (the drain yields)."""
    seen: list[str] = []

    def look() -> None:
        state = h.status.mappings["api-1"].state
        if not seen or seen[-1] != state:
            seen.append(state)

    original = h.pool.drain

    async def drain(names: list[str], budget: float) -> int:
        look()  # what the API reads while the mapping drains
        return await original(names, budget)

    h.pool.drain = drain  # type: ignore[method-assign]
    try:
        await api.sync()
    finally:
        h.pool.drain = original  # type: ignore[method-assign]
    look()
    return seen


async def test_the_store_is_applied_through_the_reload_path(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    load(directory, {"file.yaml": sqs_yaml("file")})
    store = MemoryStore()
    async with asyncio.TaskGroup() as group:
        h = ServiceHarness(directory, group)
        for mapping in h.load().mappings:
            h.start(mapping)

        async def open_store() -> MemoryStore:
            return store

        api = ApiMappings(h.reloader, h.running, open_store, resolve, h.stopping)
        h.reloader.kept = api.current

        store.put("api-1", BatchSize=5)
        await api.sync()
        assert api.names == {"api-1"}
        await wait_until(
            lambda: h.status.mappings["api-1"].state == "Enabled", what="the API mapping running"
        )
        first_task = h.pool.active["api-1"].task

        await h.reloader.reload("watch")  # the files did not make it, and it stays
        assert h.pool.active["api-1"].task is first_task

        store.put("api-1", BatchSize=5, Enabled=False)
        # spec §1.5: Disabling is shown while the mapping drains, then Disabled.
        assert await states_while(h, api) == ["Disabling", "Disabled"]
        assert "api-1" not in h.pool.active

        store.put("api-1", BatchSize=7)
        assert (await states_while(h, api))[:1] == ["Enabling"]
        assert h.running["api-1"].batch_size == 7

        await store.delete_api_mapping("api-1")
        await api.sync()
        assert ("api-1" in h.running, api.names, set(h.pool.active)) == (False, set(), {"file"})

        store.put("file")  # a Name a mapping file already uses is not started from the store
        await api.sync()
        assert api.names == set()
        h.stopping.set()
        assert await h.pool.drain_all(5.0) == 0


async def test_a_poll_resolves_only_the_documents_that_changed(tmp_path: Path) -> None:
    """DESIGN §1.9: every replica reads the store every 2 s; a document that did not change is not
    judged again on the event loop (until the functions the files declare change)."""
    directory = tmp_path / "m"
    load(directory, {"file.yaml": sqs_yaml("file")})
    store = MemoryStore()
    judged: list[str] = []

    def counting(document: Mapping[str, Any], origin: str) -> tuple[ResolvedMapping | None, list[Problem]]:
        judged.append(origin)
        return resolve(document, origin)

    async with asyncio.TaskGroup() as group:
        h = ServiceHarness(directory, group)

        async def open_store() -> MemoryStore:
            return store

        api = ApiMappings(h.reloader, h.running, open_store, counting, h.stopping)
        store.put("api-1", BatchSize=5)
        store.put("api-2", BatchSize=5)
        await api.sync()
        await api.sync()
        assert sorted(judged) == ["api:api-1", "api:api-2"]

        store.put("api-2", BatchSize=6)
        await api.sync()
        assert sorted(judged) == ["api:api-1", "api:api-2", "api:api-2"]
        assert h.running["api-2"].batch_size == 6

        api.forget_resolved()
        await api.sync()
        assert len(judged) == 5
        h.stopping.set()
        await h.pool.drain_all(5.0)
