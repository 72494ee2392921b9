"""How runtimes start and the environment they get (spec §1.11–§1.13, §2.1; DESIGN §1.5.1)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from poller.functions.definition import FunctionDefinition
from poller.functions.launch import (
    LaunchError,
    environment_variables,
    launch_command,
    log_stream_name,
    python_version_warning,
    runtime_family,
    service_credentials,
)


def definition(tmp_path: Path, **kw: object) -> FunctionDefinition:
    settings: dict[str, object] = {"name": "orders", "runtime": "python3.12", "handler": "app.handler"}
    settings.update(kw)
    return FunctionDefinition(code_uri=tmp_path, **settings)  # type: ignore[arg-type]


def env_of(defn: FunctionDefinition, tmp_path: Path, **host: str) -> dict[str, str]:
    return environment_variables(
        defn,
        runtime_api="127.0.0.1:9001",
        region="eu-west-1",
        tmpdir=tmp_path / "tmp-1",
        log_stream="2025/02/03/[$LATEST]ea9a64ec87294bf6bbc9026c05a01e04",
        runtime_dir=tmp_path / "rt",
        credentials={"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "POLLER_X": "no"},
        host_environ={"PATH": "/usr/bin:/bin", "HOME": "/root", "POLLER_HTTP__PORT": "8080", **host},
    )


def test_the_definition_is_a_frozen_value_with_lambdas_defaults(tmp_path: Path) -> None:
    d = FunctionDefinition(name="f", runtime="python3.12", handler="app.h", code_uri=tmp_path)
    assert (d.memory_size_mb, d.timeout_seconds, d.ephemeral_storage_mb, d.reserved_concurrency) == (
        128,
        3,
        512,
        None,
    )
    assert d == FunctionDefinition(name="f", runtime="python3.12", handler="app.h", code_uri=tmp_path)
    assert hash(d) == hash(
        FunctionDefinition(name="f", runtime="python3.12", handler="app.h", code_uri=tmp_path)
    )
    with pytest.raises(TypeError):
        d.environment["X"] = "y"  # type: ignore[index]
    assert d.arn("us-east-1", "123") == "arn:aws:lambda:us-east-1:123:function:f"


def test_the_reserved_variables_are_lambdas(tmp_path: Path) -> None:
    env = env_of(definition(tmp_path, memory_size_mb=256), tmp_path)
    assert env == {
        "PATH": "/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": f"{tmp_path.resolve()}:{tmp_path.resolve()}/lib",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "s",
        "_HANDLER": "app.handler",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": "orders",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/orders",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/02/03/[$LATEST]ea9a64ec87294bf6bbc9026c05a01e04",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "LAMBDA_TASK_ROOT": str(tmp_path.resolve()),
        "LAMBDA_RUNTIME_DIR": str(tmp_path / "rt"),
        "TMPDIR": str(tmp_path / "tmp-1"),
    }


def test_the_functions_own_variables_cannot_replace_reserved_ones(tmp_path: Path) -> None:
    own = {
        "TABLE": "orders",
        "TZ": "Europe/Paris",  # unreserved: the function may set it
        "AWS_LAMBDA_MAX_CONCURRENCY": "4",  # never reaches a runtime client (spec §5 trap 3)
        "AWS_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "other",
        "_X_AMZN_TRACE_ID": "x",
        "TMPDIR": "/tmp",
    }
    env = env_of(definition(tmp_path, environment=own), tmp_path)
    assert env["TABLE"] == "orders"
    assert env["TZ"] == "Europe/Paris"
    assert "AWS_LAMBDA_MAX_CONCURRENCY" not in env
    assert "_X_AMZN_TRACE_ID" not in env
    assert (env["AWS_REGION"], env["AWS_ACCESS_KEY_ID"], env["TMPDIR"]) == (
        "eu-west-1",
        "AKID",
        str(tmp_path / "tmp-1"),
    )


def test_custom_runtimes_get_no_execution_env(tmp_path: Path) -> None:
    env = env_of(definition(tmp_path, runtime="provided.al2023"), tmp_path, LD_LIBRARY_PATH="/opt/lib")
    assert "AWS_EXECUTION_ENV" not in env
    assert env["LD_LIBRARY_PATH"].endswith(":/opt/lib")
    assert env_of(definition(tmp_path, runtime="nodejs20.x"), tmp_path)["AWS_EXECUTION_ENV"] == (
        "AWS_Lambda_nodejs20.x"
    )


def test_service_credentials_are_taken_from_the_standard_variables_only() -> None:
    assert service_credentials(
        {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_SESSION_TOKEN": "", "HOME": "/root"}
    ) == {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}


def test_python_runs_awslambdaric_on_pollers_interpreter_in_the_code_directory(tmp_path: Path) -> None:
    launch = launch_command(definition(tmp_path))
    assert launch.argv == (sys.executable, "-m", "awslambdaric", "app.handler")
    assert launch.cwd == tmp_path.resolve()


def test_a_python_minor_version_other_than_pollers_is_a_warning() -> None:
    assert python_version_warning("python3.11", (3, 11)) is None
    warning = python_version_warning("python3.13", (3, 11))
    assert warning is not None
    assert "Python 3.11" in warning


def test_a_custom_runtime_needs_an_executable_bootstrap(tmp_path: Path) -> None:
    with pytest.raises(LaunchError) as missing:
        launch_command(definition(tmp_path, runtime="provided.al2"))
    assert missing.value.error_type == "Runtime.InvalidEntrypoint"
    assert missing.value.message == f"Couldn't find valid bootstrap(s): [{tmp_path.resolve() / 'bootstrap'}]"
    (tmp_path / "bootstrap").write_text("#!/bin/bash\n")
    with pytest.raises(LaunchError) as not_executable:
        launch_command(definition(tmp_path, runtime="provided.al2"))
    assert "permission denied" in not_executable.value.message
    (tmp_path / "bootstrap").chmod(0o755)
    assert launch_command(definition(tmp_path, runtime="provided.al2")).argv == (
        str(tmp_path.resolve() / "bootstrap"),
    )


def test_node_uses_the_installed_aws_lambda_ric(tmp_path: Path) -> None:
    bin_dir = tmp_path / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    ric = bin_dir / "aws-lambda-ric"
    ric.write_text("#!/usr/bin/env node\n")
    ric.chmod(0o755)
    if shutil.which("node") is None:
        with pytest.raises(LaunchError, match="needs `node` on the PATH"):
            launch_command(definition(tmp_path, runtime="nodejs20.x", handler="index.handler"))
        return
    launch = launch_command(definition(tmp_path, runtime="nodejs20.x", handler="index.handler"))
    assert launch.argv == (str(ric), "index.handler")


def test_unknown_runtimes_are_refused() -> None:
    assert runtime_family("java21") is None
    assert runtime_family("python3.12") == "python"
    assert runtime_family("nodejs22.x") == "nodejs"
    assert runtime_family("provided.al2023") == "provided"


def test_the_log_stream_is_dated_and_names_the_version() -> None:
    assert log_stream_name(1_738_540_800.0, "ea9a64ec87294bf6bbc9026c05a01e04") == (
        "2025/02/03/[$LATEST]ea9a64ec87294bf6bbc9026c05a01e04"
    )
