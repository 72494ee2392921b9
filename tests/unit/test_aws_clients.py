"""The service's shared AWS clients (`poller.runtime.clients.AwsClients`): one per kind and region,
room reserved per SQS mapping for its long polls, never closed by a mapping, closed once at shutdown."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest

from poller.runtime.clients import SQS_CONTROL_CONNECTIONS, STREAM_POOL_CONNECTIONS, AwsClients


@dataclass(eq=False)
class FakeClient:
    service: str
    region: str
    endpoint_url: str | None
    config: Any
    closed: bool = False


@dataclass
class FakeSession:
    created: list[FakeClient] = field(default_factory=list)

    def create_client(self, service: str, *, region_name: str, endpoint_url: str | None, config: Any) -> Any:
        client = FakeClient(service, region_name, endpoint_url, config)
        self.created.append(client)
        return Opening(client)


@dataclass
class Opening:
    client: FakeClient

    async def __aenter__(self) -> FakeClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        self.client.closed = True


ENDPOINT = "http://127.0.0.1:4566"


def clients(session: FakeSession, streams: FakeSession | None = None, *, receive_room: int = 500) -> AwsClients:
    return AwsClients(
        session,  # type: ignore[arg-type]
        endpoint_url=ENDPOINT,
        stream_session=streams or FakeSession(),  # type: ignore[arg-type]
        sqs_receive_connections=receive_room,
    )


async def test_mappings_of_one_kind_and_region_share_one_client() -> None:
    session, streams = FakeSession(), FakeSession()
    shared = clients(session, streams)
    async with AsyncExitStack() as a, AsyncExitStack() as b:
        first = await shared.sqs_source(a, region="us-east-1", receivers=10)
        second = await shared.sqs_source(b, region="us-east-1", receivers=10)
        elsewhere = await shared.sqs_source(b, region="eu-west-1", receivers=10)
        assert first is second
        assert elsewhere is not first
        assert await shared.kinesis(region="us-east-1") is await shared.kinesis(region="us-east-1")
        assert await shared.dynamodb_streams(region="us-east-1") is not await shared.kinesis(region="us-east-1")
        # A destination's SQS client is configured for sends, not long polls: a client of its own.
        destination = await shared.sqs("us-east-1")
        assert destination is await shared.sqs("us-east-1")
        assert destination is not first
        assert await shared.sns("us-east-1") is await shared.sns("us-east-1")
        assert await shared.s3("us-east-1") is await shared.s3("us-east-1")
    assert [(c.service, c.region) for c in session.created] == [
        ("sqs", "us-east-1"),
        ("sqs", "eu-west-1"),
        ("sqs", "us-east-1"),
        ("sns", "us-east-1"),
        ("s3", "us-east-1"),
    ]
    # Stream readers' clients come from the session that leaves timestamps raw.
    assert [c.service for c in streams.created] == ["kinesis", "dynamodbstreams"]
    assert all(c.endpoint_url == ENDPOINT for c in [*session.created, *streams.created])
    assert streams.created[0].config.max_pool_connections == STREAM_POOL_CONNECTIONS
    assert session.created[4].config.s3 == {"addressing_style": "path"}
    await shared.aclose()


async def test_a_stopped_mapping_leaves_the_shared_client_open_for_the_others() -> None:
    session = FakeSession()
    shared = clients(session)
    async with AsyncExitStack() as staying:
        async with AsyncExitStack() as leaving:
            client = await shared.sqs_source(leaving, region="us-east-1", receivers=10)
            assert await shared.sqs_source(staying, region="us-east-1", receivers=10) is client
        assert not client.closed
        # The stopped mapping's next start (a restart, a reload) gets the same client again.
        async with AsyncExitStack() as restarted:
            assert await shared.sqs_source(restarted, region="us-east-1", receivers=10) is client
        assert not client.closed
    assert not client.closed
    assert len(session.created) == 1
    await shared.aclose()
    assert client.closed


async def test_each_sqs_mapping_reserves_room_for_its_long_polls() -> None:
    """Long polls of the mappings on one client never reach its control connections: a mapping
    whose receive loops no longer fit gets another client, and a stopped one frees its room."""
    session = FakeSession()
    shared = clients(session, receive_room=20)
    async with AsyncExitStack() as a, AsyncExitStack() as c:
        async with AsyncExitStack() as b:
            first = await shared.sqs_source(a, region="us-east-1", receivers=10)
            assert await shared.sqs_source(b, region="us-east-1", receivers=10) is first
            second = await shared.sqs_source(c, region="us-east-1", receivers=10)
            assert second is not first
        async with AsyncExitStack() as d:
            assert await shared.sqs_source(d, region="us-east-1", receivers=10) is first
        assert shared.opened() == {("sqs-source", "us-east-1"): [first, second]}
    assert first.config.max_pool_connections == 20 + SQS_CONTROL_CONNECTIONS
    await shared.aclose()
    assert first.closed
    assert second.closed


async def test_closed_clients_are_not_handed_out() -> None:
    shared = clients(FakeSession())
    kinesis = await shared.kinesis(region="us-east-1")
    await shared.aclose()
    assert kinesis.closed
    assert shared.opened() == {}
    with pytest.raises(RuntimeError, match="closed"):
        await shared.kinesis(region="us-east-1")
