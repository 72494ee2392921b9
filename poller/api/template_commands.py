"""`poller validate --template` and `poller import` (DESIGN §1.2, §1.10).

Both read the template offline (the values of its queues, streams and tables computed from the
settings' `aws.region` and `aws.account_id`), print every problem as `poller validate` prints a
mapping file's, and exit 1 if any is an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from poller.api.template_import import import_template
from poller.api.template_read import ReadTemplate, read_template
from poller.config.loader import LoadedConfig, find_settings_file, load_settings
from poller.config.settings import Settings
from poller.config.validate import print_report


def run_validate_template(
    path: Path,
    *,
    parameter_overrides: Mapping[str, str],
    config: Path | None,
    environ: Mapping[str, str],
    cwd: Path,
    out: TextIO,
) -> int:
    """Check a template without running it: 0 if it runs as is, 1 if any problem is an error."""
    read = _read(path, parameter_overrides, config, environ, cwd)
    if isinstance(read, LoadedConfig):
        return print_report(read, out)
    loaded = read.template.to_config(read.settings, settings_file=read.settings_file, base_dir=read.base_dir)
    return print_report(_as_given(loaded, read.absolute, path), out)


def run_import(
    path: Path,
    *,
    out_dir: Path,
    parameter_overrides: Mapping[str, str],
    config: Path | None,
    environ: Mapping[str, str],
    cwd: Path,
    out: TextIO,
) -> int:
    """Write the template's functions and mappings as poller YAML under `out_dir`; 1 if any error."""
    read = _read(path, parameter_overrides, config, environ, cwd)
    if isinstance(read, LoadedConfig):
        return print_report(read, out)
    settings, settings_file, base_dir = read.settings, read.settings_file, read.base_dir
    target = out_dir if out_dir.is_absolute() else cwd / out_dir
    try:
        written, found = import_template(read.template, settings, target, base_dir=base_dir)
    except OSError as exc:
        print(f"{out_dir}: cannot write the imported files: {exc.strerror}", file=out)
        return 1
    for file in written:
        print(f"wrote {out_dir / file.name}", file=out)
    loaded = LoadedConfig(settings, settings_file, base_dir, (), tuple(found))
    for problem in _as_given(loaded, read.absolute, path).problems:
        print(problem, file=out)
    errors = len(loaded.errors)
    print(
        f"{len(written)} {'file' if len(written) == 1 else 'files'} written, {errors} "
        f"{'problem' if errors == 1 else 'problems'}",
        file=out,
    )
    return 1 if errors else 0


@dataclass(frozen=True, slots=True)
class _Read:
    settings: Settings
    settings_file: Path | None
    base_dir: Path
    """Where the settings file is (relative paths in it are from there), else the working directory."""
    absolute: Path
    template: ReadTemplate


def _read(
    path: Path,
    parameter_overrides: Mapping[str, str],
    config: Path | None,
    environ: Mapping[str, str],
    cwd: Path,
) -> _Read | LoadedConfig:
    """The settings and the template read with their region and account; a settings file with an
    error comes back as the `LoadedConfig` to report instead (the template is not read)."""
    settings_file = find_settings_file(config, cwd)
    settings, problems = load_settings(settings_file, environ)
    if any(p.severity == "error" for p in problems):
        return LoadedConfig(settings, settings_file, cwd, (), tuple(problems))
    absolute = path if path.is_absolute() else cwd / path
    template = read_template(
        absolute,
        parameter_overrides=parameter_overrides,
        region=settings.aws.region,
        account_id=settings.aws.account_id,
    )
    base_dir = settings_file.parent if settings_file is not None else cwd
    return _Read(settings, settings_file, base_dir, absolute, template)


def _as_given(loaded: LoadedConfig, absolute: Path, given: Path) -> LoadedConfig:
    """The template's problems name it as the user did (`template.yaml:12`, not an absolute path)."""
    problems = tuple(dataclasses.replace(p, file=given) if p.file == absolute else p for p in loaded.problems)
    return dataclasses.replace(loaded, problems=problems)
