"""The Lambda API beside file-defined mappings: listing, paging, filters, tags, ownership, AWS's
validation messages, persistence across a restart, access control and /status (DESIGN §1.9;
spec §1.1 List paging, §1.6 messages, §1.8 create-only fields)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import urllib3
from botocore.exceptions import ClientError

from poller.api.esm_service import file_mapping_uuid
from tests.integration.conftest import REGION, StartPoller, launch_poller, wait_until
from tests.integration.test_lambda_api import HANDLER, lambda_client, state_of, status_states

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]

FUNCTION = "python:api_handler.handle"


async def test_listing_paging_filters_and_file_mappings(make_queue: Any, start_poller: StartPoller) -> None:
    """spec §1.1: List with EventSourceArn / FunctionName filters and Marker/MaxItems paging; a file
    mapping is listed with uuid5(Name) and refused for update and delete (DESIGN §1.9)."""
    file_queue, *queues = (make_queue(visibility=5) for _ in range(4))
    poller = await start_poller(
        [{"Name": "from-file", "EventSourceArn": file_queue.arn, "FunctionName": FUNCTION, "Enabled": False}],
        handlers={"api_handler": HANDLER},
    )
    client = lambda_client(poller)
    made = [
        client.create_event_source_mapping(EventSourceArn=q.arn, FunctionName=FUNCTION, Enabled=False)["UUID"]
        for q in queues
    ]
    file_uuid = file_mapping_uuid("from-file")
    everything = client.list_event_source_mappings()["EventSourceMappings"]
    assert sorted(m["UUID"] for m in everything) == sorted([*made, file_uuid])
    assert {m["State"] for m in everything} == {"Disabled"}

    pages, marker = [], None
    while True:
        args = {"MaxItems": 3} | ({"Marker": marker} if marker else {})
        page = client.list_event_source_mappings(**args)
        pages.append([m["UUID"] for m in page["EventSourceMappings"]])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert [len(p) for p in pages] == [3, 1]
    assert sorted(uuid for page in pages for uuid in page) == sorted([*made, file_uuid])

    by_source = client.list_event_source_mappings(EventSourceArn=queues[1].arn)["EventSourceMappings"]
    assert [m["UUID"] for m in by_source] == [made[1]]
    by_function = client.list_event_source_mappings(FunctionName="from-file")["EventSourceMappings"]
    assert [m["UUID"] for m in by_function] == [file_uuid]
    assert client.get_event_source_mapping(UUID=file_uuid)["EventSourceArn"] == file_queue.arn

    for call in (
        lambda: client.update_event_source_mapping(UUID=file_uuid, BatchSize=5),
        lambda: client.delete_event_source_mapping(UUID=file_uuid),
    ):
        with pytest.raises(client.exceptions.ResourceConflictException) as refused:
            call()
        assert "m0.yaml" in refused.value.response["Error"]["Message"]
    # A reload of the mapping files leaves the API-made mappings running (DESIGN §1.9, §2 hot reload).
    extra = make_queue(visibility=5)
    mapping = {"Name": "added-file", "EventSourceArn": extra.arn, "FunctionName": FUNCTION, "Enabled": False}
    (poller.config_path.parent / "mappings" / "added.yaml").write_text(json.dumps(mapping))
    await wait_until(lambda: "added-file" in status_states(poller), what="the added file mapping")
    assert set(made) <= set(status_states(poller))
    assert len(client.list_event_source_mappings()["EventSourceMappings"]) == 5
    with pytest.raises(client.exceptions.ResourceNotFoundException) as missing:
        client.get_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000")
    assert missing.value.response["Error"]["Message"] == "The resource you requested does not exist."


async def test_tags_validation_and_restart(
    make_queue: Any, start_poller: StartPoller, moto_endpoint: str
) -> None:
    """Tags on the mapping's ARN; spec §1.6 messages as InvalidParameterValueException /
    ResourceConflictException; §1.8 create-only fields refused on update; the mapping and its
    tags survive a restart (state store)."""
    queue, other = make_queue(visibility=5), make_queue(visibility=5)
    poller = await start_poller([], handlers={"api_handler": HANDLER})
    client = lambda_client(poller)
    created = client.create_event_source_mapping(
        EventSourceArn=queue.arn, FunctionName=FUNCTION, Tags={"Name": "tagged", "team": "a"}
    )
    uuid, arn = created["UUID"], created["EventSourceMappingArn"]
    client.tag_resource(Resource=arn, Tags={"env": "test"})
    client.untag_resource(Resource=arn, TagKeys=["team"])
    assert client.list_tags(Resource=arn)["Tags"] == {"Name": "tagged", "env": "test"}

    def refused(exception: Any, **request: Any) -> str:
        with pytest.raises(exception) as caught:
            client.create_event_source_mapping(FunctionName=FUNCTION, **request)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 409)
        return str(caught.value.response["Error"]["Message"])

    invalid = client.exceptions.InvalidParameterValueException
    assert refused(invalid, EventSourceArn=other.arn, BatchSize=11) == (
        "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
    )
    assert refused(invalid) == "Unrecognized event source."
    assert refused(
        invalid, EventSourceArn=other.arn, DestinationConfig={"OnSuccess": {"Destination": queue.arn}}
    ) == ("Unsupported DestinationConfig parameter for given event source mapping type.")
    assert refused(invalid, EventSourceArn=f"arn:aws:kinesis:{REGION}:123456789012:stream/s") == (
        "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: "
        "Member must not be null."
    )
    assert refused(invalid, EventSourceArn=other.arn, FilterCriteria={"Filters": [{"Pattern": "nope"}]}) == (
        "Invalid filter pattern definition."
    )
    assert refused(client.exceptions.ResourceConflictException, EventSourceArn=queue.arn) == (
        f'An event source mapping with SQS arn (" {queue.arn} ") and function (" {FUNCTION} ") already '
        f"exists. Please update or delete the existing mapping with UUID {uuid}"
    )
    with pytest.raises(invalid):
        client.update_event_source_mapping(
            UUID=uuid, BatchSize=50
        )  # SQS: > 10 needs a window (create and update)

    # botocore's update shape has no EventSourceArn; a raw request that sends one is refused (spec §1.8).
    http = urllib3.PoolManager()
    reply = http.request(
        "PUT",
        f"http://127.0.0.1:{poller.port}/2015-03-31/event-source-mappings/{uuid}",
        body=b'{"EventSourceArn": "%s"}' % other.arn.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert (reply.status, reply.headers["x-amzn-ErrorType"]) == (400, "InvalidParameterValueException")
    assert reply.json()["Type"] == "User"

    await wait_until(lambda: state_of(client, uuid) == "Enabled", what="running before the restart")
    assert poller.terminate() == 0
    again = await launch_poller(poller.config_path.parent, moto_endpoint)
    try:
        client = lambda_client(again)
        await wait_until(lambda: state_of(client, uuid) == "Enabled", what="running after the restart")
        assert client.list_tags(Resource=arn)["Tags"] == {"Name": "tagged", "env": "test"}
        assert status_states(again)["tagged"] == "Enabled"
        # poller status and the dashboard show it as any mapping: the dashboard's `mapping` variable
        # lists the label values of the series named in its query, and this mapping is among them.
        dashboard = json.loads((REPOSITORY / "config" / "grafana" / "poller-dashboard.json").read_text())
        (query,) = [v["query"] for v in dashboard["templating"]["list"] if v["name"] == "mapping"]
        metric = query.removeprefix("label_values(").split(",")[0].strip()
        assert again.metric(metric, mapping="tagged", state="Enabled") == 1
        shown = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "poller",
                "status",
                "--url",
                f"http://127.0.0.1:{again.port}",
                "--interval",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        rows = shown.stdout.splitlines()
        assert any(line.split()[:1] == ["tagged"] and "Enabled" in line for line in rows), shown.stdout
    finally:
        again.kill()


async def test_access_key_allow_list_and_api_off(start_poller: StartPoller) -> None:
    """DESIGN §1.9: with api.access_key_ids only those keys are served (others: AWS's
    UnrecognizedClientException, 403); api.enabled false answers 404."""
    poller = await start_poller([], settings={"api": {"access_key_ids": ["AKIDALLOWED"]}})
    assert lambda_client(poller, key="AKIDALLOWED").list_event_source_mappings()["EventSourceMappings"] == []
    with pytest.raises(ClientError) as caught:
        lambda_client(poller, key="AKIDOTHER").list_event_source_mappings()
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "UnrecognizedClientException",
        403,
    )
    unsigned = urllib3.PoolManager().request(
        "GET", f"http://127.0.0.1:{poller.port}/2015-03-31/event-source-mappings"
    )
    assert unsigned.status == 403

    off = await start_poller([], settings={"api": {"enabled": False}})
    assert off.get("/2015-03-31/event-source-mappings")[0] == 404
    assert off.get("/healthz")[0] == 200
