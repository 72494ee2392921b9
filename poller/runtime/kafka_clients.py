"""Kafka consumers built from the shared `kafka:` settings (DESIGN §1.3): servers from the mapping,
credentials and TLS from the settings, never from the mapping file.

A consumer's group timeouts follow the mapping's FunctionTimeout (`group_timeouts`): on a rebalance
the source lets a revoked partition's batch in flight finish before it rejoins, and the group must
wait for it rather than evict it mid-invoke and hand its partitions to another member.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer
from aiokafka.helpers import create_ssl_context

from poller.config import KafkaMapping
from poller.config.settings import KafkaSettings
from poller.errors import ConfigError


def connection_options(settings: KafkaSettings, base_dir: Path) -> dict[str, Any]:
    """aiokafka's security keyword arguments, shared by consumers and producers."""
    options: dict[str, Any] = {
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else None
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": password,
        }
    if settings.security_protocol in ("SSL", "SASL_SSL"):

        def resolve(key: str, path: Path | None) -> str | None:
            if path is None:
                return None
            full = path if path.is_absolute() else base_dir / path
            if not full.is_file():
                # ssl's own error names no file; say which setting points where.
                raise ConfigError(f"kafka.{key}: no such file: {full}")
            return str(full)

        options["ssl_context"] = create_ssl_context(
            cafile=resolve("ssl_cafile", settings.ssl_cafile),
            certfile=resolve("ssl_certfile", settings.ssl_certfile),
            keyfile=resolve("ssl_keyfile", settings.ssl_keyfile),
        )
    return options


INVOKE_OVERRUN_SECONDS: Final = 5.0
"""How long past FunctionTimeout an invoke may still answer (the Lambda target's read margin)."""
REVOKE_COMMIT_SECONDS: Final = 10.0
"""The budget of the commit a revocation makes once its batches are done or abandoned."""
REJOIN_MARGIN_SECONDS: Final = 15.0
"""Rebalance time left to the member after its revocation: rejoining, a slow coordinator."""
DEFAULT_MAX_POLL_INTERVAL_MS: Final = 300_000
"""aiokafka's and Kafka's default, kept as the floor for short function timeouts."""


@dataclass(frozen=True, slots=True)
class GroupTimeouts:
    """How long a revocation may take, and the consumer-group timeouts that leave room for it."""

    revoke_wait_seconds: float
    """Batches in flight on revoked partitions run at most this long before they are abandoned."""
    revoke_commit_seconds: float
    """Then the finished offsets are committed within this."""
    rebalance_timeout_ms: int
    """How long the coordinator waits for the member to rejoin (its revocation included)."""
    max_poll_interval_ms: int
    """aiokafka does not rejoin after a revocation longer than this: it must outlast one too."""

    @property
    def revoke_seconds(self) -> float:
        return self.revoke_wait_seconds + self.revoke_commit_seconds


def group_timeouts(function_timeout_seconds: float, session_timeout_ms: int) -> GroupTimeouts:
    """The revocation budget and group timeouts for a mapping's FunctionTimeout.

    aiokafka's rebalance timeout defaults to the session timeout (10 s): a member whose revocation
    waits longer for a batch in flight is dropped from the group mid-invoke, and the partition is
    processed twice at once. The rebalance timeout (and the poll interval, which aiokafka also
    checks before it rejoins) therefore covers the whole revocation and a margin to rejoin.
    """
    revoke_wait = function_timeout_seconds + INVOKE_OVERRUN_SECONDS
    rebalance_ms = math.ceil((revoke_wait + REVOKE_COMMIT_SECONDS + REJOIN_MARGIN_SECONDS) * 1000)
    rebalance_ms = max(rebalance_ms, session_timeout_ms)
    return GroupTimeouts(
        revoke_wait_seconds=revoke_wait,
        revoke_commit_seconds=REVOKE_COMMIT_SECONDS,
        rebalance_timeout_ms=rebalance_ms,
        max_poll_interval_ms=max(DEFAULT_MAX_POLL_INTERVAL_MS, rebalance_ms),
    )


def mapping_group_timeouts(mapping: KafkaMapping, settings: KafkaSettings) -> GroupTimeouts:
    return group_timeouts(mapping.function_timeout_seconds, settings.session_timeout_ms)


def build_consumer(mapping: KafkaMapping, settings: KafkaSettings, base_dir: Path) -> AIOKafkaConsumer:
    # AT_TIMESTAMP starts from the earliest offset and seeks on assignment (KafkaSource.assigned).
    reset = "latest" if mapping.starting_position == "LATEST" else "earliest"
    timeouts = mapping_group_timeouts(mapping, settings)
    return AIOKafkaConsumer(
        bootstrap_servers=list(mapping.bootstrap_servers),
        group_id=mapping.consumer_group_id,
        enable_auto_commit=False,
        auto_offset_reset=reset,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=settings.session_timeout_ms,
        # Kafka's advice: heartbeat at a third of the session timeout.
        heartbeat_interval_ms=settings.session_timeout_ms // 3,
        rebalance_timeout_ms=timeouts.rebalance_timeout_ms,
        max_poll_interval_ms=timeouts.max_poll_interval_ms,
        **connection_options(settings, base_dir),
    )
