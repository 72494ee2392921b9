"""The operations of the Lambda event-source-mapping API (DESIGN §1.9), with no HTTP in them.

API-made mappings live in the state store; file-defined ones are listed beside them with a UUID
derived from their Name and refused for change. Every request is judged by the config resolver
(`EsmRuntime.resolve`), then stored; the runtime is told (`EsmRuntime.changed`) and applies the
store through the same drain/start path a hot reload takes, so `State` follows the mapping's real
life: it is read from the same `MappingStatus` /status shows (spec §1.5).
"""

from __future__ import annotations

import dataclasses
import re
import uuid as uuids
from collections.abc import Awaitable, Callable, Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poller.api.esm_errors import conflict, in_use, invalid, not_found
from poller.api.esm_shapes import configuration, create_document, updated_document
from poller.api.esm_store import ApiMappingRecord, ApiMappingStore, load_records
from poller.config import Location, Problem, ResolvedMapping, Settings
from poller.config.aws_model import check_document, request_shape, validation_message
from poller.config.kafka import servers_overlap
from poller.config.resolved import KafkaMapping, UnstartableMapping
from poller.observability.status import ServiceStatus, initial_processing_result, user_reason_for

FILE_NAMESPACE = uuids.UUID("0b6d3e4c-58a1-4e0c-9a57-5d1c0e7f2a10")
"""uuid5(FILE_NAMESPACE, Name) is a file-defined mapping's UUID: stable across restarts and replicas."""

MAX_ITEMS_DEFAULT = 100
_GENERIC = re.compile(r"^(Input should|Unknown key|Required key|List should|String should|Tuple should)")
_NOWHERE = Location(None, None)


def file_mapping_uuid(name: str) -> str:
    return str(uuids.uuid5(FILE_NAMESPACE, name))


@dataclass
class EsmRuntime:
    """What the running service lends the API (the composition root builds it)."""

    settings: Settings
    status: ServiceStatus
    running: Mapping[str, ResolvedMapping]
    """Every mapping in effect, by Name: file-defined and API-made."""
    api_names: Callable[[], Set[str]]
    """The Names in `running` that were made through the API."""
    open_store: Callable[[], Awaitable[ApiMappingStore]]
    resolve: Callable[[Mapping[str, Any], str], tuple[ResolvedMapping | None, list[Problem]]]
    """A document and its origin → the resolved mapping, or None and its problems."""
    function_arn: Callable[[ResolvedMapping], str]
    source_problem: Callable[[ResolvedMapping], Awaitable[str | None]]
    """spec §1.6: AWS's message if the queue or stream refuses the mapping (missing, too short a
    visibility timeout), else None."""
    changed: Callable[[], None]
    """The store changed: apply it now."""
    wall: Callable[[], float]


@dataclass
class _View:
    uuid: str
    name: str
    mapping: ResolvedMapping | None
    record: ApiMappingRecord | None
    """None for a file-defined mapping."""
    deleting: bool = False
    """Deleted from the store, still draining here."""


