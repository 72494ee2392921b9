"""Lambda API requests to mapping documents, and mappings to `EventSourceMappingConfiguration`s.

A request becomes the document a YAML file would hold (DESIGN §1.4, §1.9): the API's own
(PascalCase) keys plus `Name`, so the config resolver is the one validator. Replies echo every
setting as AWS does, defaults filled per source (spec §1.2, §1.3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from poller.api.esm_errors import invalid
from poller.config.mapping import NAME_PATTERN
from poller.config.resolved import KafkaMapping, ResolvedMapping, SqsMapping, StreamMapping

UPDATE_MEMBERS = frozenset(
    {
        "FunctionName",
        "Enabled",
        "BatchSize",
        "FilterCriteria",
        "KMSKeyArn",
        "MetricsConfig",
        "LoggingConfig",
        "ScalingConfig",
        "MaximumBatchingWindowInSeconds",
        "ParallelizationFactor",
        "DestinationConfig",
        "MaximumRecordAgeInSeconds",
        "BisectBatchOnFunctionError",
        "MaximumRetryAttempts",
        "TumblingWindowInSeconds",
        "SourceAccessConfigurations",
        "FunctionResponseTypes",
        "AmazonManagedKafkaEventSourceConfig",
        "SelfManagedKafkaEventSourceConfig",
        "DocumentDBEventSourceConfig",
        "ProvisionedPollerConfig",
    }
)
"""`UpdateEventSourceMappingRequest`'s body members (botocore's lambda model, 2015-03-31)."""

CREATE_ONLY = frozenset(
    {
        "EventSourceArn",
        "StartingPosition",
        "StartingPositionTimestamp",
        "Topics",
        "Queues",
        "SelfManagedEventSource",
    }
)
"""spec §1.8: set when the mapping is created, never changed."""

CREATE_MEMBERS = UPDATE_MEMBERS | CREATE_ONLY | {"Tags"}
"""`CreateEventSourceMappingRequest`'s members."""

_ECHOED = (CREATE_MEMBERS - {"FunctionName", "Enabled", "Tags"}) | {"FilterCriteriaError"}
"""Request members an `EventSourceMappingConfiguration` echoes as they were given."""

_NAME = re.compile(NAME_PATTERN)
_GROUP_CONFIGS = ("SelfManagedKafkaEventSourceConfig", "AmazonManagedKafkaEventSourceConfig")


def _unknown(body: Mapping[str, Any], allowed: frozenset[str], operation: str) -> None:
    for key in body:
        if key not in allowed:
            raise invalid(
                f"Unknown parameter in {operation}: {key!r}, must be one of: {', '.join(sorted(allowed))}"
            )


def _without_removals(document: dict[str, Any]) -> dict[str, Any]:
    """spec §1.8: `FilterCriteria={}`, `ScalingConfig={}`, `ProvisionedPollerConfig={}`, `KMSKeyArn=""`
    and `DestinationConfig={"OnFailure": {"Destination": ""}}` remove a setting."""
    out = dict(document)
    for key in ("ScalingConfig", "ProvisionedPollerConfig", "MetricsConfig", "LoggingConfig"):
        if out.get(key) == {}:
            out.pop(key)
    criteria = out.get("FilterCriteria")
    if isinstance(criteria, dict) and criteria.get("Filters") in (None, []):
        out.pop("FilterCriteria")
    if out.get("KMSKeyArn") == "":
        out.pop("KMSKeyArn")
    destination = out.get("DestinationConfig")
    if isinstance(destination, dict) and destination.get("OnSuccess") is None:
        on_failure = destination.get("OnFailure")
        # Only the removal idiom removes; a value of the wrong type stays for the resolver to refuse.
        emptied = isinstance(on_failure, dict) and on_failure.get("Destination") in (None, "")
        if on_failure is None or emptied:
            out.pop("DestinationConfig")
    return out


