"""Turning a mapping's `FunctionName` into a `Target` (DESIGN §1.5).

Everything that can be checked without calling the function is checked here, once: a target
that cannot work fails at open with TargetConfigError, never on every invoke.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiobotocore.session
from pydantic import SecretStr
from yarl import URL

from poller.core.redact import redact_url, redact_urls
from poller.errors import TargetConfigError
from poller.targets.base import Target
from poller.targets.context import ContextFactory
from poller.targets.http import HttpTarget
from poller.targets.lambda_invoke import LambdaTarget
from poller.targets.python_handler import PythonTarget

PYTHON_PREFIX = "python:"

# The FunctionName pattern of the Lambda Invoke API: a name, `name:qualifier`, a partial ARN
# (`123456789012:function:name`) or a full ARN, in any partition.
_LAMBDA_FUNCTION_NAME = re.compile(
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?"
    r"(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)


@dataclass(frozen=True, slots=True)
class TargetSpec:
    function_name: str
    """The mapping's FunctionName, as written."""
    mapping_name: str
    """The mapping's Name: the function name a `python:` or HTTP target is known by."""
    timeout_seconds: float
    """FunctionTimeout."""
    region: str
    account_id: str
    endpoint_url: str | None
    """AWS endpoint for the Lambda Invoke target (LocalStack, moto); None for AWS itself."""
    search_paths: tuple[Path, ...] = ()
    """Extra directories for `python:` modules (the settings file's directory)."""
    memory_limit_in_mb: int = 128
    http_headers: Mapping[str, Mapping[str, SecretStr]] = field(default_factory=dict)
    """`targets.http_headers` of the settings: extra headers per `host` or `host:port`."""


def headers_for(url: URL, http_headers: Mapping[str, Mapping[str, SecretStr]]) -> dict[str, SecretStr]:
    """The headers configured for `url`'s host: a `host:port` entry wins over a `host` one.

    The port is the URL's, explicit or the scheme's default, so `api.example.com:443` matches
    `https://api.example.com/fn`. Hosts match case-insensitively; an IPv6 host may be written
    with or without brackets.
    """
    host = (url.host or "").lower()
    by_key = {key.strip().lower(): headers for key, headers in http_headers.items()}
    candidates = [f"{host}:{url.port}", f"[{host}]:{url.port}", host, f"[{host}]"]
    for key in candidates:
        if key in by_key:
            return dict(by_key[key])
    return {}


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def function_arn(spec: TargetSpec) -> str:
    """The ARN poller makes up for a target that is not a Lambda function (DESIGN §1.3)."""
    return (
        f"arn:{_partition(spec.region)}:lambda:{spec.region}:{spec.account_id}:function:{spec.mapping_name}"
    )


def reported_function_arn(spec: TargetSpec) -> str:
    """The `functionArn` of on-failure records: the Lambda function's own ARN for a Lambda target
    (qualifier kept, as the caller wrote it), else the ARN poller makes up for the mapping."""
    name = spec.function_name.strip()
    if name.startswith(PYTHON_PREFIX) or name.lower().startswith(("http://", "https://")):
        return function_arn(spec)
    if name.startswith("arn:"):
        return name
    prefix = f"arn:{_partition(spec.region)}:lambda:{spec.region}:"
    if ":function:" in name:  # partial ARN: 123456789012:function:name[:qualifier]
        return prefix + name
    return f"{prefix}{spec.account_id}:function:{name}"


async def open_target(spec: TargetSpec, session: aiobotocore.session.AioSession | None = None) -> Target:
    """Build the target `spec.function_name` names. Raises TargetConfigError if it cannot work."""
    name = spec.function_name.strip()
    if not name:
        raise TargetConfigError("FunctionName is empty")
    if not spec.timeout_seconds > 0:
        raise TargetConfigError(f"FunctionTimeout must be positive, got {spec.timeout_seconds}")

    if name.startswith(PYTHON_PREFIX):
        contexts = ContextFactory.for_function(
            spec.mapping_name,
            function_arn(spec),
            memory_limit_in_mb=spec.memory_limit_in_mb,
            timeout_seconds=spec.timeout_seconds,
        )
        return await PythonTarget.open(
            name.removeprefix(PYTHON_PREFIX),
            contexts=contexts,
            timeout_seconds=spec.timeout_seconds,
            search_paths=spec.search_paths,
        )

    if name.lower().startswith(("http://", "https://")):
        try:
            url = URL(name)
        except ValueError as exc:
            raise TargetConfigError(
                f"FunctionName '{redact_url(name)}' is not a valid URL: {redact_urls(str(exc))}"
            ) from exc
        if not url.host:
            raise TargetConfigError(f"FunctionName '{redact_url(name)}' has no host")
        headers = headers_for(url, spec.http_headers)
        if (url.user, url.password) != (None, None) and any(h.lower() == "authorization" for h in headers):
            # aiohttp refuses the pair on every request; say so once, here.
            raise TargetConfigError(
                f"FunctionName '{redact_url(name)}' has credentials in the URL and targets.http_headers "
                f"gives an Authorization header for {url.host}: use one or the other"
            )
        return await HttpTarget.open(name, timeout_seconds=spec.timeout_seconds, headers=headers)

    if not _LAMBDA_FUNCTION_NAME.fullmatch(name):
        raise TargetConfigError(
            f"FunctionName '{redact_url(name)}' is not python:package.module.function, an http(s) URL, "
            "a Lambda function name, name:alias or a Lambda function ARN"
        )
    return await LambdaTarget.open(
        name,
        timeout_seconds=spec.timeout_seconds,
        region=spec.region,
        endpoint_url=spec.endpoint_url,
        session=session,
    )
