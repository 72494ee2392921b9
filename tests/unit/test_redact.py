"""URLs in /status and in logs lose their credentials (poller.core.redact), and the per-host
headers of `targets.http_headers` are picked for the right target (poller.targets.factory)."""

from __future__ import annotations

import io

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from yarl import URL

from poller.core.redact import redact_url, redact_urls
from poller.errors import TargetConfigError
from poller.observability.metrics import Metrics
from poller.observability.status import MappingStatus, ReloadStatus
from poller.runtime.status_command import format_status
from poller.targets.factory import TargetSpec, headers_for, open_target


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@host:8080/fn", "http://***@host:8080/fn"),
        ("https://token@host/fn", "https://***@host/fn"),
        ("http://:pass@host/fn", "http://***@host/fn"),
        ("http://user:p@ss@host/fn", "http://***@host/fn"),  # a raw `@` in the password
        ("https://host/fn?token=abc&region=eu", "https://host/fn?token=***&region=***"),
        ("https://host/fn?abc123", "https://host/fn?***"),  # a bare value may be a token
        ("https://host/fn?token=", "https://host/fn?token=***"),
        ("https://host/fn?", "https://host/fn?"),
        ("https://host/cb#access_token=abc", "https://host/cb#***"),
        ("http://u:p@[::1]:9000/fn?k=v#f", "http://***@[::1]:9000/fn?k=***#***"),
        ("https://host:8443/a/b", "https://host:8443/a/b"),  # nothing secret: unchanged
        ("python:orders.handler", "python:orders.handler"),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:f:live",
            "arn:aws:lambda:us-east-1:123456789012:function:f:live",
        ),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_urls_masks_every_url_in_a_text_and_nothing_else() -> None:
    text = (
        "FunctionName 'http://u:secret@h/fn?token=t0k' is not a valid URL; "
        'function (" https://other:pw@x/y ") and kafka://k:pw@broker:9092 at 10:30 user:name@host'
    )
    assert redact_urls(text) == (
        "FunctionName 'http://***@h/fn?token=***' is not a valid URL; "
        'function (" https://***@x/y ") and kafka://***@broker:9092 at 10:30 user:name@host'
    )


def _status(function_name: str, reason: str = "") -> MappingStatus:
    metrics = Metrics(CollectorRegistry()).for_mapping("m")
    return MappingStatus(
        name="m",
        source_kind="sqs",
        event_source="arn:aws:sqs:us-east-1:123456789012:q",
        function_name=function_name,
        metrics=metrics,
        state_transition_reason=reason,
    )


def test_status_document_shows_function_name_and_reasons_without_credentials() -> None:
    status = _status("https://user:hunter2@fn.example.com/invoke?token=t0k", "")
    status.failing("FunctionName 'https://user:hunter2@fn.example.com/invoke?token=t0k' has no host")
    document = status.as_json()
    assert document["FunctionName"] == "https://***@fn.example.com/invoke?token=***"
    assert "hunter2" not in str(document)
    assert "t0k" not in str(document)
    reload = ReloadStatus(
        ok=False, trigger="watch", at="now", problems=('m.yaml:3: function (" http://u:hunter2@h/ ")',)
    )
    assert "hunter2" not in str(reload.as_json())


def test_status_command_masks_urls_a_service_reports() -> None:
    document = {
        "ready": False,
        "mappings": [
            {
                "Name": "m",
                "Source": "sqs",
                "State": "Creating",
                "StateTransitionReason": "bad http://u:hunter2@h/",
            }
        ],
        "reload": {"ok": False, "trigger": "watch", "at": "now", "problems": ["x: http://h/?token=hunter2"]},
    }
    out = format_status(document)
    assert "hunter2" not in out
    assert "http://***@h/" in out
    assert "token=***" in out


TABLE = {
    "fn.example.com": {"Authorization": SecretStr("Bearer host-only")},
    "fn.example.com:8443": {"Authorization": SecretStr("Bearer host-and-port")},
    "[::1]:9000": {"X-Key": SecretStr("v6")},
    "Upper.Example.COM": {"X-Key": SecretStr("upper")},
}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://fn.example.com:8443/x", {"Authorization": "Bearer host-and-port"}),
        ("https://fn.example.com/x", {"Authorization": "Bearer host-only"}),  # :443 has no entry
        ("http://fn.example.com:8080/x", {"Authorization": "Bearer host-only"}),
        ("http://[::1]:9000/x", {"X-Key": "v6"}),
        ("http://upper.example.com/x", {"X-Key": "upper"}),
        ("http://other.example.com/x", {}),
        ("http://sub.fn.example.com/x", {}),  # a host entry is that host, not its subdomains
    ],
)
def test_headers_for_prefers_host_and_port_then_host(url: str, expected: dict[str, str]) -> None:
    headers = headers_for(URL(url), TABLE)
    assert {name: value.get_secret_value() for name, value in headers.items()} == expected


def test_headers_for_matches_the_default_port() -> None:
    table = {"fn.example.com:443": {"A": SecretStr("tls")}, "fn.example.com": {"A": SecretStr("any")}}
    assert headers_for(URL("https://fn.example.com/x"), table)["A"].get_secret_value() == "tls"
    assert headers_for(URL("http://fn.example.com/x"), table)["A"].get_secret_value() == "any"


def _spec(function_name: str, headers: dict[str, dict[str, SecretStr]] | None = None) -> TargetSpec:
    return TargetSpec(
        function_name=function_name,
        mapping_name="m",
        timeout_seconds=3,
        region="us-east-1",
        account_id="123456789012",
        endpoint_url=None,
        http_headers=headers or {},
    )


async def test_target_config_errors_do_not_quote_credentials() -> None:
    with pytest.raises(TargetConfigError) as raised:
        await open_target(_spec("http://user:hunter2@/fn?token=t0k"))
    assert "hunter2" not in str(raised.value)
    assert "t0k" not in str(raised.value)
    with pytest.raises(TargetConfigError) as raised:
        await open_target(_spec("ftp://user:hunter2@host/fn"))
    assert "hunter2" not in str(raised.value)


async def test_url_credentials_and_an_authorization_header_are_refused_at_open() -> None:
    headers = {"h.example.com": {"authorization": SecretStr("Bearer x")}}
    with pytest.raises(TargetConfigError, match="use one or the other") as raised:
        await open_target(_spec("http://user:hunter2@h.example.com/fn", headers))
    assert "hunter2" not in str(raised.value)


def test_status_text_never_shows_a_header_value() -> None:
    """The Settings that hold the headers print their values masked."""
    from poller.config.settings import TargetSettings

    settings = TargetSettings(http_headers={"h": {"Authorization": "Bearer hunter2"}})
    sink = io.StringIO()
    print(settings, repr(settings), settings.model_dump(), file=sink)
    assert "hunter2" not in sink.getvalue()
    assert "**********" in sink.getvalue()
