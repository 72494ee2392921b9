"""Reading a template: parameters, conditions, mappings, the sources it creates, plain CloudFormation
functions and mappings, and what cannot run reported by logical id and line (DESIGN §1.10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from poller.api.template_read import read_template
from tests.unit.template_helpers import ACCOUNT, REGION, config, documents, problem_at, read, write_template

PARAMETERS = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    AllowedValues: [dev, prod]
    Default: dev
  BatchSize:
    Type: Number
    Default: 5
  Workers:
    Type: Number
    Default: 4
  Names:
    Type: CommaDelimitedList
    Default: "alpha,beta"
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Mappings:
  Memory:
    dev: {Size: 256}
    prod: {Size: 1024}
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-${Stage}-${AWS::Region}"
  ProdOnly:
    Type: AWS::SQS::Queue
    Condition: IsProd
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      CodeUri: src/
      MemorySize: !FindInMap [Memory, !Ref Stage, Size]
      Timeout: !If [IsProd, 30, 10]
      Environment:
        Variables:
          FIRST: !Select [0, !Ref Names]
          PARTITION: !Ref AWS::Partition
          ACCOUNT: !Ref AWS::AccountId
          DEBUG: !If [IsProd, !Ref AWS::NoValue, "1"]
          WORKERS: !Ref Workers
          PORT: 8080
          VERBOSE: true
      Events:
        Orders:
          Type: SQS
          Properties: {Queue: !GetAtt Q.Arn, BatchSize: !Ref BatchSize}
"""


def test_parameter_defaults_conditions_and_mappings(tmp_path: Path) -> None:
    template = read(tmp_path, PARAMETERS)
    assert template.problems == ()
    assert [(s.logical_id, s.physical_name) for s in template.sources] == [("Q", "shop-dev-us-east-1")]
    loaded = config(template)
    function = loaded.functions["Fn"]
    assert (function.memory_size_mb, function.timeout_seconds) == (256, 10)
    # CloudFormation gives variables as text: a Number parameter's, a number's, a boolean's.
    assert dict(function.environment) == {
        "FIRST": "alpha",
        "PARTITION": "aws",
        "ACCOUNT": ACCOUNT,
        "DEBUG": "1",
        "WORKERS": "4",
        "PORT": "8080",
        "VERBOSE": "true",
    }
    (mapping,) = loaded.mappings
    assert mapping.event_source_arn == f"arn:aws:sqs:us-east-1:{ACCOUNT}:shop-dev-us-east-1"
    assert mapping.batch_size == 5


def test_overrides_win_over_defaults_and_flip_conditions(tmp_path: Path) -> None:
    template = read(tmp_path, PARAMETERS, {"Stage": "prod", "BatchSize": "7", "Names": "x,y"})
    assert sorted(s.logical_id for s in template.sources) == ["ProdOnly", "Q"]
    loaded = config(template)
    function = loaded.functions["Fn"]
    assert (function.memory_size_mb, function.timeout_seconds) == (1024, 30)
    assert dict(function.environment)["FIRST"] == "x"
    assert "DEBUG" not in function.environment
    assert loaded.mappings[0].batch_size == 7


def test_parameter_checks_use_cloudformations_messages(tmp_path: Path) -> None:
    template = read(tmp_path, PARAMETERS, {"Stage": "test", "BatchSize": "many", "Unknown": "1"})
    by_field = {p.field: p for p in template.problems}
    assert (by_field["Parameters.Stage"].line, by_field["Parameters.Stage"].message) == (
        3,
        "Parameter 'Stage' must be one of AllowedValues",
    )
    assert by_field["Parameters.BatchSize"].message == "Parameter 'BatchSize' must be a number."
    unknown = [p for p in template.problems if "Unknown" in p.message]
    assert [p.severity for p in unknown] == ["warning"]


