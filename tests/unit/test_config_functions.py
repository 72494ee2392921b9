"""Functions declared under `Functions:` in mapping files (DESIGN §1.5.1): Lambda's limits with AWS's
messages, the file:line of each problem, mappings that name a declared function, and `poller validate`."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from pathlib import Path
from textwrap import dedent

import pytest

from poller import cli
from poller.config import LoadedConfig, Problem, load_config, load_mappings, load_settings
from poller.config.functions import DeclaredFunction
from poller.config.loader import load_mapping_files
from poller.config.resolved import KafkaMapping, SqsMapping
from poller.functions.declared import definition_of
from poller.functions.definition import FunctionDefinition

QUEUE = "arn:aws:sqs:us-east-1:123456789012:orders"
FUNCTION = """\
Functions:
  orders-handler:
    Runtime: python3.12
    Handler: app.handler
    CodeUri: ../functions/orders
"""
"""Lines 1-5: a valid function whose properties a test extends from line 6 on (4-space indent)."""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project: config/poller.yaml, an empty mappings/, and functions/orders/ holding code."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "poller.yaml").write_text("mappings: [../mappings]\n")
    (tmp_path / "mappings").mkdir()
    (tmp_path / "functions" / "orders").mkdir(parents=True)
    (tmp_path / "functions" / "orders" / "app.py").write_text("def handler(event, context):\n    return {}\n")
    return tmp_path


def write(root: Path, name: str, text: str) -> Path:
    path = root / "mappings" / name
    path.write_text(dedent(text))
    return path


def load(root: Path) -> LoadedConfig:
    return load_config(root / "config" / "poller.yaml", environ={}, cwd=root)


def shown(loaded: LoadedConfig) -> list[str]:
    return [str(p) for p in loaded.problems]


def one_property(root: Path, text: str) -> tuple[Path, LoadedConfig]:
    """The valid function plus `text` (lines from 6 on, under the function)."""
    extra = "".join(f"    {line}\n" for line in dedent(text).splitlines())
    file = write(root, "f.yaml", FUNCTION + extra)
    return file, load(root)


# -- what a valid declaration gives ------------------------------------------------------------------------


def test_a_file_may_hold_functions_alone(root: Path) -> None:
    write(root, "f.yaml", FUNCTION)
    loaded = load(root)
    assert loaded.problems == ()
    assert loaded.mappings == ()
    function = loaded.functions["orders-handler"]
    assert function == DeclaredFunction(
        name="orders-handler",
        runtime="python3.12",
        handler="app.handler",
        code_uri=root / "functions" / "orders",
        memory_size_mb=128,
        timeout_seconds=3,
        environment={},
        reserved_concurrency=None,
        ephemeral_storage_mb=512,
    )
    assert function.code_uri.is_absolute()
    assert str(function.location) == f"{root / 'mappings' / 'f.yaml'}:2"


def test_every_property_is_read(root: Path) -> None:
    _, loaded = one_property(
        root,
        """\
        MemorySize: 256
        Timeout: 10
        Environment: {Variables: {TABLE: orders, LOG_LEVEL: debug}}
        ReservedConcurrentExecutions: 4
        EphemeralStorage: {Size: 1024}
        """,
    )
    assert loaded.problems == ()
    function = loaded.functions["orders-handler"]
    assert (function.memory_size_mb, function.timeout_seconds) == (256, 10)
    assert dict(function.environment) == {"TABLE": "orders", "LOG_LEVEL": "debug"}
    assert (function.reserved_concurrency, function.ephemeral_storage_mb) == (4, 1024)
    with pytest.raises(TypeError):
        function.environment["TABLE"] = "other"  # type: ignore[index]


def test_the_definition_the_environments_run_has_the_same_fields(root: Path) -> None:
    _, loaded = one_property(root, "Timeout: 10\nEnvironment: {Variables: {TABLE: orders}}\n")
    declared = loaded.functions["orders-handler"]
    definition = definition_of(declared)
    assert isinstance(definition, FunctionDefinition)
    assert {f.name for f in dataclasses.fields(FunctionDefinition)} == {
        f.name for f in dataclasses.fields(DeclaredFunction) if f.name != "location"
    }
    for name in (f.name for f in dataclasses.fields(FunctionDefinition)):
        assert getattr(definition, name) == getattr(declared, name), name


def test_a_mapping_beside_the_function_that_names_it_takes_its_timeout(root: Path) -> None:
    write(
        root,
        "orders.yaml",
        f"""\
        Name: orders
        EventSourceArn: {QUEUE}
        FunctionName: orders-handler
        Functions:
          orders-handler:
            Runtime: python3.12
            Handler: app.handler
            CodeUri: ../functions/orders
            Timeout: 10
        """,
    )
    loaded = load(root)
    assert loaded.problems == ()
    (mapping,) = loaded.mappings
    assert isinstance(mapping, SqsMapping)
    assert (mapping.declared_function, mapping.function_timeout_seconds) == ("orders-handler", 10)
    assert list(loaded.functions) == ["orders-handler"]


def test_a_list_of_mappings_may_name_a_function_declared_in_another_file(root: Path) -> None:
    write(root, "a-functions.yaml", FUNCTION + "    Timeout: 20\n")
    write(
        root,
        "b-mappings.yaml",
        f"""\
        EventSourceMappings:
          - {{Name: declared, EventSourceArn: {QUEUE}, FunctionName: orders-handler}}
          - {{Name: remote, EventSourceArn: {QUEUE}-2, FunctionName: other, FunctionTimeout: 7}}
        """,
    )
    loaded = load(root)
    assert loaded.problems == ()
    by_name = {m.name: m for m in loaded.mappings}
    assert (by_name["declared"].declared_function, by_name["declared"].function_timeout_seconds) == (
        "orders-handler",
        20,
    )
    # A plain name that is not declared stays a Lambda Invoke target, with its own FunctionTimeout.
    assert (by_name["remote"].declared_function, by_name["remote"].function_timeout_seconds) == (None, 7)


def test_load_mappings_still_returns_mappings_and_problems(root: Path) -> None:
    file = write(
        root, "m.yaml", f"Name: orders\nEventSourceArn: {QUEUE}\nFunctionName: orders-handler\n" + FUNCTION
    )
    mappings, problems = load_mappings([file], root)
    assert problems == []
    assert mappings[0].declared_function == "orders-handler"
    found = load_mapping_files([file], root)
    assert list(found.functions) == ["orders-handler"]


def test_a_function_timeout_on_a_mapping_that_names_a_declared_function_is_not_used(root: Path) -> None:
    file = write(
        root,
        "m.yaml",
        f"Name: orders\nEventSourceArn: {QUEUE}\nFunctionName: orders-handler\nFunctionTimeout: 60\n"
        + FUNCTION,
    )
    loaded = load(root)
    assert shown(loaded) == [
        f"{file}:4: warning: Mapping 'orders': FunctionTimeout: Not used: 'orders-handler' is a declared "
        "function, whose Timeout (3 s) governs its invocations."
    ]
    assert loaded.mappings[0].function_timeout_seconds == 3


def test_a_kafka_mapping_checks_the_function_timeout_against_14_minutes(root: Path) -> None:
    file = write(
        root,
        "m.yaml",
        "Name: orders\nTopics: [orders]\nFunctionName: orders-handler\n"
        "SelfManagedEventSource: {Endpoints: {KAFKA_BOOTSTRAP_SERVERS: ['b1:9092']}}\n"
        + FUNCTION
        + "    Timeout: 900\n",
    )
    loaded = load(root)
    assert shown(loaded) == [
        f"{file}:3: Mapping 'orders': FunctionName: Function 'orders-handler' has a Timeout of 900 seconds, "
        "above 840: functions used by Kafka event sources may have at most a 14-minute timeout."
    ]
    file.write_text(file.read_text().replace("Timeout: 900", "Timeout: 840"))
    (mapping,) = load(root).mappings
    assert isinstance(mapping, KafkaMapping)
    assert (mapping.declared_function, mapping.function_timeout_seconds) == ("orders-handler", 840)


def test_a_mapping_that_names_an_invalid_function_is_refused_not_sent_to_lambda(root: Path) -> None:
    file = write(
        root, "m.yaml", f"Name: orders\nEventSourceArn: {QUEUE}\nFunctionName: orders-handler\n" + FUNCTION
    )
    file.write_text(file.read_text().replace("python3.12", "java21"))
    loaded = load(root)
    assert loaded.mappings == ()
    assert shown(loaded) == [
        f"{file}:3: Mapping 'orders': FunctionName: Function 'orders-handler' declared at {file}:5 has errors "
        "(reported there); this mapping runs once they are fixed.",
        f"{file}:6: Function 'orders-handler': Runtime: Runtime 'java21' is not supported: poller runs "
        "python3.x, nodejs<N>.x, provided.al2 and provided.al2023 functions.",
    ]


# -- Lambda's ranges, at every edge, with AWS's messages ----------------------------------------------------


def constraint(value: object, at: str, text: str) -> str:
    return f"1 validation error detected: Value '{value}' at '{at}' failed to satisfy constraint: Member must {text}"


RANGES = [
    ("MemorySize", "memorySize", 128, 10240),
    ("Timeout", "timeout", 1, 900),
    ("EphemeralStorage.Size", "ephemeralStorage.size", 512, 10240),
]


@pytest.mark.parametrize(("key", "at", "low", "high"), RANGES)
def test_range_edges_inside_are_accepted(root: Path, key: str, at: str, low: int, high: int) -> None:
    for value in (low, high):
        text = f"EphemeralStorage: {{Size: {value}}}\n" if "." in key else f"{key}: {value}\n"
        _, loaded = one_property(root, text)
        assert loaded.problems == (), (key, value)
        assert "orders-handler" in loaded.functions


@pytest.mark.parametrize(("key", "at", "low", "high"), RANGES)
def test_range_edges_outside_are_refused_with_aws_message(
    root: Path, key: str, at: str, low: int, high: int
) -> None:
    for value, text in (
        (low - 1, f"greater than or equal to {low}"),
        (high + 1, f"less than or equal to {high}"),
    ):
        line = f"EphemeralStorage: {{Size: {value}}}\n" if "." in key else f"{key}: {value}\n"
        file, loaded = one_property(root, line)
        assert shown(loaded) == [
            f"{file}:6: Function 'orders-handler': {key}: {constraint(value, at, 'have value ' + text)}"
        ]
        assert loaded.functions == {}


def test_reserved_concurrency_from_zero(root: Path) -> None:
    file, loaded = one_property(root, "ReservedConcurrentExecutions: -1\n")
    assert shown(loaded) == [
        f"{file}:6: Function 'orders-handler': ReservedConcurrentExecutions: "
        + constraint(-1, "reservedConcurrentExecutions", "have value greater than or equal to 0")
    ]
    # 0 is Lambda's "throttle everything": accepted, and said out loud.
    file, loaded = one_property(root, "ReservedConcurrentExecutions: 0\n")
    assert [p.severity for p in loaded.problems] == ["warning"]
    assert shown(loaded)[0].startswith(
        f"{file}:6: warning: Function 'orders-handler': ReservedConcurrentExecutions: "
    )
    assert loaded.functions["orders-handler"].reserved_concurrency == 0
    _, loaded = one_property(root, "ReservedConcurrentExecutions: 1000\n")
    assert loaded.problems == ()


@pytest.mark.parametrize("text", ["MemorySize: true\n", "MemorySize: '256 MB'\n", "Timeout: 2.5\n"])
def test_a_number_must_be_a_whole_number(root: Path, text: str) -> None:
    _, loaded = one_property(root, text)
    assert loaded.functions == {}
    assert loaded.problems[0].message.startswith("Input should be a valid integer")


def test_the_handler_pattern_and_length(root: Path) -> None:
    file = write(root, "f.yaml", FUNCTION.replace("app.handler", "'app handler'"))
    assert shown(load(root)) == [
        f"{file}:4: Function 'orders-handler': Handler: "
        + constraint("app handler", "handler", "satisfy regular expression pattern: [^\\s]+")
    ]
    long = "a" * 128
    write(root, "f.yaml", FUNCTION.replace("app.handler", long))
    assert load(root).problems == ()
    write(root, "f.yaml", FUNCTION.replace("app.handler", long + "b"))
    assert shown(load(root)) == [
        f"{file}:4: Function 'orders-handler': Handler: "
        + constraint(long + "b", "handler", "have length less than or equal to 128")
    ]


# -- keys, runtimes, handlers, code --------------------------------------------------------------------------


def test_unknown_keys_are_refused(root: Path) -> None:
    file, loaded = one_property(root, "Descripton: orders\nEnvironment: {Vars: {A1: b}}\n")
    assert shown(loaded) == [
        f"{file}:6: Function 'orders-handler': Descripton: Unknown key.",
        f"{file}:7: Function 'orders-handler': Environment.Vars: Unknown key.",
    ]


@pytest.mark.parametrize("runtime", ["python3.12", "python3.9", "python3.14", "nodejs22.x", "nodejs18.x"])
def test_supported_runtimes(root: Path, runtime: str) -> None:
    write(root, "f.yaml", FUNCTION.replace("python3.12", runtime))
    assert load(root).functions["orders-handler"].runtime == runtime


@pytest.mark.parametrize("runtime", ["java21", "dotnet8", "ruby3.3", "go1.x", "provided", "python2.7"])
def test_runtimes_of_other_families_are_refused_clearly(root: Path, runtime: str) -> None:
    file = write(root, "f.yaml", FUNCTION.replace("python3.12", runtime))
    assert shown(load(root)) == [
        f"{file}:3: Function 'orders-handler': Runtime: Runtime '{runtime}' is not supported: poller runs "
        "python3.x, nodejs<N>.x, provided.al2 and provided.al2023 functions."
    ]


def test_an_unknown_runtime_gets_aws_enum_message(root: Path) -> None:
    file = write(root, "f.yaml", FUNCTION.replace("python3.12", "pyton3.12"))
    (text,) = shown(load(root))
    assert text.startswith(
        f"{file}:3: Function 'orders-handler': Runtime: 1 validation error detected: Value 'pyton3.12' at "
        "'runtime' failed to satisfy constraint: Member must satisfy enum value set: [nodejs, nodejs4.3, "
    )
    assert text.endswith(", java17.al2023]")


@pytest.mark.parametrize(
    ("runtime", "example"), [("python3.12", "app.handler"), ("nodejs22.x", "index.handler")]
)
def test_a_handler_is_required_unless_the_runtime_is_custom(root: Path, runtime: str, example: str) -> None:
    file = write(
        root, "f.yaml", FUNCTION.replace("python3.12", runtime).replace("    Handler: app.handler\n", "")
    )
    assert shown(load(root)) == [
        f"{file}:2: Function 'orders-handler': Handler: Required key is missing: a {runtime} function "
        f"names its handler, e.g. {example}."
    ]


@pytest.mark.parametrize("runtime", ["provided.al2", "provided.al2023"])
def test_a_custom_runtime_needs_no_handler_but_a_bootstrap(root: Path, runtime: str) -> None:
    file = write(
        root, "f.yaml", FUNCTION.replace("python3.12", runtime).replace("    Handler: app.handler\n", "")
    )
    code = root / "functions" / "orders"
    loaded = load(root)
    assert shown(loaded) == [
        f"{file}:4: warning: Function 'orders-handler': CodeUri: No executable 'bootstrap' in {code}: a "
        "custom runtime starts that file, so every invocation will fail (Runtime.InvalidEntrypoint)."
    ]
    assert loaded.functions["orders-handler"].handler == ""
    (code / "bootstrap").write_text("#!/bin/bash\n")
    os.chmod(code / "bootstrap", 0o755)
    loaded = load(root)
    assert loaded.problems == ()
    assert loaded.functions["orders-handler"].runtime == runtime


def test_code_uri_is_required(root: Path) -> None:
    file = write(root, "f.yaml", FUNCTION.replace("    CodeUri: ../functions/orders\n", ""))
    assert shown(load(root)) == [f"{file}:2: Function 'orders-handler': CodeUri: Required key is missing."]


def test_code_uri_must_be_an_existing_directory(root: Path) -> None:
    file = write(root, "f.yaml", FUNCTION.replace("orders\n", "missing\n"))
    missing = root / "functions" / "missing"
    assert shown(load(root)) == [
        f"{file}:5: Function 'orders-handler': CodeUri: The function's code directory {missing} does not exist."
    ]
    write(root, "f.yaml", FUNCTION.replace("orders\n", "orders/app.py\n"))
    assert shown(load(root)) == [
        f"{file}:5: Function 'orders-handler': CodeUri: The function's code directory "
        f"{root / 'functions' / 'orders' / 'app.py'} is not a directory."
    ]
    write(root, "f.yaml", FUNCTION.replace("../functions/orders", "s3://bucket/orders.zip"))
    assert shown(load(root)) == [
        f"{file}:5: Function 'orders-handler': CodeUri: CodeUri is the function's code directory, relative "
        "to this file; S3 locations are not supported."
    ]


def test_an_absolute_code_uri_is_taken_as_it_is(root: Path) -> None:
    code = root / "functions" / "orders"
    write(root, "f.yaml", FUNCTION.replace("../functions/orders", str(code)))
    assert load(root).functions["orders-handler"].code_uri == code


# -- environment variables ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["AWS_REGION", "AWS_ACCESS_KEY_ID", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_RUNTIME_API"]
)
def test_reserved_variables_are_refused_as_aws_refuses_them(root: Path, name: str) -> None:
    file, loaded = one_property(root, f"Environment:\n  Variables:\n    TABLE: orders\n    {name}: x\n")
    assert shown(loaded) == [
        f"{file}:9: Function 'orders-handler': Environment.Variables.{name}: Lambda was unable to configure "
        "your environment variables because the environment variables you have provided contains reserved "
        f"keys that are currently not supported for modification. Reserved keys used in this request: {name}"
    ]
    assert loaded.functions == {}


def test_unreserved_lambda_variables_may_be_set(root: Path) -> None:
    _, loaded = one_property(
        root, "Environment: {Variables: {TZ: Europe/Paris, PATH: /bin, LANG: C.UTF-8}}\n"
    )
    assert loaded.problems == ()


@pytest.mark.parametrize("name", ["my-var", "A", "1ABC", "_HANDLER"])
def test_variable_names_follow_lambda_pattern(root: Path, name: str) -> None:
    file, loaded = one_property(root, f"Environment:\n  Variables:\n    '{name}': x\n")
    assert shown(loaded) == [
        f"{file}:8: Function 'orders-handler': Environment.Variables.{name}: 1 validation error detected: "
        "Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: "
        "[Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
    ]


@pytest.mark.parametrize("value", ["8080", "true", "", "1.5"])
def test_variable_values_are_strings(root: Path, value: str) -> None:
    file, loaded = one_property(root, f"Environment:\n  Variables:\n    PORT: {value}\n")
    assert shown(loaded) == [
        f"{file}:8: Function 'orders-handler': Environment.Variables.PORT: Environment variable values are "
        "strings: quote this one (YAML reads 8080, true or an empty value unquoted as a number, a boolean "
        "or null)."
    ]


def test_variables_are_at_most_4_kb(root: Path) -> None:
    # {"BIG":"…"} is 10 bytes of JSON around the value.
    _, loaded = one_property(root, f"Environment: {{Variables: {{BIG: {'x' * 4086}}}}}\n")
    assert loaded.problems == ()
    file, loaded = one_property(root, f"Environment: {{Variables: {{BIG: {'x' * 4087}}}}}\n")
    assert shown(loaded) == [
        f"{file}:6: Function 'orders-handler': Environment.Variables: Lambda was unable to configure your "
        "environment variables because the environment variables you have provided exceeded the 4KB limit. "
        "String measured: 4097 bytes"
    ]


def test_the_variables_are_checked_even_when_another_key_is_wrong(root: Path) -> None:
    _, loaded = one_property(root, "Timeout: 0\nEnvironment: {Variables: {AWS_REGION: x}}\n")
    assert [p.field for p in loaded.problems] == ["Timeout", "Environment.Variables.AWS_REGION"]


# -- names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("orders.handler", "satisfy regular expression pattern: [a-zA-Z0-9-_]+"),
        ("f" * 65, "have length less than or equal to 64"),
    ],
)
def test_function_names_follow_lambda_rules(root: Path, name: str, text: str) -> None:
    file = write(root, "f.yaml", FUNCTION.replace("orders-handler", name))
    assert shown(load(root)) == [f"{file}:2: Function '{name}': {constraint(name, 'functionName', text)}"]
    write(root, "f.yaml", FUNCTION.replace("orders-handler", "f" * 64))
    assert list(load(root).functions) == ["f" * 64]


def test_a_function_name_is_a_string(root: Path) -> None:
    file = write(root, "f.yaml", FUNCTION.replace("orders-handler", "true"))
    assert shown(load(root)) == [f"{file}:1: Function 'True': A function name is a string: quote it."]


def test_duplicate_names_across_files_are_refused_first_one_wins(root: Path) -> None:
    first = write(root, "a.yaml", FUNCTION)
    second = write(root, "b.yaml", "# the same name again\n" + FUNCTION.replace("python3.12", "python3.13"))
    loaded = load(root)
    assert shown(loaded) == [
        f"{second}:3: Function 'orders-handler': Function name 'orders-handler' is already declared at {first}:2."
    ]
    assert loaded.functions["orders-handler"].runtime == "python3.12"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Functions:\n", ("warning", "1: warning: Functions: No functions under Functions.")),
        (
            "Functions: [a, b]\n",
            (
                "error",
                "1: Functions: Should be a mapping of function names to their properties; found a list.",
            ),
        ),
        (
            "Functions:\n  f1: python3.12\n",
            (
                "error",
                "2: Function 'f1': A function is a set of keys (Runtime, Handler, CodeUri, …); found a string.",
            ),
        ),
    ],
)
def test_malformed_functions_sections(root: Path, text: str, expected: tuple[str, str]) -> None:
    file = write(root, "f.yaml", text)
    loaded = load(root)
    assert [(p.severity, str(p)) for p in loaded.problems] == [(expected[0], f"{file}:{expected[1]}")]


# -- the problem format, the settings, and `poller validate` ----------------------------------------------------


def test_problem_names_the_function() -> None:
    problem = Problem("m", Path("f.yaml"), 3, field="Timeout", function="orders")
    assert str(problem) == "f.yaml:3: Function 'orders': Timeout: m"


def test_loaded_config_without_functions_is_built_as_before(root: Path) -> None:
    settings = load_settings(None, {})[0]
    assert LoadedConfig(settings, None, root, (), ()).functions == {}


def test_functions_idle_seconds_setting(root: Path) -> None:
    assert load_settings(None, {})[0].functions.idle_seconds == 600
    settings, problems = load_settings(None, {"POLLER_FUNCTIONS__IDLE_SECONDS": "30"})
    assert (settings.functions.idle_seconds, problems) == (30, [])
    _, problems = load_settings(None, {"POLLER_FUNCTIONS__IDLE_SECONDS": "0"})
    assert [str(p) for p in problems] == ["POLLER_FUNCTIONS__IDLE_SECONDS: Input should be greater than 0"]


def validate_cli(root: Path) -> tuple[int, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["validate", "--config", str(root / "config" / "poller.yaml")])
    assert err.getvalue() == ""
    return status, out.getvalue().splitlines()


def test_poller_validate_counts_functions_and_prints_their_problems(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [v for v in os.environ if v.upper().startswith("POLLER_")]:
        monkeypatch.delenv(variable)
    write(root, "a.yaml", f"Name: orders\nEventSourceArn: {QUEUE}\nFunctionName: orders-handler\n" + FUNCTION)
    assert validate_cli(root) == (0, ["1 mapping and 1 function OK, 0 problems"])
    bad = write(root, "b.yaml", FUNCTION.replace("orders-handler", "reports") + "    MemorySize: 99\n")
    status, lines = validate_cli(root)
    assert status == 1
    assert lines == [
        f"{bad}:6: Function 'reports': MemorySize: 1 validation error detected: Value '99' at 'memorySize' "
        "failed to satisfy constraint: Member must have value greater than or equal to 128",
        "1 mapping and 1 function OK, 1 problem",
    ]


def test_one_pass_reports_the_code_directory_beside_a_shape_error(root: Path) -> None:
    file = write(root, "f.yaml", FUNCTION.replace("python3.12", "java21").replace("orders\n", "missing\n"))
    assert [p.field for p in load(root).problems] == ["Runtime", "CodeUri"]
    assert str(load(root).problems[1]).startswith(f"{file}:5: Function 'orders-handler': CodeUri: ")
