"""The one log line per batch attempt never carries what the function sent (DESIGN §1.8).

The targets here are fakes that return outcomes built the way the real targets build them
(`classify_response` is the HTTP target's own classification).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from poller.core.outcome import FunctionFailed, InvokeOutcome, NotInvoked, Succeeded, TimedOut
from poller.dispatch.invoker import Invoker
from poller.observability.metrics import Metrics
from poller.targets.http import classify_response

MARKER = "card-4111-1111-1111-1111"


class FixedTarget:
    kind = "http"

    def __init__(self, outcome: InvokeOutcome) -> None:
        self.outcome = outcome

    async def invoke(self, payload: bytes) -> InvokeOutcome:
        return self.outcome

    async def aclose(self) -> None:
        return None


async def attempt_log(outcome: InvokeOutcome, *, partial: bool = False) -> MutableMapping[str, Any]:
    invoker = Invoker(
        target=FixedTarget(outcome),
        metrics=Metrics(CollectorRegistry()).for_mapping("m"),
        source_kind="sqs",
        report_batch_item_failures=partial,
    )
    with capture_logs() as logs:
        await invoker.invoke(b"{}", ["id-1"], attempt=1, log_fields={"mapping": "m"})
    [line] = [entry for entry in logs if entry["event"] == "batch_attempt"]
    return line


def reply(status: int, body: bytes, **headers: str) -> InvokeOutcome:
    return classify_response(status, CIMultiDictProxy(CIMultiDict(headers)), body, timeout_seconds=3)


async def test_a_function_error_logs_its_type_and_size_not_its_message() -> None:
    body = orjson.dumps({"errorType": "ValueError", "errorMessage": f"bad record {MARKER}", "stackTrace": []})
    line = await attempt_log(reply(200, body, **{"X-Amz-Function-Error": "Unhandled"}))
    assert MARKER not in str(line)
    assert line["outcome"] == "error"
    assert line["error_type"] == "ValueError"
    assert line["error_bytes"] == len(body)


async def test_an_error_page_logs_its_status_and_size_not_its_text() -> None:
    body = f"<html>Internal error while handling {MARKER}</html>".encode()
    line = await attempt_log(reply(500, body))
    assert MARKER not in str(line)
    assert (line["error_type"], line["error_bytes"]) == ("HTTP500", len(body))


async def test_a_timeout_logs_the_engine_wording_only() -> None:
    line = await attempt_log(TimedOut(2.0, detail=f"RequestId: r Error: {MARKER}"))
    assert MARKER not in str(line)
    assert line["error_type"] == "Sandbox.Timedout"
    assert line["error"] == "Task timed out after 2.00 seconds"


async def test_an_unusable_partial_response_logs_the_reason_and_the_size() -> None:
    body = orjson.dumps({"batchItemFailures": "not a list", "note": MARKER})
    line = await attempt_log(Succeeded(body), partial=True)
    assert MARKER not in str(line)
    assert line["error"] == "batchItemFailures is not a list"
    assert line["response_bytes"] == len(body)


@pytest.mark.parametrize(
    "outcome",
    [
        NotInvoked("unreachable", "InvalidURL: http://user:hunter2@host/fn?token=hunter2"),
        FunctionFailed(
            error_type="ConnectionError",
            error_message='Connection was closed before a valid response from "http://u:hunter2@h/?k=hunter2"',
            status_code=0,
        ),
    ],
)
async def test_engine_texts_are_kept_without_url_credentials(outcome: InvokeOutcome) -> None:
    line = await attempt_log(outcome)
    assert "hunter2" not in str(line)
    assert "***@h" in line["error"]


async def test_masking_happens_before_the_text_is_cut() -> None:
    # The line reads "unreachable: xxx… http://user:hunter2@host": the 300-character cut falls just
    # before the `@`, so cutting first would leave a password that no longer looks like one.
    detail = "x" * (300 - len("unreachable: ") - len(" http://user:hunter2")) + " http://user:hunter2@host/fn"
    line = await attempt_log(NotInvoked("unreachable", detail))
    assert "hunter2" not in line["error"]
    assert len(line["error"]) <= 300
