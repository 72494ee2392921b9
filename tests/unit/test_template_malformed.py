"""A template's mistakes are problems, never a traceback (DESIGN §1.10, §3: "bad input gets a clear
error"), whatever shape they take; the rest of the template still runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from poller.api.template_read import read_template
from tests.unit.template_helpers import ACCOUNT, config, read

QUEUE = "  Good: {Type: AWS::SQS::Queue}\n"

MALFORMED = {
    "mapping properties a list": (
        "Resources:\n  M:\n    Type: AWS::Lambda::EventSourceMapping\n    Properties: [1, 2]\n",
        "Properties must be a mapping.",
    ),
    "events a list": (
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events: [1]\n",
        "Events must be a mapping of events.",
    ),
    "an event without a type": (
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events: {E: 5}\n",
        "An event is a mapping with a Type",
    ),
    "globals a list": ("Globals: [1]\nResources:\n", "'Globals' section is invalid."),
    "a globals section not a mapping": (
        "Globals: {Function: 3}\nResources:\n",
        "Value of ${section} must be a dictionary",
    ),
    "ignore globals a mapping": (
        "Globals: {Function: {Timeout: 3}}\nResources:\n  F: {Type: AWS::Serverless::Function, IgnoreGlobals: {a: 1}}\n",
        "Resource F has invalid resource attribute 'IgnoreGlobals'.",
    ),
    "parameters a list": (
        "Parameters: [1]\nResources:\n",
        "Parameters must be a mapping of parameter names.",
    ),
    "a broken get_att": (
        "Resources:\n  Q: {Type: AWS::SQS::Queue, Properties: {RedrivePolicy: !GetAtt [a]}}\n",
        "Fn::GetAtt takes [LogicalId, Attribute]",
    ),
    "a resource without a type": ("Resources:\n  R: 7\n", "A resource is a mapping with a Type."),
    "an s3 code location": (
        "Resources:\n  F:\n    Type: AWS::Lambda::Function\n"
        "    Properties: {Code: {S3Bucket: b, S3Key: k}, Runtime: python3.12, Handler: a.b}\n",
        "S3 locations are not supported",
    ),
    "a sub of numbers": (
        "Resources:\n  M:\n    Type: AWS::Lambda::EventSourceMapping\n"
        "    Properties: {FunctionName: f, EventSourceArn: !Sub [1, 2]}\n",
        "Fn::Sub takes a string, or [string, {variables}].",
    ),
    "endpoints not a mapping": (
        "Resources:\n  M:\n    Type: AWS::Lambda::EventSourceMapping\n"
        "    Properties: {FunctionName: f, Topics: [orders], SelfManagedEventSource: {Endpoints: 3}}\n",
        "Input should be a valid dictionary",
    ),
    "a pattern that is no regular expression": (
        "Parameters: {P: {Type: String, Default: x, AllowedPattern: '['}}\nResources:\n",
        "Parameter 'P' has an AllowedPattern that is not a regular expression",
    ),
    "a parameter outside its pattern": (
        "Parameters: {P: {Type: String, Default: x, AllowedPattern: '[0-9]+'}}\nResources:\n",
        "Parameter 'P' must match pattern [0-9]+",
    ),
    "conditions that loop": (
        "Conditions: {A: !Condition B, B: !Condition A}\nResources:\n  Q: {Type: AWS::SQS::Queue, Condition: A}\n",
        "Condition 'A' depends on itself.",
    ),
    "a select index past any number": (
        "Resources:\n  M:\n    Type: AWS::Lambda::EventSourceMapping\n"
        "    Properties: {FunctionName: f, EventSourceArn: !Select [.inf, [a]]}\n",
        "Fn::Select index inf is not a number.",
    ),
    "a condition that is no condition": (
        "Conditions: {C: [1]}\nResources:\n",
        "A condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not or a Condition.",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_templates_are_problems_and_the_rest_runs(case: str, tmp_path: Path) -> None:
    text, words = MALFORMED[case]
    loaded = config(read(tmp_path, text + QUEUE))
    assert any(words in p.message for p in loaded.problems), [str(p) for p in loaded.problems]
    assert all(p.line is not None for p in loaded.problems if words in p.message)
    assert "Good" in {s.logical_id for s in read(tmp_path, text + QUEUE).sources}


@pytest.mark.parametrize("case", ["not utf-8", "a directory", "resources a list", "missing"])
def test_a_file_that_is_no_template_is_one_problem_naming_it(case: str, tmp_path: Path) -> None:
    """DESIGN §1.10: what cannot be read is reported, by file, never as a traceback."""
    path = tmp_path / "template.yaml"
    if case == "not utf-8":
        path.write_bytes(b"Resources:\n  Q: {Type: AWS::SQS::Queue}\n  \xff\xfe: 1\n")
    elif case == "a directory":
        path.mkdir()
    elif case == "resources a list":
        path.write_text("Resources: [1, 2]\n")
    result = read_template(path, parameter_overrides={}, region="us-east-1", account_id=ACCOUNT)
    (problem,) = result.problems
    assert problem.severity == "error"
    assert problem.file == path
    assert not result.sources
