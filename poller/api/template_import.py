"""`poller import`: a template's functions and mappings as poller YAML files (DESIGN §1.2, §1.10).

One file per function: its `Functions:` entry and the mappings that call it, under a comment naming
the template and the logical ids, with `CodeUri` rewritten relative to the file. Mappings that call
a function the template does not define (a Lambda function by name or ARN) get a file named after
that function. What the template says that poller cannot run is printed, as `poller validate
--template` prints it; the rest is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from poller.api.template_config import TemplateParts, build_parts
from poller.api.template_names import PLACEHOLDER_STREAM_LABEL
from poller.api.template_read import ReadTemplate
from poller.config.functions import DeclaredFunction
from poller.config.problems import Problem
from poller.config.resolve import RawEntry, resolve_all
from poller.config.settings import Settings


def import_template(
    read: ReadTemplate, settings: Settings, out_dir: Path, *, base_dir: Path
) -> tuple[list[Path], list[Problem]]:
    """Write the files; returns them and every problem (the template's, and the config layer's)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = build_parts(read, attributes=None, code_dir=out_dir / "inline-code")
    mappings, resolve_problems = resolve_all(
        parts.entries,
        kafka_bootstrap_servers=settings.kafka.bootstrap_servers,
        file_root=Path(os.path.normpath(base_dir / settings.destinations.file_root)),
        functions=parts.functions,
    )
    valid = {mapping.name for mapping in mappings}
    entries = [entry for entry in parts.entries if entry.raw.name in valid]
    problems = [*parts.problems, *sorted(resolve_problems, key=lambda p: p.line or 0)]
    problems += _placeholder_warnings(entries, read)
    by_function: dict[str, list[RawEntry]] = {}
    for entry in entries:
        by_function.setdefault(entry.raw.function_name, []).append(entry)
    written: list[Path] = []
    for name, function in parts.functions.valid.items():
        target = out_dir / f"{name}.yaml"
        _write(target, read, parts, function, by_function.pop(name, []))
        written.append(target)
    for name, others in by_function.items():
        target = out_dir / f"{_file_name(name)}.yaml"
        _write(target, read, parts, None, others)
        written.append(target)
    return written, problems


def _write(
    target: Path,
    read: ReadTemplate,
    parts: TemplateParts,
    function: DeclaredFunction | None,
    entries: list[RawEntry],
) -> None:
    template = os.path.relpath(read.path.resolve(), target.parent.resolve())
    ids = [f"function {parts.logical_ids[function.name]}"] if function is not None else []
    if entries:
        ids.append("mappings " + ", ".join(entry.raw.name for entry in entries))
    header = f"# Imported by `poller import` from {template}: {'; '.join(ids)} (logical ids).\n"
    document: dict[str, Any] = {}
    if function is not None:
        document["Functions"] = {function.name: _function_document(function, target.parent)}
    if entries:
        document["EventSourceMappings"] = [_mapping_document(entry) for entry in entries]
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    target.write_text(header + body, encoding="utf-8")


def _function_document(function: DeclaredFunction, directory: Path) -> dict[str, Any]:
    document: dict[str, Any] = {"Runtime": function.runtime}
    if function.handler:
        document["Handler"] = function.handler
    document["CodeUri"] = os.path.relpath(function.code_uri, directory.resolve())
    document["MemorySize"] = function.memory_size_mb
    document["Timeout"] = function.timeout_seconds
    if function.environment:
        document["Environment"] = {"Variables": dict(function.environment)}
    if function.reserved_concurrency is not None:
        document["ReservedConcurrentExecutions"] = function.reserved_concurrency
    document["EphemeralStorage"] = {"Size": function.ephemeral_storage_mb}
    return document


def _mapping_document(entry: RawEntry) -> Mapping[str, Any]:
    # The mapping as validated (API names, JSON types), so the file reads back to the same mapping.
    dumped: dict[str, Any] = entry.raw.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return dumped


def _placeholder_warnings(entries: list[RawEntry], read: ReadTemplate) -> list[Problem]:
    problems: list[Problem] = []
    for entry in entries:
        arn = entry.raw.event_source_arn or ""
        if arn.endswith(f"/stream/{PLACEHOLDER_STREAM_LABEL}"):
            table = arn.split(":table/", 1)[1].split("/stream/", 1)[0]
            message = (
                f"The stream ARN of table '{table}' is not known until the table exists: the file holds "
                f"the placeholder label {PLACEHOLDER_STREAM_LABEL}; put in the real one "
                f"(aws dynamodbstreams list-streams --table-name {table}), or run the template with "
                "`poller run --template`, which looks it up."
            )
            problems.append(entry.ctx.problem(("EventSourceArn",), message, "warning"))
    return problems


def _file_name(function_name: str) -> str:
    """A function named by ARN gets a file named after the function's own name."""
    name = function_name.rsplit(":function:", 1)[-1].split(":", 1)[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name) or "mappings"
