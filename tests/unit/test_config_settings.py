"""Service settings: defaults, the file, `POLLER_*` overrides and where paths resolve (DESIGN §1.3)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from pydantic import SecretStr, ValidationError

from poller.config import find_settings_file, load_config, load_settings

DEFAULTS = load_settings(None, {})[0]
"""Defaults without the test process's own POLLER_* variables (Settings() would read them)."""
MAPPING = "Name: orders\nEventSourceArn: arn:aws:sqs:us-east-1:123456789012:orders\nFunctionName: f\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text))
    return path


def test_defaults_are_the_documented_ones() -> None:
    settings, problems = load_settings(None, {})
    assert problems == []
    assert settings.model_dump() == {
        "aws": {
            "region": "us-east-1",
            "endpoint_url": None,
            "account_id": "000000000000",
            "role_arn": None,
        },
        "kafka": {
            "bootstrap_servers": (),
            "security_protocol": "PLAINTEXT",
            "sasl_mechanism": None,
            "sasl_username": None,
            "sasl_password": None,
            "ssl_cafile": None,
            "ssl_certfile": None,
            "ssl_keyfile": None,
            "client_id": "poller",
            "session_timeout_ms": 10000,
            "fetch_max_wait_ms": 100,
        },
        "state": {
            "backend": "sqlite",
            "path": Path("var/poller-state.sqlite3"),
            "table": "poller-state",
            "lease_seconds": 10.0,
        },
        "http": {"host": "0.0.0.0", "port": 8080},
        "targets": {"http_headers": {}},
        "destinations": {"file_root": Path("var/destinations")},
        "mappings": (Path("mappings"),),
        "log": {"format": "json", "level": "info"},
        "shutdown": {"drain_seconds": 25.0},
        "functions": {"idle_seconds": 600.0},
        "api": {"enabled": True, "access_key_ids": ()},
    }


@pytest.mark.parametrize("text", ["", "# all defaults\n"])
def test_empty_settings_file_is_valid(tmp_path: Path, text: str) -> None:
    settings, problems = load_settings(write(tmp_path / "poller.yaml", text), {})
    assert (settings, problems) == (DEFAULTS, [])


def test_file_values_are_loaded(tmp_path: Path) -> None:
    file = write(
        tmp_path / "poller.yaml",
        """\
        aws: {region: eu-west-1, endpoint_url: "http://127.0.0.1:4566", account_id: "123456789012"}
        kafka:
          bootstrap_servers: ["b1:9092", "b2:9092"]
          security_protocol: SASL_SSL
          sasl_mechanism: SCRAM-SHA-512
          sasl_username: poller
          sasl_password: hunter2
        state: {backend: dynamodb, table: shared}
        http: {port: 9000}
        mappings: [a.yaml, more/]
        log: {format: console, level: WARNING}
        shutdown: {drain_seconds: 2.5}
        """,
    )
    settings, problems = load_settings(file, {})
    assert problems == []
    assert (settings.aws.region, settings.aws.endpoint_url, settings.aws.account_id) == (
        "eu-west-1",
        "http://127.0.0.1:4566",
        "123456789012",
    )
    assert settings.kafka.bootstrap_servers == ("b1:9092", "b2:9092")
    assert settings.kafka.sasl_password == SecretStr("hunter2")
    assert (settings.state.backend, settings.state.table) == ("dynamodb", "shared")
    assert settings.http.port == 9000
    assert settings.mappings == (Path("a.yaml"), Path("more"))
    assert (settings.log.format, settings.log.level) == ("console", "warning")
    assert settings.shutdown.drain_seconds == 2.5


def test_role_arn_defaults_from_the_account(tmp_path: Path) -> None:
    """DESIGN §1.3: role_arn default arn:aws:iam::<account>:role/poller."""
    settings, _ = load_settings(write(tmp_path / "p.yaml", "aws: {account_id: '123456789012'}\n"), {})
    assert settings.effective_role_arn == "arn:aws:iam::123456789012:role/poller"
    explicit, _ = load_settings(write(tmp_path / "q.yaml", "aws: {role_arn: 'arn:aws:iam::1:role/x'}\n"), {})
    assert explicit.effective_role_arn == "arn:aws:iam::1:role/x"


