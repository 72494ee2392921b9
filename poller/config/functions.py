"""Functions declared under `Functions:` in a mapping file (DESIGN §1.5.1).

A mapping file may declare functions beside its mappings, or alone, with the property names of
`AWS::Serverless::Function` / `AWS::Lambda::Function`; the rules and their messages are in
`poller.config.function_shape`. As with mappings, every problem is collected: one bad function
costs only itself (and the mappings that name it, see `poller.config.resolve`).

The result is a frozen `DeclaredFunction` with exactly the fields of
`poller.functions.definition.FunctionDefinition`: config may not import `poller.functions`
(DESIGN §2), so that side converts (`poller.functions.declared.definition_of`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pydantic import ValidationError

from poller.config.function_shape import (
    CUSTOM_RUNTIMES,
    DEFAULT_EPHEMERAL_STORAGE_MB,
    DEFAULT_MEMORY_SIZE_MB,
    DEFAULT_TIMEOUT_SECONDS,
    RawFunction,
    name_problems,
    variable_problems,
)
from poller.config.problems import Problem, Severity, dotted, readable
from poller.config.resolved import Location
from poller.config.yaml_lines import LineMap, YamlDocument

FUNCTIONS_KEY = "Functions"

__all__ = [
    "FUNCTIONS_KEY",
    "NO_FUNCTIONS",
    "DeclaredFunction",
    "DeclaredFunctions",
    "FoundFunction",
    "FunctionContext",
    "declared_functions",
    "functions_in_document",
    "resolve_function",
]


@dataclass(frozen=True, slots=True)
class DeclaredFunction:
    """One valid function: the fields of `poller.functions.definition.FunctionDefinition`, plus
    where it was declared (left out of comparisons: moving it within a file changes nothing)."""

    name: str
    runtime: str
    handler: str
    """`""` for a `provided.*` function that names none."""
    code_uri: Path
    """Absolute: `CodeUri` resolved against the file's directory; an existing directory."""
    memory_size_mb: int = DEFAULT_MEMORY_SIZE_MB
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    # Not part of the hash (a mapping is not hashable); frozen below so the value stays a value.
    environment: Mapping[str, str] = field(default_factory=dict, hash=False)
    reserved_concurrency: int | None = None
    ephemeral_storage_mb: int = DEFAULT_EPHEMERAL_STORAGE_MB
    location: Location = field(default=Location(None, None), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "environment", MappingProxyType(dict(self.environment)))


@dataclass(frozen=True, slots=True)
class DeclaredFunctions:
    """Every name declared under `Functions:` across the mapping files, valid or not."""

    valid: Mapping[str, DeclaredFunction]
    invalid: Mapping[str, Location]
    """Names declared with errors: a mapping that names one is refused rather than sent to Lambda."""


