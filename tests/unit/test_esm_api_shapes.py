"""The Lambda API's pure parts (DESIGN §1.9): request → mapping document, update merging with the
create-only rules (spec §1.8), replies with AWS's defaults (spec §1.2, §1.3), SigV4 key ids, and
the stored record in SQLite."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import orjson
import pytest
from botocore.awsrequest import HeadersDict
from botocore.parsers import RestJSONParser

from poller.api.esm_errors import ApiError, invalid, not_found, server_fault
from poller.api.esm_service import file_mapping_uuid
from poller.api.esm_shapes import configuration, create_document, updated_document
from poller.api.esm_sigv4 import access_key_id, check_access
from poller.api.esm_store import ApiMappingRecord, load_records
from poller.config.documents import entry_from_document
from poller.config.resolve import resolve_mapping
from poller.config.resolved import ResolvedMapping
from poller.state import SqliteCheckpointStore

QUEUE = "arn:aws:sqs:us-east-1:123456789012:orders"
STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
UUID = "5d9a3e0e-1b2c-4d5e-8f90-123456789abc"


def resolved(document: dict[str, object]) -> ResolvedMapping:
    entry, problems = entry_from_document(document, f"api:{UUID}")
    assert entry is not None, problems
    mapping, problems = resolve_mapping(entry)
    assert mapping is not None, problems
    return mapping


def reply(document: dict[str, object]) -> dict[str, object]:
    return configuration(
        uuid=UUID,
        arn=f"arn:aws:lambda:us-east-1:123456789012:event-source-mapping:{UUID}",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        mapping=resolved(document),
        document=document,
        state="Creating",
        reason="USER_INITIATED",
        last_processing_result=None,
        last_modified=1.5,
    )


def test_the_name_is_the_name_tag_else_the_uuid() -> None:
    """DESIGN §1.9: an API-made mapping's Name comes from its Name tag, else its UUID."""
    document, tags = create_document(
        {"EventSourceArn": QUEUE, "FunctionName": "f", "Tags": {"Name": "n"}}, UUID
    )
    assert (document["Name"], tags, "Tags" in document) == ("n", {"Name": "n"}, False)
    assert create_document({"EventSourceArn": QUEUE, "FunctionName": "f"}, UUID)[0]["Name"] == UUID


@pytest.mark.parametrize("name", ["my map", "", "-leading", "n" * 129, "é"])
def test_a_name_tag_that_is_no_poller_name_leaves_the_uuid_as_the_name(name: str) -> None:
    """DESIGN §1.4, §1.9: AWS allows these tag values; the Name falls back, the tag stays as given."""
    document, tags = create_document(
        {"EventSourceArn": QUEUE, "FunctionName": "f", "Tags": {"Name": name}}, UUID
    )
    assert (document["Name"], tags) == (UUID, {"Name": name})


