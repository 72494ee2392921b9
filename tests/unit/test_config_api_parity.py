"""Parity with botocore's Lambda model: every member of `CreateEventSourceMappingRequest`, nested ones
included, is accepted, and every length, range, enum and pattern the model declares is enforced
(issue 18 item 3; DESIGN §1.4, §1.9; spec §1.3, §1.6).

The cases are generated from the model botocore ships, so a member or constraint added to the model
fails here until poller takes it. Values just inside each bound must raise no model-validation
problem; values just outside must be refused at that field with Lambda's wording. The patterns are
judged by the `regex` module (Java's Unicode classes included), independently of the validator.
Lambda's exact wording and each member resolving on its source are in test_config_api_members.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.session
import pytest
import regex
from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape
from pydantic import ValidationError

from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext, Problem, dotted
from poller.config.resolve import RawEntry, aws_model_problems, resolve_mapping
from poller.config.yaml_lines import LineMap

REQUEST: StructureShape = (
    botocore.session.get_session()
    .get_service_model("lambda")
    .operation_model("CreateEventSourceMapping")
    .input_shape
)
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:broker"
KAFKA_SERVERS = {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b1:9092"]}}
BASES: dict[str, dict[str, Any]] = {
    "sqs": {"EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:orders"},
    "kinesis": {
        "EventSourceArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "StartingPosition": "LATEST",
    },
    "kafka": {"SelfManagedEventSource": KAFKA_SERVERS, "Topics": ["orders"]},
    "msk": {
        "EventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/c/0b4c8e9a-1",
        "Topics": ["orders"],
        "StartingPosition": "LATEST",
    },
    "mq": {
        "EventSourceArn": "arn:aws:mq:us-east-1:123456789012:broker:b:b-0b4c8e9a-1",
        "Queues": ["orders"],
        "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}],
    },
    "documentdb": {
        "EventSourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:docs",
        "DocumentDBEventSourceConfig": {"DatabaseName": "db"},
        "StartingPosition": "LATEST",
        "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}],
    },
}
HOME = {
    # spec §1.3: a source that takes each member, where its values are judged.
    "EventSourceArn": "sqs",
    "FunctionName": "sqs",
    "Enabled": "sqs",
    "BatchSize": "kinesis",
    "FilterCriteria": "sqs",
    "KMSKeyArn": "sqs",
    "MetricsConfig": "sqs",
    "LoggingConfig": "kafka",
    "ScalingConfig": "sqs",
    "MaximumBatchingWindowInSeconds": "sqs",
    "ParallelizationFactor": "kinesis",
    "StartingPosition": "kinesis",
    "StartingPositionTimestamp": "kinesis",
    "DestinationConfig": "kinesis",
    "MaximumRecordAgeInSeconds": "kinesis",
    "BisectBatchOnFunctionError": "kinesis",
    "MaximumRetryAttempts": "kinesis",
    "Tags": "sqs",
    "TumblingWindowInSeconds": "kinesis",
    "Topics": "kafka",
    "Queues": "mq",
    "SourceAccessConfigurations": "kafka",
    "SelfManagedEventSource": "kafka",
    "FunctionResponseTypes": "sqs",
    "AmazonManagedKafkaEventSourceConfig": "msk",
    "SelfManagedKafkaEventSourceConfig": "kafka",
    "DocumentDBEventSourceConfig": "documentdb",
    "ProvisionedPollerConfig": "kafka",
}
STRING_SAMPLES = {
    # One valid value per string shape with a pattern (each checked against it below).
    "Arn": "arn:aws:sqs:us-east-1:123456789012:orders",
    "NamespacedFunctionName": "f",
    "Pattern": '{"body": ["x"]}',
    "KMSKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k",
    "DestinationArn": "arn:aws:sqs:us-east-1:123456789012:dlq",
    "TagKey": "team",
    "TagValue": "web",
    "Topic": "orders",
    "Queue": "orders",
    "URI": "secret-1",
    "Endpoint": "b1:9092",
    "SchemaRegistryUri": "https://registry.example.com",
    "DatabaseName": "db",
    "CollectionName": "items",
    "ProvisionedPollerGroupName": "group-1",
}
PATTERN_BREAKERS = ("", " ", "#", ".", "$", "a b", ".x", "system.x", '"', "/", "x:y", "é")
LENGTH_PADS = ("a", "0", "_")


def sample(shape: Shape) -> Any:
    """A valid value for `shape`, built from the model."""
    if isinstance(shape, StructureShape):
        return {name: sample(member) for name, member in shape.members.items()}
    if isinstance(shape, ListShape):
        return [sample(shape.member) for _ in range(max(shape.metadata.get("min", 1), 1))]
    if isinstance(shape, MapShape):
        return {sample(shape.key): sample(shape.value)}
    if isinstance(shape, StringShape) and shape.enum:
        return shape.enum[0]
    if shape.type_name == "string":
        assert shape.name in STRING_SAMPLES, f"no sample for the model's string shape {shape.name}"
        return STRING_SAMPLES[shape.name]
    if shape.type_name in ("integer", "long"):
        return shape.metadata.get("min", 1)
    if shape.type_name == "boolean":
        return True
    assert shape.type_name == "timestamp", shape.type_name
    return 1_700_000_000


def oracle(pattern: str, text: str) -> bool:
    return regex.fullmatch(pattern, text) is not None


def sized(shape: Shape, length: int) -> str | None:
    """A string of `length` characters that keeps `shape`'s pattern, or None if none is found."""
    base = sample(shape)
    pattern = shape.metadata.get("pattern")
    candidates = [base[:length]] if length <= len(base) else []
    for pad in LENGTH_PADS:
        extra = pad * (length - len(base))
        candidates += [base + extra, extra + base]
    for text in candidates:
        if len(text) == length and (pattern is None or oracle(pattern, text)):
            return text
    return None