def test_a_parameter_without_a_value_costs_only_what_uses_it(tmp_path: Path) -> None:
    text = PARAMETERS.replace("    Default: 5\n", "").replace(
        "  Names:", "  Unused:\n    Type: String\n  Names:"
    )
    loaded = config(read(tmp_path, text))
    missing = problem_at(loaded.problems, 7)
    assert missing.message.startswith("Parameters: [BatchSize] must have values")
    assert [p.field for p in loaded.problems if p.message.startswith("Parameters: [Unused]")] == [
        "Parameters.Unused"
    ]
    used = [p for p in loaded.problems if p.mapping == "FnOrders"]
    assert [p.field for p in used] == ["BatchSize.Ref"]
    assert "Parameter 'BatchSize' has no value" in used[0].message
    assert "Fn" in loaded.functions
    assert loaded.mappings == ()


def test_sources_with_generated_names_fifo_and_redrive(tmp_path: Path) -> None:
    text = """\
    Resources:
      Dlq:
        Type: AWS::SQS::Queue
        Properties: {FifoQueue: true}
      Work:
        Type: AWS::SQS::Queue
        Properties:
          FifoQueue: true
          VisibilityTimeout: 60
          RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 3}
      Clicks:
        Type: AWS::Kinesis::Stream
        Properties: {Name: clicks, ShardCount: 2}
      Orders:
        Type: AWS::DynamoDB::Table
        Properties:
          TableName: !Sub "${AWS::StackName}-orders"
          StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
    """
    template = read(tmp_path, text)
    sources = {s.logical_id: s for s in template.sources}
    assert {k: (s.type, s.physical_name, s.line) for k, s in sources.items()} == {
        "Dlq": ("AWS::SQS::Queue", "shop-Dlq.fifo", 2),
        "Work": ("AWS::SQS::Queue", "shop-Work.fifo", 5),
        "Clicks": ("AWS::Kinesis::Stream", "clicks", 11),
        "Orders": ("AWS::DynamoDB::Table", "shop-orders", 14),
    }
    assert sources["Work"].properties["RedrivePolicy"] == {
        "deadLetterTargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:shop-Dlq.fifo",
        "maxReceiveCount": 3,
    }
    assert template.attributes()["Orders"]["StreamArn"].endswith(
        "table/shop-orders/stream/1970-01-01T00:00:00.000"
    )


def test_learned_attributes_replace_the_offline_ones(tmp_path: Path) -> None:
    template = read(tmp_path, PARAMETERS)
    real_arn = "arn:aws:sqs:us-east-1:000000000000:shop-dev-us-east-1"
    loaded = config(template, {"Q": {"Arn": real_arn, "QueueUrl": "http://127.0.0.1:1/q"}})
    assert loaded.mappings[0].event_source_arn == real_arn


def test_unknown_resources_and_unresolvable_intrinsics_are_reported_once_and_the_rest_runs(
    tmp_path: Path,
) -> None:
    text = """\
    Transform: AWS::Serverless-2016-10-31
    Resources:
      Q:
        Type: AWS::SQS::Queue
      Bucket:
        Type: AWS::S3::Bucket
      Api:
        Type: AWS::ApiGateway::RestApi
      Role:
        Type: AWS::IAM::Role
      Imported:
        Type: AWS::Serverless::Function
        Properties:
          Runtime: python3.12
          Handler: app.handler
          CodeUri: src/
          Environment:
            Variables: {SHARED: !ImportValue shared-table}
          Events:
            Orders: {Type: SQS, Properties: {Queue: !GetAtt Q.Arn}}
      Fine:
        Type: AWS::Serverless::Function
        Properties:
          Runtime: python3.12
          Handler: app.handler
          CodeUri: src/
          Events:
            Orders: {Type: SQS, Properties: {Queue: !GetAtt Q.Arn, BatchSize: 2}}
            Other: {Type: SQS, Properties: {Queue: !GetAtt Api.Arn}}
      Plain:
        Type: AWS::Lambda::EventSourceMapping
        Properties: {FunctionName: billing, EventSourceArn: !GetAtt Q.Arn}
    """
    template = read(tmp_path, text)
    assert [(p.line, p.field, p.severity) for p in template.problems] == [
        (6, "Bucket", "warning"),
        (8, "Api", "warning"),
    ]
    assert "Resource type AWS::ApiGateway::RestApi is not run by poller" in template.problems[1].message
    loaded = config(template)
    reported = [(p.line, p.function or p.mapping, p.severity) for p in loaded.problems[2:]]
    assert reported == [
        (18, "Imported", "error"),
        (20, "ImportedOrders", "error"),
        (29, "FineOther", "error"),
    ]
    assert "Fn::ImportValue cannot be resolved" in loaded.problems[2].message
    assert "Fn::GetAtt Api.Arn (AWS::ApiGateway::RestApi) cannot be resolved" in loaded.problems[4].message
    assert [(m.name, m.function_name) for m in loaded.mappings] == [
        ("FineOrders", "Fine"),
        ("Plain", "billing"),
    ]
    assert list(loaded.functions) == ["Fine"]