def test_environment_beats_the_file_key_by_key(tmp_path: Path) -> None:
    file = write(
        tmp_path / "poller.yaml", "aws: {region: eu-west-1, endpoint_url: 'http://file'}\nhttp: {port: 1}\n"
    )
    environ = {
        "POLLER_AWS__ENDPOINT_URL": "http://env:4566",
        "poller_http__port": "9090",  # case-insensitive
        "POLLER_MAPPINGS": '["a.yaml", "b/"]',
        "POLLER_UNRELATED": "ignored",
        "HOME": "/root",
    }
    settings, problems = load_settings(file, environ)
    assert problems == []
    assert (settings.aws.endpoint_url, settings.aws.region) == ("http://env:4566", "eu-west-1")
    assert settings.http.port == 9090
    assert settings.mappings == (Path("a.yaml"), Path("b"))


def test_empty_env_var_is_unset_and_null_is_none(tmp_path: Path) -> None:
    file = write(tmp_path / "poller.yaml", "aws: {region: eu-west-1, endpoint_url: 'http://file'}\n")
    settings, _ = load_settings(file, {"POLLER_AWS__REGION": "", "POLLER_AWS__ENDPOINT_URL": "null"})
    assert (settings.aws.region, settings.aws.endpoint_url) == ("eu-west-1", None)


