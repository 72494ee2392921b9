"""Mapping files: layout, line numbers, source kinds, and discovery (DESIGN §1.4, spec §1.4, §1.6)."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import pytest

from poller.config import Location, load_mappings

ARN = "arn:aws:sqs:us-east-1:123456789012:orders"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text))
    return path


def mapping_yaml(name: str, queue: str = "orders", function: str = "f") -> str:
    return f"Name: {name}\nEventSourceArn: arn:aws:sqs:us-east-1:123456789012:{queue}\nFunctionName: {function}\n"


def strs(problems: object) -> list[str]:
    assert isinstance(problems, list)
    return [str(p) for p in problems]


def test_two_mappings_in_one_file(tmp_path: Path) -> None:
    """DESIGN §1.4: several mappings under `EventSourceMappings:`; each remembers its own line."""
    file = write(
        tmp_path / "m.yaml",
        f"""\
        EventSourceMappings:
          - Name: orders
            EventSourceArn: {ARN}
            FunctionName: f
          - Name: audit
            EventSourceArn: {ARN}
            FunctionName: audit
            BatchSize: 5
        """,
    )
    mappings, problems = load_mappings([file], tmp_path)
    assert problems == []
    assert [(m.name, m.function_name, m.batch_size, m.location) for m in mappings] == [
        ("orders", "f", 10, Location(file, 2)),
        ("audit", "audit", 5, Location(file, 5)),
    ]


def test_nested_field_problem_points_at_its_line(tmp_path: Path) -> None:
    file = write(
        tmp_path / "m.yaml",
        f"""\
        Name: orders
        EventSourceArn: {ARN}
        FunctionName: f
        BatchSize: 5

        ScalingConfig:
          MaximumConcurrency: 1
        """,
    )
    mappings, problems = load_mappings([file], tmp_path)
    assert mappings == []
    assert strs(problems) == [
        f"{file}:7: Mapping 'orders': ScalingConfig.MaximumConcurrency: 1 validation error detected: "
        "Value '1' at 'scalingConfig.maximumConcurrency' failed to satisfy constraint: Member must have "
        "value greater than or equal to 2"
    ]
    assert (problems[0].line, problems[0].field) == (7, "ScalingConfig.MaximumConcurrency")


def test_unknown_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    """DESIGN §1.4: unknown keys are rejected at load, with file and line."""
    file = write(tmp_path / "m.yaml", mapping_yaml("orders") + "MaximumBatchingWindowInSecond: 5\n")
    mappings, problems = load_mappings([file], tmp_path)
    assert mappings == []
    assert strs(problems) == [f"{file}:4: Mapping 'orders': MaximumBatchingWindowInSecond: Unknown key."]


def test_sequence_item_problem_points_at_the_item(tmp_path: Path) -> None:
    file = write(
        tmp_path / "m.yaml",
        f"""\
        EventSourceMappings:
          - Name: orders
            EventSourceArn: {ARN}
            FunctionName: f
            FunctionResponseTypes:
              - ReportBatchItemFailure
        """,
    )
    _, problems = load_mappings([file], tmp_path)
    assert strs(problems) == [
        f"{file}:6: Mapping 'orders': FunctionResponseTypes[0]: 1 validation error detected: Value "
        "'[ReportBatchItemFailure]' at 'functionResponseTypes' failed to satisfy constraint: Member must "
        "satisfy constraint: [Member must satisfy enum value set: [ReportBatchItemFailures]]"
    ]


def test_one_bad_mapping_does_not_stop_the_good_one(tmp_path: Path) -> None:
    """DESIGN §1.4: each mapping is resolved on its own."""
    file = write(
        tmp_path / "m.yaml",
        f"""\
        EventSourceMappings:
          - Name: bad
            EventSourceArn: {ARN}
            FunctionName: f
            BatchSize: 20000
          - Name: good
            EventSourceArn: arn:aws:sqs:us-east-1:123456789012:other
            FunctionName: f
        """,
    )
    mappings, problems = load_mappings([file], tmp_path)
    assert [m.name for m in mappings] == ["good"]
    assert [(p.mapping, p.field, p.line) for p in problems] == [("bad", "BatchSize", 5)]


def test_a_broken_file_does_not_stop_other_files(tmp_path: Path) -> None:
    write(tmp_path / "maps" / "a.yaml", "Name: [unclosed\n")
    write(tmp_path / "maps" / "b.yaml", mapping_yaml("good"))
    mappings, problems = load_mappings([Path("maps")], tmp_path)
    assert [m.name for m in mappings] == ["good"]
    assert [(p.file, p.line, p.mapping) for p in problems] == [(tmp_path / "maps" / "a.yaml", 2, None)]
    assert problems[0].message.startswith("Invalid YAML: ")


def test_missing_required_keys_point_at_the_mapping(tmp_path: Path) -> None:
    file = write(tmp_path / "m.yaml", f"# orders\nEventSourceArn: {ARN}\n")
    _, problems = load_mappings([file], tmp_path)
    assert strs(problems) == [
        f"{file}:2: Name: Required key is missing.",
        f"{file}:2: FunctionName: Required key is missing.",
    ]


def test_name_pattern(tmp_path: Path) -> None:
    file = write(tmp_path / "m.yaml", mapping_yaml("-orders"))
    _, problems = load_mappings([file], tmp_path)
    assert strs(problems) == [
        f"{file}:1: Mapping '-orders': Name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}$'"
    ]


def test_duplicate_name_across_files_names_the_first(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", mapping_yaml("orders"))
    write(tmp_path / "b.yaml", "# second\n" + mapping_yaml("orders", queue="other"))
    mappings, problems = load_mappings([tmp_path], tmp_path)
    assert [m.location.file for m in mappings] == [tmp_path / "a.yaml"]
    assert strs(problems) == [
        f"{tmp_path / 'b.yaml'}:2: Mapping 'orders': Name: "
        f"Name 'orders' is already used by the mapping at {tmp_path / 'a.yaml'}:1."
    ]


MSK_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/c/abc"
NO_POSITION = (
    "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: "
    "Member must not be null."
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            f"EventSourceArn: {MSK_ARN}\nTopics: [orders]",
            [f"1: Mapping 's': StartingPosition: {NO_POSITION}"],
        ),
        (
            f"EventSourceArn: {MSK_ARN}",
            [
                "1: Mapping 's': Topics: Required 'Topics' parameter is missing.",
                f"1: Mapping 's': StartingPosition: {NO_POSITION}",
            ],
        ),
        (
            "SelfManagedEventSource: {Endpoints: {KAFKA_BOOTSTRAP_SERVERS: ['b:9092']}}",
            ["1: Mapping 's': Topics: Required 'Topics' parameter is missing."],
        ),
    ],
)
def test_kafka_sources_are_resolved_as_kafka(tmp_path: Path, source: str, expected: list[str]) -> None:
    """spec §1.4: an MSK ARN or SelfManagedEventSource makes a Kafka mapping, and the Kafka rules
    apply (tests/unit/test_config_kafka.py has the rest; an MSK mapping that is valid is accepted and
    not started, tests/unit/test_config_unstartable.py)."""
    file = write(tmp_path / "m.yaml", f"Name: s\n{source}\nFunctionName: f\n")
    mappings, problems = load_mappings([file], tmp_path)
    assert mappings == []
    assert strs(problems) == [f"{file}:{text}" for text in expected]


def test_self_managed_kafka_loads(tmp_path: Path) -> None:
    file = write(
        tmp_path / "m.yaml",
        "Name: s\nSelfManagedEventSource: {Endpoints: {KAFKA_BOOTSTRAP_SERVERS: ['b:9092']}}\n"
        "Topics: [orders]\nFunctionName: f\n",
    )
    mappings, problems = load_mappings([file], tmp_path)
    assert problems == []
    assert [(m.name, m.source_kind, m.event_source_arn) for m in mappings] == [
        ("s", "kafka", "kafka://b:9092/orders")
    ]


@pytest.mark.parametrize(
    "source",
    ["", "EventSourceArn: arn:aws:dynamodb:us-east-1:123456789012:table/t\n"],
)
def test_unrecognized_event_source(tmp_path: Path, source: str) -> None:
    """spec §1.6: neither EventSourceArn nor SelfManagedEventSource → `Unrecognized event source.`

    (`Topics` alone makes a Kafka mapping whose servers may come from the settings; see
    tests/unit/test_config_kafka.py.)"""
    file = write(tmp_path / "m.yaml", f"Name: s\nFunctionName: f\n{source}")
    _, problems = load_mappings([file], tmp_path)
    assert [(p.field, p.message) for p in problems] == [("EventSourceArn", "Unrecognized event source.")]


def test_not_an_arn(tmp_path: Path) -> None:
    file = write(tmp_path / "m.yaml", "Name: s\nFunctionName: f\nEventSourceArn: orders\n")
    _, problems = load_mappings([file], tmp_path)
    assert strs(problems) == [
        f"{file}:3: Mapping 's': EventSourceArn: 1 validation error detected: Value 'orders' at 'eventSourceArn' "
        "failed to satisfy constraint: Member must satisfy regular expression pattern: "
        r"arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:"
        r"(\d{12})?:(.*)"
    ]


def test_multiple_documents_are_rejected(tmp_path: Path) -> None:
    file = write(tmp_path / "m.yaml", mapping_yaml("a") + "---\n" + mapping_yaml("b", queue="b"))
    mappings, problems = load_mappings([file], tmp_path)
    assert mappings == []
    assert strs(problems) == [f"{file}:4: A file holds one YAML document; found a second ('---')."]


def test_duplicate_yaml_key_is_rejected(tmp_path: Path) -> None:
    """PyYAML would silently keep the last value; a quietly ignored setting is worse than an error."""
    file = write(tmp_path / "m.yaml", mapping_yaml("a") + "BatchSize: 5\nBatchSize: 50\n")
    _, problems = load_mappings([file], tmp_path)
    assert strs(problems) == [f"{file}:5: Duplicate key 'BatchSize' (first on line 4)."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- a\n- b\n",
            "1: A mapping file holds one mapping's keys, or a list under EventSourceMappings:; found a list.",
        ),
        (
            "EventSourceMappings: {}\n",
            "1: EventSourceMappings: Should be a list of mappings; found a mapping.",
        ),
        (
            "EventSourceMappings:\n  - 3\n",
            "2: A mapping is a set of keys (Name, FunctionName, …); found a scalar value.",
        ),
        (
            "Name: x\nEventSourceMappings: []\n",
            "1: Name: Unknown key: a file with EventSourceMappings holds nothing else.",
        ),
    ],
)
def test_malformed_file_layouts(tmp_path: Path, text: str, expected: str) -> None:
    file = write(tmp_path / "m.yaml", text)
    _, problems = load_mappings([file], tmp_path)
    assert strs(problems)[0] == f"{file}:{expected}"
    assert problems[0].severity == "error"


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "EventSourceMappings: []\n"])
def test_empty_file_is_a_warning(tmp_path: Path, text: str) -> None:
    file = write(tmp_path / "m.yaml", text)
    mappings, problems = load_mappings([file], tmp_path)
    assert mappings == []
    assert [(p.severity, p.message) for p in problems] == [("warning", "No mappings in file.")]


def test_directory_scan_is_sorted_and_picks_yaml_only(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    write(maps / "b.yml", mapping_yaml("b", queue="b"))
    write(maps / "a.yaml", mapping_yaml("a", queue="a"))
    write(maps / "c.json", "{}")
    write(maps / ".hidden.yaml", "not: [valid")
    write(maps / "sub" / "d.yaml", mapping_yaml("d", queue="d"))  # not recursive
    mappings, problems = load_mappings([Path("maps")], tmp_path)
    assert ([m.name for m in mappings], problems) == (["a", "b"], [])


def test_configmap_mount_is_read_once(tmp_path: Path) -> None:
    """A ConfigMap volume: real files in `..<timestamp>/`, `..data` → it, and top-level symlinks."""
    maps = tmp_path / "maps"
    write(maps / "..2024_01_01_00_00_00.123" / "orders.yaml", mapping_yaml("orders"))
    os.symlink("..2024_01_01_00_00_00.123", maps / "..data")
    os.symlink("..data/orders.yaml", maps / "orders.yaml")
    mappings, problems = load_mappings([maps], tmp_path)
    assert problems == []
    assert [(m.name, m.location) for m in mappings] == [("orders", Location(maps / "orders.yaml", 1))]


def test_file_listed_twice_is_loaded_once(tmp_path: Path) -> None:
    write(tmp_path / "maps" / "a.yaml", mapping_yaml("a"))
    mappings, problems = load_mappings([Path("maps"), Path("maps/a.yaml")], tmp_path)
    assert ([m.name for m in mappings], problems) == (["a"], [])


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    mappings, problems = load_mappings([Path("nope.yaml"), Path("empty")], tmp_path)
    assert mappings == []
    assert [(p.severity, str(p)) for p in problems] == [
        ("error", f"{tmp_path / 'nope.yaml'}: Mapping file or directory does not exist."),
        ("warning", f"{tmp_path / 'empty'}: warning: No mapping files (*.yaml, *.yml) in directory."),
    ]
