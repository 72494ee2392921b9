"""How a `nodejs*` function starts: where poller finds aws-lambda-ric, and its environment (spec §1.12)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from poller.functions.definition import FunctionDefinition
from poller.functions.launch import LaunchError, environment_variables, launch_command

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="the launch checks that node is on the PATH")


def node_definition(code: Path, **environment: str) -> FunctionDefinition:
    return FunctionDefinition(
        name="orders", runtime="nodejs20.x", handler="index.handler", code_uri=code, environment=environment
    )


def installed_ric(prefix: Path) -> Path:
    """What `npm install` lays out: the package's bin script, and a `.bin` link to it."""
    script = prefix / "node_modules" / "aws-lambda-ric" / "bin" / "index.mjs"
    script.parent.mkdir(parents=True)
    script.write_text("#!/usr/bin/env node\n")
    script.chmod(0o755)
    link = prefix / "node_modules" / ".bin" / "aws-lambda-ric"
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("..") / "aws-lambda-ric" / "bin" / "index.mjs")
    return link


@needs_node
def test_the_client_in_code_node_modules_runs_in_the_code_directory(tmp_path: Path) -> None:
    link = installed_ric(tmp_path)
    launch = launch_command(node_definition(tmp_path))
    # `npx aws-lambda-ric index.handler`: the bin script, the handler as its argument, cwd = CodeUri.
    assert launch.argv == (str(link), "index.handler")
    assert launch.cwd == tmp_path.resolve()
    assert launch.runtime_dir == (tmp_path / "node_modules" / "aws-lambda-ric").resolve()


@needs_node
def test_the_client_is_found_on_the_path_the_function_runs_with(tmp_path: Path) -> None:
    link = installed_ric(tmp_path / "global")
    code = tmp_path / "code"
    code.mkdir()
    path = f"{link.parent}{os.pathsep}{os.path.dirname(NODE or '')}"
    launch = launch_command(node_definition(code, PATH=path))
    assert launch.argv == (str(link.parent / "aws-lambda-ric"), "index.handler")
    assert launch.runtime_dir == (tmp_path / "global" / "node_modules" / "aws-lambda-ric").resolve()


def test_without_the_client_the_function_says_where_it_looked_and_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(LaunchError) as missing:
        launch_command(node_definition(tmp_path, PATH=str(tmp_path / "empty")))
    assert missing.value.error_type == "Runtime.InvalidEntrypoint"
    message = missing.value.message
    assert f"looked in {tmp_path.resolve() / 'node_modules' / '.bin'} and on the PATH" in message
    assert "npm install -g aws-lambda-ric@3.3.0" in message
    assert "autoconf, automake, libtool, cmake, g++, make" in message


def test_a_client_without_node_on_the_functions_path_cannot_start(tmp_path: Path) -> None:
    link = installed_ric(tmp_path / "global")
    with pytest.raises(LaunchError, match="needs `node` on the PATH"):
        launch_command(node_definition(tmp_path, PATH=str(link.parent)))


def test_node_path_is_the_task_root_unless_the_function_sets_its_own(tmp_path: Path) -> None:
    def env_of(defn: FunctionDefinition) -> dict[str, str]:
        return environment_variables(
            defn,
            runtime_api="127.0.0.1:9001",
            region="eu-west-1",
            tmpdir=tmp_path / "tmp-1",
            log_stream="2025/02/03/[$LATEST]ea9a64ec87294bf6bbc9026c05a01e04",
            runtime_dir=tmp_path / "rt",
            credentials={},
            host_environ={"PATH": "/usr/bin:/bin", "NODE_PATH": "/host/only"},
        )

    env = env_of(node_definition(tmp_path))
    assert env["NODE_PATH"] == str(tmp_path.resolve())
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_nodejs20.x"
    assert env_of(node_definition(tmp_path, NODE_PATH="/opt/mine"))["NODE_PATH"] == "/opt/mine"
    python = FunctionDefinition(name="o", runtime="python3.12", handler="app.h", code_uri=tmp_path)
    assert "NODE_PATH" not in env_of(python)
