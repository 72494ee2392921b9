"""Read a SAM or CloudFormation template into poller's functions and mappings (DESIGN §1.10).

`read_template` parses the template (short or long forms, or JSON), resolves its parameters and
conditions, applies SAM's Globals and turns each pull event into the event source mapping SAM makes,
and finds the queues, streams and tables the template creates (`sources`). `ReadTemplate.to_config`
then resolves the functions' and mappings' intrinsics against the real attributes of those sources
(once running the template has created or found them) or offline ones, and hands everything to the
config layer, which checks them exactly as it checks poller's own YAML files.

A function's name is its `FunctionName` property, else its logical id (CloudFormation would make up
`<stack>-<LogicalId>-<suffix>`; spec functions-and-templates §4.4 leaves poller to pick). Nothing
here raises for a template's mistake: every problem is a `Problem` with the template line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from poller.api.template_intrinsics import Scope, Unresolved, resolve
from poller.api.template_lint import lint_problems
from poller.api.template_model import TemplateFunction, TemplateMapping, lines_under
from poller.api.template_names import (
    NAME_PROPERTY,
    default_stack_name,
    function_attributes,
    generated_name,
    other_attributes,
    source_attributes,
)
from poller.api.template_sam import SAM_FUNCTION, SamReader
from poller.api.template_scope import build_scope
from poller.api.template_sources import SOURCE_TYPES, Attributes, SourceResource, SourceType
from poller.api.template_yaml import parse_template
from poller.config.loader import LoadedConfig
from poller.config.problems import Problem
from poller.config.settings import Settings
from poller.config.yaml_lines import KeyPath, LineMap, YamlError

__all__ = ["ReadTemplate", "read_template"]

LAMBDA_FUNCTION = "AWS::Lambda::Function"
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
QUIET_TYPES = frozenset(
    {
        # Permissions, roles and log groups have no part in running the functions locally: reporting
        # each would bury the warnings that matter.
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::Lambda::Permission",
        "AWS::Logs::LogGroup",
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
    }
)


@dataclass(frozen=True)
class ReadTemplate:
    path: Path
    sources: tuple[SourceResource, ...]
    """The AWS::SQS::Queue / AWS::Kinesis::Stream / AWS::DynamoDB::Table the template creates."""
    problems: tuple[Problem, ...]
    """Template-level problems, by logical id and line."""
    functions: tuple[TemplateFunction, ...] = ()
    mappings: tuple[TemplateMapping, ...] = ()
    scope: Scope | None = field(default=None, repr=False)
    function_names: Mapping[str, str] = field(default_factory=dict)
    """Logical id → function name, for the functions that are read."""
    region: str = "us-east-1"
    account_id: str = "000000000000"
    other_attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def attributes(self, learned: Attributes | None = None) -> dict[str, Mapping[str, str]]:
        """Every resource value intrinsics may use: `learned` for the sources where given, else offline."""
        found: dict[str, Mapping[str, str]] = dict(self.other_attributes)
        for source in self.sources:
            found[source.logical_id] = source_attributes(source, self.region, self.account_id)
        for logical_id, name in self.function_names.items():
            found[logical_id] = function_attributes(name, self.region, self.account_id)
        for logical_id, values in (learned or {}).items():
            found[logical_id] = {**found.get(logical_id, {}), **values}
        return found

    def to_config(
        self,
        settings: Settings,
        *,
        settings_file: Path | None,
        base_dir: Path,
        attributes: Attributes | None = None,
        code_dir: Path | None = None,
    ) -> LoadedConfig:
        """The functions (§1.5.1) and mappings (§1.4), with `self.problems` and the config layer's.

        `attributes` are the real `Ref`/`GetAtt` values of `sources`; None = offline values
        (`poller.api.template_names`). `code_dir` is where inline code (`InlineCode`, `ZipFile`) is
        written; default a directory under the system's temporary directory.
        """
        from poller.api.template_config import build_config

        return build_config(
            self,
            settings,
            settings_file=settings_file,
            base_dir=base_dir,
            attributes=attributes,
            code_dir=code_dir,
        )


def read_template(
    path: Path,
    *,
    parameter_overrides: Mapping[str, str],
    region: str,
    account_id: str,
    stack_name: str | None = None,
    lint: bool = True,
) -> ReadTemplate:
    """Read the template at `path`; every mistake in it is a problem, never an exception.

    `stack_name` is `AWS::StackName` and the prefix of generated names; default the name of the
    directory holding the template (the project's directory for a `sam build` output). `lint`
    runs cfn-lint's checks of the template itself.
    """

    def failed(message: str, line: int | None = None) -> ReadTemplate:
        return ReadTemplate(path, (), (Problem(message, path, line),), region=region, account_id=account_id)

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return failed(f"Cannot read template: {exc.strerror}")
    except UnicodeDecodeError as exc:
        return failed(f"Not UTF-8 text (byte {exc.start}): a template is UTF-8 YAML or JSON.")
    try:
        document = parse_template(text, json_file=path.suffix == ".json")
    except YamlError as exc:
        return failed(exc.message, exc.line)
    template, lines = document.value, document.lines
    resources = template.get("Resources") if isinstance(template, dict) else None
    if not isinstance(template, dict) or not isinstance(resources, dict) or not resources:
        return failed("A template is a mapping with a Resources section holding at least one resource.")
    if stack_name is None:
        directory = path.parent.parent.parent if path.parent.parent.name == ".aws-sam" else path.parent
        stack_name = default_stack_name(directory.resolve().name)
    types = {str(key): str(value.get("Type")) for key, value in resources.items() if isinstance(value, dict)}
    built = build_scope(
        template,
        lines,
        path,
        overrides=parameter_overrides,
        region=region,
        account_id=account_id,
        stack_name=stack_name,
        resource_types=types,
    )
    problems = list(built.problems)
    reader = _Reader(
        path, lines, built.scope, stack_name, region, account_id, SamReader(template, lines, path, region)
    )
    problems += reader.sam.problems
    for logical_id, resource in resources.items():
        problems += reader.resource(str(logical_id), resource)
    sources, source_problems = reader.sources_resolved()
    problems += source_problems
    if lint:
        # What poller already reports at a line (an unresolvable Ref, …) is said once, in its words.
        reported = {p.line for p in problems if p.severity == "error"}
        problems += [p for p in lint_problems(text, path, region) if p.line not in reported]
    problems.sort(key=lambda p: p.line or 0)
    return ReadTemplate(
        path,
        tuple(sources),
        tuple(problems),
        tuple(reader.functions),
        tuple(reader.mappings),
        built.scope,
        reader.function_names,
        region,
        account_id,
        reader.others,
    )


@dataclass
class _Reader:
    path: Path
    lines: LineMap
    scope: Scope
    stack_name: str
    region: str
    account_id: str
    sam: SamReader
    functions: list[TemplateFunction] = field(default_factory=list)
    mappings: list[TemplateMapping] = field(default_factory=list)
    function_names: dict[str, str] = field(default_factory=dict)
    others: dict[str, Mapping[str, str]] = field(default_factory=dict)
    _sources: list[tuple[str, SourceType, str, dict[str, Any]]] = field(default_factory=list)

    def problem(self, message: str, path: KeyPath, logical_id: str, warning: bool = False) -> Problem:
        line = self.lines.line_of(path)
        return Problem(message, self.path, line, field=logical_id, severity="warning" if warning else "error")

    def resource(self, logical_id: str, resource: Any) -> list[Problem]:
        where: KeyPath = ("Resources", logical_id)
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
            return [self.problem("A resource is a mapping with a Type.", where, logical_id)]
        kind = resource["Type"]
        condition = resource.get("Condition")
        if condition is not None:
            try:
                if self.scope.condition is None or not self.scope.condition(
                    str(condition), (*where, "Condition")
                ):
                    return []  # CloudFormation would not create it
            except Unresolved as exc:
                return [self.problem(exc.message, (*where, "Condition"), logical_id)]
        properties = resource.get("Properties") or {}
        if kind in SOURCE_TYPES or kind in NAME_PROPERTY:
            return self._named(logical_id, kind, properties)
        if kind == SAM_FUNCTION:
            function, mappings, problems = self.sam.function(logical_id, resource)
            if function is not None:
                problems += self._function(function)
                if function.logical_id in self.function_names:
                    self.mappings += mappings
            return problems
        if kind == LAMBDA_FUNCTION:
            return self._plain_function(logical_id, resource, properties)
        if kind == EVENT_SOURCE_MAPPING:
            if not isinstance(properties, dict):
                return [self.problem("Properties must be a mapping.", (*where, "Properties"), logical_id)]
            lines = lines_under(self.lines, (*where, "Properties"))
            lines[()] = self.lines.line_of(where) or 0
            cond = condition if isinstance(condition, str) else None
            self.mappings.append(TemplateMapping(logical_id, dict(properties), lines, cond))
            return []
        if kind in QUIET_TYPES:
            return []
        message = f"Resource type {kind} is not run by poller; it is left out."
        return [self.problem(message, (*where, "Type"), logical_id, warning=True)]

    def _named(self, logical_id: str, kind: str, properties: Any) -> list[Problem]:
        where: KeyPath = ("Resources", logical_id, "Properties")
        if not isinstance(properties, dict):
            return [self.problem("Properties must be a mapping.", where, logical_id)]
        key = NAME_PROPERTY[kind]
        try:
            name = resolve(properties.get(key), self.scope, (*where, key))
        except Unresolved as exc:
            return [self.problem(exc.message, exc.path, logical_id)]
        if not isinstance(name, str) or not name:
            name = generated_name(self.stack_name, logical_id, kind, properties)
        if kind in SOURCE_TYPES:
            self._sources.append((logical_id, kind, name, properties))
        else:
            self.others[logical_id] = other_attributes(kind, name, self.region, self.account_id)
            message = f"{kind} '{name}' is not created by poller; destinations that name it need it to exist."
            return [self.problem(message, ("Resources", logical_id, "Type"), logical_id, warning=True)]
        return []

    def _function(self, function: TemplateFunction) -> list[Problem]:
        where: KeyPath = ("Resources", function.logical_id, "Properties", "FunctionName")
        try:
            name = resolve(function.properties.get("FunctionName"), self.scope, where)
        except Unresolved as exc:
            message = exc.left_out("The function and its events are left out.")
            return [self.problem(message, exc.path, function.logical_id)]
        self.function_names[function.logical_id] = (
            name if isinstance(name, str) and name else function.logical_id
        )
        self.functions.append(function)
        return []

    def _plain_function(self, logical_id: str, resource: dict[str, Any], properties: Any) -> list[Problem]:
        where: KeyPath = ("Resources", logical_id, "Properties")
        if not isinstance(properties, dict):
            return [self.problem("Properties must be a mapping.", where, logical_id)]
        if properties.get("PackageType") == "Image":
            message = (
                "Image-based functions (PackageType: Image) are not supported; this function is left out."
            )
            return [self.problem(message, (*where, "PackageType"), logical_id, warning=True)]
        converted = {key: value for key, value in properties.items() if key != "Code"}
        lines = lines_under(self.lines, where)
        lines[()] = self.lines.line_of(("Resources", logical_id)) or 0
        code = properties.get("Code")
        if isinstance(code, dict) and "ZipFile" in code:
            converted["InlineCode"] = code["ZipFile"]
            lines[("InlineCode",)] = lines.get(("Code", "ZipFile"), lines[()])
        elif code is not None:
            # `sam build` writes the built directory as a plain string; an S3 location is refused
            # by the config layer with its own message.
            converted["CodeUri"] = code
            lines[("CodeUri",)] = lines.get(("Code",), lines[()])
        condition = resource.get("Condition") if isinstance(resource.get("Condition"), str) else None
        return self._function(TemplateFunction(logical_id, converted, lines, condition))

    def sources_resolved(self) -> tuple[list[SourceResource], list[Problem]]:
        """The sources with their properties resolved; a queue's RedrivePolicy may name another queue."""
        named = [
            SourceResource(lid, kind, name, props, self.lines.line_of(("Resources", lid)))
            for lid, kind, name, props in self._sources
        ]
        attributes = {s.logical_id: source_attributes(s, self.region, self.account_id) for s in named}
        scope = replace(self.scope, attributes={**self.others, **attributes})
        sources: list[SourceResource] = []
        problems: list[Problem] = []
        for source in named:
            where: KeyPath = ("Resources", source.logical_id, "Properties")
            try:
                properties = resolve(dict(source.properties), scope, where)
            except Unresolved as exc:
                message = exc.left_out("This resource is left out.")
                problems.append(self.problem(message, exc.path, source.logical_id))
                continue
            sources.append(replace(source, properties=properties))
        return sources, problems
