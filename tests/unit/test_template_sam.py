"""SAM functions: Globals as aws-sam-translator merges them, and each pull event as the event source
mapping SAM makes (spec functions-and-templates §4.1–§4.3, §4.6; DESIGN §1.10)."""

from __future__ import annotations

from pathlib import Path

from poller.config.resolved import KafkaMapping, SqsMapping, StreamMapping, UnstartableMapping
from tests.unit.template_helpers import ACCOUNT, config, documents, problem_at, read, sam_function

QUEUE_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:shop-Q"
STREAM_ARN = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/shop-S"

GLOBALS = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Handler: app.handler
    Timeout: 7
    MemorySize: 256
    Layers: [arn:aws:lambda:us-east-1:123456789012:layer:g:1]
    Environment:
      Variables: {AA: global, BB: global}
Resources:
  Merged:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      MemorySize: 512
      Layers: [arn:aws:lambda:us-east-1:123456789012:layer:l:1]
      Environment:
        Variables: {BB: local, CC: local}
  Ignored:
    Type: AWS::Serverless::Function
    IgnoreGlobals: [Timeout, Environment, Layers]
    Properties:
      CodeUri: src/
  IgnoredAll:
    Type: AWS::Serverless::Function
    IgnoreGlobals: "*"
    Properties:
      Runtime: python3.11
      Handler: app.handler
      CodeUri: src/
