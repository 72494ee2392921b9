"""The `context` argument a `python:` handler receives, shaped like the Lambda Python runtime's.

Attribute names and types follow `awslambdaric.lambda_context.LambdaContext` (and Powertools'
`LambdaContext` typing), so handlers and libraries written for Lambda read what they expect.
"""

from __future__ import annotations

import secrets
import sys
import time
from dataclasses import dataclass


class CognitoIdentity:
    """The caller's Cognito identity, as the Python runtime shapes it; empty for mappings."""

    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None

    def __repr__(self) -> str:
        return "CognitoIdentity([cognito_identity_id=None,cognito_identity_pool_id=None])"


class LambdaContext:
    """One invocation's context. A plain mutable object, as the real runtime's is."""

    def __init__(
        self,
        *,
        function_name: str,
        invoked_function_arn: str,
        memory_limit_in_mb: str,
        aws_request_id: str,
        log_group_name: str,
        log_stream_name: str,
        deadline_monotonic: float,
        function_version: str = "$LATEST",
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        # A string, not an int: the runtime reads it from AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id
        self.log_group_name = log_group_name
        self.log_stream_name = log_stream_name
        # No Cognito caller, no mobile client context and no tenant: an event-source mapping
        # invokes without any of them. The runtime still gives an identity object whose fields are
        # None, so handlers that read context.identity.cognito_identity_id work unchanged.
        self.identity = CognitoIdentity()
        self.client_context: object | None = None
        self.tenant_id: str | None = None
        self._deadline = deadline_monotonic

    def get_remaining_time_in_millis(self) -> int:
        # Monotonic, unlike the runtime's epoch arithmetic, so a wall-clock step cannot hand a
        # handler extra or negative time.
        remaining = int((self._deadline - time.monotonic()) * 1000)
        return max(remaining, 0)

    def log(self, msg: str) -> None:
        """Write to stdout, as the runtime does when no Lambda log sink is installed."""
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},client_context=None,identity={self.identity!r}])"
        )


@dataclass(frozen=True, slots=True)
class ContextFactory:
    """What every invocation of one target shares; `new` adds the per-invocation parts."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: float
    log_stream_name: str

    @classmethod
    def for_function(
        cls, function_name: str, function_arn: str, *, memory_limit_in_mb: int, timeout_seconds: float
    ) -> ContextFactory:
        # One log stream per target, as Lambda has one per execution environment: a warm
        # handler keeps writing to the stream it was started with.
        stream = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{secrets.token_hex(16)}"
        return cls(function_name, function_arn, memory_limit_in_mb, timeout_seconds, stream)

    def new(self, request_id: str, started_monotonic: float) -> LambdaContext:
        return LambdaContext(
            function_name=self.function_name,
            invoked_function_arn=self.invoked_function_arn,
            memory_limit_in_mb=str(self.memory_limit_in_mb),
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{self.function_name}",
            log_stream_name=self.log_stream_name,
            deadline_monotonic=started_monotonic + self.timeout_seconds,
        )
