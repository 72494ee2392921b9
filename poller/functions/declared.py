"""From the config layer's `DeclaredFunction` to the `FunctionDefinition` the pool runs.

Config may not import `poller.functions` (DESIGN §2), so the loader produces its own frozen value
with the same fields; this is the one place that turns one into the other.
"""

from __future__ import annotations

from poller.config.functions import DeclaredFunction
from poller.functions.definition import FunctionDefinition


def definition_of(declared: DeclaredFunction) -> FunctionDefinition:
    """The function as the environments see it (where it was declared is the config's business)."""
    return FunctionDefinition(
        name=declared.name,
        runtime=declared.runtime,
        handler=declared.handler,
        code_uri=declared.code_uri,
        memory_size_mb=declared.memory_size_mb,
        timeout_seconds=declared.timeout_seconds,
        environment=declared.environment,
        reserved_concurrency=declared.reserved_concurrency,
        ephemeral_storage_mb=declared.ephemeral_storage_mb,
    )
