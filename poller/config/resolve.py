"""From parsed YAML documents to resolved mappings, one mapping at a time.

Each mapping is validated and resolved on its own, so one bad mapping costs only itself (DESIGN
§1.4). The rules that span mappings (unique `Name`, one mapping per queue and function) run last,
over the mappings in the order they were found: the first one wins and the later one is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext, Problem
from poller.config.resolved import Location, ResolvedMapping, SqsMapping
from poller.config.sources import KIND_TITLES, detect_kind
from poller.config.sqs import UNSUPPORTED_DESTINATION, resolve_sqs
from poller.config.streams import resolve_stream
from poller.config.yaml_lines import LineMap, YamlDocument

LIST_KEY = "EventSourceMappings"


@dataclass(frozen=True, slots=True)
class RawEntry:
    """A mapping that passed the shape checks, with where it came from."""

    raw: RawMapping
    ctx: MappingContext

    @property
    def location(self) -> Location:
        return Location(self.ctx.file, self.ctx.lines.line_of())


def entries_in_document(doc: YamlDocument, file: Path) -> tuple[list[RawEntry], list[Problem]]:
    """The mappings a file defines: top-level keys for one, or a list under `EventSourceMappings`."""
    whole_file = MappingContext(None, file, doc.lines)
    value = doc.value
    if value is None:
        return [], [Problem("No mappings in file.", file, severity="warning")]
    if not isinstance(value, dict):
        message = (
            f"A mapping file holds one mapping's keys, or a list under {LIST_KEY}:; found a {_kind(value)}."
        )
        return [], [whole_file.problem((), message)]
    if LIST_KEY not in value:
        return _entry(value, doc.lines, file)

    others = (key for key in value if key != LIST_KEY)
    problems = [
        whole_file.problem((key,), f"Unknown key: a file with {LIST_KEY} holds nothing else.")
        for key in others
    ]
    items = value[LIST_KEY]
    if not isinstance(items, list):
        problems.append(
            whole_file.problem((LIST_KEY,), f"Should be a list of mappings; found a {_kind(items)}.")
        )
        return [], problems
    if not items:
        problems.append(whole_file.problem((LIST_KEY,), "No mappings in file.", severity="warning"))
    entries: list[RawEntry] = []
    for position, item in enumerate(items):
        found, item_problems = _entry(item, doc.lines.sub(LIST_KEY, position), file)
        entries += found
        problems += item_problems
    return entries, problems


def _entry(item: object, lines: LineMap, file: Path) -> tuple[list[RawEntry], list[Problem]]:
    name = item.get("Name") if isinstance(item, dict) else None
    ctx = MappingContext(name if isinstance(name, str) else None, file, lines)
    if not isinstance(item, dict):
        return [], [
            ctx.problem((), f"A mapping is a set of keys (Name, FunctionName, …); found a {_kind(item)}.")
        ]
    try:
        raw = RawMapping.model_validate(item)
    except ValidationError as exc:
        return [], ctx.validation_problems(exc)
    return [RawEntry(raw, ctx)], []


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "string" if isinstance(value, str) else "scalar value"


def resolve_mapping(entry: RawEntry) -> tuple[ResolvedMapping | None, list[Problem]]:
    """Resolve one mapping for its source kind: the mapping (None if any error) and every problem.

    Warnings do not stop a mapping from resolving; they come back beside it. A mapping with an
    error comes back as None with its errors only.
    """
    raw, ctx = entry.raw, entry.ctx
    problems = _common_problems(raw, ctx)
    detected = detect_kind(raw)
    resolved: ResolvedMapping | None = None
    if detected.kind is None:
        problems.append(ctx.problem((detected.field,), detected.message))
    elif detected.kind == "sqs":
        sqs = resolve_sqs(raw, ctx)
        if isinstance(sqs, list):
            problems += sqs
        else:
            resolved = sqs
    elif detected.kind in ("kinesis", "dynamodb"):
        resolved, found = resolve_stream(raw, ctx, detected.kind)
        problems += found
    else:
        message = f"{KIND_TITLES[detected.kind]} sources are not supported yet."
        problems.append(ctx.problem((detected.field,), message))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        # Warnings are advice about how a valid mapping will behave; an invalid one gets its errors.
        return None, errors
    return resolved, problems


def resolve_entry(entry: RawEntry) -> ResolvedMapping | list[Problem]:
    """The mapping if it resolves (its warnings are left out), else every problem with it.

    Kept for callers that only care whether a mapping is valid; `resolve_mapping` also returns
    the warnings of a valid mapping.
    """
    resolved, problems = resolve_mapping(entry)
    return problems if resolved is None else resolved


def _common_problems(raw: RawMapping, ctx: MappingContext) -> list[Problem]:
    """Rules that hold whatever the source (spec §1.4, §1.6)."""
    problems: list[Problem] = []
    if raw.destination_config is not None and raw.destination_config.success_destination:
        problems.append(ctx.problem(("DestinationConfig", "OnSuccess"), UNSUPPORTED_DESTINATION))
    pollers = raw.provisioned_poller_config
    scaling = raw.scaling_config
    if pollers is not None and scaling is not None and scaling.maximum_concurrency is not None:
        # `ScalingConfig: {}` is AWS's way to remove the setting, so it does not conflict.
        message = "ScalingConfig and ProvisionedPollerConfig cannot be specified together."
        problems.append(ctx.problem(("ScalingConfig",), message))
    if pollers is not None and pollers.minimum_pollers > pollers.maximum_pollers:
        message = (
            f"MinimumPollers ({pollers.minimum_pollers}) must not be greater than "
            f"MaximumPollers ({pollers.maximum_pollers})."
        )
        problems.append(ctx.problem(("ProvisionedPollerConfig", "MinimumPollers"), message))
    return problems


def resolve_all(entries: Sequence[RawEntry]) -> tuple[list[ResolvedMapping], list[Problem]]:
    """Resolve every mapping, then apply the rules that span mappings (first one found wins).

    A mapping's own problems (errors and warnings) are always reported; a mapping with an error,
    or one that breaks a rule spanning mappings, is left out.
    """
    mappings: list[ResolvedMapping] = []
    problems: list[Problem] = []
    first_by_name: dict[str, RawEntry] = {}
    first_by_source_and_function: dict[tuple[str, str], ResolvedMapping] = {}
    for entry in entries:
        resolved, found = resolve_mapping(entry)
        problems += found
        name = entry.raw.name
        first = first_by_name.setdefault(name, entry)
        if first is not entry:
            message = f"Name '{name}' is already used by the mapping at {first.location}."
            problems.append(entry.ctx.problem(("Name",), message))
            continue
        if resolved is None:
            continue
        key = (resolved.event_source_arn, resolved.function_name)
        existing = first_by_source_and_function.setdefault(key, resolved)
        if existing is not resolved:
            problems.append(entry.ctx.problem(("EventSourceArn",), _duplicate_message(resolved, existing)))
            continue
        mappings.append(resolved)
    return mappings, problems


def _duplicate_message(mapping: ResolvedMapping, existing: ResolvedMapping) -> str:
    """spec §1.6: AWS's ResourceConflictException text; our Name stands in for the UUID."""
    arn, function = mapping.event_source_arn, mapping.function_name
    if isinstance(mapping, SqsMapping):
        return (
            f'An event source mapping with SQS arn (" {arn} ") and function (" {function} ") '
            f"already exists. Please update or delete the existing mapping with UUID {existing.name}"
        )
    return (
        f'The event source arn (" {arn} ") and function (" {function} ") provided mapping already '
        f"exists. Please update or delete the existing mapping with UUID {existing.name}"
    )
