"""From parsed YAML documents to resolved mappings, one mapping at a time.

Each mapping is validated and resolved on its own, so one bad mapping costs only itself (DESIGN
§1.4). The rules that span mappings (unique `Name`, one mapping per source and function, unique
Kafka consumer groups) run last, over the mappings in the order they were found: the first one wins
and the later one is reported. A `file://` on-failure destination is checked against the settings'
`destinations.file_root` here, where the settings are known, and a mapping whose FunctionName names
a function declared under `Functions:` (in any file) takes that function's Timeout (DESIGN §1.5.1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from poller.config.aws_model import check_document, validation_message
from poller.config.destinations import FileDestinationSpec, confine_file, parse_destination
from poller.config.functions import FUNCTIONS_KEY, NO_FUNCTIONS, DeclaredFunctions
from poller.config.kafka import MAX_FUNCTION_TIMEOUT, resolve_kafka, servers_overlap
from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext, Problem
from poller.config.resolved import KafkaMapping, Location, ResolvedMapping, SqsMapping
from poller.config.sources import Detected, OtherKind, SourceKind, detect_kind
from poller.config.sqs import DEFAULT_MAX_POLLERS, UNSUPPORTED_DESTINATION, resolve_sqs
from poller.config.streams import resolve_stream
from poller.config.unstartable import resolve_unstartable
from poller.config.yaml_lines import LineMap, YamlDocument

LIST_KEY = "EventSourceMappings"
SQS_MIN_POLLERS = 2
DEFAULT_MIN_POLLERS = {"sqs": SQS_MIN_POLLERS, "kafka": 1, "msk": 1}
"""spec §1.3: ProvisionedPollerConfig.MinimumPollers when not given."""
_EXTENSION_TARGETS = ("python:", "http://", "https://")
"""FunctionName forms that are poller's own (DESIGN §1.5), not Lambda function names."""
_DESTINATION_PATH = ("DestinationConfig", "OnFailure", "Destination")
_DEFAULT_FUNCTION_TIMEOUT: int = RawMapping.model_fields["function_timeout"].default


@dataclass(frozen=True, slots=True)
class RawEntry:
    """A mapping that passed the shape checks, with where it came from."""

    raw: RawMapping
    ctx: MappingContext

    @property
    def location(self) -> Location:
        return Location(self.ctx.file, self.ctx.lines.line_of())


def entries_in_document(doc: YamlDocument, file: Path) -> tuple[list[RawEntry], list[Problem]]:
    """The mappings a file defines: top-level keys for one, or a list under `EventSourceMappings`.

    A `Functions:` key beside them (or alone) is not a mapping key; `poller.config.functions` reads it.
    """
    whole_file = MappingContext(None, file, doc.lines)
    value = doc.value
    if value is None:
        return [], [Problem("No mappings in file.", file, severity="warning")]
    if not isinstance(value, dict):
        message = (
            f"A mapping file holds one mapping's keys, or a list under {LIST_KEY}:; found a {_kind(value)}."
        )
        return [], [whole_file.problem((), message)]
    declares_functions = FUNCTIONS_KEY in value
    value = {key: item for key, item in value.items() if key != FUNCTIONS_KEY}
    if not value and declares_functions:  # a file of functions alone (DESIGN §1.5.1)
        return [], []
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
    if not items and not declares_functions:
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