"""


def test_globals_merge_as_sam_merges_them(tmp_path: Path) -> None:
    """§4.6: local wins, Environment.Variables key by key, lists concatenated global first."""
    template = read(tmp_path, GLOBALS)
    merged = {f.logical_id: f for f in template.functions}["Merged"].properties
    assert merged["Layers"] == [
        "arn:aws:lambda:us-east-1:123456789012:layer:g:1",
        "arn:aws:lambda:us-east-1:123456789012:layer:l:1",
    ]
    loaded = config(template)
    functions = loaded.functions
    assert dict(functions["Merged"].environment) == {"AA": "global", "BB": "local", "CC": "local"}
    assert (functions["Merged"].timeout_seconds, functions["Merged"].memory_size_mb) == (7, 512)
    assert (functions["Ignored"].timeout_seconds, dict(functions["Ignored"].environment)) == (3, {})
    assert functions["Ignored"].memory_size_mb == 256
    assert (functions["IgnoredAll"].runtime, functions["IgnoredAll"].memory_size_mb) == ("python3.11", 128)
    layers = [p for p in loaded.problems if p.field == "Layers"]
    assert [(p.function, p.line, p.severity) for p in layers] == [("Merged", 17, "warning")]


def test_a_global_value_is_reported_at_the_globals_line(tmp_path: Path) -> None:
    text = GLOBALS.replace("    Timeout: 7\n", "    Timeout: 7000\n")
    problems = config(read(tmp_path, text)).problems
    timeout = [p for p in problems if p.field == "Timeout"]
    assert {p.function for p in timeout} == {"Merged"}
    assert timeout[0].line == 6
    assert "Member must have value less than or equal to 900" in timeout[0].message


def test_bad_ignore_globals_and_globals_keys_get_sams_messages(tmp_path: Path) -> None:
    text = GLOBALS.replace("[Timeout, Environment, Layers]", "[Timeout, Policies]")
    problem = problem_at(read(tmp_path, text).problems, 22)
    assert (
        "Resource Ignored has invalid resource attribute 'IgnoreGlobals' on item 'Policies'."
        in problem.message
    )
    text = GLOBALS.replace("    Timeout: 7\n", "    FunctionName: x\n")
    problem = problem_at(read(tmp_path, text).problems, 2)
    assert "'FunctionName' is not a supported property of 'Function'." in problem.message


def test_sqs_event_carries_every_property_over(tmp_path: Path) -> None:
    events = """\
    Orders:
      Type: SQS
      Properties:
        Queue: !GetAtt Q.Arn
        BatchSize: 20
        MaximumBatchingWindowInSeconds: 2
        FunctionResponseTypes: [ReportBatchItemFailures]
        FilterCriteria: {Filters: [{Pattern: '{"body": {"kind": ["order"]}}'}]}
        ScalingConfig: {MaximumConcurrency: 5}
        Enabled: false
    """
    template = read(tmp_path, sam_function(events))
    assert documents(template)["FnOrders"] == {
        "Name": "FnOrders",
        "EventSourceArn": QUEUE_ARN,
        "FunctionName": "Fn",
        "Enabled": False,
        "BatchSize": 20,
        "MaximumBatchingWindowInSeconds": 2,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "FilterCriteria": {"Filters": [{"Pattern": '{"body": {"kind": ["order"]}}'}]},
        "ScalingConfig": {"MaximumConcurrency": 5},
    }
    (mapping,) = config(template).mappings
    assert isinstance(mapping, SqsMapping)
    assert (mapping.declared_function, mapping.report_batch_item_failures) == ("Fn", True)
    assert mapping.location.line == 19


def test_kinesis_event_as_sam_writes_it(tmp_path: Path) -> None:
    """§4.2's example: OnFailure.Type is SAM's own and is dropped (§4.3)."""
    events = """\
    K:
      Type: Kinesis
      Properties:
        Stream: !GetAtt S.Arn
        StartingPosition: LATEST
        ParallelizationFactor: 2
        BisectBatchOnFunctionError: true
        MaximumRetryAttempts: 3
        MaximumRecordAgeInSeconds: 3600
        DestinationConfig: {OnFailure: {Type: SQS, Destination: !GetAtt Q.Arn}}
    """
    template = read(tmp_path, sam_function(events))
    assert {m.logical_id: dict(m.properties) for m in template.mappings}["FnK"] == {
        "EventSourceArn": {"Fn::GetAtt": ["S", "Arn"]},
        "StartingPosition": "LATEST",
        "ParallelizationFactor": 2,
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 3,
        "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Q", "Arn"]}}},
    }
    (mapping,) = config(template).mappings
    assert isinstance(mapping, StreamMapping)
    assert (mapping.event_source_arn, mapping.on_failure_destination) == (STREAM_ARN, QUEUE_ARN)
    assert (mapping.parallelization_factor, mapping.bisect_batch_on_function_error) == (2, True)


def test_dynamodb_event_reads_the_tables_stream(tmp_path: Path) -> None:
    events = """\
    D:
      Type: DynamoDB
      Properties: {Stream: !GetAtt T.StreamArn, StartingPosition: TRIM_HORIZON, BatchSize: 50}
    """
    template = read(tmp_path, sam_function(events))
    offline = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/shop-T/stream/1970-01-01T00:00:00.000"
    assert documents(template)["FnD"]["EventSourceArn"] == offline
    real = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/shop-T/stream/2026-12-04T07:00:00.123"
    (mapping,) = config(template, {"T": {"StreamArn": real}}).mappings
    assert (mapping.event_source_arn, mapping.batch_size) == (real, 50)


def test_self_managed_kafka_event_in_the_api_names(tmp_path: Path) -> None:
    """§4.2's example, then CloudFormation's KafkaBootstrapServers renamed as the API spells it (§4.4)."""
    events = """\
    Kafka:
      Type: SelfManagedKafka
      Properties:
        KafkaBootstrapServers: ["b:9092"]
        Topics: [orders]
        ConsumerGroupId: g1
        SourceAccessConfigurations: [{Type: BASIC_AUTH, URI: "arn:aws:secretsmanager:us-east-1:1:secret:x"}]
    """
    template = read(tmp_path, sam_function(events))
    assert {m.logical_id: dict(m.properties) for m in template.mappings}["FnKafka"] == {
        "SelfManagedEventSource": {"Endpoints": {"KafkaBootstrapServers": ["b:9092"]}},
        "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "g1"},
        "SourceAccessConfigurations": [
            {"Type": "BASIC_AUTH", "URI": "arn:aws:secretsmanager:us-east-1:1:secret:x"}
        ],
        "Topics": ["orders"],
    }
    document = documents(template)["FnKafka"]
    assert document["SelfManagedEventSource"] == {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["b:9092"]}}
    (mapping,) = config(template).mappings
    assert isinstance(mapping, KafkaMapping)
    assert (mapping.bootstrap_servers, mapping.topic, mapping.consumer_group_id) == (
        ("b:9092",),
        "orders",
        "g1",
    )


def test_msk_event_is_accepted_and_not_started_as_every_msk_mapping(tmp_path: Path) -> None:
    """An MSK event becomes the mapping SAM makes; poller accepts an MSK-by-ARN mapping as Lambda
    does and reports it as one it cannot run (DESIGN §1.9, spec §1.5), in a template as in a file."""
    events = """\
    Msk:
      Type: MSK
      Properties:
        Stream: arn:aws:kafka:us-east-1:123456789012:cluster/c/abc
        Topics: [orders]
        StartingPosition: LATEST
    """
    loaded = config(read(tmp_path, sam_function(events)))
    assert not loaded.errors
    (mapping,) = [m for m in loaded.mappings if m.name == "FnMsk"]
    assert isinstance(mapping, UnstartableMapping)
    assert mapping.event_source_arn == "arn:aws:kafka:us-east-1:123456789012:cluster/c/abc"
    (warning,) = [p for p in loaded.warnings if p.mapping == "FnMsk"]
    assert warning.line == 22
    assert "will not run" in warning.message


def test_sams_own_validations_and_messages(tmp_path: Path) -> None:
    """§4.3: each bad event reported alone, at its line, in SAM's words; the good one still runs."""
    events = """\
    NoStart:
      Type: Kinesis
      Properties: {Stream: !GetAtt S.Arn}
    Bogus:
      Type: SQS
      Properties: {Queue: !GetAtt Q.Arn, Bogus: 1}
    BadType:
      Type: Kinesis
      Properties:
        Stream: !GetAtt S.Arn
        StartingPosition: LATEST
        DestinationConfig: {OnFailure: {Type: Lambda, Destination: x}}
    Unauthenticated:
      Type: SelfManagedKafka
      Properties: {KafkaBootstrapServers: ["b:9092"], Topics: [orders]}
    Good:
      Type: SQS
      Properties: {Queue: !GetAtt Q.Arn}
    """
    template = read(tmp_path, sam_function(events))
    messages = {p.line: p.message for p in template.problems}
    assert "Missing required property 'StartingPosition'." in messages[19]
    assert "property Bogus not defined for resource of type SQS" in messages[22]
    assert "The only valid values for 'Type' are 'SQS', 'SNS', 'S3', and 'Kafka'" in messages[25]
    assert "No SourceAccessConfigurations for self managed kafka event provided." in messages[31]
    assert {p.field for p in template.problems} == {
        "Fn.Events.NoStart",
        "Fn.Events.Bogus",
        "Fn.Events.BadType",
        "Fn.Events.Unauthenticated",
    }
    assert [m.name for m in config(template).mappings] == ["FnGood"]