class EsmService:
    def __init__(self, runtime: EsmRuntime) -> None:
        self.rt = runtime
        self._known: dict[str, ApiMappingRecord] = {}
        """The last records seen, so a mapping still draining after its delete reads as Deleting."""

    # -- operations ------------------------------------------------------------------------------

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        uuid = str(uuids.uuid4())
        document, tags = create_document(body, uuid)
        # Tags are stored apart from the document but judged with it by the model (spec §1.6).
        mapping = self._validate({**document, "Tags": tags}, uuid)
        views = await self._views()
        self._check_conflicts(mapping, uuid, views)
        await self._check_source(mapping)
        record = ApiMappingRecord(uuid, document, tags, self.rt.wall())
        await (await self.rt.open_store()).put_api_mapping(uuid, record.to_json())
        self._known[uuid] = record
        self.rt.changed()
        return self._reply(_View(uuid, record.name, mapping, record))

    async def get(self, uuid: str) -> dict[str, Any]:
        return self._reply(self._find(await self._views(), uuid))

    async def list_mappings(
        self,
        *,
        event_source_arn: str | None,
        function_name: str | None,
        marker: str | None,
        max_items: str | None,
    ) -> dict[str, Any]:
        limit = _max_items(max_items)
        views = sorted(await self._views(), key=lambda view: view.uuid)
        chosen = [
            view
            for view in views
            if (event_source_arn is None or self._event_source(view) == event_source_arn)
            and (function_name is None or self._function_matches(view, function_name))
            and (marker is None or view.uuid >= marker)
        ]
        reply: dict[str, Any] = {"EventSourceMappings": [self._reply(view) for view in chosen[:limit]]}
        if len(chosen) > limit:
            reply["NextMarker"] = chosen[limit].uuid
        return reply

    async def update(self, uuid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        views = await self._views()
        view = self._own(self._find(views, uuid))
        assert view.record is not None
        document = updated_document(view.record.document, body)
        mapping = self._validate(document, uuid)
        self._check_conflicts(mapping, uuid, views)
        await self._check_source(mapping)
        self._check_not_in_use(view, "update", ("Creating", "Updating", "Deleting"))  # a bad request first
        record = dataclasses.replace(view.record, document=document, last_modified=self.rt.wall())
        await (await self.rt.open_store()).put_api_mapping(uuid, record.to_json())
        self._known[uuid] = record
        self._mark_update(view.name, mapping)
        self.rt.changed()
        return self._reply(_View(uuid, view.name, mapping, record))

    async def delete(self, uuid: str) -> dict[str, Any]:
        view = self._own(self._find(await self._views(), uuid))
        self._check_not_in_use(view, "delete", ("Creating", "Updating"))
        await (await self.rt.open_store()).delete_api_mapping(uuid)
        status = self.rt.status.mappings.get(view.name)
        if status is not None:
            status.transition("Deleting")
        self.rt.changed()
        return self._reply(view) | {"State": "Deleting"}

    async def list_tags(self, arn: str) -> dict[str, Any]:
        view = self._find(await self._views(), self._uuid_of(arn))
        return {"Tags": dict(view.record.tags) if view.record is not None else {}}

    async def tag(self, arn: str, tags: object) -> None:
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise invalid("Tags must be a map of strings to strings.")
        violations = check_document({"Tags": tags}, request_shape("TagResource"))
        if violations:
            raise invalid(validation_message([violation.text for violation in violations]))
        await self._retag(arn, lambda old: {**old, **tags})

    async def untag(self, arn: str, keys: list[str]) -> None:
        await self._retag(arn, lambda old: {k: v for k, v in old.items() if k not in keys})

    # -- helpers ---------------------------------------------------------------------------------

    async def _retag(self, arn: str, change: Callable[[dict[str, str]], dict[str, str]]) -> None:
        # A Name tag given later does not rename a running mapping: its Name keys checkpoints.
        view = self._own(self._find(await self._views(), self._uuid_of(arn)))
        assert view.record is not None
        record = dataclasses.replace(view.record, tags=change(dict(view.record.tags)))
        await (await self.rt.open_store()).put_api_mapping(view.uuid, record.to_json())
        self._known[view.uuid] = record

    def _uuid_of(self, arn: str) -> str:
        head, marker, uuid = arn.rpartition(":event-source-mapping:")
        if not marker or not head.startswith("arn:") or ":lambda:" not in head:
            raise not_found()
        return uuid

    async def _views(self) -> list[_View]:
        records = await load_records(await self.rt.open_store())
        api_names = self.rt.api_names()
        views: list[_View] = []
        for uuid, record in records.items():
            views.append(_View(uuid, record.name, self._resolved(record), record))
        stored = {record.name for record in records.values()}
        for record in self._known.values():
            if record.uuid not in records and record.name in api_names:  # deleted, still draining
                views.append(_View(record.uuid, record.name, self.rt.running.get(record.name), record, True))
        self._known = {**{r.uuid: r for r in self._known.values() if r.name in api_names}, **records}
        for name, mapping in self.rt.running.items():
            if name not in api_names and name not in stored:
                views.append(_View(file_mapping_uuid(name), name, mapping, None))
        return views

    def _resolved(self, record: ApiMappingRecord) -> ResolvedMapping | None:
        mapping, _ = self.rt.resolve(record.document, f"api:{record.uuid}")
        return mapping

    def _find(self, views: list[_View], uuid: str) -> _View:
        for view in views:
            if view.uuid == uuid:
                return view
        raise not_found()

    def _own(self, view: _View) -> _View:
        """An API-made mapping; a file-defined one is changed by editing its file (DESIGN §1.9)."""
        if view.record is None:
            where = view.mapping.location if view.mapping is not None else "its file"
            raise conflict(
                f"The event source mapping {view.uuid} ('{view.name}') is defined in the file {where}; "
                "change or delete it by editing that file."
            )
        return view

    def _check_not_in_use(self, view: _View, verb: str, busy: tuple[str, ...]) -> None:
        """spec §1.1: ResourceInUseException while a change is being applied. A mapping that cannot
        start (Creating with its failure as the reason) is not busy: it can be fixed or deleted."""
        status = self.rt.status.mappings.get(view.name)
        state = "Deleting" if view.deleting else status.state if status is not None else None
        failing = status is not None and status.state_transition_reason != status.user_reason
        if state in busy and (state == "Deleting" or not failing):
            raise in_use(
                f"Cannot {verb} the event source mapping {view.uuid} while it is in the {state} state; "
                "try again when the change has been applied."
            )

    def _validate(self, document: Mapping[str, Any], uuid: str) -> ResolvedMapping:
        mapping, problems = self.rt.resolve(document, f"api:{uuid}")
        errors = [problem for problem in problems if problem.severity == "error"]
        if errors:
            first, message = errors[0], errors[0].message
            if first.field is not None and _GENERIC.match(message):
                message = f"{first.field}: {message}"
            raise invalid(message)
        if mapping is None:
            raise invalid("Unrecognized event source.")
        return mapping

    async def _check_source(self, mapping: ResolvedMapping) -> None:
        problem = await self.rt.source_problem(mapping)
        if problem is not None:
            raise invalid(problem)

    def _check_conflicts(self, mapping: ResolvedMapping, uuid: str, views: list[_View]) -> None:
        """The rules that span mappings (spec §1.6), against file-defined and API-made ones alike."""
        for view in views:
            other = view.mapping
            if view.uuid == uuid:
                continue
            if view.name == mapping.name:
                raise conflict(
                    f"An event source mapping named '{mapping.name}' already exists with UUID {view.uuid}"
                )
            if other is None:
                continue
            if isinstance(mapping, KafkaMapping) and isinstance(other, KafkaMapping):
                message = _kafka_conflict(mapping, other, self.rt.function_arn(mapping), view.uuid)
                if message is not None:
                    raise conflict(message)
                continue
            if (other.event_source_arn, other.function_name) != (
                mapping.event_source_arn,
                mapping.function_name,
            ):
                continue
            arn, function = mapping.event_source_arn, mapping.function_name
            if mapping.source_kind == "sqs":
                raise conflict(
                    f'An event source mapping with SQS arn (" {arn} ") and function (" {function} ") '
                    f"already exists. Please update or delete the existing mapping with UUID {view.uuid}"
                )
            raise conflict(
                f'The event source arn (" {arn} ") and function (" {function} ") provided mapping already '
                f"exists. Please update or delete the existing mapping with UUID {view.uuid}"
            )

    def _mark_update(self, name: str, mapping: ResolvedMapping) -> None:
        """spec §1.5: Enabling, Disabling or Updating at once, when the change restarts the mapping."""
        old = self.rt.running.get(name)
        status = self.rt.status.mappings.get(name)
        if old is None or status is None or _same(old, mapping):
            return
        if old.enabled != mapping.enabled:
            status.transition("Enabling" if mapping.enabled else "Disabling")
        else:
            status.transition("Updating")

    def _state(self, view: _View) -> tuple[str, str, str | None]:
        status = self.rt.status.mappings.get(view.name)
        deleting = view.deleting or (status is not None and status.state == "Deleting")
        if isinstance(view.mapping, UnstartableMapping) and not deleting:
            return "Disabled", view.mapping.reason, None  # spec §1.5: never polls, from its first reply on
        if status is not None:
            return status.state, status.state_transition_reason, status.last_processing_result
        mapping = view.mapping
        reason, result = user_reason_for(mapping), initial_processing_result(mapping)
        if view.deleting:
            return "Deleting", reason, result
        enabled = (
            mapping.enabled
            if mapping is not None
            else bool(view.record and view.record.document.get("Enabled", True))
        )
        return ("Creating" if enabled else "Disabled"), reason, result

    def _event_source(self, view: _View) -> str | None:
        if view.record is not None:
            return view.record.document.get("EventSourceArn")
        return (
            None
            if view.mapping is None or isinstance(view.mapping, KafkaMapping)
            else view.mapping.event_source_arn
        )

    def _function_matches(self, view: _View, wanted: str) -> bool:
        if view.mapping is None:
            return False
        arn = self.rt.function_arn(view.mapping)
        name_and_qualifier = arn.partition(":function:")[2]
        names = {view.mapping.function_name, arn, name_and_qualifier, name_and_qualifier.split(":")[0]}
        return wanted in names

    def _reply(self, view: _View) -> dict[str, Any]:
        state, reason, result = self._state(view)
        region, account = self.rt.settings.aws.region, self.rt.settings.aws.account_id
        mapping = view.mapping
        if view.record is not None:
            document: Mapping[str, Any] = view.record.document
            modified = view.record.last_modified
        else:
            document = {}
            modified = _mtime(mapping.location.file if mapping is not None else None)
        return configuration(
            uuid=view.uuid,
            arn=f"arn:{_partition(region)}:lambda:{region}:{account}:event-source-mapping:{view.uuid}",
            function_arn=self.rt.function_arn(mapping) if mapping is not None else "",
            mapping=mapping,
            document=document,
            state=state,
            reason=reason,
            last_processing_result=result,
            last_modified=modified,
        )


def _same(a: ResolvedMapping, b: ResolvedMapping) -> bool:
    """As hot reload compares (runtime/reload.py `same_mapping`): equal in all but where written."""
    return type(a) is type(b) and dataclasses.replace(a, location=_NOWHERE) == dataclasses.replace(
        b, location=_NOWHERE
    )


def _kafka_conflict(mapping: KafkaMapping, other: KafkaMapping, function_arn: str, uuid: str) -> str | None:
    """spec §1.6: one mapping per cluster, topic and function; consumer groups unique."""
    if (
        other.function_name == mapping.function_name
        and other.topic == mapping.topic
        and servers_overlap(other.bootstrap_servers, mapping.bootstrap_servers)
    ):
        servers = ",".join(mapping.bootstrap_servers)
        return (
            f'An event source mapping with event source ("{servers}"), function ("{function_arn}"), '
            f'topics ("{mapping.topic}") already exists. Please update or delete the existing mapping '
            f"with UUID {uuid}"
        )
    if other.consumer_group_id == mapping.consumer_group_id:
        group = mapping.consumer_group_id
        return f"ConsumerGroupId '{group}' is already used by the event source mapping {uuid}."
    return None


def _max_items(text: str | None) -> int:
    if text is None:
        return MAX_ITEMS_DEFAULT
    try:
        value = int(text)
    except ValueError:
        raise invalid(f"Invalid value for MaxItems: {text!r}") from None
    if not 1 <= value <= 10000:
        bound = "greater than or equal to 1" if value < 1 else "less than or equal to 10000"
        raise invalid(
            f"1 validation error detected: Value '{value}' at 'maxItems' failed to satisfy constraint: "
            f"Member must have value {bound}"
        )
    return value


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _mtime(file: Path | None) -> float:
    try:
        return round(file.stat().st_mtime, 3) if file is not None else 0.0
    except OSError:
        return 0.0
