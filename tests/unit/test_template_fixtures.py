"""The template fixtures under tests/templates/ (each written for poller's tests in the shape of a
common SAM app, see its README.md), a `sam build` output (spec functions-and-templates §4.8), and
`poller import` output that `poller validate` accepts (DESIGN §1.2, §1.10)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from poller.api.template_commands import run_import
from poller.api.template_read import ReadTemplate, read_template
from poller.config.resolved import SqsMapping, StreamMapping
from poller.config.validate import run_validate
from tests.unit.template_helpers import ACCOUNT, REGION, config

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
APPS = (
    "sqs-partial-batch",
    "kinesis-error-handling",
    "api-and-dynamodb-stream",
    "dynamodb-stream-filters",
)


def read_fixture(name: str, overrides: dict[str, str] | None = None, *, lint: bool = True) -> ReadTemplate:
    return read_template(
        TEMPLATES / name, parameter_overrides=overrides or {}, region=REGION, account_id=ACCOUNT, lint=lint
    )


@pytest.mark.parametrize("name", APPS)
def test_each_app_reads_without_errors(name: str) -> None:
    loaded = config(read_fixture(f"{name}/template.yaml"))
    assert loaded.errors == ()
    assert loaded.mappings
    assert loaded.functions
    for function in loaded.functions.values():
        assert function.code_uri.is_relative_to(TEMPLATES / name)


def test_sqs_partial_batch_responses_redrive_and_globals() -> None:
    """Spec functions-and-templates §4.2, §4.6: the SQS event with ReportBatchItemFailures, the
    redrive policy naming the DLQ's ARN, Globals' Runtime, Timeout and MemorySize."""
    template = read_fixture("sqs-partial-batch/template.yaml", lint=False)
    queues = {s.logical_id: s for s in template.sources}
    dlq = f"arn:aws:sqs:us-east-1:{ACCOUNT}:sqs-partial-batch-OrdersDeadLetterQueue"
    assert queues["OrdersQueue"].properties["RedrivePolicy"] == {
        "deadLetterTargetArn": dlq,
        "maxReceiveCount": 3,
    }
    loaded = config(template)
    (mapping,) = loaded.mappings
    assert isinstance(mapping, SqsMapping)
    assert (mapping.name, mapping.batch_size, mapping.report_batch_item_failures) == (
        "OrderProcessorFunctionOrdersQueueEvent",
        10,
        True,
    )
    assert mapping.declared_function == "OrderProcessorFunction"
    function = loaded.functions["OrderProcessorFunction"]
    assert (function.runtime, function.timeout_seconds, function.memory_size_mb) == ("python3.12", 5, 256)


def test_kinesis_on_failure_destination_and_a_parameter() -> None:
    """Spec §4.3: DestinationConfig.OnFailure's SAM-only Type dropped, its Destination resolved from
    the queue's !GetAtt; the StreamName parameter through !Ref and !Sub."""
    loaded = config(read_fixture("kinesis-error-handling/template.yaml", lint=False))
    (mapping,) = loaded.mappings
    assert isinstance(mapping, StreamMapping)
    assert mapping.on_failure_destination == f"arn:aws:sqs:us-east-1:{ACCOUNT}:sensor-readings-failed"
    assert mapping.event_source_arn == f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/sensor-readings"
    assert (
        mapping.bisect_batch_on_function_error,
        mapping.maximum_retry_attempts,
        mapping.maximum_record_age_seconds,
    ) == (True, 3, 3600)
    function = loaded.functions["ReadingsProcessorFunction"]
    assert dict(function.environment) == {"STREAM_NAME": "sensor-readings"}
    assert (function.timeout_seconds, function.handler) == (10, "readings.lambda_handler")
    overridden = config(
        read_fixture("kinesis-error-handling/template.yaml", {"StreamName": "other"}, lint=False)
    )
    (other,) = overridden.mappings
    assert isinstance(other, StreamMapping)
    assert other.on_failure_destination == f"arn:aws:sqs:us-east-1:{ACCOUNT}:other-failed"