NO_FUNCTIONS = DeclaredFunctions(MappingProxyType({}), MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class FunctionContext:
    """Where one function sits, so its problems read `file:line: Function 'name': Field: message`."""

    name: str
    file: Path
    lines: LineMap

    @property
    def location(self) -> Location:
        return Location(self.file, self.lines.line_of())

    def problem(self, path: Sequence[str | int], message: str, severity: Severity = "error") -> Problem:
        line = self.lines.line_of(path)
        return Problem(message, self.file, line, field=dotted(path), severity=severity, function=self.name)


@dataclass(frozen=True, slots=True)
class FoundFunction:
    """A name declared in one file, with the function if it is valid."""

    name: str
    location: Location
    function: DeclaredFunction | None


def functions_in_document(doc: YamlDocument, file: Path) -> tuple[list[FoundFunction], list[Problem]]:
    """The functions a file declares under `Functions:` (none without the key), and their problems."""
    value = doc.value
    if not isinstance(value, dict) or FUNCTIONS_KEY not in value:
        return [], []
    section = value[FUNCTIONS_KEY]
    line = doc.lines.line_of((FUNCTIONS_KEY,))
    if section is None or section == {}:
        message = "No functions under Functions."
        return [], [Problem(message, file, line, field=FUNCTIONS_KEY, severity="warning")]
    if not isinstance(section, dict):
        message = f"Should be a mapping of function names to their properties; found a {_kind(section)}."
        return [], [Problem(message, file, line, field=FUNCTIONS_KEY)]
    found: list[FoundFunction] = []
    problems: list[Problem] = []
    for key, item in section.items():
        if not isinstance(key, str):
            # YAML reads `true:` or `1.50:` as a boolean or a number, so the name would not be the
            # text (nor could its line be found by it: the problem points at `Functions:`).
            ctx = FunctionContext(str(key), file, doc.lines.sub(FUNCTIONS_KEY))
            problems.append(ctx.problem((), "A function name is a string: quote it."))
            found.append(FoundFunction(ctx.name, ctx.location, None))
            continue
        ctx = FunctionContext(key, file, doc.lines.sub(FUNCTIONS_KEY, key))
        function, function_problems = resolve_function(item, ctx)
        found.append(FoundFunction(key, ctx.location, function))
        problems += function_problems
    return found, problems


def resolve_function(item: object, ctx: FunctionContext) -> tuple[DeclaredFunction | None, list[Problem]]:
    """The function named `ctx.name` (None if any error) and every problem with it, warnings included.

    Warnings come back only beside a valid function; an invalid one gets its errors.
    """
    problems = [ctx.problem((), message) for message in name_problems(ctx.name)]
    if not isinstance(item, dict):
        message = f"A function is a set of keys (Runtime, Handler, CodeUri, …); found a {_kind(item)}."
        return None, [*problems, ctx.problem((), message)]
    try:
        raw = RawFunction.model_validate(item)
    except ValidationError as exc:
        problems += [ctx.problem(err["loc"], readable(err["type"], err["msg"])) for err in exc.errors()]
        # The code directory and the variables are checked all the same: one pass over the file
        # should show every mistake.
        code_uri = item.get("CodeUri")
        if isinstance(code_uri, str) and not any(err["loc"][:1] == ("CodeUri",) for err in exc.errors()):
            problems += [p for p in _code_directory(code_uri, ctx, custom=False)[1] if p.severity == "error"]
        environment = item.get("Environment")
        variables = environment.get("Variables") if isinstance(environment, dict) else None
        if isinstance(variables, dict):
            problems += [ctx.problem(path, message) for path, message in variable_problems(variables)]
        return None, problems
    custom = raw.runtime in CUSTOM_RUNTIMES
    if raw.handler is None and not custom:
        example = "index.handler" if raw.runtime.startswith("nodejs") else "app.handler"
        message = f"Required key is missing: a {raw.runtime} function names its handler, e.g. {example}."
        problems.append(ctx.problem(("Handler",), message))
    code_uri, code_problems = _code_directory(raw.code_uri, ctx, custom=custom)
    problems += code_problems
    variables = (raw.environment.variables if raw.environment else None) or {}
    problems += [ctx.problem(path, message) for path, message in variable_problems(variables)]
    if raw.reserved_concurrent_executions == 0:
        message = (
            "ReservedConcurrentExecutions 0 throttles every invocation, as in Lambda: the mappings that "
            "name this function will not make progress."
        )
        problems.append(ctx.problem(("ReservedConcurrentExecutions",), message, severity="warning"))
    if any(p.severity == "error" for p in problems):
        return None, [p for p in problems if p.severity == "error"]
    storage = raw.ephemeral_storage.size if raw.ephemeral_storage else DEFAULT_EPHEMERAL_STORAGE_MB
    function = DeclaredFunction(
        name=ctx.name,
        runtime=raw.runtime,
        handler=raw.handler or "",
        code_uri=code_uri,
        memory_size_mb=raw.memory_size,
        timeout_seconds=raw.timeout,
        environment=variables,
        reserved_concurrency=raw.reserved_concurrent_executions,
        ephemeral_storage_mb=storage,
        location=ctx.location,
    )
    return function, problems


def _code_directory(code_uri: str, ctx: FunctionContext, *, custom: bool) -> tuple[Path, list[Problem]]:
    """`CodeUri` against the file's directory; it must be a directory (DESIGN: the code is not copied)."""
    path = Path(os.path.normpath((ctx.file.parent / code_uri).absolute()))
    try:
        is_dir, exists = path.is_dir(), path.exists()
    except OSError as exc:  # a name too long, EIO: say so rather than crash
        return path, [ctx.problem(("CodeUri",), f"Cannot read the code directory {path}: {exc.strerror}")]
    if not is_dir:
        what = "is not a directory" if exists else "does not exist"
        return path, [ctx.problem(("CodeUri",), f"The function's code directory {path} {what}.")]
    bootstrap = path / "bootstrap"
    if custom and not (bootstrap.is_file() and os.access(bootstrap, os.X_OK)):
        # Lambda creates such a function too, and fails each invocation; so this only warns.
        message = (
            f"No executable 'bootstrap' in {path}: a custom runtime starts that file, so every "
            "invocation will fail (Runtime.InvalidEntrypoint)."
        )
        return path, [ctx.problem(("CodeUri",), message, severity="warning")]
    return path, []


def declared_functions(found: list[FoundFunction]) -> tuple[DeclaredFunctions, list[Problem]]:
    """Functions from every file in reading order; a name already declared is refused (first wins)."""
    valid: dict[str, DeclaredFunction] = {}
    invalid: dict[str, Location] = {}
    first: dict[str, FoundFunction] = {}
    problems: list[Problem] = []
    for entry in found:
        earlier = first.setdefault(entry.name, entry)
        if earlier is not entry:
            message = f"Function name '{entry.name}' is already declared at {earlier.location}."
            where = entry.location
            problems.append(Problem(message, where.file, where.line, function=entry.name))
        elif entry.function is None:
            invalid[entry.name] = entry.location
        else:
            valid[entry.name] = entry.function
    return DeclaredFunctions(MappingProxyType(valid), MappingProxyType(invalid)), problems


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "string" if isinstance(value, str) else "scalar value"
