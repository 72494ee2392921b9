"""A function declared under `Functions:` (DESIGN §1.5.1): what the environments of one function share.

The config loader produces it from `AWS::Serverless::Function` / `AWS::Lambda::Function` property
names; the pool and the environments only read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

DEFAULT_MEMORY_SIZE_MB = 128
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_EPHEMERAL_STORAGE_MB = 512
VERSION = "$LATEST"
"""poller runs no published versions or aliases: every invocation is of `$LATEST`."""


@dataclass(frozen=True, slots=True)
class FunctionDefinition:
    """`Runtime`, `Handler`, `CodeUri`, `MemorySize`, `Timeout`, `Environment.Variables`,
    `ReservedConcurrentExecutions` and `EphemeralStorage.Size` of one function, already validated."""

    name: str
    runtime: str
    handler: str
    code_uri: Path
    memory_size_mb: int = DEFAULT_MEMORY_SIZE_MB
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    # Not part of the hash (a mapping is not hashable); frozen below so the definition stays a value.
    environment: Mapping[str, str] = field(default_factory=dict, hash=False)
    reserved_concurrency: int | None = None
    ephemeral_storage_mb: int = DEFAULT_EPHEMERAL_STORAGE_MB

    def __post_init__(self) -> None:
        object.__setattr__(self, "environment", MappingProxyType(dict(self.environment)))

    def arn(self, region: str, account_id: str) -> str:
        return f"arn:aws:lambda:{region}:{account_id}:function:{self.name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.name}"
