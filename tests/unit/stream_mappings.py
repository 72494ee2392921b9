"""A resolved Kinesis mapping for unit tests of the stream source, AWS's defaults unless overridden."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from poller.config import Location, StreamMapping

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