def test_other_event_types_are_reported_once_and_the_rest_runs(tmp_path: Path) -> None:
    events = """\
    Api:
      Type: Api
      Properties: {Path: /, Method: post}
    Nightly:
      Type: Schedule
      Properties: {Schedule: rate(1 day)}
    Orders:
      Type: SQS
      Properties: {Queue: !GetAtt Q.Arn}
    """
    loaded = config(read(tmp_path, sam_function(events)))
    warnings = [(p.line, p.field, p.severity) for p in loaded.problems]
    assert warnings == [(19, "Fn.Events.Api", "warning"), (22, "Fn.Events.Nightly", "warning")]
    assert "Event type 'Api' is not run by poller" in loaded.problems[0].message
    assert [m.name for m in loaded.mappings] == ["FnOrders"]


def test_image_functions_are_reported_and_left_out(tmp_path: Path) -> None:
    events = "Orders:\n  Type: SQS\n  Properties: {Queue: !GetAtt Q.Arn}\n"
    template = read(tmp_path, sam_function(events, "PackageType: Image\nImageUri: repo/image:1\n"))
    (problem,) = template.problems
    assert (problem.line, problem.field, problem.severity) == (18, "Fn", "warning")
    assert "PackageType: Image" in problem.message
    assert (template.functions, template.mappings) == ((), ())


def test_a_config_error_points_at_the_template_line(tmp_path: Path) -> None:
    """The config layer's rules and messages (spec esm-semantics §1.6), at the event's property line."""
    events = "Orders:\n  Type: SQS\n  Properties:\n    Queue: !GetAtt Q.Arn\n    BatchSize: 20000\n"
    loaded = config(read(tmp_path, sam_function(events)))
    (problem,) = loaded.problems
    assert str(problem).startswith(f"{tmp_path / 'template.yaml'}:23: Mapping 'FnOrders': BatchSize: ")
    assert loaded.mappings == ()


def test_function_name_is_its_function_name_property_else_its_logical_id(tmp_path: Path) -> None:
    events = "Orders:\n  Type: SQS\n  Properties: {Queue: !GetAtt Q.Arn}\n"
    loaded = config(read(tmp_path, sam_function(events, "FunctionName: !Sub '${AWS::StackName}-orders'\n")))
    assert list(loaded.functions) == ["shop-orders"]
    assert [m.function_name for m in loaded.mappings] == ["shop-orders"]
    assert list(config(read(tmp_path, sam_function(events))).functions) == ["Fn"]


def test_inline_code_is_written_where_lambda_would_put_it(tmp_path: Path) -> None:
    text = sam_function("Orders:\n  Type: SQS\n  Properties: {Queue: !GetAtt Q.Arn}\n").replace(
        "      CodeUri: src/\n",
        "      InlineCode: |\n        def handler(event, context):\n            return 1\n",
    )
    function = config(read(tmp_path, text)).functions["Fn"]
    assert (function.code_uri / "index.py").read_text() == "def handler(event, context):\n    return 1\n"


def test_one_functions_values_never_reach_another(tmp_path: Path) -> None:
    """§4.6: each function merges into its own copy of the Globals."""
    text = GLOBALS.replace(
        "  Ignored:\n",
        "  Other:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n"
        "      Layers: [arn:aws:lambda:us-east-1:123456789012:layer:o:1]\n"
        "      Environment: {Variables: {OO: other}}\n  Ignored:\n",
    )
    functions = {f.logical_id: f.properties for f in read(tmp_path, text).functions}
    assert functions["Other"]["Environment"] == {"Variables": {"AA": "global", "BB": "global", "OO": "other"}}
    assert functions["Other"]["Layers"] == [
        "arn:aws:lambda:us-east-1:123456789012:layer:g:1",
        "arn:aws:lambda:us-east-1:123456789012:layer:o:1",
    ]
    assert functions["Merged"]["Environment"] == {"Variables": {"AA": "global", "BB": "local", "CC": "local"}}
