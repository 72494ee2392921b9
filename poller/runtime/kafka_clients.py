"""Kafka consumers built from the shared `kafka:` settings (DESIGN §1.3): servers from the mapping,
credentials and TLS from the settings, never from the mapping file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def build_consumer(mapping: KafkaMapping, settings: KafkaSettings, base_dir: Path) -> AIOKafkaConsumer:
    # AT_TIMESTAMP starts from the earliest offset and seeks on assignment (KafkaSource.assigned).
    reset = "latest" if mapping.starting_position == "LATEST" else "earliest"
    return AIOKafkaConsumer(
        bootstrap_servers=list(mapping.bootstrap_servers),
        group_id=mapping.consumer_group_id,
        enable_auto_commit=False,
        auto_offset_reset=reset,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=settings.session_timeout_ms,
        # Kafka's advice: heartbeat at a third of the session timeout.
        heartbeat_interval_ms=settings.session_timeout_ms // 3,
        **connection_options(settings, base_dir),
    )