def test_plain_cloudformation_functions_and_mappings(tmp_path: Path) -> None:
    """CloudFormation's names become the API's (spec §4.4); a function named by ARN runs as itself."""
    text = """\
    Resources:
      Inline:
        Type: AWS::Lambda::Function
        Properties:
          Runtime: python3.12
          Handler: index.handler
          Role: arn:aws:iam::123456789012:role/r
          Timeout: 20
          Code:
            ZipFile: |
              def handler(event, context):
                  return {"batchItemFailures": []}
      ToKafka:
        Type: AWS::Lambda::EventSourceMapping
        Properties:
          FunctionName: !GetAtt Inline.Arn
          Topics: [orders]
          SelfManagedEventSource: {Endpoints: {KafkaBootstrapServers: ["k:9092"]}}
          SelfManagedKafkaEventSourceConfig: {ConsumerGroupId: billing}
          StartingPosition: TRIM_HORIZON
          KmsKeyArn: arn:aws:kms:us-east-1:123456789012:key/k
          Tags: [{Key: team, Value: billing}]
    """
    template = read(tmp_path, text)
    assert documents(template)["ToKafka"] == {
        "Name": "ToKafka",
        "FunctionName": "Inline",
        "StartingPosition": "TRIM_HORIZON",
        "Topics": ["orders"],
        "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["k:9092"]}},
        "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "billing"},
        "KMSKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k",
        "Tags": {"team": "billing"},
    }
    loaded = config(template)
    assert [p for p in loaded.problems if p.severity == "error"] == []
    function = loaded.functions["Inline"]
    assert (function.code_uri / "index.py").read_text().startswith("def handler(event, context):")
    assert (function.timeout_seconds, loaded.mappings[0].declared_function) == (20, "Inline")


