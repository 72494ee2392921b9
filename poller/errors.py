"""The exceptions poller raises, and where each one belongs.

    PollerError                    base; never escapes a mapping's supervisor
    ├── ConfigError                a settings or mapping file is wrong (customer's to fix)
    ├── TargetConfigError          FunctionName cannot be turned into a callable target
    └── SourceError                the source cannot be read; `retriable` says whether to retry
        ├── SourceNotFound         the queue/stream/topic does not exist (retried: it may be created)
        └── SourceUnavailable      endpoint unreachable, credentials refused, throttled

Normal results are values (`poller.core.outcome`), not exceptions: a failing function, a
throttled invoke and a partial batch are outcomes. These exceptions are for what stops a mapping
from running at all; its supervisor reports them in /status and retries with backoff.
"""

from __future__ import annotations

from typing import ClassVar, Literal

FaultOwner = Literal["customer", "internal", "environment"]


class PollerError(Exception):
    retriable: ClassVar[bool] = False
    owner: ClassVar[FaultOwner] = "internal"


class ConfigError(PollerError):
    owner: ClassVar[FaultOwner] = "customer"


class TargetConfigError(PollerError):
    owner: ClassVar[FaultOwner] = "customer"


class SourceError(PollerError):
    retriable: ClassVar[bool] = True
    owner: ClassVar[FaultOwner] = "environment"


class SourceNotFound(SourceError):
    owner: ClassVar[FaultOwner] = "customer"


class SourceUnavailable(SourceError):
    pass


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception a task group failed with, out of its group: a `PollerError` if there is one.

    A mapping's task group fails as a whole when one of its tasks raises; the supervisor wants the
    cause, not the wrapper, to report and classify it.
    """
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for leaf in leaves:
        if isinstance(leaf, PollerError):
            return leaf
    return leaves[0] if leaves else group
