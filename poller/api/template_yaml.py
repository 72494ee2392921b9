"""Read a CloudFormation/SAM template: YAML with CloudFormation's short-form tags, or JSON.

Source templates use the short forms (`!Ref Q`, `!GetAtt Q.Arn`, `!Sub …`); `sam build` writes the
long forms (`Ref:`, `Fn::GetAtt: [Q, Arn]`) (spec functions-and-templates §4.8). Both come out the
same: every short form becomes its long form, exactly as SAM CLI's own loader turns them
(`!GetAtt A.B.C` → `["A", "B.C"]`, `!Ref`/`!Condition` without the `Fn::` prefix). Beside the value
we keep the line of every key, as `poller.config.yaml_lines` does for mapping files, so a problem can
name the template line; the long form's extra level (`Fn::Sub`) has the line of its tag.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from poller.config.yaml_lines import LineMap, YamlDocument, YamlError, parse_yaml

SHORT_FORMS = frozenset(
    {
        "Ref",
        "Condition",
        "GetAtt",
        "Sub",
        "Join",
        "If",
        "Select",
        "Split",
        "FindInMap",
        "Equals",
        "And",
        "Or",
        "Not",
        "Base64",
        "ImportValue",
        "GetAZs",
        "Cidr",
        "Transform",
        "ToJsonString",
        "Length",
    }
)


def long_form_key(tag: str) -> str | None:
    """`!Sub` → `Fn::Sub`, `!Ref` → `Ref`; None for a tag CloudFormation does not define."""
    name = tag[1:]
    if name not in SHORT_FORMS:
        return None
    return name if name in ("Ref", "Condition") else f"Fn::{name}"


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's tags; nothing else is constructed (no Python objects)."""


def _construct_short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    key = long_form_key("!" + suffix)
    if key is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown tag !{suffix}: CloudFormation's are !Ref, !GetAtt, !Sub, …", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if key == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


_TemplateLoader.add_multi_constructor("!", _construct_short_form)


def parse_template(text: str, *, json_file: bool = False) -> YamlDocument:
    """The template's value (short forms in long form) and the line of every key.

    Raises `YamlError` (with a line when known) for anything that is not one well-formed document.
    JSON is read by the YAML parser (JSON is YAML) so its lines are kept too; a JSON file the YAML
    parser refuses (a tab where YAML forbids one) is read as plain JSON, without lines.
    """
    try:
        return _parse(text)
    except YamlError:
        if not json_file:
            raise
    try:
        return YamlDocument(json.loads(text), LineMap({}))
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise YamlError(f"Invalid JSON: {exc}", line) from exc


def _parse(text: str) -> YamlDocument:
    return parse_yaml(text, loader_class=_TemplateLoader, tag_key=long_form_key)

