"""CloudFormation's intrinsic functions, resolved the way CloudFormation resolves them at deploy time.

A template is resolved once its parameters, conditions and the values of its own resources are
known (`Scope`). What cannot be known here (`Fn::ImportValue` of another stack, `Fn::GetAtt` of a
resource poller does not create, …) raises `Unresolved` with the path of the intrinsic, so the one
resource that uses it is reported by line and left out while the rest of the template runs
(DESIGN §1.10).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from poller.config.yaml_lines import KeyPath


class Unresolved(Exception):
    """An intrinsic this template cannot be resolved to a value here; `path` is where it is written."""

    def __init__(self, message: str, path: KeyPath) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def left_out(self, consequence: str) -> str:
        """The message, then what is left out because of it."""
        return f"{self.message.rstrip('.')}. {consequence}"


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()
"""`Ref: AWS::NoValue`: the property (or list item) is removed, as if never written."""

INTRINSIC_KEYS = frozenset(
    {
        "Ref",
        "Fn::GetAtt",
        "Fn::Sub",
        "Fn::Join",
        "Fn::Select",
        "Fn::Split",
        "Fn::If",
        "Fn::FindInMap",
        "Fn::Equals",
        "Fn::And",
        "Fn::Or",
        "Fn::Not",
        "Fn::Base64",
        "Condition",
        "Fn::ImportValue",
        "Fn::GetAZs",
        "Fn::Cidr",
        "Fn::Transform",
        "Fn::ToJsonString",
        "Fn::Length",
    }
)
_UNSUPPORTED = {
    "Fn::ImportValue": "Fn::ImportValue cannot be resolved: poller reads one template, not other stacks.",
    "Fn::GetAZs": "Fn::GetAZs cannot be resolved: poller does not look up availability zones.",
    "Fn::Cidr": "Fn::Cidr is not supported by poller.",
    "Fn::Transform": "Fn::Transform (macros) cannot be run by poller.",
    "Fn::ToJsonString": "Fn::ToJsonString is not supported by poller.",
    "Fn::Length": "Fn::Length is not supported by poller.",
}
KNOWN_TYPES = frozenset(
    {
        "AWS::SQS::Queue",
        "AWS::Kinesis::Stream",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::S3::Bucket",
        "AWS::Lambda::Function",
        "AWS::Serverless::Function",
    }
)
"""The resource types whose `Ref` and attributes poller knows, when the resource is there."""
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def is_intrinsic(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in INTRINSIC_KEYS


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def pseudo_parameters(region: str, account_id: str, stack_name: str) -> dict[str, Any]:
    """The values CloudFormation gives its pseudo parameters, for this region, account and stack."""
    partition = partition_of(region)
    return {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/poller",
        "AWS::Partition": partition,
        "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
        "AWS::NotificationARNs": [],
    }


@dataclass(frozen=True)
class Scope:
    """What intrinsics resolve against."""

    parameters: Mapping[str, Any]
    """Parameters with a value (strings, numbers for `Number`, lists for list types)."""
    pseudo: Mapping[str, Any]
    mappings: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """By logical id: the `Ref` value (key "Ref") and the `Fn::GetAtt` attributes."""
    resource_types: Mapping[str, str] = field(default_factory=dict)
    """Every resource of the template, to tell "not known here" from "not in the template"."""
    condition: Callable[[str, KeyPath], bool] | None = None
    """The value of a named condition (`Conditions`), evaluated on demand."""
    unset_parameters: Mapping[str, str] = field(default_factory=dict)
    """Parameters without a value, with why (reported once at the parameter)."""


def resolve(value: Any, scope: Scope, path: KeyPath = ()) -> Any:
    """`value` with every intrinsic replaced by its value; `NO_VALUE` items and keys dropped."""
    if isinstance(value, dict):
        if is_intrinsic(value):
            key, argument = next(iter(value.items()))
            return _intrinsic(key, argument, scope, (*path, key))
        resolved = {key: resolve(item, scope, (*path, key)) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}
    if isinstance(value, list):
        items = [resolve(item, scope, (*path, position)) for position, item in enumerate(value)]
        return [item for item in items if item is not NO_VALUE]
    return value


def condition_value(value: Any, scope: Scope, path: KeyPath) -> bool:
    """A condition expression (`Fn::Equals`, `Fn::And`, `{Condition: name}`, …) as a boolean."""
    result = resolve(value, scope, path)
    if isinstance(result, bool):
        return result
    if isinstance(result, str) and result.lower() in ("true", "false"):
        return result.lower() == "true"
    raise Unresolved("A condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not or a Condition.", path)


def _intrinsic(key: str, argument: Any, scope: Scope, path: KeyPath) -> Any:
    if key in _UNSUPPORTED:
        raise Unresolved(_UNSUPPORTED[key], path)
    handler = _HANDLERS[key]
    return handler(argument, scope, path)


def _ref(argument: Any, scope: Scope, path: KeyPath) -> Any:
    name = resolve(argument, scope, path)
    if not isinstance(name, str):
        raise Unresolved("Ref takes the name of a parameter or resource.", path)
    if name == "AWS::NoValue":
        return NO_VALUE
    if name in scope.parameters:
        return scope.parameters[name]
    if name in scope.unset_parameters:
        raise Unresolved(f"Parameter '{name}' has no value: {scope.unset_parameters[name]}", path)
    if name in scope.pseudo:
        return scope.pseudo[name]
    return _attribute(name, "Ref", scope, path)


def _get_att(argument: Any, scope: Scope, path: KeyPath) -> Any:
    if isinstance(argument, str):
        argument = argument.split(".", 1)
    if not isinstance(argument, list) or len(argument) != 2:
        raise Unresolved("Fn::GetAtt takes [LogicalId, Attribute] (or LogicalId.Attribute).", path)
    logical_id, attribute = argument[0], resolve(argument[1], scope, (*path, 1))
    if not isinstance(logical_id, str) or not isinstance(attribute, str):
        raise Unresolved("Fn::GetAtt takes [LogicalId, Attribute] (or LogicalId.Attribute).", path)
    return _attribute(logical_id, attribute, scope, path)


def _attribute(logical_id: str, attribute: str, scope: Scope, path: KeyPath) -> Any:
    known = scope.attributes.get(logical_id)
    if known is not None and attribute in known:
        return known[attribute]
    what = "Ref" if attribute == "Ref" else f"Fn::GetAtt {logical_id}.{attribute}"
    if logical_id not in scope.resource_types:
        if attribute == "Ref":
            raise Unresolved(f"Unresolved resource dependencies [{logical_id}] in the Resources block.", path)
        raise Unresolved(
            f"Template error: instance of Fn::GetAtt references undefined resource {logical_id}", path
        )
    kind = scope.resource_types[logical_id]
    if known is not None:
        raise Unresolved(f"{what}: {kind} has no attribute {attribute} that poller knows.", path)
    subject = f"Ref {logical_id}" if attribute == "Ref" else what
    if kind in KNOWN_TYPES:
        reason = "the resource is not there (its Condition is false, or a problem of its own left it out)"
    else:
        reason = (
            "poller knows the values of the template's queues, streams, tables, topics, buckets and "
            "functions only"
        )
    raise Unresolved(f"{subject} ({kind}) cannot be resolved: {reason}.", path)


def _sub(argument: Any, scope: Scope, path: KeyPath) -> str:
    variables: Mapping[str, Any] = {}
    text = argument
    if isinstance(argument, list):
        if len(argument) != 2 or not isinstance(argument[1], dict):
            raise Unresolved("Fn::Sub takes a string, or [string, {variables}].", path)
        text = argument[0]
        variables = {key: resolve(item, scope, (*path, 1, key)) for key, item in argument[1].items()}
    if not isinstance(text, str):
        raise Unresolved("Fn::Sub takes a string, or [string, {variables}].", path)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):  # `${!Literal}` is written out as `${Literal}`
            return "${" + name[1:] + "}"
        if name in variables:
            return _text(variables[name], path)
        if "." in name and name not in scope.parameters:
            logical_id, attribute = name.split(".", 1)
            return _text(_attribute(logical_id, attribute, scope, path), path)
        return _text(_ref(name, scope, path), path)

    return _SUB_VARIABLE.sub(replace, text)


def _text(value: Any, path: KeyPath) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)  # a CommaDelimitedList parameter, as CloudFormation writes it
    raise Unresolved(f"A string was expected here, found {value!r}.", path)


def _join(argument: Any, scope: Scope, path: KeyPath) -> str:
    if not isinstance(argument, list) or len(argument) != 2:
        raise Unresolved("Fn::Join takes [delimiter, [values]].", path)
    delimiter = resolve(argument[0], scope, (*path, 0))
    items = resolve(argument[1], scope, (*path, 1))
    if not isinstance(delimiter, str) or not isinstance(items, list):
        raise Unresolved("Fn::Join takes [delimiter, [values]].", path)
    return delimiter.join(_text(item, path) for item in items)


def _select(argument: Any, scope: Scope, path: KeyPath) -> Any:
    if not isinstance(argument, list) or len(argument) != 2:
        raise Unresolved("Fn::Select takes [index, [values]].", path)
    index, items = resolve(argument[0], scope, (*path, 0)), resolve(argument[1], scope, (*path, 1))
    try:
        position = int(index)
    except (TypeError, ValueError, OverflowError):
        raise Unresolved(f"Fn::Select index {index!r} is not a number.", path) from None
    if not isinstance(items, list) or not 0 <= position < len(items):
        raise Unresolved(f"Fn::Select index {position} is out of range.", path)
    return items[position]


def _split(argument: Any, scope: Scope, path: KeyPath) -> list[str]:
    if not isinstance(argument, list) or len(argument) != 2:
        raise Unresolved("Fn::Split takes [delimiter, string].", path)
    delimiter, text = resolve(argument[0], scope, (*path, 0)), resolve(argument[1], scope, (*path, 1))
    if not isinstance(delimiter, str) or not delimiter or not isinstance(text, str):
        raise Unresolved("Fn::Split takes [delimiter, string].", path)
    return text.split(delimiter)


def _if(argument: Any, scope: Scope, path: KeyPath) -> Any:
    if not isinstance(argument, list) or len(argument) != 3 or not isinstance(argument[0], str):
        raise Unresolved("Fn::If takes [condition name, value if true, value if false].", path)
    chosen = 1 if _named_condition(argument[0], scope, (*path, 0)) else 2
    return resolve(argument[chosen], scope, (*path, chosen))


def _named_condition(name: Any, scope: Scope, path: KeyPath) -> bool:
    if scope.condition is None or not isinstance(name, str):
        raise Unresolved(f"Condition {name!r} is not defined in Conditions.", path)
    return scope.condition(name, path)


def _find_in_map(argument: Any, scope: Scope, path: KeyPath) -> Any:
    if not isinstance(argument, list) or len(argument) not in (3, 4):
        raise Unresolved("Fn::FindInMap takes [MapName, TopLevelKey, SecondLevelKey].", path)
    keys = [resolve(item, scope, (*path, n)) for n, item in enumerate(argument[:3])]
    found: Any = scope.mappings
    for key in keys:
        if not isinstance(found, dict) or str(key) not in found:
            if len(argument) == 4 and isinstance(argument[3], dict) and "DefaultValue" in argument[3]:
                return resolve(argument[3]["DefaultValue"], scope, (*path, 3, "DefaultValue"))
            raise Unresolved(
                f"Fn::FindInMap: key {key!r} not found in Mappings ({'.'.join(map(str, keys))}).", path
            )
        found = found[str(key)]
    return found


def _equals(argument: Any, scope: Scope, path: KeyPath) -> bool:
    if not isinstance(argument, list) or len(argument) != 2:
        raise Unresolved("Fn::Equals takes [value, value].", path)
    left, right = (resolve(item, scope, (*path, n)) for n, item in enumerate(argument))
    return bool(_comparable(left) == _comparable(right))


def _comparable(value: Any) -> Any:
    # CloudFormation compares the string forms: `!Equals [!Ref Count, 1]` holds for "1".
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return _text(value, ()) if isinstance(value, bool | int | float) else value


def _and(argument: Any, scope: Scope, path: KeyPath) -> bool:
    return all(_conditions(argument, scope, path, "Fn::And"))


def _or(argument: Any, scope: Scope, path: KeyPath) -> bool:
    return any(_conditions(argument, scope, path, "Fn::Or"))


def _not(argument: Any, scope: Scope, path: KeyPath) -> bool:
    values = _conditions(argument, scope, path, "Fn::Not")
    if len(values) != 1:
        raise Unresolved("Fn::Not takes a list of one condition.", path)
    return not values[0]


def _conditions(argument: Any, scope: Scope, path: KeyPath, name: str) -> list[bool]:
    if not isinstance(argument, list):
        raise Unresolved(f"{name} takes a list of conditions.", path)
    return [condition_value(item, scope, (*path, n)) for n, item in enumerate(argument)]


def _condition(argument: Any, scope: Scope, path: KeyPath) -> bool:
    return _named_condition(argument, scope, path)


def _base64(argument: Any, scope: Scope, path: KeyPath) -> str:
    return base64.b64encode(_text(resolve(argument, scope, path), path).encode()).decode("ascii")


_HANDLERS: dict[str, Callable[[Any, Scope, KeyPath], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::FindInMap": _find_in_map,
    "Fn::Equals": _equals,
    "Fn::And": _and,
    "Fn::Or": _or,
    "Fn::Not": _not,
    "Fn::Base64": _base64,
    "Condition": _condition,
}
