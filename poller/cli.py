"""The `poller` command line (DESIGN §1.2): run, validate, import, status, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
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
        verb.add_argument(
            "--template",
            type=Path,
            default=None,
            metavar="FILE",
            help=f"{'run' if name == 'run' else 'check'} a SAM or CloudFormation template instead",
        )
        _overrides_argument(verb)
    imports = verbs.add_parser(
        "import", help="write a SAM or CloudFormation template's functions and mappings as poller YAML"
    )
    imports.add_argument("template", type=Path, metavar="FILE", help="the template (YAML or JSON)")
    imports.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("mappings"),
        metavar="DIR",
        help="where to write one file per function (default: mappings)",
    )
    imports.add_argument(
        "--config", type=Path, default=None, help="settings file (aws.region, aws.account_id)"
    )
    _overrides_argument(imports)
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
    demo.add_argument(
        "--template",
        type=Path,
        nargs="?",
        const=_SHIPPED_SAM_APP,
        default=None,
        metavar="FILE",
        help="run a SAM template instead (without FILE: the SAM app that ships with poller)",
    )
    _overrides_argument(demo)
    return parser


_SHIPPED_SAM_APP = Path("<packaged sam-app>")
_PARAMETER = re.compile(r"ParameterKey=(?P<key>[^,]*),ParameterValue=(?P<value>.*)", re.DOTALL)


def _overrides_argument(verb: argparse.ArgumentParser) -> None:
    verb.add_argument(
        "--parameter-overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter values, as SAM CLI takes them: Key=Value (or "
        "ParameterKey=Key,ParameterValue=Value), several per argument separated by spaces",
    )


def _pair(token: str) -> tuple[str, str] | None:
    long_form = _PARAMETER.fullmatch(token)
    if long_form is not None:
        key, value = long_form["key"], long_form["value"]
    elif "=" in token:
        key, value = token.split("=", 1)
    else:
        return None
    return (key, value) if key else None


def parse_overrides(arguments: Sequence[str]) -> dict[str, str]:
    """`["A=1 B=2", "ParameterKey=C,ParameterValue=x y"]` → `{"A": "1", "B": "2", "C": "x y"}`.

    Raises ValueError naming the argument that is neither form.
    """
    overrides: dict[str, str] = {}
    for argument in arguments:
        try:
            tokens = shlex.split(argument)
        except ValueError as exc:
            raise ValueError(f"--parameter-overrides {argument!r}: {exc}") from None
        pairs = [_pair(token) for token in tokens]
        if len(tokens) > 1 and None in pairs:
            # Not several pairs: one pair whose value has spaces (`Name=two words`).
            pairs = [_pair(argument)]
        for token, pair in zip(tokens, pairs, strict=False):
            if pair is None:
                expected = "expected Key=Value or ParameterKey=Key,ParameterValue=Value"
                raise ValueError(f"--parameter-overrides {token!r}: {expected}")
            overrides[pair[0]] = pair[1]
    return overrides


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
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.parameter_overrides) if "parameter_overrides" in args else {}
    except ValueError as exc:
        parser.error(str(exc))
    if overrides and args.verb != "import" and args.template is None:
        parser.error("--parameter-overrides are a template's parameters: give --template FILE too")
    if args.verb == "run" and args.template is not None:
        from poller.runtime.template_run import run_template

        return run_template(
            args.template,
            parameter_overrides=overrides,
            config=args.config,
            environ=os.environ,
            cwd=Path.cwd(),
        )
    if args.verb == "run":
        return _run(args.config)
    if args.verb == "validate" and args.template is not None:
        from poller.api.template_commands import run_validate_template

        return run_validate_template(
            args.template,
            parameter_overrides=overrides,
            config=args.config,
            environ=os.environ,
            cwd=Path.cwd(),
            out=sys.stdout,
        )
    if args.verb == "validate":
        from poller.config.validate import run_validate

        return run_validate(args.config, environ=os.environ, cwd=Path.cwd(), out=sys.stdout)
    if args.verb == "import":
        from poller.api.template_commands import run_import

        return run_import(
            args.template,
            out_dir=args.output_dir,
            parameter_overrides=overrides,
            config=args.config,
            environ=os.environ,
            cwd=Path.cwd(),
            out=sys.stdout,
        )
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
    from poller.demo.runner import PACKAGED_SAM_APP, run_demo

    if args.template is None:
        return run_demo(messages=args.messages)
    template = PACKAGED_SAM_APP if args.template == _SHIPPED_SAM_APP else args.template
    return run_demo(messages=args.messages, template=template, parameter_overrides=overrides)
