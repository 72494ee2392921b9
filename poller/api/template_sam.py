"""`AWS::Serverless::Function`: Globals, then each pull event as the event source mapping SAM makes.

Both steps are aws-sam-translator's own code, not a re-implementation (spec functions-and-templates
§4.6, §4.7): its `Globals` merges `Globals.Function` into each function (local wins, dicts merged
key by key, lists concatenated, `IgnoreGlobals`), and its `Translator` turns each event into an
`AWS::Lambda::EventSourceMapping` with SAM's validations and messages (§4.3). The translator refuses
local `CodeUri` paths and translates a whole function at once, stopping at its first bad event; so
each event is translated alone, in a copy of the function whose code is a placeholder S3 URI. The
function's own properties are read directly, after Globals, as SAM CLI does for local runs.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from poller.api.template_model import TemplateFunction, TemplateMapping, lines_under
from poller.config.problems import Problem
from poller.config.yaml_lines import KeyPath, LineMap

SAM_FUNCTION = "AWS::Serverless::Function"
PULL_TYPES = ("SQS", "Kinesis", "DynamoDB", "SelfManagedKafka", "MSK")
_SOURCE_PROPERTY = {"Queue": "EventSourceArn", "Stream": "EventSourceArn"}
_KAFKA_CONFIG = {
    "SelfManagedKafka": "SelfManagedKafkaEventSourceConfig",
    "MSK": "AmazonManagedKafkaEventSourceConfig",
}
_PLACEHOLDER_CODE = "s3://poller-placeholder/code.zip"
"""The translator needs an S3 CodeUri; the events it writes do not depend on it."""


class SamReader:
    """Globals of one template, and a translator for its functions' events (one boto3 session)."""

    def __init__(self, template: Mapping[str, Any], lines: LineMap, file: Path, region: str) -> None:
        self._file = file
        self._lines = lines
        self._region = region
        self._session: Any = None
        self.problems: list[Problem] = []
        self._globals: Any = None
        self._global_lines = lines_under(lines, ("Globals", "Function"))
        self._global_lines.pop((), None)
        if "Globals" in template:
            from samtranslator.model.exceptions import ExceptionWithMessage  # type: ignore[import-untyped]
            from samtranslator.plugins.globals.globals import Globals  # type: ignore[import-untyped]

            try:
                self._globals = Globals(dict(template))
            except ExceptionWithMessage as exc:
                self.problems.append(Problem(exc.message, file, lines.line_of(("Globals",)), field="Globals"))

    def function(
        self, logical_id: str, resource: Mapping[str, Any]
    ) -> tuple[TemplateFunction | None, list[TemplateMapping], list[Problem]]:
        """The function with Globals applied, its pull events as mappings, and what cannot run."""
        from samtranslator.model.exceptions import ExceptionWithMessage

        prefix: KeyPath = ("Resources", logical_id, "Properties")
        local = resource.get("Properties") or {}
        if not isinstance(local, dict):
            return None, [], [self._problem("Properties must be a mapping.", prefix, logical_id)]
        merged: dict[str, Any] = copy.deepcopy(local)
        if self._globals is not None:
            try:
                merged = self._globals.merge(SAM_FUNCTION, merged, logical_id, resource.get("IgnoreGlobals"))
            except ExceptionWithMessage as exc:
                attribute = ("Resources", logical_id, "IgnoreGlobals")
                return None, [], [self._problem(exc.message, attribute, logical_id)]
        lines = dict(self._global_lines)
        lines.update(lines_under(self._lines, prefix))
        lines[()] = self._lines.line_of(("Resources", logical_id)) or 0
        condition = resource.get("Condition") if isinstance(resource.get("Condition"), str) else None
        if merged.get("PackageType") == "Image":
            message = (
                "Image-based functions (PackageType: Image) are not supported; this function and its "
                "events are left out."
            )
            return None, [], [self._problem(message, (*prefix, "PackageType"), logical_id, "warning")]
        events = merged.pop("Events", None) or {}
        function = TemplateFunction(logical_id, merged, lines, condition)
        mappings: list[TemplateMapping] = []
        problems: list[Problem] = []
        if not isinstance(events, dict):
            return (
                function,
                [],
                [self._problem("Events must be a mapping of events.", (*prefix, "Events"), logical_id)],
            )
        for name, event in events.items():
            where = (*prefix, "Events", name)
            kind = event.get("Type") if isinstance(event, dict) else None
            if not isinstance(kind, str):
                message = "An event is a mapping with a Type (SQS, Kinesis, …) and Properties."
                problems.append(self._problem(message, where, f"{logical_id}.Events.{name}"))
                continue
            if kind not in PULL_TYPES:
                message = (
                    f"Event type '{kind}' is not run by poller (it runs SQS, Kinesis, DynamoDB, "
                    "SelfManagedKafka and MSK events); this event is left out."
                )
                problems.append(self._problem(message, where, f"{logical_id}.Events.{name}", "warning"))
                continue
            mapping, problem = self._translate(logical_id, str(name), event, condition)
            if problem is not None:
                problems.append(problem)
            elif mapping is not None:
                mappings.append(mapping)
        return function, mappings, problems

    def _translate(
        self, logical_id: str, name: str, event: dict[str, Any], condition: str | None
    ) -> tuple[TemplateMapping | None, Problem | None]:
        from samtranslator.model.exceptions import (
            ExceptionWithMessage,
            InvalidDocumentException,
        )
        from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
        from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

        where: KeyPath = ("Resources", logical_id, "Properties", "Events", name)
        field = f"{logical_id}.Events.{name}"
        properties = {"Runtime": "python3.12", "Handler": "index.handler", "CodeUri": _PLACEHOLDER_CODE}
        one = {"Type": SAM_FUNCTION, "Properties": {**properties, "Events": {name: copy.deepcopy(event)}}}
        logging.getLogger("samtranslator").setLevel(logging.ERROR)
        try:
            translated = Translator({}, Parser(), boto_session=self._boto_session()).translate(
                {"Resources": {logical_id: one}}, parameter_values={}
            )
        except InvalidDocumentException as exc:
            causes = [cause.message for cause in exc.causes] or [exc.message]
            return None, self._problem(" ".join(causes), where, field)
        except ExceptionWithMessage as exc:
            return None, self._problem(exc.message, where, field)
        except Exception as exc:
            return None, self._problem(f"aws-sam-translator failed on this event: {exc!r}", where, field)
        found = [
            (key, resource)
            for key, resource in translated.get("Resources", {}).items()
            if resource.get("Type") == "AWS::Lambda::EventSourceMapping"
        ]
        if len(found) != 1:
            return None, self._problem(
                "aws-sam-translator made no event source mapping of this event.", where, field
            )
        mapping_id, resource = found[0]
        mapping_properties = {k: v for k, v in resource.get("Properties", {}).items() if k != "FunctionName"}
        lines = self._event_lines(where, str(event.get("Type")))
        return TemplateMapping(mapping_id, mapping_properties, lines, condition, logical_id), None

    def _event_lines(self, where: KeyPath, kind: str) -> dict[KeyPath, int]:
        """The event's property lines, under the names the mapping has (`Queue` → `EventSourceArn`)."""
        lines: dict[KeyPath, int] = {(): self._lines.line_of(where) or 0}
        for path, line in lines_under(self._lines, (*where, "Properties")).items():
            if not path:
                continue
            head, rest = path[0], path[1:]
            if head in _SOURCE_PROPERTY:
                lines[("EventSourceArn", *rest)] = line
            elif head == "KafkaBootstrapServers":
                lines[("SelfManagedEventSource", "Endpoints", "KafkaBootstrapServers", *rest)] = line
            elif head in ("ConsumerGroupId", "SchemaRegistryConfig") and kind in _KAFKA_CONFIG:
                lines[(_KAFKA_CONFIG[kind], head, *rest)] = line
            else:
                lines[path] = line
        return lines

    def _boto_session(self) -> Any:
        # The translator reads the region from a boto3 session and refuses to run without one
        # (spec §4.7); a session with a region makes no call.
        if self._session is None:
            import boto3

            self._session = boto3.Session(region_name=self._region)
        return self._session

    def _problem(self, message: str, path: KeyPath, field: str, severity: str = "error") -> Problem:
        return Problem(
            message,
            self._file,
            self._lines.line_of(path),
            field=field,
            severity="warning" if severity == "warning" else "error",
        )
