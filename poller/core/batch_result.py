"""How a batch came out, decided from the invoke outcome and the response body (spec §4).

This is Lambda's classification table of §4.2, applied in order. An item identifier that is
missing, empty, null, not a string or not in the batch makes the *whole* batch a failure, as AWS
does; without `ReportBatchItemFailures` the body is ignored and any successful invoke succeeds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import orjson

from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded, TimedOut


@dataclass(frozen=True, slots=True)
class BatchSucceeded:
    """Every record succeeded (or the response asked for nothing to be retried)."""


@dataclass(frozen=True, slots=True)
class BatchPartiallyFailed:
    """Only `failed_ids` failed, in the order the function listed them, without repeats."""

    failed_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchFailed:
    """The whole batch failed: a function error, a timeout, or an unusable partial response."""

    reason: str


@dataclass(frozen=True, slots=True)
class BatchNotInvoked:
    """The batch never reached the function; it does not count as an attempt."""

    outcome: NotInvoked


BatchResult = BatchSucceeded | BatchPartiallyFailed | BatchFailed | BatchNotInvoked

IdentifierReader = Callable[[object], str | None]
"""Turns one `itemIdentifier` value into the batch's id for it, or None when it is unusable."""


def string_identifier(value: object) -> str | None:
    """SQS, Kinesis and DynamoDB: a non-empty string (spec §4.2)."""
    return value if isinstance(value, str) and value else None


def classify(
    outcome: InvokeOutcome,
    batch_ids: Collection[str],
    *,
    report_batch_item_failures: bool,
    identifier: IdentifierReader = string_identifier,
) -> BatchResult:
    """Turn one invoke outcome into a batch result for a batch whose item ids are `batch_ids`."""
    match outcome:
        case NotInvoked():
            return BatchNotInvoked(outcome)
        case TimedOut():
            return BatchFailed(outcome.error_message)
        case FunctionFailed():
            return BatchFailed(f"{outcome.error_type}: {outcome.error_message}")
        case Succeeded(payload=payload):
            if not report_batch_item_failures:
                return BatchSucceeded()
            return parse_partial_response(payload, batch_ids, identifier=identifier)


def parse_partial_response(
    payload: bytes, batch_ids: Collection[str], *, identifier: IdentifierReader = string_identifier
) -> BatchResult:
    """Apply the `batchItemFailures` rules of spec §4.2 to a successful function's response."""
    if not payload.strip():
        return BatchSucceeded()
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return BatchFailed("function response is not valid JSON")
    if body is None or body in ("", [], {}):
        return BatchSucceeded()
    if not isinstance(body, dict):
        return BatchFailed("function response is not a batchItemFailures object")
    failures = body.get("batchItemFailures")
    if failures is None or failures == []:
        return BatchSucceeded()
    if not isinstance(failures, list):
        return BatchFailed("batchItemFailures is not a list")
    failed: dict[str, None] = {}
    for entry in failures:
        if not isinstance(entry, dict) or "itemIdentifier" not in entry:
            return BatchFailed("a batchItemFailures entry has no itemIdentifier")
        item = identifier(entry["itemIdentifier"])
        if item is None:
            return BatchFailed(f"itemIdentifier {entry['itemIdentifier']!r} is empty or malformed")
        if item not in batch_ids:
            return BatchFailed(f"itemIdentifier {entry['itemIdentifier']!r} is not in the batch")
        failed[item] = None
    return BatchPartiallyFailed(tuple(failed))
