"""The `dynamodb` state backend: checkpoints and shard leases in one table, shared by replicas.

KCL-style (ops anchors §3.1–3.2) on aiobotocore. One row per (mapping, shard):

    mapping (S, partition key)   leaseKey (S, sort key: the shard id)
    leaseOwner (S)               the replica holding the shard; absent when free
    leaseCounter (N)             bumped by every take, renew, checkpoint and release; every write is
                                 conditional on the value the writer last saw (fencing)
    checkpoint (S)               last acknowledged sequence number, or SHARD_END
    sequenceNumber (S)           the last sequence number, kept when checkpoint says SHARD_END
    parentShardId (SS)           the shard's parents: children wait until these are SHARD_END
    checkpointOwner (S)          set on a steal: the previous owner still stops and lets go
    ownerSwitchesSinceCheckpoint (N), enabledAt (N: LATEST anchor), updatedAt (N)

The table is created when missing (PAY_PER_REQUEST). IAM: dynamodb:CreateTable, DescribeTable,
Query, GetItem, PutItem, UpdateItem, DeleteItem on the table.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from poller.core.lease_balance import LeaseRow
from poller.state.base import Checkpoint, sequence_key

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

SHARD_END = "SHARD_END"

API_MAPPINGS_KEY = "#api-mappings"
"""The partition that holds the mappings made through the Lambda API (DESIGN §1.9), one row per
UUID with its JSON `body`. No mapping Name starts with `#`, so it never meets a lease."""


class LeaseLost(Exception):
    """A conditional write found the lease changed: another replica holds it now. Stop the shard
    and never checkpoint it again (ops anchors §3.2)."""


@dataclass(frozen=True, slots=True)
class LeaseItem:
    """A row as read, with everything the coordinator and the checkpoint store need."""

    mapping: str
    shard_id: str
    owner: str | None
    counter: int
    checkpoint: str | None
    sequence_number: str | None
    parent_ids: tuple[str, ...]
    handoff_from: str | None
    enabled_at: float | None
    updated_at: float

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END

    def row(self) -> LeaseRow:
        return LeaseRow(self.shard_id, self.owner, self.counter, self.finished, self.parent_ids)

    def as_checkpoint(self) -> Checkpoint:
        return Checkpoint(self.mapping, self.shard_id, self.sequence_number, self.finished, self.updated_at)


def _item(raw: dict[str, Any]) -> LeaseItem:
    def s(key: str) -> str | None:
        value = raw.get(key)
        return None if value is None else str(value["S"])

    def n(key: str) -> float | None:
        value = raw.get(key)
        return None if value is None else float(value["N"])

    parents = raw.get("parentShardId")
    return LeaseItem(
        mapping=str(raw["mapping"]["S"]),
        shard_id=str(raw["leaseKey"]["S"]),
        owner=s("leaseOwner"),
        counter=int(n("leaseCounter") or 0),
        checkpoint=s("checkpoint"),
        sequence_number=s("sequenceNumber"),
        parent_ids=tuple(sorted(parents["SS"])) if parents else (),
        handoff_from=s("checkpointOwner"),
        enabled_at=n("enabledAt"),
        updated_at=n("updatedAt") or 0.0,
    )


def _key(mapping: str, shard_id: str) -> dict[str, Any]:
    return {"mapping": {"S": mapping}, "leaseKey": {"S": shard_id}}


def _conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class LeaseTable:
    """The table's operations; every mutation conditional, every lost condition a `LeaseLost`."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    async def ensure(self, *, timeout_seconds: float = 60.0) -> None:
        """Create the table if it does not exist, and wait until it is ACTIVE."""
        try:
            await self.client.describe_table(TableName=self.table)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            try:
                await self.client.create_table(
                    TableName=self.table,
                    KeySchema=[
                        {"AttributeName": "mapping", "KeyType": "HASH"},
                        {"AttributeName": "leaseKey", "KeyType": "RANGE"},
                    ],
                    AttributeDefinitions=[
                        {"AttributeName": "mapping", "AttributeType": "S"},
                        {"AttributeName": "leaseKey", "AttributeType": "S"},
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
            except ClientError as create_error:
                # Another replica created it first.
                if create_error.response.get("Error", {}).get("Code") != "ResourceInUseException":
                    raise
        async with asyncio.timeout(timeout_seconds):
            while True:
                status = (await self.client.describe_table(TableName=self.table))["Table"].get("TableStatus")
                if status == "ACTIVE":
                    return
                await asyncio.sleep(0.5)  # polling DescribeTable: the documented way to await creation

    async def items(self, mapping: str) -> list[LeaseItem]:
        return [_item(raw) for raw in await self._partition(mapping)]

    async def _partition(self, mapping: str) -> list[dict[str, Any]]:
        """Every raw item under one `mapping` key, all pages, read consistently."""
        raws: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            args: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "#m = :m",
                "ExpressionAttributeNames": {"#m": "mapping"},
                "ExpressionAttributeValues": {":m": {"S": mapping}},
                "ConsistentRead": True,
            }
            if start:
                args["ExclusiveStartKey"] = start
            page = await self.client.query(**args)
            raws += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return raws

    async def item(self, mapping: str, shard_id: str) -> LeaseItem | None:
        reply = await self.client.get_item(
            TableName=self.table, Key=_key(mapping, shard_id), ConsistentRead=True
        )
        raw = reply.get("Item")
        return None if raw is None else _item(raw)

    async def create(
        self,
        mapping: str,
        shard_id: str,
        parents: tuple[str, ...],
        *,
        enabled_at: float | None = None,
        finished: bool = False,
    ) -> bool:
        """Add a free lease for a shard first seen; False if another replica added it first."""
        item: dict[str, Any] = {
            **_key(mapping, shard_id),
            "leaseCounter": {"N": "0"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
            "updatedAt": {"N": repr(time.time())},
        }
        if parents:
            item["parentShardId"] = {"SS": list(parents)}
        if enabled_at is not None:
            item["enabledAt"] = {"N": repr(enabled_at)}
        if finished:
            item["checkpoint"] = {"S": SHARD_END}
        try:
            await self.client.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(leaseKey)"
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise
        return True

    async def _update(self, mapping: str, shard_id: str, seen: int, update: str, **values: Any) -> int:
        """Apply `update` if the counter is still `seen` (plus any `extra` condition); bump it."""
        condition = values.pop("condition", "leaseCounter = :seen")
        names = values.pop("names", {})
        attributes = {
            ":seen": {"N": str(seen)},
            ":next": {"N": str(seen + 1)},
            ":now": {"N": repr(time.time())},
            **values,
        }
        args: dict[str, Any] = {
            "TableName": self.table,
            "Key": _key(mapping, shard_id),
            "UpdateExpression": f"{update} leaseCounter = :next, updatedAt = :now",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": attributes,
        }
        if names:
            args["ExpressionAttributeNames"] = names
        try:
            await self.client.update_item(**args)
        except ClientError as exc:
            if _conditional_failure(exc):
                raise LeaseLost(f"{mapping}/{shard_id}: lease changed since counter {seen}") from exc
            raise
        return seen + 1

    async def take(self, lease: LeaseRow, mapping: str, owner: str, *, steal: bool = False) -> int:
        """Become the owner; on a steal, the previous owner is asked to let go (checkpointOwner)."""
        update = "SET leaseOwner = :me, ownerSwitchesSinceCheckpoint = ownerSwitchesSinceCheckpoint + :one,"
        values: dict[str, Any] = {":me": {"S": owner}, ":one": {"N": "1"}}
        if steal and lease.owner is not None:
            update = update.replace("SET ", "SET checkpointOwner = :previous, ")
            values[":previous"] = {"S": lease.owner}
        else:
            update = "REMOVE checkpointOwner " + update
        return await self._update(mapping, lease.shard_id, lease.counter, update, **values)

    async def renew(self, mapping: str, shard_id: str, owner: str, counter: int) -> int:
        return await self._update(
            mapping,
            shard_id,
            counter,
            "SET",
            condition="leaseCounter = :seen AND leaseOwner = :me",
            **{":me": {"S": owner}},
        )

    async def checkpoint(
        self,
        mapping: str,
        shard_id: str,
        owner: str,
        counter: int,
        sequence_number: str | None,
        shard_end: bool,
    ) -> int:
        values: dict[str, Any] = {":me": {"S": owner}, ":zero": {"N": "0"}}
        update = "SET ownerSwitchesSinceCheckpoint = :zero,"
        if sequence_number is not None:
            values[":sequence"] = {"S": sequence_number}
            update += " sequenceNumber = :sequence,"
        values[":checkpoint"] = {"S": SHARD_END if shard_end else (sequence_number or "")}
        update += " checkpoint = :checkpoint,"
        return await self._update(
            mapping,
            shard_id,
            counter,
            update,
            condition="leaseCounter = :seen AND leaseOwner = :me",
            **values,
        )

    async def release(self, mapping: str, shard_id: str, owner: str, counter: int) -> int:
        """Let go explicitly (SIGTERM, shard end) so a peer takes over at once (ops anchors §3.6)."""
        return await self._update(
            mapping,
            shard_id,
            counter,
            "REMOVE leaseOwner, checkpointOwner SET",
            condition="leaseCounter = :seen AND leaseOwner = :me",
            **{":me": {"S": owner}},
        )

    async def let_go(self, mapping: str, shard_id: str, previous_owner: str) -> None:
        """The previous owner of a stolen lease says it has stopped: the new owner may start.

        It leaves the counter alone: the lease is the new owner's, whose next renewal is
        conditional on the counter it wrote when it took the lease.
        """
        try:
            await self.client.update_item(
                TableName=self.table,
                Key=_key(mapping, shard_id),
                UpdateExpression="REMOVE checkpointOwner",
                ConditionExpression="checkpointOwner = :previous",
                ExpressionAttributeValues={":previous": {"S": previous_owner}},
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                raise LeaseLost(f"{mapping}/{shard_id}: not handed over by {previous_owner}") from exc
            raise

    async def delete_mapping(self, mapping: str) -> int:
        items = await self.items(mapping)
        for item in items:
            await self.client.delete_item(TableName=self.table, Key=_key(mapping, item.shard_id))
        return len(items)

    async def api_mappings(self) -> dict[str, str]:
        """Every API-made mapping: UUID → its JSON body (read consistently: replicas poll this)."""
        raws = await self._partition(API_MAPPINGS_KEY)
        return {str(raw["leaseKey"]["S"]): str(raw["body"]["S"]) for raw in raws}

    async def put_api_mapping(self, uuid: str, body: str) -> None:
        item = {**_key(API_MAPPINGS_KEY, uuid), "body": {"S": body}, "updatedAt": {"N": repr(time.time())}}
        await self.client.put_item(TableName=self.table, Item=item)

    async def delete_api_mapping(self, uuid: str) -> None:
        await self.client.delete_item(TableName=self.table, Key=_key(API_MAPPINGS_KEY, uuid))


def newer(candidate: str | None, current: str | None) -> bool:
    """Whether a checkpoint moves forward (sequence numbers compare as integers)."""
    if candidate is None:
        return False
    return current is None or sequence_key(candidate) > sequence_key(current)
