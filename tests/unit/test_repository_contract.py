"""The repository keeps its public promises: README commands, CI, example mappings (DESIGN §1.1-1.2)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = next(c for c in readme_commands() if c.endswith("scripts/test"))
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert f"exec {test_command}" in ci_lines


def test_the_test_command_does_all_the_set_up_itself() -> None:
    """Issue 13 §1: on a bare machine the one test command installs promtool/prometheus (Debian's
    package, service kept off), makes the venv and runs ruff, mypy and pytest."""
    script = (ROOT / "scripts" / "test").read_text()
    steps = [
        "apt-get install -y -q --no-install-recommends prometheus",
        "python3 -m venv .venv",
        "pip install -q -e '.[test]'",
        ".venv/bin/ruff check .",
        ".venv/bin/mypy",
        ".venv/bin/pytest",
    ]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "policy-rc.d" in script  # the packaged service is never started
    assert (ROOT / "scripts" / "test").stat().st_mode & 0o111


def test_readme_demo_command_runs_poller_demo() -> None:
    assert any(c.endswith("poller demo") and "pip install" in c for c in readme_commands())


def test_repository_mappings_are_the_packaged_demo_mappings() -> None:
    packaged = {p.name: p.read_text() for p in (ROOT / "poller" / "demo" / "mappings").glob("*.yaml")}
    repo = {p.name: p.read_text() for p in (ROOT / "mappings").glob("*.yaml")}
    assert packaged == repo
    assert packaged


def test_repository_functions_are_the_packaged_demo_functions() -> None:
    """The example mappings declare functions with `CodeUri: ../functions/<name>`, relative to the
    mapping file: the repository's mappings/ finds functions/, the packaged ones poller/demo/functions/
    (which the demo writes out beside the mappings it runs). Both must hold the same code."""

    def tree(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }

    packaged = tree(ROOT / "poller" / "demo" / "functions")
    assert packaged
    assert tree(ROOT / "functions") == packaged
    # Every CodeUri an example mapping names is one of them.
    code_uris = re.findall(
        r"^\s+CodeUri: (\S+)$", "".join(p.read_text() for p in (ROOT / "mappings").glob("*.yaml")), re.M
    )
    assert code_uris
    for code_uri in code_uris:
        assert (ROOT / "mappings" / code_uri).resolve().is_dir(), code_uri
        assert (ROOT / "poller" / "demo" / "mappings" / code_uri).resolve().is_dir(), code_uri


def test_the_readme_sam_app_is_the_one_the_demo_runs() -> None:
    """`poller demo --template` runs the packaged copy of examples/sam-app/ from any directory
    (DESIGN §1.2, §1.10): both hold the same template and handler code, and the package ships it."""

    def tree(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }

    packaged = tree(ROOT / "poller" / "demo" / "sam_app")
    assert "template.yaml" in packaged
    assert tree(ROOT / "examples" / "sam-app") == packaged
    code_uris = re.findall(r"^\s+CodeUri: (\S+)$", packaged["template.yaml"].decode(), re.M)
    assert code_uris
    for code_uri in code_uris:
        assert (ROOT / "examples" / "sam-app" / code_uri).is_dir(), code_uri
    package_data = (ROOT / "pyproject.toml").read_text()
    assert '"demo/sam_app/*.yaml", "demo/sam_app/src/*/*"' in package_data
    assert all(re.fullmatch(r"[^/]+\.yaml|src/[^/]+/[^/]+", name) for name in packaged), sorted(packaged)
