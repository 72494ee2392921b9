"""The one seam every on-failure destination sits behind (DESIGN §2, spec §6).

A delivery either happened or raised: `DeliveryFailed` means the write may not have happened and
the caller must retry it and hold the checkpoint (DESIGN §3: a destination that cannot be written
blocks progress, it never drops); `DeliveryRejected` means retrying cannot help (the record is
too large for the destination), so the caller reports it instead of blocking forever.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from poller.errors import FaultOwner, PollerError


def _random_uuid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class S3KeyParts:
    """What `s3_object_key` needs beyond the record (spec §6.3)."""

    esm_uuid: str
    """The mapping's UUID (or its Name, which is what identifies a mapping here)."""
    shard_id: str
    timestamp_epoch_seconds: float
    """The failure timestamp: the same instant as the record's `timestamp`."""
    object_uuid: str = field(default_factory=_random_uuid)
    """Drawn once per delivery, not per attempt, so a retried PutObject whose first reply was lost
    overwrites the same object instead of leaving a duplicate."""


@dataclass(frozen=True, slots=True)
class FailureDelivery:
    """One failure record on its way to a destination."""

    record: Mapping[str, Any]
    """The failure record from `poller.core.failure_records` (without `payload`)."""
    payload: bytes | None
    """The original invocation event; only S3 stores it (spec §6.3), others ignore it."""
    s3_key_parts: S3KeyParts | None = None
    """Required by the S3 destination; ignored by the others."""


class DeliveryFailed(PollerError):
    """The record was not written (or may not have been): retry, and hold progress meanwhile."""

    retriable: ClassVar[bool] = True
    owner: ClassVar[FaultOwner] = "environment"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        """The AWS error code when AWS refused the call; None for local and network failures."""


class DeliveryRejected(DeliveryFailed):
    """The destination can never accept this record (too large, invalid): report, do not retry."""

    retriable: ClassVar[bool] = False
    owner: ClassVar[FaultOwner] = "customer"


class Destination(Protocol):
    """Writes failure records somewhere durable; one instance per mapping."""

    kind: str
    """`sqs`, `sns`, `s3` or `file`: a bounded label for metrics and logs."""

    async def deliver(self, delivery: FailureDelivery) -> None:
        """Write one record. Returns only once it is durably written; raises `DeliveryFailed`."""
        ...

    async def aclose(self) -> None:
        """Release clients and connections; idempotent."""
        ...