def test_dynamodb_stream_with_an_api_event_and_a_parameter_override() -> None:
    """Issue 16 §3: the Api event is one warning at its own line, by logical id; the stream runs."""
    path = TEMPLATES / "api-and-dynamodb-stream" / "template.yaml"
    template = read_fixture("api-and-dynamodb-stream/template.yaml", {"NotesTableName": "orders"}, lint=False)
    assert [s.physical_name for s in template.sources] == ["orders"]
    (api,) = template.problems
    event_line = path.read_text().splitlines().index("        CreateNote:") + 1
    assert (api.line, api.field, api.severity) == (
        event_line,
        "CreateNoteFunction.Events.CreateNote",
        "warning",
    )
    (mapping,) = config(template).mappings
    assert isinstance(mapping, StreamMapping)
    assert mapping.starting_position == "LATEST"
    assert mapping.event_source_arn.startswith(f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders/stream/")


def test_two_filtered_functions_on_one_stream() -> None:
    """Spec esm-semantics §7: each function's FilterCriteria kept with its own mapping."""
    loaded = config(read_fixture("dynamodb-stream-filters/template.yaml", lint=False))
    patterns = {
        m.name: (m.declared_function, [json.loads(p) for p in m.filter_patterns]) for m in loaded.mappings
    }
    assert patterns == {
        "NewOrderFunctionInsertedOrders": ("NewOrderFunction", [{"eventName": ["INSERT"]}]),
        "DeletedOrderFunctionRemovedOrders": ("DeletedOrderFunction", [{"eventName": ["REMOVE"]}]),
    }
    assert len({m.event_source_arn for m in loaded.mappings}) == 1
    assert {f.runtime for f in loaded.functions.values()} == {"nodejs20.x"}


def test_sam_build_output_runs_the_built_code() -> None:
    """§4.8: CodeUri (and a plain function's Code) relative to the built template; the stale
    Globals.Function.CodeUri loses to each function's own."""
    build = TEMPLATES / "sam-build-output" / ".aws-sam" / "build"
    loaded = config(read_fixture("sam-build-output/.aws-sam/build/template.yaml"))
    assert loaded.errors == ()
    assert {name: f.code_uri for name, f in loaded.functions.items()} == {
        "OrdersFunction": build / "OrdersFunction",
        "AuditFunction": build / "AuditFunction",
    }
    assert dict(loaded.functions["OrdersFunction"].environment) == {"STAGE": "dev"}
    assert {m.name: m.declared_function for m in loaded.mappings} == {
        "OrdersFunctionOrders": "OrdersFunction",
        "AuditMapping": "AuditFunction",
    }
    # The project's directory names the stack, not `build`.
    assert loaded.mappings[0].event_source_arn.endswith(":sam-build-output-OrdersQueue")
    source = config(read_fixture("sam-build-output/template.yaml", lint=False))
    assert source.functions["OrdersFunction"].code_uri == TEMPLATES / "sam-build-output" / "src"


@pytest.mark.parametrize("name", [*APPS, "sam-build-output/.aws-sam/build"])
def test_import_writes_files_that_validate(name: str, tmp_path: Path) -> None:
    out = io.StringIO()
    status = run_import(
        TEMPLATES / name / "template.yaml",
        out_dir=Path("mappings"),
        parameter_overrides={},
        config=None,
        environ={},
        cwd=tmp_path,
        out=out,
    )
    assert status == 0, out.getvalue()
    files = sorted((tmp_path / "mappings").glob("*.yaml"))
    loaded = config(read_fixture(f"{name}/template.yaml", lint=False))
    assert [f.stem for f in files] == sorted(loaded.functions)
    first = files[0].read_text()
    assert first.startswith("# Imported by `poller import` from ")
    assert "(logical ids)" in first.splitlines()[0]
    settings = tmp_path / "poller.yaml"
    settings.write_text(f'aws:\n  account_id: "{ACCOUNT}"\nmappings: [mappings/]\n')
    report = io.StringIO()
    assert run_validate(Path("poller.yaml"), environ={}, cwd=tmp_path, out=report) == 0, report.getvalue()
    summary = report.getvalue().splitlines()[-1]
    expected = f"{len(loaded.mappings)} mapping" + ("s" if len(loaded.mappings) > 1 else "")
    assert summary.startswith(f"{expected} and {len(loaded.functions)} function")
    if "dynamodb" in name:
        assert "placeholder label 1970-01-01T00:00:00.000" in out.getvalue()