def test_settings_are_frozen() -> None:
    settings, _ = load_settings(None, {})
    with pytest.raises(ValidationError, match="frozen"):
        settings.http.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aws:\n  region: x\n  regoin: y\n", "3: aws.regoin: Unknown key."),
        ("mapping: [a]\n", "1: mapping: Unknown key."),
        (
            "http:\n  port: eighty\n",
            "2: http.port: Input should be a valid integer, unable to parse string as an integer",
        ),
        ("log: {level: verbose}\n", "1: log.level: Input should be 'debug', 'info', 'warning' or 'error'"),
        ("shutdown:\n\n  drain_seconds: 0\n", "3: shutdown.drain_seconds: Input should be greater than 0"),
        (
            "aws:\n  account_id: 123456789012\n",
            "2: aws.account_id: account_id must be a quoted string (YAML reads unquoted digits as a number)",
        ),
        ("_env_file: .env\n", "1: _env_file: Unknown key."),
        ("- aws\n", "1: Settings are a mapping of sections (aws, http, mappings, …)."),
        (
            "aws: {region: [unclosed\n",
            "2: Invalid YAML: while parsing a flow sequence: expected ',' or ']', but got '<stream end>'",
        ),
    ],
)
def test_file_problems_name_the_line(tmp_path: Path, text: str, expected: str) -> None:
    file = write(tmp_path / "poller.yaml", text)
    settings, problems = load_settings(file, {})
    assert settings == DEFAULTS
    assert [str(p) for p in problems] == [f"{file}:{expected}"]


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    file = write(tmp_path / "poller.yaml", "http: {port: 8081}\n")
    settings, problems = load_settings(file, {"Poller_Http__Port": "eighty"})
    assert settings == DEFAULTS
    assert [str(p) for p in problems] == [
        "Poller_Http__Port: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_unparsable_json_environment_value_names_the_variable() -> None:
    environ = {"POLLER_KAFKA__BOOTSTRAP_SERVERS": "b:9092", "POLLER_KAFKA__SECURITY_PROTOCOL": "SSL"}
    _, problems = load_settings(None, environ)
    assert [str(p) for p in problems] == [
        "POLLER_KAFKA__BOOTSTRAP_SERVERS: Could not parse the value: lists and sections are given as JSON, "
        'e.g. ["a.yaml", "b/"].'
    ]


def test_missing_explicit_settings_file(tmp_path: Path) -> None:
    loaded = load_config(Path("nope.yaml"), environ={}, cwd=tmp_path)
    assert [str(p) for p in loaded.problems] == [f"{tmp_path / 'nope.yaml'}: Settings file not found."]


def test_find_settings_file(tmp_path: Path) -> None:
    """DESIGN §1.3: --config, else config/poller.yaml in the working directory, else defaults."""
    assert find_settings_file(None, tmp_path) is None
    default = write(tmp_path / "config" / "poller.yaml", "")
    assert find_settings_file(None, tmp_path) == default
    assert find_settings_file(Path("other.yaml"), tmp_path) == tmp_path / "other.yaml"
    assert find_settings_file(Path("/abs/p.yaml"), tmp_path) == Path("/abs/p.yaml")


def test_mapping_paths_resolve_against_the_settings_file(tmp_path: Path) -> None:
    """DESIGN §1.3: relative paths are relative to the settings file, not the working directory."""
    write(tmp_path / "deploy" / "poller.yaml", "mappings: [../defs/, extra.yaml]\n")
    write(tmp_path / "defs" / "orders.yaml", MAPPING)
    write(tmp_path / "deploy" / "extra.yaml", MAPPING.replace("orders", "extra"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    loaded = load_config(tmp_path / "deploy" / "poller.yaml", environ={}, cwd=elsewhere)
    assert loaded.problems == ()
    assert loaded.base_dir == tmp_path / "deploy"
    assert [(m.name, m.location.file) for m in loaded.mappings] == [
        ("orders", tmp_path / "defs" / "orders.yaml"),
        ("extra", tmp_path / "deploy" / "extra.yaml"),
    ]


def test_default_layout_without_a_settings_file(tmp_path: Path) -> None:
    """No config/poller.yaml: defaults, and `mappings/` relative to the working directory."""
    write(tmp_path / "mappings" / "orders.yaml", MAPPING)
    loaded = load_config(environ={}, cwd=tmp_path)
    assert (loaded.settings_file, loaded.base_dir, loaded.problems) == (None, tmp_path, ())
    assert [m.name for m in loaded.mappings] == ["orders"]


def test_default_settings_file_is_picked_up(tmp_path: Path) -> None:
    write(tmp_path / "config" / "poller.yaml", "mappings: [../maps/]\n")
    write(tmp_path / "maps" / "orders.yaml", MAPPING)
    loaded = load_config(environ={}, cwd=tmp_path)
    assert loaded.settings_file == tmp_path / "config" / "poller.yaml"
    assert [m.name for m in loaded.mappings] == ["orders"]


def test_env_can_point_at_the_mappings(tmp_path: Path) -> None:
    write(tmp_path / "config" / "poller.yaml", "mappings: [nowhere/]\n")
    write(tmp_path / "config" / "real" / "orders.yaml", MAPPING)
    loaded = load_config(environ={"POLLER_MAPPINGS": '["real/"]'}, cwd=tmp_path)
    assert ([m.name for m in loaded.mappings], loaded.problems) == (["orders"], ())


def test_invalid_settings_load_no_mappings(tmp_path: Path) -> None:
    write(tmp_path / "config" / "poller.yaml", "mappings: [../maps/]\nhttp: {port: -1}\n")
    write(tmp_path / "maps" / "orders.yaml", MAPPING)
    loaded = load_config(environ={}, cwd=tmp_path)
    assert loaded.settings == DEFAULTS
    assert loaded.mappings == ()
    assert [str(p) for p in loaded.errors] == [
        f"{tmp_path / 'config' / 'poller.yaml'}:2: http.port: Input should be greater than or equal to 0"
    ]


def test_errors_and_warnings_are_split(tmp_path: Path) -> None:
    write(tmp_path / "mappings" / "empty.yaml", "")
    write(tmp_path / "mappings" / "bad.yaml", "Name: x\n")
    loaded = load_config(environ={}, cwd=tmp_path)
    assert [p.message for p in loaded.warnings] == ["No mappings in file."]
    assert [p.field for p in loaded.errors] == ["FunctionName"]
