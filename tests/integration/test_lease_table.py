"""The DynamoDB lease table against moto: every mutation conditional, a lost lease is refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiobotocore.session
import pytest

from poller.core.lease_balance import LeaseRow
from poller.state.dynamodb import SHARD_END, LeaseLost, LeaseTable
from tests.integration.conftest import REGION

pytestmark = pytest.mark.integration


@pytest.fixture
async def table(moto_endpoint: str) -> AsyncIterator[LeaseTable]:
    session = aiobotocore.session.get_session()
    async with session.create_client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint) as client:
        lease_table = LeaseTable(client, f"leases-{uuid.uuid4().hex[:8]}")
        await lease_table.ensure()
        await lease_table.ensure()  # idempotent: a second replica finds it
        yield lease_table


async def test_take_renew_checkpoint_release_and_fencing(table: LeaseTable) -> None:
    assert await table.create("m", "shard-0", ("parent-a",))
    assert not await table.create("m", "shard-0", ())  # a second replica lost the race
    (item,) = await table.items("m")
    assert (item.owner, item.counter, item.parent_ids) == (None, 0, ("parent-a",))
    counter = await table.take(item.row(), "m", "a")
    counter = await table.renew("m", "shard-0", "a", counter)
    counter = await table.checkpoint("m", "shard-0", "a", counter, "42", False)
    # b takes it with a stale view: refused.
    with pytest.raises(LeaseLost):
        await table.take(LeaseRow("shard-0", None, 0), "m", "b")
    # b steals with the current counter: a's next renew and checkpoint are refused.
    stolen = await table.take(LeaseRow("shard-0", "a", counter), "m", "b", steal=True)
    with pytest.raises(LeaseLost):
        await table.renew("m", "shard-0", "a", counter)
    with pytest.raises(LeaseLost):
        await table.checkpoint("m", "shard-0", "a", counter, "43", False)
    item = await table.item("m", "shard-0")
    assert item is not None
    assert (item.owner, item.handoff_from, item.sequence_number) == ("b", "a", "42")
    await table.let_go("m", "shard-0", "a")
    with pytest.raises(LeaseLost):
        await table.let_go("m", "shard-0", "a")  # only once, and only by the one asked
    item = await table.item("m", "shard-0")
    assert item is not None
    assert item.handoff_from is None
    stolen = await table.checkpoint("m", "shard-0", "b", stolen, "50", True)
    await table.release("m", "shard-0", "b", stolen)
    item = await table.item("m", "shard-0")
    assert item is not None
    assert (item.owner, item.checkpoint, item.sequence_number, item.finished) == (None, SHARD_END, "50", True)


async def test_mappings_are_separate(table: LeaseTable) -> None:
    await table.create("one", "shard-0", ())
    await table.create("two", "shard-0", (), enabled_at=123.5)
    assert [i.shard_id for i in await table.items("one")] == ["shard-0"]
    (two,) = await table.items("two")
    assert two.enabled_at == 123.5
    assert await table.delete_mapping("one") == 1
    assert await table.items("one") == []
