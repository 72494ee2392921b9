"""A read template's functions and mappings, resolved and checked by the config layer (DESIGN §1.4, §1.5.1).

Each function becomes the `Functions:` entry poller's own files would hold, and each event source
mapping the mapping entry, in the Lambda API's names (CloudFormation spells a few differently, spec
functions-and-templates §4.4); then the same code that checks poller's YAML checks them, so a
template gets exactly the rules and messages a mapping file gets, at the template's lines.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from poller.api.template_intrinsics import Unresolved, resolve
from poller.api.template_lint import is_lint_problem
from poller.api.template_model import TemplateMapping
from poller.api.template_sources import Attributes
from poller.config.functions import (
    NO_FUNCTIONS,
    DeclaredFunctions,
    FoundFunction,
    FunctionContext,
    declared_functions,
    resolve_function,
)
from poller.config.loader import LoadedConfig
from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext, Problem
from poller.config.resolve import RawEntry, resolve_all
from poller.config.settings import Settings
from poller.config.yaml_lines import KeyPath, LineMap

if TYPE_CHECKING:
    from poller.api.template_read import ReadTemplate

FUNCTION_KEYS = (
    "Runtime",
    "Handler",
    "CodeUri",
    "MemorySize",
    "Timeout",
    "Environment",
    "ReservedConcurrentExecutions",
    "EphemeralStorage",
)
"""The function properties poller runs with (DESIGN §1.5.1); the others (Role, Policies, Tracing…)
have no meaning for a local environment."""
_NOT_LOADED = {
    "Layers": "Layers are not loaded: the function sees only its CodeUri directory and poller's packages.",
}
_RENAMED: dict[KeyPath, KeyPath] = {
    ("SelfManagedEventSource", "Endpoints", "KafkaBootstrapServers"): (
        "SelfManagedEventSource",
        "Endpoints",
        "KAFKA_BOOTSTRAP_SERVERS",
    ),
    ("KmsKeyArn",): ("KMSKeyArn",),
}
_DROPPED = {
    "LoggingConfig": "LoggingConfig (the mapping's system log level) is not used: poller logs every batch.",
}
INLINE_CODE_DIR = Path(tempfile.gettempdir()) / "poller-inline-code"


@dataclass(frozen=True)
class TemplateParts:
    """The template's functions and mappings as poller's own files would hold them, before the rules
    that span mappings (`resolve_all`) run; `poller import` writes these."""

    functions: DeclaredFunctions
    entries: tuple[RawEntry, ...]
    problems: tuple[Problem, ...]
    """The read template's problems, then those found here."""
    logical_ids: Mapping[str, str] = field(default_factory=dict)
    """Function name → its logical id."""


def build_parts(read: ReadTemplate, *, attributes: Attributes | None, code_dir: Path | None) -> TemplateParts:
    problems = list(read.problems)
    if read.scope is None:
        return TemplateParts(NO_FUNCTIONS, (), tuple(problems))
    scope = replace(read.scope, attributes=read.attributes(attributes))
    found: list[FoundFunction] = []
    config_problems: list[Problem] = []
    for function in read.functions:
        name = read.function_names[function.logical_id]
        ctx = FunctionContext(name, read.path, function.line_map())
        try:
            properties = resolve(dict(function.properties), scope)
        except Unresolved as exc:
            config_problems.append(ctx.problem(exc.path, exc.left_out("The function is left out.")))
            found.append(FoundFunction(name, ctx.location, None))
            continue
        document = {key: properties[key] for key in FUNCTION_KEYS if key in properties}
        _stringify_variables(document)
        config_problems += [
            ctx.problem((key,), text, "warning") for key, text in _NOT_LOADED.items() if key in properties
        ]
        if "InlineCode" in properties and "CodeUri" not in document:
            document["CodeUri"] = str(
                inline_code(properties["InlineCode"], document.get("Runtime"), code_dir)
            )
        document.setdefault("CodeUri", ".")  # SAM CLI's default for a function that names no code
        declared, function_problems = resolve_function(document, ctx)
        found.append(FoundFunction(name, ctx.location, declared))
        config_problems += function_problems
    functions, duplicates = declared_functions(found)
    config_problems += duplicates
    by_arn = {
        values["Arn"]: values["Ref"] for lid, values in scope.attributes.items() if lid in read.function_names
    }
    entries: list[RawEntry] = []
    for mapping in read.mappings:
        entry, mapping_problems = _entry(mapping, read, scope, by_arn)
        config_problems += mapping_problems
        if entry is not None:
            entries.append(entry)
    config_problems.sort(key=lambda p: p.line or 0)
    # An unresolvable Ref or GetAtt that cfn-lint found too is said once, in poller's words (which
    # say what is left out).
    said = {p.line for p in config_problems if p.severity == "error"}
    problems = [p for p in problems if not (p.line in said and is_lint_problem(p))]
    logical_ids = {name: logical_id for logical_id, name in read.function_names.items()}
    return TemplateParts(functions, tuple(entries), (*problems, *config_problems), logical_ids)


