"""StateBackend.open for `dynamodb`: a failed table check leaves no client behind.

The DynamoDB endpoint is a local HTTP stub answering in DynamoDB's JSON protocol, so the real
aiobotocore client is used; the session is wrapped only to count the clients it leaves open.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session
from aiohttp import web
from botocore.exceptions import ClientError

from poller.config.settings import build_settings
from poller.runtime.state_backends import StateBackend


class DynamoDbStub:
    """Answers DescribeTable with `describe` (status, body); counts the calls."""

    def __init__(self) -> None:
        self.describe: tuple[int, dict[str, Any]] = (200, {"Table": {"TableStatus": "ACTIVE"}})
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        status, body = self.describe
        return web.Response(status=status, text=json.dumps(body), content_type="application/x-amz-json-1.0")


class CountingSession:
    """A real session whose clients are counted while open (entered and not yet exited)."""

    def __init__(self, session: AioSession) -> None:
        self._session = session
        self.open = 0
        self.created = 0

    def create_client(self, *args: Any, **kwargs: Any) -> Any:
        inner = self._session.create_client(*args, **kwargs)
        outer = self

        class Counted:
            async def __aenter__(self) -> Any:
                client = await inner.__aenter__()
                outer.open += 1
                outer.created += 1
                return client

            async def __aexit__(
                self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
            ) -> bool | None:
                outer.open -= 1
                return await inner.__aexit__(kind, exc, tb)

        return Counted()


@pytest.fixture
async def stub() -> AsyncIterator[tuple[DynamoDbStub, str]]:
    fake = DynamoDbStub()
    app = web.Application()
    app.router.add_post("/", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def session_with_credentials() -> CountingSession:
    session = get_session()
    session.set_credentials("test", "test")
    return CountingSession(session)


def dynamodb_settings(endpoint: str) -> Any:
    return build_settings(
        {"aws": {"region": "us-east-1", "endpoint_url": endpoint}, "state": {"backend": "dynamodb"}}, {}
    )


async def test_a_failed_table_check_closes_its_client_and_each_retry_opens_only_one(
    stub: tuple[DynamoDbStub, str], tmp_path: Path
) -> None:
    fake, endpoint = stub
    fake.describe = (
        400,
        {"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException", "message": "no"},
    )
    session = session_with_credentials()
    async with AsyncExitStack() as service:
        for attempt in range(1, 4):  # what a stream mapping's restarts do
            with pytest.raises(ClientError, match="AccessDenied"):
                await StateBackend.open(dynamodb_settings(endpoint), tmp_path, session, service)  # type: ignore[arg-type]
            assert session.created == attempt
            assert session.open == 0, "the failed attempt's client is still open"
        assert fake.calls == 3


async def test_an_opened_backend_keeps_its_client_until_the_service_stops(
    stub: tuple[DynamoDbStub, str], tmp_path: Path
) -> None:
    _, endpoint = stub
    session = session_with_credentials()
    async with AsyncExitStack() as service:
        backend = await StateBackend.open(dynamodb_settings(endpoint), tmp_path, session, service)  # type: ignore[arg-type]
        assert backend.leases is not None
        assert session.open == 1
    assert session.open == 0