@dataclass(frozen=True)
class Case:
    path: tuple[str | int, ...]
    """Where the value goes in the document (top-level member first)."""
    value: Any
    refused_with: str | None
    """None: must pass the model checks; else a phrase of the refusal expected at `path`."""
    label: str

    @property
    def id(self) -> str:
        return f"{dotted(self.path)}:{self.label}"


def cases(shape: Shape, path: tuple[str | int, ...]) -> Iterator[Case]:
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            yield from cases(member, (*path, name))
        return
    if isinstance(shape, ListShape | MapShape):
        yield from size_cases(shape, path)
        inner = shape.member if isinstance(shape, ListShape) else shape.value
        if isinstance(shape, MapShape):
            yield from key_cases(shape, path)
        key: str | int = 0 if isinstance(shape, ListShape) else sample(shape.key)
        yield from cases(inner, (*path, key))
        return
    if shape.type_name in ("integer", "long"):
        for bound, inside, outside, phrase in (
            ("min", meta.get("min"), -1, "greater than or equal to"),
            ("max", meta.get("max"), 1, "less than or equal to"),
        ):
            if inside is not None:
                yield Case(path, inside, None, f"{bound}={inside}")
                yield Case(path, inside + outside, f"{phrase} {inside}", f"{bound}{outside:+d}")
        return
    if isinstance(shape, StringShape) and shape.enum:
        for value in shape.enum:
            yield Case(path, value, None, f"enum={value}")
        yield Case(path, "NOT_IN_THE_ENUM", "Member must satisfy enum value set", "enum-outside")
        return
    if shape.type_name == "string":
        yield from string_cases(shape, path)


def string_cases(shape: Shape, path: tuple[str | int, ...]) -> Iterator[Case]:
    meta = shape.metadata
    pattern = meta.get("pattern")
    lowest, highest = meta.get("min", 0), meta.get("max")
    value = sample(shape)
    assert pattern is None or oracle(pattern, value), f"sample {value!r} breaks {pattern}"
    yield Case(path, value, None, "sample")
    if lowest > 0:
        at_min = sized(shape, lowest)
        if at_min is not None:  # None: the pattern itself needs more (a Topic is 2+ characters)
            yield Case(path, at_min, None, f"length={lowest}")
        yield Case(
            path, "x" * (lowest - 1), f"length greater than or equal to {lowest}", f"length={lowest - 1}"
        )
    if highest is not None:
        at_max = sized(shape, highest)
        assert at_max is not None, f"no {highest}-character value for {shape.name}"
        yield Case(path, at_max, None, f"length={highest}")
        yield Case(
            path, at_max + at_max[-1], f"length less than or equal to {highest}", f"length={highest + 1}"
        )
    if pattern is not None:
        broken = [
            text
            for text in PATTERN_BREAKERS
            if lowest <= len(text) <= (highest or len(text)) and not oracle(pattern, text)
        ]
        if broken:  # `[\s\S]*` and the like cannot be broken
            phrase = f"Member must satisfy regular expression pattern: {pattern}"
            yield Case(path, broken[0], phrase, "pattern-outside")


