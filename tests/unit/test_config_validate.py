"""`poller validate`'s output and exit status, and the problem format it prints (DESIGN §1.2)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from poller.config import Problem, run_validate
from poller.config.yaml_lines import LineMap, YamlError, parse_yaml

GOOD = "Name: {name}\nEventSourceArn: arn:aws:sqs:us-east-1:123456789012:{name}\nFunctionName: f\n"


def validate(cwd: Path, environ: dict[str, str] | None = None) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = run_validate(None, environ=environ or {}, cwd=cwd, out=out)
    return status, out.getvalue().splitlines()


def test_problems_then_summary_and_exit_1(tmp_path: Path) -> None:
    maps = tmp_path / "mappings"
    maps.mkdir()
    (maps / "a.yaml").write_text(GOOD.format(name="a"))
    (maps / "b.yaml").write_text(GOOD.format(name="b"))
    (maps / "c.yaml").write_text(GOOD.format(name="c") + "BatchSize: 100\n")
    status, lines = validate(tmp_path)
    assert status == 1
    assert lines == [
        f"{maps / 'c.yaml'}:4: Mapping 'c': BatchSize: Maximum batch window in seconds must be greater than 0 "
        "if maximum batch size is greater than 10",
        "2 mappings OK, 1 problem",
    ]


def test_clean_config_exits_0(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "a.yaml").write_text(GOOD.format(name="a"))
    assert validate(tmp_path) == (0, ["1 mapping OK, 0 problems"])


def test_warnings_print_but_do_not_fail(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "a.yaml").write_text(GOOD.format(name="a"))
    (tmp_path / "mappings" / "todo.yaml").write_text("# later\n")
    assert validate(tmp_path) == (
        0,
        [
            f"{tmp_path / 'mappings' / 'todo.yaml'}: warning: No mappings in file.",
            "1 mapping OK, 0 problems, 1 warning",
        ],
    )


def test_environment_problem_is_printed(tmp_path: Path) -> None:
    status, lines = validate(tmp_path, {"POLLER_LOG__FORMAT": "xml"})
    assert status == 1
    assert lines == ["POLLER_LOG__FORMAT: Input should be 'json' or 'console'", "0 mappings OK, 1 problem"]


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        (Problem("m", Path("f.yaml"), 3, "orders", "BatchSize"), "f.yaml:3: Mapping 'orders': BatchSize: m"),
        (Problem("m", Path("f.yaml"), 3, None, "BatchSize"), "f.yaml:3: BatchSize: m"),
        (Problem("m", Path("f.yaml")), "f.yaml: m"),
        (Problem("m", None, None, "orders"), "Mapping 'orders': m"),
        (Problem("m"), "m"),
        (Problem("m", Path("f.yaml"), 1, severity="warning"), "f.yaml:1: warning: m"),
    ],
)
def test_problem_format_drops_unknown_parts(problem: Problem, text: str) -> None:
    assert str(problem) == text


def test_yaml_line_map_records_keys_and_items() -> None:
    doc = parse_yaml("a:\n  b:\n    - x\n    - c: 1\n\nd: 2\n")
    assert doc.value == {"a": {"b": ["x", {"c": 1}]}, "d": 2}
    assert doc.lines == LineMap(
        {
            (): 1,
            ("a",): 1,
            ("a", "b"): 2,
            ("a", "b", 0): 3,
            ("a", "b", 1): 4,
            ("a", "b", 1, "c"): 4,
            ("d",): 6,
        }
    )
    # Deepest known part of a path: a missing key falls back to its parent.
    assert doc.lines.line_of(("a", "b", 1, "missing")) == 4
    assert doc.lines.sub("a", "b").line_of((0,)) == 3


def test_yaml_merge_keys_are_not_duplicates() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n")
    assert doc.value == {"base": {"x": 1, "y": 2}, "thing": {"x": 1, "y": 3}}
    assert doc.lines.line_of(("thing", "y")) == 4


def test_yaml_error_carries_line() -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml("a: 1\nb: [\n")
    assert caught.value.line == 3


# -- file:// destinations stay inside destinations.file_root ------------------------------------------

STREAM_WITH_DESTINATION = (
    "Name: clicks\n"
    "EventSourceArn: arn:aws:kinesis:us-east-1:123456789012:stream/clicks\n"
    "FunctionName: f\n"
    "StartingPosition: LATEST\n"
    "DestinationConfig:\n"
    "  OnFailure:\n"
    "    Destination: {destination}\n"
)


def with_file_destination(tmp_path: Path, path: Path | str, settings: str | None) -> Path:
    """config/poller.yaml (if `settings`), and mappings/clicks.yaml sending failures to `path`."""
    if settings is not None:
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "poller.yaml").write_text(settings)
    (tmp_path / "mappings").mkdir()
    mapping = tmp_path / "mappings" / "clicks.yaml"
    mapping.write_text(STREAM_WITH_DESTINATION.format(destination=f"file://{path}"))
    return mapping


ROOTED = "mappings: [../mappings]\ndestinations:\n  file_root: ../failures\n"


def refusal(mapping: Path, uri: str, root: Path, resolved: Path | None = None) -> str:
    where = "" if resolved is None else f" (it resolves to {resolved})"
    return (
        f"{mapping}:7: Mapping 'clicks': DestinationConfig.OnFailure.Destination: Destination '{uri}' is "
        f"not inside destinations.file_root ({root}){where}: file:// destinations must lie inside that directory"
    )


def test_a_file_destination_inside_the_file_root_loads(tmp_path: Path) -> None:
    (tmp_path / "failures").mkdir()
    with_file_destination(tmp_path, tmp_path / "failures" / "not-yet" / "clicks.jsonl", ROOTED)
    assert validate(tmp_path) == (0, ["1 mapping OK, 0 problems"])


def test_the_default_file_root_is_var_destinations_beside_the_settings(tmp_path: Path) -> None:
    with_file_destination(tmp_path, tmp_path / "var" / "destinations" / "clicks.jsonl", None)
    assert validate(tmp_path) == (0, ["1 mapping OK, 0 problems"])


def test_a_file_destination_elsewhere_is_refused_with_file_line_mapping_and_field(tmp_path: Path) -> None:
    mapping = with_file_destination(tmp_path, "/etc/poller-failures.jsonl", ROOTED)
    status, lines = validate(tmp_path)
    assert status == 1
    assert lines == [
        refusal(mapping, "file:///etc/poller-failures.jsonl", tmp_path / "failures"),
        "0 mappings OK, 1 problem",
    ]


def test_dot_dot_cannot_climb_out_of_the_file_root(tmp_path: Path) -> None:
    uri_path = f"{tmp_path}/failures/../config/poller.yaml"
    mapping = with_file_destination(tmp_path, uri_path, ROOTED)
    status, lines = validate(tmp_path)
    assert status == 1
    root, resolved = tmp_path / "failures", tmp_path / "config" / "poller.yaml"
    assert lines[0] == refusal(mapping, f"file://{uri_path}", root, resolved)


def test_a_symlink_cannot_lead_out_of_the_file_root(tmp_path: Path) -> None:
    (tmp_path / "failures").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "failures" / "link")
    path = tmp_path / "failures" / "link" / "clicks.jsonl"
    mapping = with_file_destination(tmp_path, path, ROOTED)
    status, lines = validate(tmp_path)
    assert status == 1
    resolved = tmp_path / "elsewhere" / "clicks.jsonl"
    assert lines[0] == refusal(mapping, f"file://{path}", tmp_path / "failures", resolved)


def test_the_file_root_itself_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "failures").mkdir()
    mapping = with_file_destination(tmp_path, tmp_path / "failures", ROOTED)
    status, lines = validate(tmp_path)
    assert status == 1
    assert lines[0] == refusal(mapping, f"file://{tmp_path / 'failures'}", tmp_path / "failures")


def test_an_unreadable_mappings_path_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """`is_dir` raises for a symlink to a name too long (before Python 3.14, which answers False)."""
    os.symlink("x" * 300, tmp_path / "mappings")
    status, lines = validate(tmp_path)
    assert status == 1
    assert lines[0] in (
        f"{tmp_path / 'mappings'}: Cannot read mapping path: File name too long",
        f"{tmp_path / 'mappings'}: Mapping file or directory does not exist.",
    )