def test_a_broken_template_is_a_problem_never_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Resources:\n  Q:\n    Type: [unclosed\n")
    template = read_template(path, parameter_overrides={}, region=REGION, account_id=ACCOUNT)
    (problem,) = template.problems
    assert (problem.file, problem.line) == (path, 4)
    assert problem.message.startswith("Invalid YAML")
    assert config(template).problems == template.problems
    missing = read_template(tmp_path / "nope.yaml", parameter_overrides={}, region=REGION, account_id=ACCOUNT)
    assert missing.problems[0].message.startswith("Cannot read template")
    path.write_text("Description: no resources\n")
    empty = read_template(path, parameter_overrides={}, region=REGION, account_id=ACCOUNT)
    assert "Resources section" in empty.problems[0].message


def test_cfn_lint_reports_the_templates_own_mistakes_by_line(tmp_path: Path) -> None:
    text = """\
    Resources:
      Q:
        Type: AWS::SQS::Queue
        Properties:
          VisibilityTimout: 30
    """
    template = read(tmp_path, text, lint=True)
    problem = problem_at(template.problems, 5)
    assert (problem.field, problem.severity) == ("Q", "error")
    assert "'VisibilityTimout' was unexpected" in problem.message
    assert "(cfn-lint E3002)" in problem.message


def test_sam_events_are_judged_by_sam_alone(tmp_path: Path) -> None:
    """cfn-lint's schema tries every event type on a bad event; SAM's one message is kept (spec §4.3)."""
    text = """\
    Transform: AWS::Serverless-2016-10-31
    Resources:
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          Runtime: python3.12
          Handler: app.handler
          CodeUri: src/
          Events:
            Bad:
              Type: SQS
              Properties: {Queue: x, Bogus: 1}
    """
    template = read(tmp_path, text, lint=True)
    assert [(p.line, p.field) for p in template.problems] == [(10, "Fn.Events.Bad")]
    assert "property Bogus not defined for resource of type SQS" in template.problems[0].message


def test_cfn_lints_own_failure_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cfnlint.api  # type: ignore[import-untyped]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("linter bug")

    monkeypatch.setattr(cfnlint.api, "lint", broken)
    template = read(tmp_path, "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n", lint=True)
    assert [(p.severity, p.line) for p in template.problems] == [("warning", None)]
    assert "cfn-lint could not check this template" in template.problems[0].message
    assert [s.logical_id for s in template.sources] == ["Q"]


def test_a_json_template_reads_as_its_yaml_would(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler(event, context):\n    return None\n")
    path = tmp_path / "template.json"
    path.write_text(
        '{\n  "Transform": "AWS::Serverless-2016-10-31",\n  "Resources": {\n'
        '    "Q": {"Type": "AWS::SQS::Queue"},\n'
        '    "Fn": {\n      "Type": "AWS::Serverless::Function",\n      "Properties": {\n'
        '        "Runtime": "python3.12", "Handler": "app.handler", "CodeUri": "src/",\n'
        '        "Events": {"Orders": {"Type": "SQS", "Properties": {\n'
        '          "Queue": {"Fn::GetAtt": ["Q", "Arn"]},\n          "BatchSize": 2000}}}\n'
        "      }\n    }\n  }\n}\n"
    )
    template = read_template(path, parameter_overrides={}, region=REGION, account_id=ACCOUNT, lint=False)
    (problem,) = config(template).problems
    assert (problem.line, problem.mapping, problem.field) == (11, "FnOrders", "BatchSize")


def test_cfn_lint_checks_a_template_for_a_region_it_does_not_know(tmp_path: Path) -> None:
    text = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: {VisibilityTimout: 30}\n"
    path = write_template(tmp_path, text)
    template = read_template(path, parameter_overrides={}, region="local-1", account_id=ACCOUNT)
    (problem,) = template.problems
    assert (problem.line, problem.field, problem.severity) == (4, "Q", "error")


def test_an_unknown_resource_is_said_once_though_cfn_lint_finds_it_too(tmp_path: Path) -> None:
    text = "Resources:\n  M:\n    Type: AWS::Lambda::EventSourceMapping\n    Properties:\n"
    text += "      FunctionName: f\n      EventSourceArn: !GetAtt Nope.Arn\n"
    (problem,) = config(read(tmp_path, text, lint=True)).problems
    assert (problem.line, problem.mapping) == (6, "M")
    assert problem.message.endswith("undefined resource Nope. This mapping is left out.")


def test_a_queue_its_condition_leaves_out_is_named_as_such(tmp_path: Path) -> None:
    text = (
        "Conditions:\n  Never: !Equals [a, b]\nResources:\n  Q: {Type: AWS::SQS::Queue, Condition: Never}\n"
    )
    text += "  M:\n    Type: AWS::Lambda::EventSourceMapping\n"
    text += "    Properties: {FunctionName: f, EventSourceArn: !GetAtt Q.Arn}\n"
    (problem,) = config(read(tmp_path, text)).problems
    assert problem.line == 7
    assert (
        "(AWS::SQS::Queue) cannot be resolved: the resource is not there (its Condition is false"
        in problem.message
    )
