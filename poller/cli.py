"""The `poller` command line (DESIGN §1.2): run, validate, status, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from poller import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poller", description=__doc__)
    parser.add_argument("--version", action="version", version=f"poller {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for name, help_text in (
        ("run", "run the service until SIGTERM/SIGINT, then drain and exit 0"),
        ("validate", "load the settings and every mapping and report each problem"),
    ):
        verb = verbs.add_parser(name, help=help_text)
        verb.add_argument(
            "--config", type=Path, default=None, help="settings file (default: config/poller.yaml)"
        )
    status = verbs.add_parser("status", help="show the mappings of a running service as a table")
    status.add_argument(
        "--url", default=None, help="the service, e.g. http://127.0.0.1:8080 (default: from the settings)"
    )
    status.add_argument(
        "--config", type=Path, default=None, help="settings file to find the service's http.host/http.port"
    )
    status.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between the two /metrics reads that measure RECORDS/S (0: skip)",
    )
    demo = verbs.add_parser("demo", help="run the example mappings end to end on an embedded AWS emulation")
    demo.add_argument("--messages", type=int, default=20, help="how many sample messages to send")
    return parser


def _run(config: Path | None) -> int:
    from poller.config import load_config
    from poller.observability.logging import configure_logging
    from poller.runtime.app import Service

    loaded = load_config(config, environ=os.environ, cwd=Path.cwd())
    configure_logging(loaded.settings.log.format, loaded.settings.log.level)
    log = structlog.get_logger("poller.cli")
    # Broken settings (or a settings-level path) stop the service; a broken mapping only stops itself.
    settings_broken = any(p.mapping is None and p.file in (None, loaded.settings_file) for p in loaded.errors)
    for problem in loaded.problems:
        (log.error if problem.severity == "error" else log.warning)("config_problem", problem=str(problem))
    if settings_broken:
        return 2
    return asyncio.run(Service(loaded, environ=os.environ).run())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verb == "run":
        return _run(args.config)
    if args.verb == "validate":
        from poller.config.validate import run_validate

        return run_validate(args.config, environ=os.environ, cwd=Path.cwd(), out=sys.stdout)
    if args.verb == "status":
        from poller.runtime.status_command import run_status

        return run_status(
            args.url,
            args.config,
            interval_seconds=args.interval,
            environ=os.environ,
            cwd=Path.cwd(),
            out=sys.stdout,
            err=sys.stderr,
        )
    from poller.demo.runner import run_demo

    return run_demo(messages=args.messages)
