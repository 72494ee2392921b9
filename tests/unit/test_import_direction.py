"""Imports run one way (DESIGN §2), checked by walking every module's imports.

`runtime/` composes everything and nothing imports it (but the entry points: the CLI and the demo);
sources hand batches to `dispatch/`, which calls `targets/` and `destinations/`; everything may use
`config/`, `core/`, `state/` and `observability/`; `core/` imports nothing that does I/O. A module
over 400 lines is a module doing more than one job.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "poller"

ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "config": {"config", "core"},
    "observability": {"observability", "config", "core"},
    "state": {"state", "observability", "config", "core", "aws_errors", "errors"},
    "destinations": {"destinations", "observability", "config", "core", "aws_errors", "errors"},
    "targets": {"targets", "functions", "observability", "config", "core", "aws_errors", "errors"},
    "functions": {"functions", "observability", "config", "core", "errors"},
    "dispatch": {"dispatch", "targets", "destinations", "state", "observability", "config", "core", "errors"},
    "sources": {
        "sources",
        "dispatch",
        "destinations",  # the protocol and value types a failure-record builder hands over
        "state",
        "observability",
        "config",
        "core",
        "aws_errors",
        "errors",
    },
    "api": {"api", "state", "observability", "config", "core", "aws_errors", "errors"},
}
"""What each layer may import from `poller` (top-level modules `errors`, `aws_errors` are shared
leaves); `runtime`, `cli` and `demo` are above every layer."""

IO_LIBRARIES = {"aiobotocore", "botocore", "boto3", "aiokafka", "aiohttp", "aiosqlite", "asyncio", "socket"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py")


def poller_imports(path: Path) -> list[tuple[int, str]]:
    """(line, first component below `poller`) of every `poller.*` import, type-only ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name == "poller" or name.startswith("poller."):
                parts = name.split(".")
                found.append((node.lineno, parts[1] if len(parts) > 1 else ""))
    return found


def other_imports(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path: Path) -> None:
    layer = layer_of(path)
    allowed = ALLOWED.get(layer)
    if allowed is None:  # runtime, cli, demo and the package's shared leaves
        if layer in {"errors", "aws_errors"}:
            assert poller_imports(path) == [], f"{path.name} is a leaf"
        return
    wrong = [(line, target) for line, target in poller_imports(path) if target not in allowed]
    assert wrong == [], f"{path.relative_to(PACKAGE)} imports upward: {wrong}"


@pytest.mark.parametrize("path", sorted(PACKAGE.joinpath("core").rglob("*.py")), ids=lambda p: p.name)
def test_core_imports_nothing_that_does_io(path: Path) -> None:
    assert other_imports(path) & IO_LIBRARIES == set()


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in modules() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walker finds imports inside functions and TYPE_CHECKING blocks too."""
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from poller.runtime.app import Service\n"
        "def f():\n    import poller.sources.sqs\n"
    )
    assert poller_imports(module) == [(3, "runtime"), (5, "sources")]


def test_no_module_imports_relatively() -> None:
    """The checks above read absolute imports only; a relative one (`from ..runtime import x`)
    would slip past them, so there are none."""
    relative = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in modules()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert relative == []