def resolve_mapping(
    entry: RawEntry,
    *,
    kafka_bootstrap_servers: tuple[str, ...] = (),
    file_root: Path | None = None,
    functions: DeclaredFunctions = NO_FUNCTIONS,
) -> tuple[ResolvedMapping | None, list[Problem]]:
    """Resolve one mapping for its source kind: the mapping (None if any error) and every problem.

    Warnings do not stop a mapping from resolving; they come back beside it. A mapping with an
    error comes back as None with its errors only. `kafka_bootstrap_servers` is the settings'
    default for Kafka mappings that name no servers (DESIGN §1.3); `file_root` (absolute) is where
    `file://` destinations must lie, None to leave them unchecked. `functions` are those declared
    under `Functions:`; a mapping whose FunctionName names one targets it (DESIGN §1.5.1).
    """
    raw, ctx = entry.raw, entry.ctx
    model_problems = aws_model_problems(raw, ctx)
    if model_problems:
        # As Lambda: a request that breaks the API model is refused before any rule of the source.
        return None, model_problems
    declared = functions.valid.get(raw.function_name)
    problems = _target_problems(raw, ctx, functions)
    if declared is not None:
        # The function's Timeout governs its invocations, so the source's rules (Kafka's 14 minutes)
        # must not judge a FunctionTimeout that is not used; the function's is checked below.
        raw = raw.model_copy(update={"function_timeout": _DEFAULT_FUNCTION_TIMEOUT})
    detected = _detect(raw)
    problems += _common_problems(raw, ctx, detected.kind)
    resolved, found = _resolve_source(raw, ctx, detected, kafka_bootstrap_servers)
    problems += found
    if resolved is not None and file_root is not None:
        problems += _file_root_problems(resolved, ctx, file_root)
    if resolved is not None and declared is not None:
        if isinstance(resolved, KafkaMapping) and declared.timeout_seconds > MAX_FUNCTION_TIMEOUT:
            message = (
                f"Function '{declared.name}' has a Timeout of {declared.timeout_seconds} seconds, above "
                f"{MAX_FUNCTION_TIMEOUT}: functions used by Kafka event sources may have at most a "
                "14-minute timeout."
            )
            problems.append(ctx.problem(("FunctionName",), message))
        resolved = dataclasses.replace(
            resolved, function_timeout_seconds=declared.timeout_seconds, declared_function=declared.name
        )
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        # Warnings are advice about how a valid mapping will behave; an invalid one gets its errors.
        return None, errors
    return resolved, problems


def _resolve_source(
    raw: RawMapping, ctx: MappingContext, detected: Detected, kafka_bootstrap_servers: tuple[str, ...]
) -> tuple[ResolvedMapping | None, list[Problem]]:
    """The resolver of the source kind Lambda would see (spec §1.4)."""
    match detected.kind:
        case None:
            return None, [ctx.problem((detected.field,), detected.message)]
        case "sqs":
            sqs = resolve_sqs(raw, ctx)
            return (None, sqs) if isinstance(sqs, list) else (sqs, [])
        case "kafka":
            return resolve_kafka(raw, ctx, default_bootstrap_servers=kafka_bootstrap_servers)
        case "kinesis" | "dynamodb" as stream:
            return resolve_stream(raw, ctx, stream)
        case other:
            return resolve_unstartable(raw, ctx, other)


def aws_model_problems(raw: RawMapping, ctx: MappingContext) -> list[Problem]:
    """botocore's model's lengths, ranges, enums and patterns, one problem per field, in Lambda's words.

    poller's own FunctionName forms (`python:`, URLs) and `file://` destinations are extensions
    the model does not know, so they are left to their own checks.
    """
    document = raw.model_dump(by_alias=True, exclude_unset=True)
    if raw.function_name.startswith(_EXTENSION_TARGETS):
        document.pop("FunctionName")
    for target in (document.get("DestinationConfig") or {}).values():
        if isinstance(target, dict) and str(target.get("Destination", "")).startswith("file://"):
            target.pop("Destination")
    by_path: dict[tuple[str | int, ...], list[str]] = {}
    for violation in check_document(document):
        by_path.setdefault(violation.path, []).append(violation.text)
    return [ctx.problem(path, validation_message(texts)) for path, texts in by_path.items()]