def create_document(body: Mapping[str, Any], uuid: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The mapping document and tags of a CreateEventSourceMapping request.

    The mapping's `Name` (metrics, logs, /status) is its `Name` tag if given and a valid poller Name
    (DESIGN §1.4), else its UUID: AWS allows tag values such as `my map` that a Name cannot be, and
    the tag is kept as given either way.
    """
    _unknown(body, CREATE_MEMBERS, "CreateEventSourceMapping")
    tags = body.get("Tags")
    if tags is None:
        tags = {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise invalid("Tags must be a map of strings to strings.")
    document = {key: value for key, value in body.items() if key != "Tags"}
    if "Topics" in document:
        # spec §1.2: a Kafka mapping's consumer group defaults to its UUID, whatever its Name.
        key = _GROUP_CONFIGS[1] if "EventSourceArn" in document else _GROUP_CONFIGS[0]
        given = document.get(key)
        if given is None or isinstance(given, dict):  # anything else is the resolver's to refuse
            group = given or {}
            document[key] = {**group, "ConsumerGroupId": group.get("ConsumerGroupId") or uuid}
    name = tags.get("Name")
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        name = uuid
    return {"Name": name, **_without_removals(document)}, dict(tags)


def updated_document(current: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The document after an UpdateEventSourceMapping: given members replace, the rest stay.

    Create-only settings are refused (spec §1.8): botocore's update shape has no such members, and
    a consumer group or a `VIRTUAL_HOST` cannot move.
    """
    for key in body:
        if key in CREATE_ONLY or key == "Tags":
            raise invalid(f"{key} cannot be updated; it is set when the event source mapping is created.")
    _unknown(body, UPDATE_MEMBERS, "UpdateEventSourceMapping")
    document = {**current, **body}
    for key in _GROUP_CONFIGS:
        if key not in body:
            continue
        before = current.get(key) or {}
        if not isinstance(body[key], dict):
            continue  # a value of the wrong type stays for the resolver to refuse, never dropped
        given = body[key]
        old_group = before.get("ConsumerGroupId")
        new_group = given.get("ConsumerGroupId")
        if new_group is not None and new_group != (old_group or current.get("Name")):
            raise invalid(
                "ConsumerGroupId cannot be updated; it is set when the event source mapping is created."
            )
        document[key] = {**before, **given}
    if "SourceAccessConfigurations" in body and _virtual_hosts(current) != _virtual_hosts(document):
        raise invalid("VIRTUAL_HOST cannot be updated; it is set when the event source mapping is created.")
    return _without_removals(document)


def _virtual_hosts(document: Mapping[str, Any]) -> list[object]:
    items = document.get("SourceAccessConfigurations")
    if not isinstance(items, list):
        return []  # not a list: the resolver refuses it with the model's message
    return [
        item.get("URI") for item in items if isinstance(item, dict) and item.get("Type") == "VIRTUAL_HOST"
    ]


def configuration(
    *,
    uuid: str,
    arn: str,
    function_arn: str,
    mapping: ResolvedMapping | None,
    document: Mapping[str, Any],
    state: str,
    reason: str,
    last_processing_result: str | None,
    last_modified: float,
) -> dict[str, Any]:
    """The `EventSourceMappingConfiguration` AWS would return for this mapping (spec §1.2)."""
    reply: dict[str, Any] = {key: value for key, value in document.items() if key in _ECHOED}
    if mapping is not None:
        reply |= _settings(mapping, document)
    reply |= {
        "UUID": uuid,
        "EventSourceMappingArn": arn,
        "FunctionArn": function_arn,
        "State": state,
        "StateTransitionReason": reason,
        "LastModified": last_modified,
    }
    if last_processing_result is not None:
        reply["LastProcessingResult"] = last_processing_result
    return reply


def _settings(mapping: ResolvedMapping, document: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting with its default as AWS fills it, per source (spec §1.2, §1.3).

    A mapping poller cannot run (MQ, DocumentDB, …) echoes its document as given.
    """
    if not isinstance(mapping, SqsMapping | StreamMapping | KafkaMapping):
        return {}
    out: dict[str, Any] = {
        "BatchSize": mapping.batch_size,
        "FunctionResponseTypes": ["ReportBatchItemFailures"] if mapping.report_batch_item_failures else [],
    }
    if mapping.filter_patterns:
        out["FilterCriteria"] = {"Filters": [{"Pattern": pattern} for pattern in mapping.filter_patterns]}
    if isinstance(mapping, SqsMapping):
        out |= {
            "EventSourceArn": mapping.event_source_arn,
            "MaximumBatchingWindowInSeconds": mapping.maximum_batching_window_seconds,
        }
        if mapping.maximum_concurrency is not None:
            out["ScalingConfig"] = {"MaximumConcurrency": mapping.maximum_concurrency}
        return out
    on_failure = {"Destination": mapping.on_failure_destination} if mapping.on_failure_destination else {}
    out |= {"StartingPosition": mapping.starting_position}
    if mapping.starting_position_timestamp is not None:
        out["StartingPositionTimestamp"] = mapping.starting_position_timestamp
    if isinstance(mapping, StreamMapping):
        return out | {
            "EventSourceArn": mapping.event_source_arn,
            "MaximumBatchingWindowInSeconds": mapping.maximum_batching_window_seconds,
            "ParallelizationFactor": mapping.parallelization_factor,
            "BisectBatchOnFunctionError": mapping.bisect_batch_on_function_error,
            "MaximumRetryAttempts": mapping.maximum_retry_attempts,
            "MaximumRecordAgeInSeconds": mapping.maximum_record_age_seconds,
            "DestinationConfig": {"OnFailure": on_failure},
            "TumblingWindowInSeconds": document.get("TumblingWindowInSeconds", 0),
        }
    return out | _kafka_settings(mapping, document, on_failure)


def _kafka_settings(
    mapping: KafkaMapping, document: Mapping[str, Any], on_failure: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"Topics": [mapping.topic]}
    group_key = "AmazonManagedKafkaEventSourceConfig" if "EventSourceArn" in document else _GROUP_CONFIGS[0]
    out[group_key] = {**(document.get(group_key) or {}), "ConsumerGroupId": mapping.consumer_group_id}
    if "EventSourceArn" not in document:
        out["SelfManagedEventSource"] = {
            "Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": list(mapping.bootstrap_servers)}
        }
    if mapping.source_access_configurations:
        out["SourceAccessConfigurations"] = [
            {"Type": kind, "URI": uri} for kind, uri in mapping.source_access_configurations
        ]
    if on_failure:
        out["DestinationConfig"] = {"OnFailure": on_failure}
    return out
