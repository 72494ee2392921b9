"""Template loading: CloudFormation's short forms become the long forms `sam build` writes, with lines
(spec functions-and-templates §4.8; DESIGN §1.10)."""

from __future__ import annotations

import pytest

from poller.api.template_yaml import parse_template
from poller.config.yaml_lines import YamlError

SHORT = """\
A: !Ref Queue
B: !GetAtt Queue.Arn
C: !GetAtt [Queue, Arn]
D: !GetAtt Table.StreamArn.Extra
E: !Sub "${AWS::Region}-x"
F: !Sub
  - "${Name}-y"
  - Name: !Ref Param
G: !Join [",", [a, b]]
H: !If [IsProd, 1, !Ref AWS::NoValue]
I: !Select [0, !Split [",", "a,b"]]
J: !FindInMap [Map, Top, Second]
K: !Equals [a, b]
L: !And [!Condition C1, !Not [!Or [!Condition C2, !Condition C3]]]
M: !Base64 text
N: !ImportValue other-stack-export
O: !GetAZs ""
P: !Cidr [10.0.0.0/16, 2, 8]
"""

LONG = {
    "A": {"Ref": "Queue"},
    "B": {"Fn::GetAtt": ["Queue", "Arn"]},
    "C": {"Fn::GetAtt": ["Queue", "Arn"]},
    # SAM CLI's loader splits at the first dot only (spec §4.8).
    "D": {"Fn::GetAtt": ["Table", "StreamArn.Extra"]},
    "E": {"Fn::Sub": "${AWS::Region}-x"},
    "F": {"Fn::Sub": ["${Name}-y", {"Name": {"Ref": "Param"}}]},
    "G": {"Fn::Join": [",", ["a", "b"]]},
    "H": {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]},
    "I": {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]},
    "J": {"Fn::FindInMap": ["Map", "Top", "Second"]},
    "K": {"Fn::Equals": ["a", "b"]},
    "L": {
        "Fn::And": [
            {"Condition": "C1"},
            {"Fn::Not": [{"Fn::Or": [{"Condition": "C2"}, {"Condition": "C3"}]}]},
        ]
    },
    "M": {"Fn::Base64": "text"},
    "N": {"Fn::ImportValue": "other-stack-export"},
    "O": {"Fn::GetAZs": ""},
    "P": {"Fn::Cidr": ["10.0.0.0/16", 2, 8]},
}


def test_every_short_form_becomes_its_long_form() -> None:
    assert parse_template(SHORT).value == LONG


def test_sam_build_long_forms_read_the_same() -> None:
    """`sam build` writes long forms (spec §4.8): the same value as the short forms."""
    long_text = """\
B:
  Fn::GetAtt:
  - Queue
  - Arn
F:
  Fn::Sub:
  - "${Name}-y"
  - Name:
      Ref: Param
"""
    assert parse_template(long_text).value == {"B": LONG["B"], "F": LONG["F"]}


def test_lines_are_kept_through_the_tags() -> None:
    lines = parse_template(SHORT).lines
    assert lines.line_of(("B",)) == 2
    assert lines.line_of(("F", "Fn::Sub", 1, "Name")) == 8
    assert lines.line_of(("F", "Fn::Sub", 1, "Name", "Ref")) == 8
    assert lines.line_of(("H", "Fn::If", 2)) == 10


def test_json_templates_read_with_lines() -> None:
    text = '{\n  "Resources": {\n    "Q": {"Type": "AWS::SQS::Queue"}\n  }\n}\n'
    document = parse_template(text, json_file=True)
    assert document.value == {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}
    assert document.lines.line_of(("Resources", "Q")) == 3


def test_json_the_yaml_parser_refuses_is_still_read() -> None:
    text = '{\n\t"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}\n}'
    assert parse_template(text, json_file=True).value == {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("A: 1\nB: [unclosed\n", 3, "Invalid YAML"),
        ("A: !Bogus x\n", 1, "unknown tag !Bogus"),
        ("A: 1\nA: 2\n", 2, "Duplicate key 'A'"),
    ],
)
def test_a_malformed_template_is_an_error_with_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(YamlError) as raised:
        parse_template(text)
    assert raised.value.line == line
    assert words in raised.value.message
