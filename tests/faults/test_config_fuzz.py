"""Fuzzed settings and mapping files (DESIGN §1.2, §1.4, §3 "bad input gets a clear error").

Whatever a user writes — real keys with wrong values, junk keys, any nesting, malformed YAML, huge
numbers, any unicode, bytes that are not UTF-8 — loading never raises: every problem is a
`Problem` that renders as `file:line: Mapping 'name': field: message` (or `file: message`), and
`poller validate` prints exactly those problems and exits non-zero iff one of them is an error.

The engine bugs found this way (non-UTF-8 files, control characters, deep nesting, alias bombs,
multi-line problems) have their own tests at the end of this file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from poller import cli
from poller.config import Problem
from poller.config.loader import LoadedConfig, load_config
from poller.config.mapping import RawMapping

pytestmark = pytest.mark.faults

MAPPING_KEYS = [field.alias for field in RawMapping.model_fields.values() if field.alias]
NESTED_KEYS = [
    "OnFailure",
    "OnSuccess",
    "Destination",
    "Filters",
    "Pattern",
    "Endpoints",
    "KAFKA_BOOTSTRAP_SERVERS",
    "MaximumConcurrency",
    "MinimumPollers",
    "MaximumPollers",
    "ConsumerGroupId",
    "Type",
    "URI",
    "Metrics",
]
SETTINGS_SECTIONS = ["aws", "kafka", "state", "http", "log", "shutdown"]
SETTINGS_KEYS = [
    "region",
    "endpoint_url",
    "account_id",
    "role_arn",
    "bootstrap_servers",
    "session_timeout_ms",
    "backend",
    "path",
    "table",
    "host",
    "port",
    "format",
    "level",
    "drain_seconds",
]
JUNK_KEYS = ["", " ", "name", "batchsize", "Batch Size", "EventSourceMappings", "<<", "ü", "𝔘nicode", "0"]

# -- values ----------------------------------------------------------------------------------------

safe_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
"""Any unicode a file can hold (lone surrogates cannot be encoded, so no file has them)."""
huge_ints = st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**20, 10**400, -(10**400)])
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 10, 11, 60, 100, 900, 901, 1000, 10000, 10001, 604800, 604801, 1.5, 1e308]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, safe_text)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(NESTED_KEYS + JUNK_KEYS), safe_text), children, max_size=4),
    ),
    max_leaves=12,
)

ARNS = [
    "arn:aws:sqs:us-east-1:123456789012:orders",
    "arn:aws:sqs:us-east-1:123456789012:orders.fifo",
    "arn:aws:kinesis:us-east-1:123456789012:stream/clicks",
    "arn:aws:dynamodb:us-east-1:123456789012:table/t1/stream/2024-01-01T00:00:00.000",
    "arn:aws:kafka:us-east-1:123456789012:cluster/c/abc",
    "arn:aws:lambda:us-east-1:123456789012:function:f",
    "arn:aws:sqs:us-east-1:123:short-account",
    "arn:aws:sqs",
    "not an arn",
]
DESTINATIONS = [
    "arn:aws:sqs:us-east-1:123456789012:dlq",
    "arn:aws:sns:us-east-1:123456789012:topic",
    "arn:aws:s3:::bucket",
    "kafka://failures",
    "file:///tmp/failures.jsonl",
    "file://relative.jsonl",
    "",
    "mailto:x",
]
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "Name": st.one_of(
        st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z"),
        st.sampled_from(["", "a" * 129, "two\nlines", "it's", "tab\there"]),
    ),
    "EventSourceArn": st.sampled_from(ARNS),
    "FunctionName": st.sampled_from(
        [
            "f",
            "http://127.0.0.1:9/invoke",
            "python:handlers.main",
            "arn:aws:lambda:us-east-1:1:function:f",
            "",
        ]
    ),
    "StartingPosition": st.sampled_from(["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP", "latest", ""]),
    "StartingPositionTimestamp": st.one_of(
        numbers, st.sampled_from(["2024-01-01T00:00:00Z", "2024-13-45", "yesterday"])
    ),
    "FunctionResponseTypes": st.lists(st.sampled_from(["ReportBatchItemFailures", "Other"]), max_size=2),
    "Topics": st.lists(st.sampled_from(["orders", "", "a/b", "x" * 300]), max_size=2),
    "DestinationConfig": st.fixed_dictionaries(
        {"OnFailure": st.fixed_dictionaries({"Destination": st.sampled_from(DESTINATIONS)})}
    ),
    "FilterCriteria": st.fixed_dictionaries(
        {
            "Filters": st.lists(
                st.fixed_dictionaries(
                    {"Pattern": st.sampled_from(['{"body": {"a": ["x"]}}', "{", "[]", '{"a": 1}', ""])}
                ),
                max_size=2,
            )
        }
    ),
    "SelfManagedEventSource": st.fixed_dictionaries(
        {"Endpoints": st.fixed_dictionaries({"KAFKA_BOOTSTRAP_SERVERS": st.lists(safe_text, max_size=2)})}
    ),
    "ScalingConfig": st.fixed_dictionaries({"MaximumConcurrency": numbers}),
}


@st.composite
def mappings(draw: st.DrawFn) -> dict[Any, Any]:
    """One mapping: mostly real keys, some junk, each value plausible or anything at all."""
    keys = draw(
        st.lists(st.one_of(st.sampled_from(MAPPING_KEYS), st.sampled_from(JUNK_KEYS), safe_text), max_size=10)
    )
    if draw(st.booleans()):  # often enough a mapping that reaches the per-source rules
        keys = ["Name", "EventSourceArn", "FunctionName", *keys]
    out: dict[Any, Any] = {}
    for key in keys:
        plausible = PLAUSIBLE.get(key)
        out[key] = draw(st.one_of(plausible, values) if plausible is not None else values)
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.one_of(st.integers(), st.booleans(), st.none()))] = draw(values)  # a non-string key
    return out


@st.composite
def documents(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["one", "one", "list", "list-extra", "anything"]))
    if shape == "one":
        return draw(mappings())
    if shape == "anything":
        return draw(values)
    document: dict[Any, Any] = {
        "EventSourceMappings": draw(st.one_of(st.lists(st.one_of(mappings(), values), max_size=3), values))
    }
    if shape == "list-extra":
        document[draw(st.sampled_from(MAPPING_KEYS + JUNK_KEYS))] = draw(values)
    return document


SNIPPETS = [
    "",
    "# only a comment\n",
    "---\nName: a\n---\nName: b\n",
    "Name: a\nName: b\n",
    "base: &b {BatchSize: 5}\nName: m\n<<: *b\n",
    "Name: &a [*a]\n",
    "Name: *undefined\n",
    "Name: !!python/object/apply:os.system ['true']\n",
    "Name: !!binary aGVsbG8=\nFunctionName: !!binary aGVsbG8=\n",
    "Tags: !!set {a, b}\n",
    "? [1, 2]\n: 3\n",
    "? {a: 1}\n: 3\n",
    "%YAML 1.1\n---\nName: a\n",
    "\ufeffName: bom\n",
    "Name: 'unterminated\n",
    "Name: a\n\tBatchSize: 1\n",
    "EventSourceMappings:\n  - Name: a\n  -\n  - 5\n",
    "EventSourceMappings: {Name: a}\n",
    "StartingPositionTimestamp: 2024-01-01 00:00:00\nName: t\n",
    "BatchSize: 0x10\nName: h\n",
    "BatchSize: 1_000\nName: u\n",
    "BatchSize: .inf\nName: i\n",
    "BatchSize: .nan\nName: n\n",
    "Name: " + "x" * 20000 + "\n",
    "[" * 50 + "]" * 50,
    "{" * 50 + "}" * 50,
]


@st.composite
def file_texts(draw: st.DrawFn) -> bytes:
    """What a mapping file holds: a YAML dump of a document, the dump mangled, a known awkward
    snippet, or any text."""
    kind = draw(st.sampled_from(["dump", "dump", "dump", "mangled", "snippet", "text"]))
    if kind == "snippet":
        return draw(st.sampled_from(SNIPPETS)).encode()
    if kind == "text":
        return draw(safe_text).encode()
    text = yaml.safe_dump(
        draw(documents()),
        allow_unicode=draw(st.booleans()),
        default_flow_style=draw(st.sampled_from([None, True, False])),
        sort_keys=False,
    )
    if kind == "mangled" and text:
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["cut", "insert", "duplicate-line", "tabs"]))
        if how == "cut":
            text = text[:at]
        elif how == "insert":
            text = (
                text[:at]
                + draw(st.sampled_from([":", "- ", "{", "]", "'", '"', "&", "*", "!", "\n  ", "#"]))
                + text[at:]
            )
        elif how == "duplicate-line":
            lines = text.splitlines(keepends=True)
            line = lines[at % len(lines)]
            text = "".join(lines) + line
        else:
            text = text.replace("  ", "\t")
    return text.encode()


@st.composite
def settings_texts(draw: st.DrawFn) -> bytes:
    """The settings file: usually pointing at the mappings, sometimes broken itself."""
    document: dict[Any, Any] = {
        "mappings": draw(
            st.sampled_from(
                [["mappings/"], "mappings/", ["mappings/", "missing/"], ["mappings/a.yaml"], 5, None, []]
            )
        )
    }
    for _ in range(draw(st.integers(0, 2))):
        section = draw(st.sampled_from([*SETTINGS_SECTIONS, *JUNK_KEYS, "_env_file"]))
        document[section] = draw(
            st.one_of(values, st.dictionaries(st.sampled_from(SETTINGS_KEYS + JUNK_KEYS), values, max_size=3))
        )
    if draw(st.integers(0, 9)) == 0:
        return draw(file_texts())
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False).encode()


# -- checks ----------------------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n") + 1
    except OSError:
        return 0


def check_problem(problem: object, root: Path) -> None:
    assert isinstance(problem, Problem), problem
    assert problem.file is not None, f"a problem without its file: {problem!r}"
    assert problem.file.is_relative_to(root), problem
    assert problem.severity in ("error", "warning")
    assert isinstance(problem.message, str), problem
    assert problem.message.strip(), problem
    if problem.line is not None:
        assert 1 <= problem.line <= line_count(problem.file) + 1, problem
    text = str(problem)
    assert "\n" not in text, text  # test_a_problem_stays_on_one_line
    where = re.escape(str(problem.file)) + ("" if problem.line is None else f":{problem.line}")
    shape = where + r": (warning: )?(Mapping '.*': )?(.+: )?.+"
    assert re.fullmatch(shape, text), text
    if problem.mapping is not None:
        # Control characters of a name are shown escaped (one problem, one line).
        shown = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), problem.mapping)
        assert f"Mapping '{shown}': " in text


def validate_cli(settings_path: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["validate", "--config", str(settings_path)])
    assert err.getvalue() == "", err.getvalue()
    return status, out.getvalue()


def load(settings_path: Path, root: Path) -> LoadedConfig:
    return load_config(settings_path, environ=os.environ, cwd=root)


def without_poller_environment() -> Any:
    """The files alone decide: no POLLER_* override from whoever runs the tests."""
    return mock.patch.dict(
        os.environ, {k: v for k, v in os.environ.items() if not k.startswith("POLLER_")}, clear=True
    )


@settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    settings_text=settings_texts(),
    files=st.lists(file_texts(), min_size=1, max_size=3),
    raw_bytes=st.one_of(st.just(b""), st.just(b""), st.just(b""), st.binary(min_size=1, max_size=30)),
)
# A name with a newline: its problem is printed escaped, on one line.
@example(
    settings_text=b"mappings:\n- mappings/\n", files=[b"{Name: 'two\n\n    lines', 0: null}\n"], raw_bytes=b""
)
def test_fuzzed_files_give_problems_never_exceptions(
    settings_text: bytes, files: list[bytes], raw_bytes: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp, without_poller_environment():
        root = Path(tmp)
        (root / "mappings").mkdir()
        settings_path = root / "poller.yaml"
        settings_path.write_bytes(settings_text)
        for i, content in enumerate(files):
            (root / "mappings" / f"{chr(ord('a') + i)}.yaml").write_bytes(content)
        if raw_bytes:  # anything at all: not UTF-8, control characters, NUL
            (root / "mappings" / "z.yml").write_bytes(raw_bytes)

        loaded = load(settings_path, root)
        for problem in loaded.problems:
            check_problem(problem, root)
        for mapping in loaded.mappings:
            assert mapping.name

        status, output = validate_cli(settings_path)
        printed = "".join(f"{p}\n" for p in loaded.problems)
        assert output.startswith(printed)
        summary = output.removeprefix(printed)
        assert re.fullmatch(r"\d+ mappings? OK, \d+ problems?(, \d+ warnings?)?\n", summary), summary
        assert status == (1 if loaded.errors else 0), output


# -- bugs the fuzzing found, fixed and kept fixed --------------------------------------------------------------


def write_config(root: Path, mapping: bytes) -> Path:
    (root / "mappings").mkdir()
    (root / "mappings" / "bad.yaml").write_bytes(mapping)
    (root / "mappings" / "good.yaml").write_text(
        "Name: good\nEventSourceArn: arn:aws:sqs:us-east-1:123456789012:q\nFunctionName: f\n"
    )
    settings_path = root / "poller.yaml"
    settings_path.write_text("mappings: [mappings/]\n")
    return settings_path


def assert_reported_as_a_problem(root: Path, settings_path: Path) -> None:
    loaded = load_config(settings_path, environ={}, cwd=root)
    bad = root / "mappings" / "bad.yaml"
    assert [p.file for p in loaded.errors] == [bad]
    assert [m.name for m in loaded.mappings] == ["good"]
    with without_poller_environment():
        status, output = validate_cli(settings_path)
    assert status == 1
    assert output.splitlines()[0].startswith(f"{bad}")


def test_a_mapping_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    assert_reported_as_a_problem(tmp_path, write_config(tmp_path, "Name: café\n".encode("latin-1")))


def test_a_control_character_in_a_mapping_file_is_a_problem(tmp_path: Path) -> None:
    assert_reported_as_a_problem(tmp_path, write_config(tmp_path, b"Name: a\x00b\n"))


def test_deeply_nested_yaml_is_a_problem(tmp_path: Path) -> None:
    assert_reported_as_a_problem(tmp_path, write_config(tmp_path, b"[" * 5000 + b"]" * 5000))


def alias_bomb(levels: int) -> bytes:
    """A few hundred bytes of YAML whose aliases expand to 9**levels strings ("billion laughs")."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return ("\n".join(lines) + "\nName: bomb\nFunctionName: f\n").encode()


