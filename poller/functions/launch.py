"""How each runtime starts, and the environment it starts in (spec §1.11–§1.13, §2.1).

- `python3.x`: `python -m awslambdaric <handler>` on poller's own interpreter (DESIGN §1.5.1), with
  cwd = `CodeUri` because awslambdaric imports the handler relative to `sys.path[0]`, which `-m`
  makes the working directory (spec §1.11).
- `nodejs*`: AWS's `aws-lambda-ric` 3.3.0 from npm, run unchanged as `npx aws-lambda-ric <handler>`
  does: its `bin` script with the handler as argv[2] and cwd = `CodeUri`, the app root it takes from
  `process.cwd()` (spec §1.12). It is looked for in `CodeUri/node_modules/.bin`, then on the PATH
  the function runs with (its own `PATH` variable if it sets one, else poller's), where
  `npm install -g` puts it. poller does not ship a Node client of its own: without the package the
  function cannot start, and says so. 3.x, because 4.x needs Node ≥ 22 and refuses callback
  handlers; 4.x would start too (it reads `_HANDLER` and `LAMBDA_TASK_ROOT`, which are set).
- `provided.al2`, `provided.al2023`: the executable `CodeUri/bootstrap` (the custom-runtime contract).

The process does not inherit poller's environment: like Lambda's, it gets the reserved variables,
the function's own, the service's AWS credentials and a few platform defaults — so poller's own
settings (`POLLER_*`) and whatever else its shell holds never leak into function code.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from poller.functions.definition import VERSION, FunctionDefinition

RuntimeFamily = Literal["python", "nodejs", "provided"]

INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"

NODE_RIC_VERSION = "3.3.0"
"""The aws-lambda-ric poller is tested with, and the one its messages name: the last release that
runs on Node 18 and 20 (4.x needs Node ≥ 22)."""

CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)
"""The service's credentials as the standard AWS chain reads them from the environment: static
keys, IRSA's web identity, and the ECS/EKS-pod-identity container endpoint."""

OVERRIDABLE = frozenset(
    {
        "AWS_LAMBDA_LOG_FORMAT",
        "AWS_LAMBDA_LOG_LEVEL",
        "AWS_XRAY_CONTEXT_MISSING",
        "AWS_XRAY_DAEMON_ADDRESS",
        "LANG",
        "LD_LIBRARY_PATH",
        "PATH",
        "TZ",
    }
)
"""Platform variables a function's own `Environment` may replace (RIE LMI's `overridable`)."""

CONTROLLED = frozenset(
    {
        "_HANDLER",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_MAX_CONCURRENCY",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "TMPDIR",
        *CREDENTIAL_VARIABLES,
    }
)
"""Variables only the platform sets. A function's own value for one is dropped, as Lambda refuses
reserved keys — and `AWS_LAMBDA_MAX_CONCURRENCY` in particular must never reach a runtime client,
which would switch to Managed Instances' multi-worker mode (spec §5 trap 3)."""


class LaunchError(Exception):
    """The runtime cannot be started at all; every invocation fails with `error_type`."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class Launch:
    argv: tuple[str, ...]
    cwd: Path
    runtime_dir: Path


def runtime_family(runtime: str) -> RuntimeFamily | None:
    if re.fullmatch(r"python3\.\d+", runtime):
        return "python"
    if re.fullmatch(r"nodejs\d+\.x", runtime):
        return "nodejs"
    if runtime in {"provided.al2", "provided.al2023", "provided"}:
        return "provided"
    return None


def python_version_warning(runtime: str, running: tuple[int, int]) -> str | None:
    """The warning for a `python3.x` runtime that names another minor version than poller runs on."""
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    if match is None or (int(match[1]), int(match[2])) == running:
        return None
    return (
        f"Runtime {runtime} runs on poller's own interpreter, Python {running[0]}.{running[1]}: "
        "code that depends on the other version's features may behave differently"
    )


def launch_command(definition: FunctionDefinition) -> Launch:
    """argv, cwd and runtime directory of the runtime process; `LaunchError` if it cannot start."""
    code = definition.code_uri.resolve()
    family = runtime_family(definition.runtime)
    if family == "python":
        spec = importlib.util.find_spec("awslambdaric")
        if spec is None or spec.origin is None:
            raise LaunchError(
                INVALID_ENTRYPOINT,
                f"Runtime {definition.runtime} needs the Python package awslambdaric, which is not "
                "installed in poller's environment: pip install awslambdaric",
            )
        return Launch(
            (sys.executable, "-m", "awslambdaric", definition.handler), code, Path(spec.origin).parent
        )
    if family == "provided":
        bootstrap = code / "bootstrap"
        if not bootstrap.is_file():
            # AWS's own wording, with CodeUri where Lambda looks in /var/task and /opt.
            raise LaunchError(INVALID_ENTRYPOINT, f"Couldn't find valid bootstrap(s): [{bootstrap}]")
        if not os.access(bootstrap, os.X_OK):
            raise LaunchError(INVALID_ENTRYPOINT, f"fork/exec {bootstrap}: permission denied")
        return Launch((str(bootstrap),), code, code)
    if family == "nodejs":
        search_path = _function_path(definition)
        ric = _node_ric(code, search_path)
        if ric is None:
            raise LaunchError(
                INVALID_ENTRYPOINT,
                f"Runtime {definition.runtime} needs AWS's Node.js runtime interface client, which is "
                f"not installed: looked in {code / 'node_modules' / '.bin'} and on the PATH. Run "
                f"`npm install aws-lambda-ric@{NODE_RIC_VERSION}` in {code} or `npm install -g "
                f"aws-lambda-ric@{NODE_RIC_VERSION}` (it builds a native addon: needs autoconf, automake, "
                "libtool, cmake, g++, make); poller does not bundle a Node.js client",
            )
        # The script's `#!/usr/bin/env node` finds node on the PATH the process gets: check that one.
        if shutil.which("node", path=search_path) is None:
            raise LaunchError(INVALID_ENTRYPOINT, f"Runtime {definition.runtime} needs `node` on the PATH")
        # 3.x takes the handler from argv and the app root from its cwd; 4.x takes `_HANDLER` and
        # `LAMBDA_TASK_ROOT` from the environment (spec §1.12): give both.
        return Launch((ric, definition.handler), code, _node_package_dir(ric))
    raise LaunchError(
        INVALID_ENTRYPOINT,
        f"Runtime {definition.runtime} is not one poller runs: python3.x, nodejs*.x, provided.al2, "
        "provided.al2023",
    )


def _function_path(definition: FunctionDefinition) -> str:
    """The PATH the runtime process gets: the function's own (`PATH` is overridable), else poller's."""
    return definition.environment.get("PATH") or os.environ.get("PATH", os.defpath)


def _node_ric(code: Path, search_path: str) -> str | None:
    """`aws-lambda-ric` installed in the code's `node_modules`, else on the PATH (`npm install -g`)."""
    local = code / "node_modules" / ".bin" / "aws-lambda-ric"
    if os.access(local, os.X_OK):
        return str(local)
    return shutil.which("aws-lambda-ric", path=search_path)


