"""AWS clients, one per mapping so one mapping's long polls never starve another's calls.

A client's connection pool is shared by everything that uses it: with one client for every
mapping, receive long polls (20 s each) can hold all connections while a visibility extension or a
delete waits behind them until messages time out. Each mapping gets a pool sized for its own
receivers plus room for its control calls.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient


def sqs_config(receivers: int) -> AioConfig:
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=40,  # long polls wait up to 20 s; the read timeout must outlast them
        max_pool_connections=receivers + 20,
    )


async def open_sqs_client(
    session: AioSession, stack: AsyncExitStack, *, region: str, endpoint_url: str | None, receivers: int
) -> SQSClient:
    client: SQSClient = await stack.enter_async_context(
        session.create_client(
            "sqs", region_name=region, endpoint_url=endpoint_url, config=sqs_config(receivers)
        )
    )
    return client