def size_cases(shape: ListShape | MapShape, path: tuple[str | int, ...]) -> Iterator[Case]:
    meta = shape.metadata
    keys = (
        list(shape.key.enum) if isinstance(shape, MapShape) and isinstance(shape.key, StringShape) else None
    )

    def of_size(count: int) -> Any:
        if isinstance(shape, ListShape):
            return [sample(shape.member)] * count
        names = keys if keys else [f"{sample(shape.key)}{n}" for n in range(count)]
        names = names + [f"EXTRA_{n}" for n in range(count - len(names))]
        return {name: sample(shape.value) for name in names[:count]}

    for bound, inside, step, phrase in (
        ("min", meta.get("min"), -1, "length greater than or equal to"),
        ("max", meta.get("max"), 1, "length less than or equal to"),
    ):
        if inside is None:
            continue
        if keys is None or inside <= len(keys):  # a map keyed by an enum cannot hold more keys than it has
            yield Case(path, of_size(inside), None, f"{bound}={inside}")
        if inside + step < 0:
            continue
        if keys is not None:
            # poller models an enum-keyed map (Endpoints) as a structure of its keys: too few is a
            # missing key, too many an unknown one.
            refusal = "Required key is missing." if step < 0 else "Unknown key."
            yield Case(path, of_size(inside + step), refusal, f"{bound}{step:+d}")
            continue
        yield Case(path, of_size(inside + step), f"{phrase} {inside}", f"{bound}{step:+d}")


def key_cases(shape: MapShape, path: tuple[str | int, ...]) -> Iterator[Case]:
    value = sample(shape.value)
    if isinstance(shape.key, StringShape) and shape.key.enum:
        # poller models an enum-keyed map (Endpoints) as a structure: another key is an unknown key.
        yield Case(path, {"NOT_IN_THE_ENUM": value}, "Unknown key.", "key-enum-outside")
        return
    for case in string_cases(shape.key, path):
        yield Case(path, {case.value: value}, case.refused_with, f"key-{case.label}")


ALL_CASES = [case for name, member in REQUEST.members.items() for case in cases(member, (name,))]


def document(kind: str, **members: Any) -> dict[str, Any]:
    return {"Name": "m", "FunctionName": "f", **copy.deepcopy(BASES[kind]), **members}


def with_value(case: Case) -> dict[str, Any]:
    top = case.path[0]
    assert isinstance(top, str)
    doc = document(HOME[top])
    if len(case.path) == 1:
        doc[top] = case.value
        return doc
    doc[top] = sample(REQUEST.members[top])
    holder: Any = doc
    for part in case.path[:-1]:
        holder = holder[part]
    holder[case.path[-1]] = case.value
    return doc


def problems_of(doc: dict[str, Any]) -> list[Problem]:
    ctx = MappingContext("m", None, LineMap({}))
    try:
        raw = RawMapping.model_validate(doc)
    except ValidationError as exc:
        return ctx.validation_problems(exc)
    _, problems = resolve_mapping(RawEntry(raw, ctx))
    return [p for p in problems if p.severity == "error"]


def test_every_member_of_the_request_has_a_home() -> None:
    """A member the model gains fails here until poller decides which source judges it."""
    assert sorted(REQUEST.members) == sorted(HOME)


def test_the_shape_is_the_model_plus_poller_extensions() -> None:
    """DESIGN §1.4: `Name` and `FunctionTimeout` are poller's; every other key is the model's."""
    keys = {field.alias for field in RawMapping.model_fields.values()}
    assert keys - set(REQUEST.members) == {"Name", "FunctionTimeout"}
    assert set(REQUEST.members) - keys == set()


@pytest.mark.parametrize("member", sorted(REQUEST.members))
def test_every_member_is_accepted_with_all_its_nested_members(member: str) -> None:
    """Each member, with every nested member filled from the model, passes the shape and the model."""
    doc = document(HOME[member], **{member: sample(REQUEST.members[member])})
    raw = RawMapping.model_validate(doc)
    assert aws_model_problems(raw, MappingContext("m", None, LineMap({}))) == []


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.refused_with is None], ids=lambda c: c.id)
def test_values_inside_the_model_bounds_pass_its_checks(case: Case) -> None:
    refused = [
        f"{p.field}: {p.message}"
        for p in problems_of(with_value(case))
        if "validation error" in p.message
        or p.message in ("Unknown key.", "Required key is missing.")
        or p.message.startswith("Input should")
    ]
    assert refused == []


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.refused_with is not None], ids=lambda c: c.id)
def test_values_outside_the_model_bounds_are_refused_at_their_field(case: Case) -> None:
    where = dotted(case.path) or ""
    found = [(p.field or "", p.message) for p in problems_of(with_value(case))]
    phrase = case.refused_with or ""
    assert any(field.startswith(where) and phrase in message for field, message in found), found


def test_the_generated_cases_cover_every_kind_of_constraint() -> None:
    """The generator is not vacuous: it found lengths, ranges, enums and patterns to test."""
    labels = {c.label.split("=")[0].split("-")[0] for c in ALL_CASES}
    assert {"min", "max", "length", "enum", "pattern", "key"} <= labels
    assert len([c for c in ALL_CASES if c.refused_with]) > 60
