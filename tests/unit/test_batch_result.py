"""spec §4.2: the partial batch response classification table, row by row."""

from __future__ import annotations

import pytest

from poller.core.batch_result import (
    BatchFailed,
    BatchNotInvoked,
    BatchPartiallyFailed,
    BatchSucceeded,
    classify,
    parse_partial_response,
)
from poller.core.outcome import FunctionFailed, NotInvoked, Succeeded, TimedOut

IDS = ("m1", "m2", "m3")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  ",
        b"null",
        b'""',
        b"{}",
        b"[]",
        b'{"batchItemFailures": []}',
        b'{"batchItemFailures": null}',
        b'{"statusCode": 200}',
    ],
)
def test_success_variants(body: bytes) -> None:
    assert parse_partial_response(body, IDS) == BatchSucceeded()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"batchItemFailures": [{"foo": "notvalid"}]}',
        b'{"batchItemFailures": [{"itemIdentifier": ""}]}',
        b'{"batchItemFailures": [{"itemIdentifier": null}]}',
        b'{"batchItemFailures": [{"itemIdentifier": 123}]}',
        b'{"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}',
        b'{"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "zz"}]}',
        b'{"batchItemFailures": "m1"}',
        b'{"batchItemFailures": ["m1"]}',
        b'"a string"',
        b"42",
    ],
)
def test_complete_failure_variants(body: bytes) -> None:
    assert isinstance(parse_partial_response(body, IDS), BatchFailed)


def test_valid_list_fails_only_listed_ids_once_each_in_listed_order() -> None:
    body = (
        b'{"batchItemFailures": [{"itemIdentifier": "m3"}, {"itemIdentifier": "m1"},'
        b' {"itemIdentifier": "m3"}]}'
    )
    assert parse_partial_response(body, IDS) == BatchPartiallyFailed(("m3", "m1"))


def test_response_is_ignored_without_report_batch_item_failures() -> None:
    outcome = Succeeded(b'{"batchItemFailures": [{"itemIdentifier": "m1"}]}')
    assert classify(outcome, IDS, report_batch_item_failures=False) == BatchSucceeded()
    assert classify(outcome, IDS, report_batch_item_failures=True) == BatchPartiallyFailed(("m1",))


def test_function_error_fails_the_whole_batch_whatever_the_body() -> None:
    outcome = FunctionFailed("Boom", "bad", payload=b'{"batchItemFailures": []}')
    assert classify(outcome, IDS, report_batch_item_failures=True) == BatchFailed("Boom: bad")


def test_timeout_is_a_failure_and_throttle_is_not_an_attempt() -> None:
    assert classify(TimedOut(3.0), IDS, report_batch_item_failures=True) == BatchFailed(
        "Task timed out after 3.00 seconds"
    )
    throttled = NotInvoked("throttled", "429", 2.0)
    assert classify(throttled, IDS, report_batch_item_failures=True) == BatchNotInvoked(throttled)