@pytest.mark.timeout(60)
def test_an_alias_bomb_is_answered_quickly(tmp_path: Path) -> None:
    """`poller validate` in a child process capped at 1 GiB and 15 s: a 600-byte file must not
    exhaust either (today it runs out of both)."""
    settings_path = write_config(tmp_path, alias_bomb(10))
    limit = 1 << 30
    code = (
        "import resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
        "from poller.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, "validate", "--config", str(settings_path)],
            capture_output=True,
            timeout=15,
            check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("POLLER_")},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("poller validate did not finish within 15 s")
    assert b"Traceback" not in done.stderr, done.stderr.decode()[-2000:]
    assert done.returncode == 1
    assert done.stdout.decode().startswith(str(tmp_path / "mappings" / "bad.yaml"))


def test_a_problem_stays_on_one_line(tmp_path: Path) -> None:
    """`poller validate` prints one problem per line (editors and CI annotations read it so); a
    value holding a newline must not split a problem over two lines."""
    settings_path = write_config(
        tmp_path,
        b"EventSourceMappings:\n"
        b'  - {Name: "two\\nlines", EventSourceArn: "arn:aws:sqs:us-east-1:123456789012:q", FunctionName: f}\n'
        b'  - {Name: ok, EventSourceArn: "arn:aws:sqs:us-east-1:123456789012:q\\nx", FunctionName: f}\n',
    )
    with without_poller_environment():
        status, output = validate_cli(settings_path)
    assert status == 1
    *problems, summary = output.splitlines()
    assert summary == "1 mapping OK, 2 problems"
    assert all(line.startswith(f"{tmp_path / 'mappings' / 'bad.yaml'}:") for line in problems), problems