def build_config(
    read: ReadTemplate,
    settings: Settings,
    *,
    settings_file: Path | None,
    base_dir: Path,
    attributes: Attributes | None,
    code_dir: Path | None,
) -> LoadedConfig:
    parts = build_parts(read, attributes=attributes, code_dir=code_dir)
    mappings, resolve_problems = resolve_all(
        parts.entries,
        kafka_bootstrap_servers=settings.kafka.bootstrap_servers,
        file_root=Path(os.path.normpath(base_dir / settings.destinations.file_root)),
        functions=parts.functions,
    )
    # In template order, as a reader goes through the file.
    problems = sorted((*parts.problems, *resolve_problems), key=lambda p: p.line or 0)
    return LoadedConfig(
        settings, settings_file, base_dir, tuple(mappings), tuple(problems), parts.functions.valid
    )


def _entry(
    mapping: TemplateMapping, read: ReadTemplate, scope: Any, by_arn: dict[str, str]
) -> tuple[RawEntry | None, list[Problem]]:
    ctx = MappingContext(mapping.logical_id, read.path, mapping.line_map())
    try:
        properties = resolve(dict(mapping.properties), scope)
    except Unresolved as exc:
        return None, [ctx.problem(exc.path, exc.left_out("This mapping is left out."))]
    if mapping.function is not None:
        function_name: Any = read.function_names[mapping.function]
    else:
        function_name = properties.pop("FunctionName", None)
        # A template names its own function by ARN as often as by name; poller runs it by name.
        function_name = (
            by_arn.get(function_name, function_name) if isinstance(function_name, str) else function_name
        )
    document, lines, problems = api_names(properties, dict(mapping.lines), ctx)
    document = {"Name": mapping.logical_id, "FunctionName": function_name, **document}
    ctx = MappingContext(mapping.logical_id, read.path, LineMap(lines))
    try:
        raw = RawMapping.model_validate(document)
    except ValidationError as exc:
        return None, [*problems, *ctx.validation_problems(exc)]
    return RawEntry(raw, ctx), problems


def api_names(
    properties: dict[str, Any], lines: dict[KeyPath, int], ctx: MappingContext
) -> tuple[dict[str, Any], dict[KeyPath, int], list[Problem]]:
    """CloudFormation's `AWS::Lambda::EventSourceMapping` names → the Lambda API's (spec §4.4)."""
    problems: list[Problem] = []
    for key, message in _DROPPED.items():
        if key in properties:
            problems.append(ctx.problem((key,), message, "warning"))
            del properties[key]
    for old, new in _RENAMED.items():
        parent: Any = properties
        for part in old[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and old[-1] in parent:
            parent[new[-1]] = parent.pop(old[-1])
            size = len(old)
            lines.update(
                {(*new, *path[size:]): line for path, line in list(lines.items()) if path[:size] == old}
            )
    tags = properties.get("Tags")
    if isinstance(tags, list):  # CloudFormation's [{Key, Value}] is the API's {key: value}
        properties["Tags"] = {item.get("Key"): item.get("Value") for item in tags if isinstance(item, dict)}
    return properties, lines, problems


def _stringify_variables(document: dict[str, Any]) -> None:
    """CloudFormation turns a number or boolean variable value into its text (`8080`, `true`), so a
    template need not quote them as poller's own files must."""
    environment = document.get("Environment")
    variables = environment.get("Variables") if isinstance(environment, dict) else None
    if not isinstance(variables, dict):
        return
    for key, value in variables.items():
        if isinstance(value, bool):
            variables[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            variables[key] = str(value)


def inline_code(code: Any, runtime: Any, code_dir: Path | None) -> Path:
    """Write a function's inline code where Lambda would put it (`index.py` / `index.js`) and return the
    directory; the directory is named by the code, so the same code reuses it."""
    text = code if isinstance(code, str) else str(code)
    suffix = ".js" if isinstance(runtime, str) and runtime.startswith("nodejs") else ".py"
    digest = hashlib.sha256(f"{suffix}\0{text}".encode()).hexdigest()[:16]
    directory = (code_dir or INLINE_CODE_DIR) / digest
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"index{suffix}").write_text(text, encoding="utf-8")
    return directory
