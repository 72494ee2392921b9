"""`poller validate`: load everything, print every problem, exit non-zero on any error (DESIGN §1.2)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from poller.config.loader import LoadedConfig, load_config


def run_validate(
    explicit: Path | None, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None, out: TextIO
) -> int:
    """Print each problem (`file:line: Mapping 'name': field: message`), then a summary line.

    The summary counts the functions declared under `Functions:` only when there are any, so a
    configuration without them reads as it always has.

    Returns the exit status: 1 if any error, else 0. Warnings are printed but do not fail, so CI
    can run this on every change without tripping over, say, an intentionally empty directory.
    """
    return print_report(load_config(explicit, environ=environ, cwd=cwd), out)


def print_report(loaded: LoadedConfig, out: TextIO) -> int:
    """Print every problem of `loaded` and the summary line; 1 if any error, else 0.

    Shared with `poller validate --template` and `poller import`, so a template reads as its
    mapping files would.
    """
    for problem in loaded.problems:
        print(problem, file=out)
    errors, warnings = len(loaded.errors), len(loaded.warnings)
    valid = _count(len(loaded.mappings), "mapping")
    if loaded.functions:
        valid += f" and {_count(len(loaded.functions), 'function')}"
    summary = f"{valid} OK, {_count(errors, 'problem')}"
    if warnings:
        summary += f", {_count(warnings, 'warning')}"
    print(summary, file=out)
    return 1 if errors else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
