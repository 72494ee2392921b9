"""AWS clients shared by every mapping of one process, one per service and region."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

# Long polls wait up to 20 s; the read timeout must outlast them.
SQS_CONFIG = AioConfig(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=40,
    max_pool_connections=64,
)


class ClientPool:
    def __init__(self, session: AioSession, stack: AsyncExitStack, endpoint_url: str | None) -> None:
        self.session = session
        self.stack = stack
        self.endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = asyncio.Lock()

    async def _get(self, service: str, region: str, config: AioConfig) -> Any:
        key = (service, region)
        async with self._lock:
            if key not in self._clients:
                self._clients[key] = await self.stack.enter_async_context(
                    self.session.create_client(  # type: ignore[call-overload]
                        service, region_name=region, endpoint_url=self.endpoint_url, config=config
                    )
                )
            return self._clients[key]

    async def sqs(self, region: str) -> SQSClient:
        client: SQSClient = await self._get("sqs", region, SQS_CONFIG)
        return client
