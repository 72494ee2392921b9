"""`poller run --template`: a SAM or CloudFormation template as the service's configuration (DESIGN §1.10).

The settings file still says how the service runs (AWS endpoint, state, HTTP, logs); the template
replaces the mapping files: its functions run in execution environments (§1.5.1) and its event
sources become mappings (§1.4). Before the service starts, the queues, streams and tables the
template creates are made to exist at `aws.endpoint_url` (`poller.api.template_resources`) and their
real attributes are what the template's `Ref` and `GetAtt` resolve to.

Hot reload follows the template: the template file (and the settings file) is watched as mapping
files are, and a change reads it again — parameters, sources (new ones created), functions and
mappings — and applies the difference as any reload does, all or nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import structlog
from aiobotocore.session import AioSession, get_session

from poller.api.template_read import read_template
from poller.api.template_requests import queue_name
from poller.api.template_resources import ensure_sources
from poller.api.template_sources import SourceResource
from poller.config import KafkaMapping, LoadedConfig, Problem, ResolvedMapping, Settings, SqsMapping
from poller.config.loader import find_settings_file, load_settings
from poller.config.resolved import UnstartableMapping
from poller.observability.logging import configure_logging
from poller.runtime.app import Service

log = structlog.get_logger("poller.template")


@dataclasses.dataclass(frozen=True)
class TemplateLoad:
    """A template read and its sources made to exist: what the service runs and what it reads."""

    loaded: LoadedConfig
    sources: tuple[SourceResource, ...]
    attributes: Mapping[str, Mapping[str, str]]
    """By logical id, the real `Ref`/`GetAtt` values of the sources that exist."""


@dataclasses.dataclass(frozen=True)
class TemplateConfig:
    """What the service needs to read one template: where it is and what it is given."""

    template: Path
    parameter_overrides: Mapping[str, str]
    settings_file: Path | None
    base_dir: Path
    environ: Mapping[str, str]


def run_template(
    path: Path,
    *,
    parameter_overrides: Mapping[str, str],
    config: Path | None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Run the template's functions and mappings until SIGTERM/SIGINT; 2 when nothing can run."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    settings_file = find_settings_file(config, cwd)
    settings, problems = load_settings(settings_file, environ)
    configure_logging(settings.log.format, settings.log.level)
    if any(p.severity == "error" for p in problems):
        _log_problems(problems)
        return 2
    target = TemplateConfig(
        template=path if path.is_absolute() else cwd / path,
        parameter_overrides=dict(parameter_overrides),
        settings_file=settings_file,
        base_dir=settings_file.parent if settings_file is not None else cwd,
        environ=environ,
    )
    return asyncio.run(_serve(target, settings, problems))


async def _serve(target: TemplateConfig, settings: Settings, settings_problems: list[Problem]) -> int:
    session = get_session()
    loaded = (await load_template(target, settings, session)).loaded
    loaded = dataclasses.replace(loaded, problems=_once((*settings_problems, *loaded.problems)))
    _log_problems(loaded.problems)
    if loaded.errors and not loaded.mappings:
        log.error("template_not_run", template=str(target.template), errors=len(loaded.errors))
        return 2

    def load_again() -> LoadedConfig:
        # A reload runs in a worker thread, on a loop of its own: the service's clients stay its own.
        fresh, problems = load_settings(target.settings_file, target.environ)
        if any(p.severity == "error" for p in problems):
            return LoadedConfig(fresh, target.settings_file, target.base_dir, (), tuple(problems))
        again = asyncio.run(load_template(target, fresh, get_session())).loaded
        return dataclasses.replace(again, problems=_once((*problems, *again.problems)))

    service = Service(loaded, session=session, environ=target.environ, load_again=load_again)
    return await service.run()


async def load_template(target: TemplateConfig, settings: Settings, session: AioSession) -> TemplateLoad:
    """The template's functions and mappings, its sources made to exist first (with an endpoint).

    The settings' `mappings` become the template itself, so a hot reload watches it.
    """
    settings = settings.model_copy(update={"mappings": (target.template,)})
    aws = settings.aws
    read = await asyncio.to_thread(
        read_template,
        target.template,
        parameter_overrides=target.parameter_overrides,
        region=aws.region,
        account_id=aws.account_id,
    )
    attributes, source_problems = await ensure_sources(
        read.sources,
        session=session,
        region=aws.region,
        endpoint_url=aws.endpoint_url,
        template=target.template,
    )
    loaded = read.to_config(
        settings, settings_file=target.settings_file, base_dir=target.base_dir, attributes=attributes
    )
    missing = [s for s in read.sources if s.logical_id not in attributes]
    kept = tuple(m for m in loaded.mappings if not reads_any(m, missing))
    for mapping in loaded.mappings:
        if mapping not in kept:
            log.warning("template_mapping_not_started", mapping=mapping.name, reason="its source is missing")
    loaded = dataclasses.replace(loaded, mappings=kept, problems=(*loaded.problems, *source_problems))
    return TemplateLoad(loaded, read.sources, attributes)


def reads_any(mapping: ResolvedMapping, sources: list[SourceResource]) -> bool:
    """Whether the mapping reads one of these sources (matched by name: their ARNs are unknown)."""
    if isinstance(mapping, KafkaMapping | UnstartableMapping):
        return False
    for source in sources:
        if isinstance(mapping, SqsMapping):
            if source.type == "AWS::SQS::Queue" and mapping.queue_name == queue_name(source):
                return True
        elif mapping.stream_name == source.physical_name and (
            (mapping.source_kind == "kinesis" and source.type == "AWS::Kinesis::Stream")
            or (mapping.source_kind == "dynamodb" and source.type == "AWS::DynamoDB::Table")
        ):
            return True
    return False


def _once(problems: tuple[Problem, ...]) -> tuple[Problem, ...]:
    """Each problem once, though both the reader and `to_config` may hand it over."""
    return tuple(dict.fromkeys(problems))


def _log_problems(problems: tuple[Problem, ...] | list[Problem]) -> None:
    # As `poller run` does for mapping files (cli._run).
    logger = structlog.get_logger("poller.cli")
    for problem in problems:
        (logger.error if problem.severity == "error" else logger.warning)(
            "config_problem", problem=str(problem)
        )
