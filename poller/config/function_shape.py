"""What a function under `Functions:` may say: Lambda's limits, and Lambda's messages for them.

The ranges are those of an ordinary Lambda function (spec functions-and-templates §2.5), the
patterns and the runtime enum botocore's Lambda model (2015-03-31), and the messages AWS's
CreateFunction validation messages, so a search for the text finds what AWS says about it.
`poller.config.functions` applies these rules file by file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_pascal

from poller.config.yaml_lines import KeyPath

DEFAULT_MEMORY_SIZE_MB = 128
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_EPHEMERAL_STORAGE_MB = 512
# botocore's model allows more (Timeout to 5400, MemorySize and EphemeralStorage to 32768) for
# Lambda Managed Instances only; an ordinary function is held to these.
MEMORY_SIZE_RANGE = (128, 10_240)
TIMEOUT_RANGE = (1, 900)
EPHEMERAL_STORAGE_RANGE = (512, 10_240)
MIN_RESERVED_CONCURRENCY = 0
HANDLER_MAX_LENGTH = 128
HANDLER_PATTERN = r"[^\s]+"
NAME_MAX_LENGTH = 64
"""A function *name* (not an ARN) is at most 64 characters (botocore's FunctionName documentation)."""
NAME_PATTERN = r"[a-zA-Z0-9-_]+"
"""The name part of Lambda's FunctionName pattern."""
VARIABLE_NAME_PATTERN = r"[a-zA-Z]([a-zA-Z0-9_])+"
VARIABLES_MAX_BYTES = 4096
"""Lambda's 4 KB for all of a function's variables, measured as their JSON."""

RESERVED_VARIABLES = frozenset(
    {
        # spec §2.1 and AWS's "Defined runtime environment variables": set by Lambda, refused in a
        # function's configuration. (`_HANDLER` and `_X_AMZN_TRACE_ID` already fail the name pattern.)
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
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
MANAGED_INSTANCES_VARIABLE = "AWS_LAMBDA_MAX_CONCURRENCY"
"""Not reserved for an ordinary Lambda function, but it switches both runtime clients into Managed
Instances' multi-concurrency mode (spec §5 trap 3), which an environment here never is."""

AWS_RUNTIMES = (
    # botocore's `Runtime` enum, in its order, for AWS's enum message.
    *("nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x"),
    *("nodejs16.x", "nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x", "java8", "java8.al2"),
    *("java11", "java17", "java21", "java25", "python2.7", "python3.6", "python3.7", "python3.8"),
    *("python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14"),
    *("dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1", "dotnet6", "dotnet8"),
    *("dotnet10", "nodejs4.3-edge", "go1.x", "ruby2.5", "ruby2.7", "ruby3.2", "ruby3.3", "ruby3.4"),
    *("ruby4.0", "provided", "provided.al2", "provided.al2023", "nodejs26.x", "python3.15"),
    *("java8.al2023", "java11.al2023", "java17.al2023"),
)
CUSTOM_RUNTIMES = ("provided.al2", "provided.al2023")
# The families poller runs: Python on awslambdaric, Node.js on aws-lambda-ric, custom runtimes on
# their `bootstrap`. A version newer than botocore's enum is accepted: the family is what matters.
_SUPPORTED_RUNTIME = re.compile(r"python3\.\d+|nodejs\d+\.x|provided\.al2|provided\.al2023")
_HANDLER = re.compile(HANDLER_PATTERN)
_NAME = re.compile(NAME_PATTERN)
_VARIABLE_NAME = re.compile(VARIABLE_NAME_PATTERN)


def constraint_message(value: object, at: str, constraint: str) -> str:
    """AWS's validation-exception text, e.g. for `Value '99' at 'memorySize'`."""
    where = f"Value '{value}' at '{at}'"
    return f"1 validation error detected: {where} failed to satisfy constraint: {constraint}"


def _not_bool(value: object) -> object:
    # pydantic reads `true` as 1; a boolean where a number belongs is a mistake, not a 1.
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer")
    return value


def _in_range(at: str, low: int, high: int | None) -> AfterValidator:
    def check(value: int) -> int:
        if value < low:
            constraint = f"Member must have value greater than or equal to {low}"
            raise ValueError(constraint_message(value, at, constraint))
        if high is not None and value > high:
            constraint = f"Member must have value less than or equal to {high}"
            raise ValueError(constraint_message(value, at, constraint))
        return value

    return AfterValidator(check)


def _runtime_check(value: str) -> str:
    if _SUPPORTED_RUNTIME.fullmatch(value):
        return value
    if value in AWS_RUNTIMES:
        raise ValueError(
            f"Runtime '{value}' is not supported: poller runs python3.x, nodejs<N>.x, provided.al2 "
            "and provided.al2023 functions."
        )
    enum = ", ".join(AWS_RUNTIMES)
    raise ValueError(constraint_message(value, "runtime", f"Member must satisfy enum value set: [{enum}]"))


def _handler_check(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > HANDLER_MAX_LENGTH:
        constraint = f"Member must have length less than or equal to {HANDLER_MAX_LENGTH}"
        raise ValueError(constraint_message(value, "handler", constraint))
    if not _HANDLER.fullmatch(value):
        constraint = f"Member must satisfy regular expression pattern: {HANDLER_PATTERN}"
        raise ValueError(constraint_message(value, "handler", constraint))
    return value


def _local_directory(value: object) -> object:
    # SAM's CodeUri may also be an S3 location; poller runs code from a local directory only.
    if isinstance(value, dict) or (isinstance(value, str) and value.startswith("s3://")):
        raise ValueError(
            "CodeUri is the function's code directory, relative to this file; S3 locations are not supported."
        )
    return value


_Integer = BeforeValidator(_not_bool)
MemorySize = Annotated[int, _Integer, _in_range("memorySize", *MEMORY_SIZE_RANGE)]
Timeout = Annotated[int, _Integer, _in_range("timeout", *TIMEOUT_RANGE)]
StorageSize = Annotated[int, _Integer, _in_range("ephemeralStorage.size", *EPHEMERAL_STORAGE_RANGE)]
ReservedConcurrency = Annotated[
    int, _Integer, _in_range("reservedConcurrentExecutions", MIN_RESERVED_CONCURRENCY, None)
]


class _Shape(BaseModel):
    # Unknown keys are refused: a misspelt `Timout` must not silently become the default 3 s.
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_pascal)


class EnvironmentShape(_Shape):
    variables: dict[Any, Any] | None = None
    """Names and values are checked one by one (`variable_problems`), to point at the bad line."""


class EphemeralStorageShape(_Shape):
    size: StorageSize


class RawFunction(_Shape):
    """One function as the file spells it (SAM / CloudFormation property names)."""

    runtime: Annotated[str, AfterValidator(_runtime_check)]
    handler: Annotated[str | None, AfterValidator(_handler_check)] = None
    """Required unless the runtime is a custom one (`provided.*`); checked by the resolver."""
    code_uri: Annotated[str, BeforeValidator(_local_directory)]
    memory_size: MemorySize = DEFAULT_MEMORY_SIZE_MB
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS
    environment: EnvironmentShape | None = None
    reserved_concurrent_executions: ReservedConcurrency | None = None
    ephemeral_storage: EphemeralStorageShape | None = None


def name_problems(name: str) -> list[str]:
    """Lambda's FunctionName rules for a plain name: 1-64 of `[a-zA-Z0-9-_]`."""
    problems: list[str] = []
    if len(name) > NAME_MAX_LENGTH:
        constraint = f"Member must have length less than or equal to {NAME_MAX_LENGTH}"
        problems.append(constraint_message(name, "functionName", constraint))
    if not _NAME.fullmatch(name):
        constraint = f"Member must satisfy regular expression pattern: {NAME_PATTERN}"
        problems.append(constraint_message(name, "functionName", constraint))
    return problems


_VARIABLES: KeyPath = ("Environment", "Variables")


def variable_problems(variables: Mapping[Any, Any]) -> list[tuple[KeyPath, str]]:
    """Lambda's rules for `Environment.Variables`: (path, message) for each variable that breaks one."""
    problems: list[tuple[KeyPath, str]] = []
    for key, value in variables.items():
        path = (*_VARIABLES, str(key))
        if not isinstance(key, str) or not _VARIABLE_NAME.fullmatch(key):
            # AWS's message names no variable; the field and line of the problem do.
            message = (
                "1 validation error detected: Value at 'environment.variables' failed to satisfy "
                "constraint: Map keys must satisfy constraint: [Member must satisfy regular expression "
                f"pattern: {VARIABLE_NAME_PATTERN}]"
            )
            problems.append((path, message))
        elif key in RESERVED_VARIABLES:
            message = (
                "Lambda was unable to configure your environment variables because the environment "
                "variables you have provided contains reserved keys that are currently not supported "
                f"for modification. Reserved keys used in this request: {key}"
            )
            problems.append((path, message))
        elif key == MANAGED_INSTANCES_VARIABLE:
            message = (
                f"{key} switches the runtime clients to Lambda Managed Instances' multi-concurrency "
                "mode, which poller's environments are not in; remove it."
            )
            problems.append((path, message))
        if not isinstance(value, str):
            message = (
                "Environment variable values are strings: quote this one (YAML reads 8080, true or an "
                "empty value unquoted as a number, a boolean or null)."
            )
            problems.append((path, message))
    if not problems:
        size = len(json.dumps(dict(variables), separators=(",", ":"), ensure_ascii=False).encode())
        if size > VARIABLES_MAX_BYTES:
            # AWS appends the string it measured; values may be secrets, so only its size is shown.
            message = (
                "Lambda was unable to configure your environment variables because the environment "
                f"variables you have provided exceeded the 4KB limit. String measured: {size} bytes"
            )
            problems.append((_VARIABLES, message))
    return problems
