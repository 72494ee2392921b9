"""The Lambda API's operations without HTTP (DESIGN §1.9): AWS's refusals for unknown UUIDs, busy
mappings, model-breaking tags and values of the wrong type (spec §1.1, §1.6, §1.8), the Kafka
conflict rule (spec §1.6), and sources poller cannot read shown Disabled with the reason (spec §1.5)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from poller.api.esm_errors import ApiError
from poller.api.esm_routes import ESM_PATH, esm_routes
from poller.api.esm_service import EsmRuntime, EsmService
from poller.config import ResolvedMapping, Settings
from poller.observability.metrics import Metrics
from poller.observability.status import MappingStatus, ServiceStatus
from tests.unit.test_api_mappings_sync import MemoryStore, resolve

QUEUE = "arn:aws:sqs:us-east-1:123456789012:orders"
ESM_ARN = "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:"
UNKNOWN = "5d9a3e0e-1b2c-4d5e-8f90-123456789abc"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:broker"


def function_arn(mapping: ResolvedMapping) -> str:
    return f"arn:aws:lambda:us-east-1:000000000000:function:{mapping.function_name}"


def make_service() -> tuple[EsmService, ServiceStatus]:
    store = MemoryStore()
    status = ServiceStatus()

    async def open_store() -> MemoryStore:
        return store

    async def no_problem(_: ResolvedMapping) -> str | None:
        return None

    runtime = EsmRuntime(
        settings=Settings(),
        status=status,
        running={},
        api_names=set,
        open_store=open_store,
        resolve=resolve,
        function_arn=function_arn,
        source_problem=no_problem,
        changed=lambda: None,
        wall=lambda: 1.0,
    )
    return EsmService(runtime), status


def show(status: ServiceStatus, name: str) -> MappingStatus:
    """The status the runtime registers when it starts the mapping (still Creating)."""
    shown = MappingStatus(name, "sqs", QUEUE, "f", Metrics(CollectorRegistry()).for_mapping(name))
    status.mappings[name] = shown
    return shown


async def refused(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    return caught.value


async def test_update_and_delete_of_an_unknown_uuid_are_not_found() -> None:
    """spec §1.6: ResourceNotFoundException (404) with AWS's message, on update and on delete."""
    service, _ = make_service()
    for call in (service.update(UNKNOWN, {"BatchSize": 5}), service.delete(UNKNOWN), service.get(UNKNOWN)):
        error = await refused(call)
        assert (error.code, error.status, error.message) == (
            "ResourceNotFoundException",
            404,
            "The resource you requested does not exist.",
        )


async def test_update_and_delete_while_creating_or_updating_are_in_use() -> None:
    """spec §1.1: ResourceInUseException while a change is being applied (Creating, Updating); a
    mapping that cannot start (Creating with its failure as the reason) can still be changed."""
    service, status = make_service()
    uuid = (await service.create({"EventSourceArn": QUEUE, "FunctionName": "f"}))["UUID"]
    shown = show(status, uuid)
    for call in (service.update(uuid, {"BatchSize": 5}), service.delete(uuid)):
        error = await refused(call)
        assert (error.code, error.status) == ("ResourceInUseException", 400)
        assert "while it is in the Creating state" in error.message
    # A request that is wrong in itself is refused for that, whatever the state.
    invalid = await refused(service.update(uuid, {"BatchSize": 50}))
    assert invalid.message.startswith("Maximum batch window in seconds must be greater than 0")
    shown.running()
    shown.transition("Updating")
    error = await refused(service.update(uuid, {"BatchSize": 6}))
    assert "while it is in the Updating state" in error.message
    shown.failing("Error occurred while ReceiveMessage.")
    assert (await service.update(uuid, {"BatchSize": 7}))["BatchSize"] == 7
    shown.running()
    assert (await service.delete(uuid))["State"] == "Deleting"


@pytest.mark.parametrize(
    "body",
    [
        {"SourceAccessConfigurations": 5},
        {"SourceAccessConfigurations": True},
        {"DestinationConfig": {"OnFailure": 5}},
        {"FilterCriteria": {"Filters": 0}},
    ],
)
async def test_values_of_the_wrong_type_are_refused_not_crashed_or_dropped(body: dict[str, Any]) -> None:
    """A value of the wrong type gets the validator's refusal (never a 500, never silently ignored)."""
    service, _ = make_service()
    uuid = (await service.create({"EventSourceArn": QUEUE, "FunctionName": "f"}))["UUID"]
    error = await refused(service.update(uuid, body))
    assert error.code == "InvalidParameterValueException"
    assert next(iter(body)) in error.message


async def test_a_kafka_config_of_the_wrong_type_is_refused_on_create_and_update() -> None:
    service, _ = make_service()
    kafka = {
        "FunctionName": "f",
        "Topics": ["orders"],
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b:9092"]}},
        "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}],
    }
    error = await refused(service.create({**kafka, "SelfManagedKafkaEventSourceConfig": 5}))
    assert "SelfManagedKafkaEventSourceConfig" in error.message
    uuid = (await service.create(kafka))["UUID"]
    error = await refused(service.update(uuid, {"SelfManagedKafkaEventSourceConfig": 5}))
    assert "SelfManagedKafkaEventSourceConfig" in error.message


