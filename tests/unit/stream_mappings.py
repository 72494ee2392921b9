"""A resolved Kinesis mapping for unit tests of the stream source, AWS's defaults unless overridden,
and the stream source those tests run over it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from poller.config import Location, StreamMapping
from poller.core.clock import Clock
from poller.dispatch.failures import FailureSender
from poller.dispatch.invoker import Invoker
from poller.observability.metrics import MappingMetrics
from poller.observability.status import MappingStatus
from poller.sources.streams import StreamSource
from poller.sources.streams.api import StreamApi
from poller.state import CheckpointStore

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/s"


def kinesis_mapping(**overrides: Any) -> StreamMapping:
    base = StreamMapping(
        name="m",
        location=Location(None, None),
        source_kind="kinesis",
        event_source_arn=ARN,
        region="us-east-1",
        account_id="123456789012",
        stream_name="s",
        function_name="python:x.y",
        function_timeout_seconds=3,
        enabled=True,
        batch_size=2,
        maximum_batching_window_seconds=0,
        starting_position="TRIM_HORIZON",
        starting_position_timestamp=None,
        parallelization_factor=1,
        bisect_batch_on_function_error=False,
        maximum_retry_attempts=-1,
        maximum_record_age_seconds=-1,
        report_batch_item_failures=False,
        on_failure_destination=None,
    )
    return replace(base, **overrides)


def stream_source(
    resolved: StreamMapping,
    *,
    api: StreamApi,
    target: Any,
    store: CheckpointStore,
    metrics: MappingMetrics,
    status: MappingStatus,
    clock: Clock,
    stopping: asyncio.Event,
    destination: Any = None,
    **options: Any,
) -> StreamSource:
    """A Kinesis source invoking `target`, giving up to `destination`, retrying reads quickly."""
    return StreamSource(
        resolved,
        api=api,
        invoker=Invoker(
            target=target,
            metrics=metrics,
            source_kind="kinesis",
            report_batch_item_failures=resolved.report_batch_item_failures,
        ),
        store=store,
        failures=FailureSender(
            mapping_name=resolved.name,
            destination=destination,
            function_arn="arn",
            metrics=metrics,
            clock=clock,
            stopping=stopping,
        ),
        metrics=metrics,
        status=status,
        clock=clock,
        stopping=stopping,
        read_backoff=lambda failures: 0.01 * failures,
        **options,
    )
