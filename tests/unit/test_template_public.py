"""Real public templates (tests/templates/*/SOURCE.md), a `sam build` output (spec functions-and-templates
§4.8), and `poller import` output that `poller validate` accepts (DESIGN §1.2, §1.10)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from poller.api.template_commands import run_import
from poller.api.template_read import ReadTemplate, read_template
from poller.config.resolved import SqsMapping, StreamMapping
from poller.config.validate import run_validate
from tests.unit.template_helpers import ACCOUNT, REGION, config

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
PUBLIC = (
    "sqs-lambda-python-sam",
    "kinesis-lambda-error-handling",
    "apigw-lambda-dynamodb-stream-lambda",
    "dynamodb-streams-lambda-event-filters",
)


def read_fixture(name: str, overrides: dict[str, str] | None = None, *, lint: bool = True) -> ReadTemplate:
    return read_template(
        TEMPLATES / name, parameter_overrides=overrides or {}, region=REGION, account_id=ACCOUNT, lint=lint
    )


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_template_reads_without_errors(name: str) -> None:
    loaded = config(read_fixture(f"{name}/template.yaml"))
    assert loaded.errors == ()
    assert loaded.mappings
    assert loaded.functions
    for function in loaded.functions.values():
        assert function.code_uri.is_relative_to(TEMPLATES / name)


def test_sqs_partial_batch_responses_and_redrive() -> None:
    template = read_fixture("sqs-lambda-python-sam/template.yaml", lint=False)
    queues = {s.logical_id: s for s in template.sources}
    dlq = f"arn:aws:sqs:us-east-1:{ACCOUNT}:sqs-lambda-python-sam-ProcessingDLQ"
    assert queues["ProcessingQueue"].properties["RedrivePolicy"]["deadLetterTargetArn"] == dlq
    (mapping,) = config(template).mappings
    assert isinstance(mapping, SqsMapping)
    assert (mapping.name, mapping.batch_size, mapping.report_batch_item_failures) == (
        "ProcessorFunctionMySQSEvent",
        10,
        True,
    )
    assert mapping.declared_function == "ProcessorFunction"


def test_kinesis_on_failure_destination() -> None:
    loaded = config(read_fixture("kinesis-lambda-error-handling/template.yaml", lint=False))
    (mapping,) = loaded.mappings
    assert isinstance(mapping, StreamMapping)
    assert mapping.on_failure_destination == f"arn:aws:sqs:us-east-1:{ACCOUNT}:AnomalyDataQueue"
    assert (mapping.bisect_batch_on_function_error, mapping.maximum_retry_attempts) == (True, 5)
    function = loaded.functions["KinesisDataStreamProcessor"]
    assert dict(function.environment) == {"KINESIS_STREAM_NAME": "DataActivityKinesisStream"}
    assert (function.timeout_seconds, function.handler) == (10, "kinesis-consumer-fn.lambda_handler")


def test_dynamodb_stream_with_an_api_event_and_a_parameter_override() -> None:
    template = read_fixture(
        "apigw-lambda-dynamodb-stream-lambda/template.yaml", {"DynamoDBTableName": "orders"}, lint=False
    )
    assert [s.physical_name for s in template.sources] == ["orders"]
    (api,) = template.problems
    assert (api.line, api.field, api.severity) == (21, "ProducerFunction.Events.ApiEvent", "warning")
    (mapping,) = config(template).mappings
    assert mapping.event_source_arn.startswith(f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders/stream/")


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


@pytest.mark.parametrize("name", [*PUBLIC, "sam-build-output/.aws-sam/build"])
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