async def test_tags_are_judged_by_the_model_on_create_and_tag_resource() -> None:
    """spec §1.6: a tag key outside TagKey's pattern, or a value over 256 characters, is the model's
    ValidationException, on create as on TagResource; nothing is stored."""
    service, _ = make_service()
    error = await refused(
        service.create({"EventSourceArn": QUEUE, "FunctionName": "f", "Tags": {"bad#key": "v"}})
    )
    assert (error.code, error.message) == (
        "ValidationException",
        "1 validation error detected: Value '{bad#key=v}' at 'tags' failed to satisfy constraint: "
        r"Map keys must satisfy constraint: [Member must satisfy regular expression pattern: "
        r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)]",
    )
    assert (
        await service.list_mappings(event_source_arn=None, function_name=None, marker=None, max_items=None)
    )["EventSourceMappings"] == []
    uuid = (await service.create({"EventSourceArn": QUEUE, "FunctionName": "f", "Tags": {"team": "web"}}))[
        "UUID"
    ]
    arn = ESM_ARN + uuid
    for tags, where in (({"bad#key": "v"}, "Map keys"), ({"team": "v" * 257}, "Map value")):
        error = await refused(service.tag(arn, tags))
        assert error.code == "ValidationException"
        assert error.message.startswith("1 validation error detected: ")
        assert f"at 'tags' failed to satisfy constraint: {where} must satisfy constraint" in error.message
    assert await service.list_tags(arn) == {"Tags": {"team": "web"}}


async def test_a_name_tag_poller_cannot_use_names_the_mapping_by_its_uuid() -> None:
    """DESIGN §1.9: AWS allows `my map` as a tag value; the mapping's Name falls back to the UUID
    and the tag is kept as given."""
    service, _ = make_service()
    reply = await service.create({"EventSourceArn": QUEUE, "FunctionName": "f", "Tags": {"Name": "my map"}})
    uuid = reply["UUID"]
    assert await service.list_tags(ESM_ARN + uuid) == {"Tags": {"Name": "my map"}}
    store = await service.rt.open_store()
    assert orjson.loads((await store.api_mappings())[uuid])["Document"]["Name"] == uuid


async def test_the_kafka_conflict_rules_name_the_function_arn_and_the_uuid() -> None:
    """spec §1.6: one mapping per overlapping servers, topic and function (AWS's message, with the
    function's ARN); a consumer group id is used by one mapping only."""
    service, _ = make_service()
    kafka = {
        "FunctionName": "f",
        "Topics": ["orders"],
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b1:9092", "b2:9092"]}},
        "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}],
    }
    first = (await service.create(kafka))["UUID"]
    overlapping = {**kafka, "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b2:9092"]}}}
    error = await refused(service.create(overlapping))
    assert (error.code, error.status, error.message) == (
        "ResourceConflictException",
        409,
        'An event source mapping with event source ("b2:9092"), function '
        '("arn:aws:lambda:us-east-1:000000000000:function:f"), topics ("orders") already exists. '
        f"Please update or delete the existing mapping with UUID {first}",
    )
    same_group = {
        **kafka,
        "Topics": ["payments"],
        "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": first},
    }
    error = await refused(service.create(same_group))
    assert (error.code, error.message) == (
        "ResourceConflictException",
        f"ConsumerGroupId '{first}' is already used by the event source mapping {first}.",
    )
    assert (await service.create({**kafka, "FunctionName": "g"}))["State"] == "Creating"


@pytest.mark.parametrize(
    ("request_body", "words"),
    [
        (
            {
                "EventSourceArn": "arn:aws:mq:us-east-1:123456789012:broker:b:b-0b4c8e9a-1",
                "Queues": ["orders"],
                "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}],
            },
            "does not read Amazon MQ brokers yet",
        ),
        (
            {
                "EventSourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:docs",
                "DocumentDBEventSourceConfig": {"DatabaseName": "db"},
                "StartingPosition": "LATEST",
                "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": SECRET}],
            },
            "does not read Amazon DocumentDB change streams yet",
        ),
        (
            {
                "EventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/c/0b4c8e9a-1",
                "Topics": ["orders"],
                "StartingPosition": "LATEST",
            },
            "cannot look up an Amazon MSK cluster's brokers from its ARN",
        ),
    ],
)
async def test_unstartable_sources_are_shown_disabled_with_the_reason(
    request_body: dict[str, Any], words: str
) -> None:
    """spec §1.5: never polled, so Disabled from the create reply on, the reason saying why."""
    service, status = make_service()
    created = await service.create({**request_body, "FunctionName": "f"})
    show(status, created["UUID"])  # the runtime's status, before its source reports
    got = await service.get(created["UUID"])
    for reply in (created, got):
        assert reply["State"] == "Disabled"
        assert reply["StateTransitionReason"].startswith("ESM_CONFIG_NOT_VALID: Poller ")
        assert words in reply["StateTransitionReason"]


async def test_a_body_over_the_size_limit_is_lambdas_413() -> None:
    """aiohttp refuses a body over client_max_size; the API answers as Lambda does, not with a 500."""
    service, _ = make_service()
    app = web.Application(client_max_size=1024)
    app.add_routes(esm_routes(service, ()))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        body = orjson.dumps({"EventSourceArn": QUEUE, "FunctionName": "f", "Tags": {"k": "v" * 2000}})
        reply = await client.post(ESM_PATH, data=body)
        assert (reply.status, reply.headers["x-amzn-ErrorType"]) == (413, "RequestEntityTooLargeException")
        assert await reply.json() == {
            "Type": "User",
            "message": "Request must be smaller than 1024 bytes for the CreateEventSourceMapping operation",
        }
