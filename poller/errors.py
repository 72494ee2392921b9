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
    owner = "customer"


class TargetConfigError(PollerError):
    owner = "customer"


class SourceError(PollerError):
    retriable = True
    owner = "environment"


class SourceNotFound(SourceError):
    owner = "customer"


class SourceUnavailable(SourceError):
    pass
