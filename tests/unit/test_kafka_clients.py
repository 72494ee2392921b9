"""Kafka connection options come from the `kafka:` settings, secrets included (DESIGN §1.3)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from poller.config.settings import KafkaSettings
from poller.errors import ConfigError
from poller.runtime.kafka_clients import connection_options


def test_plaintext_has_no_credentials() -> None:
    options = connection_options(KafkaSettings(), Path("/etc/poller"))
    assert options == {"client_id": "poller", "security_protocol": "PLAINTEXT"}


def test_sasl_scram_passes_the_secret_to_the_client_only() -> None:
    settings = KafkaSettings.model_validate(
        {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "poller",
            "sasl_password": "s3cret",
        }
    )
    options = connection_options(settings, Path("/etc/poller"))
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "poller"
    assert options["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(settings)


def test_tls_without_files_trusts_the_system_store() -> None:
    options = connection_options(KafkaSettings(security_protocol="SSL"), Path("/etc/poller"))
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_tls_files_are_relative_to_the_settings_file(tmp_path: Path) -> None:
    settings = KafkaSettings.model_validate({"security_protocol": "SSL", "ssl_cafile": "certs/ca.pem"})
    with pytest.raises(ConfigError, match=f"kafka.ssl_cafile: no such file: {tmp_path / 'certs' / 'ca.pem'}"):
        connection_options(settings, tmp_path)