def _node_package_dir(ric: str) -> Path:
    """The installed package (`…/aws-lambda-ric`, whose `bin/index.mjs` the `.bin` link points to):
    what stands for Lambda's `/var/runtime` in `LAMBDA_RUNTIME_DIR`."""
    script = Path(ric).resolve()
    return script.parent.parent if script.parent.name == "bin" else script.parent


def log_stream_name(created_epoch: float, suffix_hex: str) -> str:
    """`YYYY/MM/DD/[$LATEST]<32 hex>`: one per environment, dated when it was created (spec §2.1)."""
    day = time.strftime("%Y/%m/%d", time.gmtime(created_epoch))
    return f"{day}/[{VERSION}]{suffix_hex}"


def service_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """The credential variables of poller's own environment, to hand to every function."""
    return {key: environ[key] for key in CREDENTIAL_VARIABLES if environ.get(key)}


def environment_variables(
    definition: FunctionDefinition,
    *,
    runtime_api: str,
    region: str,
    tmpdir: Path,
    log_stream: str,
    runtime_dir: Path,
    credentials: Mapping[str, str],
    host_environ: Mapping[str, str],
) -> dict[str, str]:
    """The runtime process's whole environment (spec §2.1, DESIGN §1.5.1).

    Later layers win: platform defaults the function may override, then the function's own
    variables (minus reserved and `_`-prefixed names), then the service's credentials, then the
    reserved variables.
    """
    code = str(definition.code_uri.resolve())
    host_ld = host_environ.get("LD_LIBRARY_PATH")
    env: dict[str, str] = {
        "PATH": host_environ.get("PATH", os.defpath),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": ":".join(p for p in (code, f"{code}/lib", host_ld) if p),
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }
    env.update(
        {k: v for k, v in definition.environment.items() if not k.startswith("_") and k not in CONTROLLED}
    )
    env.update({k: v for k, v in credentials.items() if k in CREDENTIAL_VARIABLES})
    env.update(
        {
            "_HANDLER": definition.handler,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": definition.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(definition.memory_size_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": VERSION,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": definition.log_group_name,
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "LAMBDA_TASK_ROOT": code,
            "LAMBDA_RUNTIME_DIR": str(runtime_dir),
            "TMPDIR": str(tmpdir),
        }
    )
    family = runtime_family(definition.runtime)
    if family == "nodejs" and "NODE_PATH" not in env:
        # Lambda's Node bootstrap puts the task root on NODE_PATH when the function sets none, so a
        # CommonJS `require("lib/db")` finds `LAMBDA_TASK_ROOT/lib/db.js` from any directory.
        env["NODE_PATH"] = code
    if family in {"python", "nodejs"}:
        # Exactly `AWS_Lambda_<Runtime>`: awslambdaric compares it with fixed strings, and for
        # python3.12+ it polls /next from a thread (so SIGTERM reaches the handler's process) and
        # encodes results with ensure_ascii=False, as Lambda's runtime does. Custom runtimes get
        # none (spec §2.1).
        env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{definition.runtime}"
    return env