def test_a_kafka_consumer_group_defaults_to_the_uuid_not_the_name() -> None:
    """spec §1.2: the consumer group is the ESM's UUID unless given, even with a Name tag."""
    servers = {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b:9092"]}}
    request = {
        "FunctionName": "f",
        "Topics": ["orders"],
        "SelfManagedEventSource": servers,
        "Tags": {"Name": "n"},
    }
    document, _ = create_document(request, UUID)
    assert document["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": UUID}
    given = {**request, "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "mine"}}
    assert create_document(given, UUID)[0]["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "mine"}


def test_unknown_request_members_are_refused() -> None:
    with pytest.raises(ApiError) as refused:
        create_document({"EventSourceArn": QUEUE, "FunctionName": "f", "FunctionTimeout": 5}, UUID)
    assert refused.value.code == "InvalidParameterValueException"


def test_sqs_reply_has_aws_defaults() -> None:
    """spec §1.2: SQS echoes BatchSize 10, window 0, FunctionResponseTypes [], no stream fields."""
    got = reply({"Name": UUID, "EventSourceArn": QUEUE, "FunctionName": "f"})
    assert (got["BatchSize"], got["MaximumBatchingWindowInSeconds"], got["FunctionResponseTypes"]) == (
        10,
        0,
        [],
    )
    assert not {"LastProcessingResult", "ParallelizationFactor", "FilterCriteria"} & set(got)


def test_stream_reply_has_aws_defaults() -> None:
    """spec §1.2: streams echo -1 retries and age, factor 1, an empty OnFailure, window 0."""
    got = reply({"Name": UUID, "EventSourceArn": STREAM, "FunctionName": "f", "StartingPosition": "LATEST"})
    assert got["BatchSize"] == 100
    assert (got["MaximumRetryAttempts"], got["MaximumRecordAgeInSeconds"], got["ParallelizationFactor"]) == (
        -1,
        -1,
        1,
    )
    assert (got["DestinationConfig"], got["TumblingWindowInSeconds"], got["BisectBatchOnFunctionError"]) == (
        {"OnFailure": {}},
        0,
        False,
    )


def test_kafka_reply_echoes_the_group_a_file_gets_from_its_name_and_the_api_from_the_uuid() -> None:
    """spec §1.2: self-managed Kafka echoes its servers, Topics and a ConsumerGroupId: a file-defined
    mapping's defaults to its Name (DESIGN §1.4), an API-made one's to its UUID (the Name tag aside)."""
    request = {
        "FunctionName": "f",
        "Topics": ["orders"],
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b:9092"]}},
        "SourceAccessConfigurations": [
            {"Type": "BASIC_AUTH", "URI": "arn:aws:secretsmanager:us-east-1:1:secret:x"}
        ],
    }
    got = reply({"Name": "orders-consumer", **request})
    assert got["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "orders-consumer"}
    document, _ = create_document({**request, "Tags": {"Name": "orders-consumer"}}, UUID)
    assert reply(document)["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": UUID}
    assert (got["Topics"], got["StartingPosition"], "EventSourceArn" in got) == (
        ["orders"],
        "TRIM_HORIZON",
        False,
    )


def test_update_replaces_given_members_and_honours_removals() -> None:
    """spec §1.8: FilterCriteria={} and ScalingConfig={} remove the setting."""
    current = {
        "Name": "n",
        "EventSourceArn": QUEUE,
        "FunctionName": "f",
        "BatchSize": 5,
        "ScalingConfig": {"MaximumConcurrency": 5},
        "FilterCriteria": {"Filters": [{"Pattern": "{}"}]},
    }
    got = updated_document(current, {"BatchSize": 7, "FilterCriteria": {}, "ScalingConfig": {}})
    assert got == {"Name": "n", "EventSourceArn": QUEUE, "FunctionName": "f", "BatchSize": 7}


@pytest.mark.parametrize(
    "body",
    [
        {"EventSourceArn": QUEUE},
        {"StartingPosition": "LATEST"},
        {"Topics": ["other"]},
        {"SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "moved"}},
        {"SourceAccessConfigurations": [{"Type": "VIRTUAL_HOST", "URI": "/other"}]},
        {"Tags": {"a": "b"}},
    ],
)
def test_create_only_members_are_refused_on_update(body: dict[str, object]) -> None:
    current = {
        "Name": "n",
        "FunctionName": "f",
        "Topics": ["t"],
        "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "g"},
        "SourceAccessConfigurations": [{"Type": "VIRTUAL_HOST", "URI": "/v"}],
    }
    with pytest.raises(ApiError) as refused:
        updated_document(current, body)
    assert refused.value.code == "InvalidParameterValueException"
    assert updated_document(current, {"SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "g"}})[
        "Topics"
    ] == ["t"]


@pytest.mark.parametrize("count", ["1 validation error", "2 validation errors", "12 validation errors"])
def test_every_model_validation_message_is_a_validation_exception(count: str) -> None:
    """spec §1.6: one or several model violations alike (`N validation errors detected`)."""
    error = invalid(f"{count} detected: Value 'k' at 'kMSKeyArn' failed to satisfy constraint: ...")
    assert (error.code, "Type" in error.body()) == ("ValidationException", False)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (not_found(), 404),
        (ApiError("ResourceInUseException", 400, "busy"), 400),
        (server_fault(), 500),
        (invalid("Unrecognized event source."), 400),
        (ApiError("ResourceConflictException", 409, "taken"), 409),
    ],
)
def test_error_bodies_fill_the_members_botocores_model_declares(error: ApiError, status: int) -> None:
    """boto3 fills `response["Message"]` / `["message"]` and `["Type"]` from the body only under the
    member names of the error's shape in botocore's lambda model, as it parses Lambda's own errors."""
    model = botocore.session.get_session().get_service_model("lambda")
    response = {
        "status_code": status,
        "headers": HeadersDict({"x-amzn-ErrorType": error.code}),
        "body": orjson.dumps(error.body()),
    }
    parser = RestJSONParser()
    parsed = parser.parse(response, model.operation_model("GetEventSourceMapping").output_shape)
    shape = model.shape_for_error_code(error.code)
    assert shape is not None
    parsed.update(parser.parse(response, shape))
    assert parsed["Error"] == {"Code": error.code, "Message": error.message}
    message_member = "Message" if "Message" in shape.members else "message"
    assert parsed[message_member] == error.message
    assert parsed["Type"] == ("Service" if status == 500 else "User")


def test_validation_exception_is_kept_apart() -> None:
    """spec §1.6: an enum violation is ValidationException (no Type); a missing StartingPosition is not."""
    enum = invalid(
        "1 validation error detected: Value 'x' at 'startingPosition' failed to satisfy constraint: ..."
    )
    assert (enum.code, enum.body()) == ("ValidationException", {"message": enum.message})
    missing = invalid(
        "1 validation error detected: Value null at 'startingPosition' ... Member must not be null."
    )
    assert (missing.code, missing.body()["Type"]) == ("InvalidParameterValueException", "User")


def test_sigv4_access_key_ids() -> None:
    header = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/lambda/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    }
    assert access_key_id(header, {}) == "AKIDEXAMPLE"
    assert (
        access_key_id({}, {"X-Amz-Credential": "AKIDQUERY/20260101/us-east-1/lambda/aws4_request"})
        == "AKIDQUERY"
    )
    assert access_key_id({}, {}) is None
    check_access((), {}, {})  # no list: anything goes
    check_access(("AKIDEXAMPLE",), header, {})
    with pytest.raises(ApiError) as refused:
        check_access(("AKIDOTHER",), header, {})
    assert (refused.value.code, refused.value.status) == ("UnrecognizedClientException", 403)


def test_file_mapping_uuids_are_stable() -> None:
    """DESIGN §1.9: uuid5 of the Name, the same in every release, restart and replica."""
    assert file_mapping_uuid("orders") == "55c1254f-e22e-5556-95c8-a7fe35badd63"
    assert file_mapping_uuid("payments") == "ee9cb9b8-7838-5e5f-8222-42937c522d2a"


async def test_sqlite_keeps_api_mappings(tmp_path: Path) -> None:
    """DESIGN §1.9: API-made mappings survive a reopen of the state file."""
    record = ApiMappingRecord(
        UUID, {"Name": "n", "EventSourceArn": QUEUE, "FunctionName": "f"}, {"k": "v"}, 2.5
    )
    store = await SqliteCheckpointStore.open(tmp_path / "state.sqlite3")
    await store.put_api_mapping(UUID, record.to_json())
    await store.put_api_mapping("other", record.to_json())
    await store.delete_api_mapping("other")
    await store.aclose()
    reopened = await SqliteCheckpointStore.open(tmp_path / "state.sqlite3")
    try:
        assert await load_records(reopened) == {UUID: record}
    finally:
        await reopened.aclose()