def _target_problems(raw: RawMapping, ctx: MappingContext, functions: DeclaredFunctions) -> list[Problem]:
    """A mapping that names a declared function: refused if the function is invalid, and told that
    its own FunctionTimeout is not used."""
    name = raw.function_name
    broken = functions.invalid.get(name)
    if broken is not None:
        # Sending the records to a Lambda function of that name instead would be a surprise.
        message = (
            f"Function '{name}' declared at {broken} has errors (reported there); this mapping runs "
            "once they are fixed."
        )
        return [ctx.problem(("FunctionName",), message)]
    declared = functions.valid.get(name)
    if declared is not None and "function_timeout" in raw.model_fields_set:
        message = (
            f"Not used: '{name}' is a declared function, whose Timeout ({declared.timeout_seconds} s) "
            "governs its invocations."
        )
        return [ctx.problem(("FunctionTimeout",), message, severity="warning")]
    return []


def _file_root_problems(mapping: ResolvedMapping, ctx: MappingContext, file_root: Path) -> list[Problem]:
    destination = None if isinstance(mapping, SqsMapping) else mapping.on_failure_destination
    if destination is None:
        return []
    spec = parse_destination(destination)  # the source's resolver has accepted it
    if not isinstance(spec, FileDestinationSpec):
        return []
    try:
        confine_file(spec, file_root)
    except ValueError as exc:
        text = str(exc)
        return [ctx.problem(_DESTINATION_PATH, text[:1].upper() + text[1:])]
    return []


def _detect(raw: RawMapping) -> Detected:
    """The source kind as Lambda decides it, except that `Topics` alone also means Kafka.

    AWS answers `Unrecognized event source.` for a mapping with neither `EventSourceArn` nor
    `SelfManagedEventSource`; in poller a Kafka mapping may leave its servers to the settings'
    `kafka.bootstrap_servers` (DESIGN §1.3), and without those the Kafka resolver says so precisely.
    """
    if raw.topics is not None and raw.event_source_arn is None and raw.self_managed_event_source is None:
        return Detected("kafka", field="Topics")
    return detect_kind(raw)


def resolve_entry(entry: RawEntry) -> ResolvedMapping | list[Problem]:
    """The mapping if it resolves (its warnings are left out), else every problem with it.

    Kept for callers that only care whether a mapping is valid; `resolve_mapping` also returns
    the warnings of a valid mapping.
    """
    resolved, problems = resolve_mapping(entry)
    return problems if resolved is None else resolved


def _common_problems(
    raw: RawMapping, ctx: MappingContext, kind: SourceKind | OtherKind | None
) -> list[Problem]:
    """Rules that hold whatever the source (spec §1.4, §1.6), and API ranges that depend on it."""
    problems: list[Problem] = []
    if raw.destination_config is not None and raw.destination_config.success_destination:
        problems.append(ctx.problem(("DestinationConfig", "OnSuccess"), UNSUPPORTED_DESTINATION))
    pollers = raw.provisioned_poller_config
    scaling = raw.scaling_config
    if pollers is not None and scaling is not None and scaling.maximum_concurrency is not None:
        # `ScalingConfig: {}` is AWS's way to remove the setting, so it does not conflict.
        message = "ScalingConfig and ProvisionedPollerConfig cannot be specified together."
        problems.append(ctx.problem(("ScalingConfig",), message))
    minimum, maximum = provisioned_pollers(raw, kind)
    if pollers is not None and minimum > maximum:
        message = f"MinimumPollers ({minimum}) must not be greater than MaximumPollers ({maximum})."
        problems.append(ctx.problem(("ProvisionedPollerConfig", "MinimumPollers"), message))
    if pollers is not None and kind == "sqs":
        # spec §1.3: the model's range starts at 1 (Kafka's); SQS starts at 2. (Streams refuse the
        # key altogether.)
        counts = (("MinimumPollers", pollers.minimum_pollers), ("MaximumPollers", pollers.maximum_pollers))
        for key, value in counts:
            if value is not None and value < SQS_MIN_POLLERS:
                message = f"Input should be greater than or equal to {SQS_MIN_POLLERS}"
                problems.append(ctx.problem(("ProvisionedPollerConfig", key), message))
    return problems


