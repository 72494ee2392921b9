"""CloudFormation's intrinsic functions, resolved as CloudFormation resolves them (DESIGN §1.10)."""

from __future__ import annotations

from typing import Any

import pytest

from poller.api.template_intrinsics import (
    NO_VALUE,
    Scope,
    Unresolved,
    condition_value,
    pseudo_parameters,
    resolve,
)
from poller.config.yaml_lines import KeyPath

QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:orders"


def scope(**conditions: bool) -> Scope:
    def condition(name: str, path: KeyPath) -> bool:
        if name not in conditions:
            raise Unresolved(f"Condition '{name}' is not defined in Conditions.", path)
        return conditions[name]

    return Scope(
        parameters={"Stage": "prod", "Size": 5, "Names": ["a", "b", "c"]},
        pseudo=pseudo_parameters("eu-west-1", "123456789012", "shop"),
        mappings={"Sizes": {"prod": {"Batch": 10}, "dev": {"Batch": 1}}},
        attributes={"Q": {"Ref": "https://sqs/q", "Arn": QUEUE_ARN, "QueueName": "orders"}},
        resource_types={"Q": "AWS::SQS::Queue", "Api": "AWS::Serverless::Api"},
        condition=condition,
        unset_parameters={"Secret": "Parameters: [Secret] must have values"},
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "Stage"}, "prod"),
        ({"Ref": "Size"}, 5),
        ({"Ref": "AWS::Region"}, "eu-west-1"),
        ({"Ref": "AWS::AccountId"}, "123456789012"),
        ({"Ref": "AWS::StackName"}, "shop"),
        ({"Ref": "AWS::Partition"}, "aws"),
        ({"Ref": "AWS::URLSuffix"}, "amazonaws.com"),
        ({"Ref": "Q"}, "https://sqs/q"),
        ({"Fn::GetAtt": ["Q", "Arn"]}, QUEUE_ARN),
        ({"Fn::GetAtt": ["Q", {"Ref": "AWS::NoValue"}]}, None),
        ({"Fn::Sub": "${AWS::StackName}-${Stage}-${Q.QueueName}"}, "shop-prod-orders"),
        ({"Fn::Sub": ["${Who}:${Size}", {"Who": {"Ref": "Stage"}}]}, "prod:5"),
        ({"Fn::Sub": "${!Literal}-${Stage}"}, "${Literal}-prod"),
        ({"Fn::Join": ["-", ["a", {"Ref": "Stage"}, 1]]}, "a-prod-1"),
        ({"Fn::Join": [",", {"Ref": "Names"}]}, "a,b,c"),
        ({"Fn::Select": ["1", {"Ref": "Names"}]}, "b"),
        ({"Fn::Split": ["/", "a/b/c"]}, ["a", "b", "c"]),
        ({"Fn::Select": [3, {"Fn::Split": [":", QUEUE_ARN]}]}, "eu-west-1"),
        ({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Batch"]}, 10),
        ({"Fn::FindInMap": ["Sizes", "test", "Batch", {"DefaultValue": 3}]}, 3),
        ({"Fn::If": ["IsProd", "yes", "no"]}, "yes"),
        ({"Fn::If": ["IsDev", "yes", "no"]}, "no"),
        ({"Fn::Equals": [{"Ref": "Size"}, "5"]}, True),
        ({"Fn::Base64": {"Ref": "Stage"}}, "cHJvZA=="),
    ],
)
def test_each_intrinsic_resolves(value: Any, expected: Any) -> None:
    if expected is None:
        with pytest.raises(Unresolved):
            resolve(value, scope(IsProd=True, IsDev=False))
        return
    assert resolve(value, scope(IsProd=True, IsDev=False)) == expected


def test_no_value_removes_the_key_or_the_item() -> None:
    value = {
        "Keep": 1,
        "Drop": {"Ref": "AWS::NoValue"},
        "Maybe": {"Fn::If": ["IsDev", 2, {"Ref": "AWS::NoValue"}]},
        "List": ["a", {"Ref": "AWS::NoValue"}, "b"],
    }
    assert resolve(value, scope(IsDev=False)) == {"Keep": 1, "List": ["a", "b"]}
    assert resolve({"Ref": "AWS::NoValue"}, scope()) is NO_VALUE


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"Fn::Equals": [{"Ref": "Stage"}, "prod"]}, True),
        ({"Fn::And": [{"Condition": "A"}, {"Fn::Not": [{"Condition": "B"}]}]}, True),
        ({"Fn::Or": [{"Condition": "B"}, {"Fn::Equals": ["x", "y"]}]}, False),
        ({"Fn::Not": [{"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}]}, True),
    ],
)
def test_conditions(expression: Any, expected: bool) -> None:
    assert condition_value(expression, scope(A=True, B=False), ("Conditions", "X")) is expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"Fn::ImportValue": "shared-queue-arn"}, "Fn::ImportValue cannot be resolved"),
        ({"Fn::GetAZs": ""}, "Fn::GetAZs cannot be resolved"),
        ({"Fn::GetAtt": ["Api", "RootResourceId"]}, "Fn::GetAtt Api.RootResourceId (AWS::Serverless::Api)"),
        ({"Fn::GetAtt": ["Q", "Bogus"]}, "has no attribute Bogus"),
        ({"Ref": "Nowhere"}, "Unresolved resource dependencies [Nowhere]"),
        ({"Fn::Sub": "${Nowhere.Arn}"}, "undefined resource Nowhere"),
        ({"Ref": "Secret"}, "Parameter 'Secret' has no value"),
        ({"Fn::FindInMap": ["Sizes", "test", "Batch"]}, "key 'test' not found in Mappings"),
        ({"Fn::If": ["Unknown", 1, 2]}, "Condition 'Unknown' is not defined"),
        ({"Fn::Select": [7, ["a"]]}, "index 7 is out of range"),
    ],
)
def test_what_cannot_be_resolved_says_why_and_where(value: Any, words: str) -> None:
    with pytest.raises(Unresolved) as raised:
        resolve({"Properties": {"X": value}}, scope(), ("Resources", "R"))
    assert words in raised.value.message
    assert raised.value.path[:4] == ("Resources", "R", "Properties", "X")


def test_pseudo_parameters_follow_the_partition() -> None:
    china = pseudo_parameters("cn-north-1", "123456789012", "s")
    assert (china["AWS::Partition"], china["AWS::URLSuffix"]) == ("aws-cn", "amazonaws.com.cn")
    assert pseudo_parameters("us-gov-west-1", "1", "s")["AWS::Partition"] == "aws-us-gov"
