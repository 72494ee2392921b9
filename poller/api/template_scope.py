"""A template's `Parameters`, `Mappings` and `Conditions`, with the pseudo parameters: the `Scope`
its intrinsics resolve against.

Parameters take their value from `--parameter-overrides`, else their `Default`, and are checked as
CloudFormation checks them (type, `AllowedValues`, `AllowedPattern`), with CloudFormation's messages.
A parameter without a value is reported once, at its line; whatever uses it is reported where it
is used and left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poller.api.template_intrinsics import Scope, Unresolved, condition_value, pseudo_parameters
from poller.config.problems import Problem
from poller.config.yaml_lines import KeyPath, LineMap

_LIST_TYPES = ("CommaDelimitedList", "List<Number>")


@dataclass(frozen=True)
class TemplateScope:
    scope: Scope
    problems: tuple[Problem, ...]


def build_scope(
    template: Mapping[str, Any],
    lines: LineMap,
    file: Path,
    *,
    overrides: Mapping[str, str],
    region: str,
    account_id: str,
    stack_name: str,
    resource_types: Mapping[str, str],
) -> TemplateScope:
    """Parameters (overrides, defaults, checks), Mappings and a lazy evaluator of Conditions."""
    problems: list[Problem] = []
    declared = template.get("Parameters") or {}
    if not isinstance(declared, dict):
        problems.append(
            Problem("Parameters must be a mapping of parameter names.", file, lines.line_of(("Parameters",)))
        )
        declared = {}
    values: dict[str, Any] = {}
    unset: dict[str, str] = {}
    for name, spec in declared.items():
        where = lines.line_of(("Parameters", name))
        value, message = _parameter_value(str(name), spec, overrides)
        if message is not None:
            problems.append(Problem(message, file, where, field=f"Parameters.{name}"))
            unset[str(name)] = message
        else:
            values[str(name)] = value
    for name in overrides:
        if name not in declared:
            message = (
                f"Parameters: [{name}] do not exist in the template (from --parameter-overrides); ignored."
            )
            problems.append(Problem(message, file, severity="warning"))
    mappings = template.get("Mappings") or {}
    conditions = template.get("Conditions") or {}
    if not isinstance(conditions, dict):
        conditions = {}
    evaluated: dict[str, bool] = {}
    evaluating: set[str] = set()

    def condition(name: str, path: KeyPath) -> bool:
        if name in evaluated:
            return evaluated[name]
        if name not in conditions:
            raise Unresolved(f"Condition '{name}' is not defined in Conditions.", path)
        if name in evaluating:
            raise Unresolved(f"Condition '{name}' depends on itself.", ("Conditions", name))
        evaluating.add(name)
        try:
            result = condition_value(conditions[name], scope, ("Conditions", name))
        finally:
            evaluating.discard(name)
        evaluated[name] = result
        return result

    pseudo = pseudo_parameters(region, account_id, stack_name)
    scope = Scope(
        parameters=values,
        pseudo=pseudo,
        mappings=mappings if isinstance(mappings, dict) else {},
        resource_types=resource_types,
        condition=condition,
        unset_parameters=unset,
    )
    # Every condition is evaluated now, so a broken one is reported once, at its own line, even when
    # nothing uses it; the resources that use it are then left out where they use it.
    for name in conditions:
        try:
            condition(str(name), ("Conditions", name))
        except Unresolved as exc:
            problems.append(Problem(exc.message, file, lines.line_of(exc.path), field=f"Conditions.{name}"))
    return TemplateScope(scope, tuple(problems))


def _parameter_value(name: str, spec: Any, overrides: Mapping[str, str]) -> tuple[Any, str | None]:
    if not isinstance(spec, dict):
        return None, f"Parameter '{name}' must be a mapping with a Type."
    kind = str(spec.get("Type", "String"))
    if name in overrides:
        raw: Any = overrides[name]
    elif "Default" in spec:
        raw = spec["Default"]
    else:
        return (
            None,
            f"Parameters: [{name}] must have values (give a Default, or --parameter-overrides {name}=…).",
        )
    text = ",".join(str(item) for item in raw) if isinstance(raw, list) else _string(raw)
    allowed = spec.get("AllowedValues")
    if isinstance(allowed, list) and text not in [_string(item) for item in allowed]:
        return None, f"Parameter '{name}' must be one of AllowedValues"
    pattern = spec.get("AllowedPattern")
    if isinstance(pattern, str) and not kind.startswith("List"):
        message = _pattern_problem(name, pattern, text)
        if message is not None:
            return None, message
    if kind == "Number":
        if not _is_number(text):
            return None, f"Parameter '{name}' must be a number."
        # Checked as a number, used as a string: what `Ref` of a Number parameter gives.
        return text, None
    if kind in _LIST_TYPES or kind.startswith("List<"):
        items = text.split(",") if text else []
        if kind == "List<Number>" and not all(_is_number(item) for item in items):
            return None, f"Parameter '{name}' must be a list of numbers."
        return items, None
    if kind.startswith("AWS::SSM::Parameter") and name not in overrides:
        return None, (
            f"Parameter '{name}' is read from SSM Parameter Store, which poller does not read; "
            f"give its value with --parameter-overrides {name}=…"
        )
    return text, None


def _pattern_problem(name: str, pattern: str, text: str) -> str | None:
    try:
        matches = re.fullmatch(pattern, text) is not None
    except re.error as exc:
        return f"Parameter '{name}' has an AllowedPattern that is not a regular expression: {exc}"
    return None if matches else f"Parameter '{name}' must match pattern {pattern}"


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
