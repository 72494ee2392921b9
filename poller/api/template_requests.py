"""What creating a template's queue, stream or table asks of AWS, worked out from its properties (pure).

CloudFormation's property names for `AWS::SQS::Queue`, `AWS::Kinesis::Stream` and
`AWS::DynamoDB::Table` are mostly the API's, but their values are not always the API's types: queue
attributes are strings on the wire (a `RedrivePolicy` object becomes JSON text), numbers may be
written as strings, and a table's `StreamSpecification` has no `StreamEnabled`. These functions
make the API requests; `template_resources` sends them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from poller.api.template_sources import SourceResource

QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
"""The queue properties that are SQS attributes of the same name. `KmsMasterKeyId` and
`KmsDataKeyReusePeriodSeconds` are left out on purpose: the key a template names lives in the
account it deploys to, not at a local emulation, where asking for it would fail every send."""

_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")
"""A secondary index's CloudFormation keys the API knows (`ContributorInsightsSpecification` is not one)."""


def queue_name(source: SourceResource) -> str:
    """A FIFO queue's name ends in `.fifo`; CloudFormation adds it to a name it makes up itself."""
    name = source.physical_name
    fifo = _truthy(source.properties.get("FifoQueue"))
    if fifo and "QueueName" not in source.properties and not name.endswith(".fifo"):
        return f"{name}.fifo"
    return name


def redrive_target(source: SourceResource, queues: Sequence[SourceResource]) -> str | None:
    """The logical id of the template queue this queue's `RedrivePolicy` sends to, if it is one.

    The reader resolved `!GetAtt Dlq.Arn` to the ARN it expects, which may not be the one the
    emulation gives (another account id), so the target is matched by queue name; a policy still
    holding the intrinsic is understood too.
    """
    policy = _as_object(source.properties.get("RedrivePolicy"))
    target = policy.get("deadLetterTargetArn") if policy is not None else None
    if isinstance(target, Mapping):
        logical = _getatt_id(target)
        return logical if any(q.logical_id == logical for q in queues) else None
    if not isinstance(target, str) or not target.startswith("arn:"):
        return None
    name = target.rsplit(":", 1)[-1]
    return next((q.logical_id for q in queues if queue_name(q) == name and q is not source), None)


def creation_order(sources: Iterable[SourceResource]) -> list[SourceResource]:
    """The template's order, but a dead-letter queue before every queue whose redrive policy names it."""
    listed = list(sources)
    queues = [s for s in listed if s.type == "AWS::SQS::Queue"]
    by_id = {s.logical_id: s for s in listed}
    placed: dict[str, SourceResource] = {}
    visiting: set[str] = set()

    def place(source: SourceResource) -> None:
        if source.logical_id in placed or source.logical_id in visiting:
            return  # a redrive cycle cannot deploy anywhere; AWS's own error will say so
        visiting.add(source.logical_id)
        target = redrive_target(source, queues) if source.type == "AWS::SQS::Queue" else None
        if target is not None:
            place(by_id[target])
        placed[source.logical_id] = source

    for source in listed:
        place(source)
    return list(placed.values())


def queue_attributes(source: SourceResource, dlq_arn: str | None = None) -> dict[str, str]:
    """`CreateQueue`'s `Attributes`; `dlq_arn` is the real ARN of the template queue its redrive
    policy names (see `redrive_target`), made before it."""
    attributes: dict[str, str] = {}
    for key in QUEUE_ATTRIBUTES:
        if key in source.properties:
            attributes[key] = _attribute(source.properties[key])
    policy = _as_object(source.properties.get("RedrivePolicy"))
    if policy is not None and dlq_arn is not None:
        attributes["RedrivePolicy"] = json.dumps({**policy, "deadLetterTargetArn": dlq_arn})
    return attributes


def queue_tags(source: SourceResource) -> dict[str, str]:
    return _tags(source.properties.get("Tags"))


def stream_request(source: SourceResource) -> dict[str, Any]:
    """`CreateStream`'s arguments: on-demand streams have no shard count; provisioned ones 1 unless told."""
    request: dict[str, Any] = {"StreamName": source.physical_name}
    mode = source.properties.get("StreamModeDetails")
    on_demand = isinstance(mode, Mapping) and mode.get("StreamMode") == "ON_DEMAND"
    if on_demand:
        request["StreamModeDetails"] = {"StreamMode": "ON_DEMAND"}
    else:
        request["ShardCount"] = _int(source.properties.get("ShardCount", 1))
    return request


def table_request(source: SourceResource) -> dict[str, Any]:
    """`CreateTable`'s arguments from the table's CloudFormation properties."""
    props = source.properties
    request: dict[str, Any] = {
        "TableName": source.physical_name,
        # Malformed entries are passed on as they are, for botocore's own parameter check to refuse
        # as a problem, never turned into a crash here.
        "KeySchema": _entries(props.get("KeySchema")),
        "AttributeDefinitions": _entries(props.get("AttributeDefinitions")),
        # CloudFormation's default, as the API's: a table without BillingMode is provisioned.
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        request["ProvisionedThroughput"] = _throughput(props["ProvisionedThroughput"])
    view = stream_view_type(source)
    if view is not None:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = props.get(key)
        if isinstance(indexes, list) and indexes:
            request[key] = [_index(index) for index in indexes if isinstance(index, Mapping)]
    tags = _tags(props.get("Tags"))
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return request


def stream_view_type(source: SourceResource) -> str | None:
    spec = source.properties.get("StreamSpecification")
    view = spec.get("StreamViewType") if isinstance(spec, Mapping) else None
    return str(view) if view else None


def _index(index: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: index[key] for key in _INDEX_KEYS if key in index}
    if "ProvisionedThroughput" in out:
        out["ProvisionedThroughput"] = _throughput(out["ProvisionedThroughput"])
    return out


def _throughput(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {key: _int(value[key]) for key in ("ReadCapacityUnits", "WriteCapacityUnits") if key in value}


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value)
    return str(value)


def _as_object(value: Any) -> Mapping[str, Any] | None:
    """A policy written as an object, or as the JSON text the API takes."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, Mapping) else None


def _getatt_id(value: Any) -> str | None:
    at = value.get("Fn::GetAtt") if isinstance(value, Mapping) else None
    if isinstance(at, str):
        return at.split(".")[0]
    if isinstance(at, list) and at and isinstance(at[0], str):
        return at[0]
    return None


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, list):
        return {}
    return {
        str(tag["Key"]): str(tag.get("Value", ""))
        for tag in value
        if isinstance(tag, Mapping) and "Key" in tag
    }


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _int(value: Any) -> int:
    """A number CloudFormation allows as a string ("5"); what is not one is left for AWS to refuse."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return value  # type: ignore[no-any-return]


def _entries(value: object) -> list[Any]:
    """A list property's items, each a dict when it is a mapping; anything else as the template says."""
    if not isinstance(value, list):
        return [] if value is None else [value]
    return [dict(item) if isinstance(item, Mapping) else item for item in value]