def provisioned_pollers(raw: RawMapping, kind: SourceKind | OtherKind | None) -> tuple[int, int]:
    """(MinimumPollers, MaximumPollers) with the source's defaults (spec §1.3: SQS 2, Kafka 1; 200)."""
    pollers = raw.provisioned_poller_config
    given_min = pollers.minimum_pollers if pollers is not None else None
    given_max = pollers.maximum_pollers if pollers is not None else None
    minimum = given_min if given_min is not None else DEFAULT_MIN_POLLERS.get(kind or "", SQS_MIN_POLLERS)
    return minimum, DEFAULT_MAX_POLLERS if given_max is None else given_max


def resolve_all(
    entries: Sequence[RawEntry],
    *,
    kafka_bootstrap_servers: tuple[str, ...] = (),
    file_root: Path | None = None,
    functions: DeclaredFunctions = NO_FUNCTIONS,
) -> tuple[list[ResolvedMapping], list[Problem]]:
    """Resolve every mapping, then apply the rules that span mappings (first one found wins).

    A mapping's own problems (errors and warnings) are always reported; a mapping with an error,
    or one that breaks a rule spanning mappings, is left out. `kafka_bootstrap_servers` is the
    settings' default for Kafka mappings that name no servers (DESIGN §1.3); `file_root` is
    `destinations.file_root`, absolute; `functions` those declared under `Functions:` in any file.
    """
    mappings: list[ResolvedMapping] = []
    problems: list[Problem] = []
    first_by_name: dict[str, RawEntry] = {}
    first_by_source_and_function: dict[tuple[str, str], ResolvedMapping] = {}
    kafka_mappings: list[KafkaMapping] = []
    for entry in entries:
        resolved, found = resolve_mapping(
            entry, kafka_bootstrap_servers=kafka_bootstrap_servers, file_root=file_root, functions=functions
        )
        problems += found
        name = entry.raw.name
        first = first_by_name.setdefault(name, entry)
        if first is not entry:
            message = f"Name '{name}' is already used by the mapping at {first.location}."
            problems.append(entry.ctx.problem(("Name",), message))
            continue
        if resolved is None:
            continue
        if isinstance(resolved, KafkaMapping):
            conflict = _kafka_conflict(resolved, kafka_mappings, entry.ctx)
            if conflict is not None:
                problems.append(conflict)
                continue
            kafka_mappings.append(resolved)
            mappings.append(resolved)
            continue
        key = (resolved.event_source_arn, resolved.function_name)
        existing = first_by_source_and_function.setdefault(key, resolved)
        if existing is not resolved:
            problems.append(entry.ctx.problem(("EventSourceArn",), _duplicate_message(resolved, existing)))
            continue
        mappings.append(resolved)
    return mappings, problems


def _kafka_conflict(
    mapping: KafkaMapping, earlier: Sequence[KafkaMapping], ctx: MappingContext
) -> Problem | None:
    """spec §1.6: one mapping per cluster, topic and function; consumer groups unique across mappings."""
    for existing in earlier:
        if (
            existing.function_name == mapping.function_name
            and existing.topic == mapping.topic
            and servers_overlap(existing.bootstrap_servers, mapping.bootstrap_servers)
        ):
            # AWS's ResourceConflictException text; our Name stands in for the UUID.
            message = (
                f'An event source mapping with event source ("{",".join(mapping.bootstrap_servers)}"), '
                f'function ("{mapping.function_name}"), topics ("{mapping.topic}") already exists. '
                f"Please update or delete the existing mapping with UUID {existing.name}"
            )
            return ctx.problem(("Topics",), message)
    for existing in earlier:
        if existing.consumer_group_id == mapping.consumer_group_id:
            message = (
                f"ConsumerGroupId '{mapping.consumer_group_id}' is already used by the Kafka mapping "
                f"'{existing.name}' at {existing.location}; a consumer group id must be unique across "
                "Kafka event source mappings."
            )
            return ctx.problem(("SelfManagedKafkaEventSourceConfig", "ConsumerGroupId"), message)
    return None


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
