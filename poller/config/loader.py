"""Load the settings file and every mapping (and function, §1.5.1) it points at (DESIGN §1.2–§1.5).

Nothing here raises for a user's mistake: every problem is collected, with file and line, so
`poller validate` can print them all at once and `poller run` can start the mappings that are
fine. Only when the settings themselves are wrong are no mappings loaded, since the settings say
where the mappings are.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError

from poller.config.functions import (
    DeclaredFunction,
    FoundFunction,
    declared_functions,
    functions_in_document,
)
from poller.config.problems import Problem, dotted, readable
from poller.config.resolve import RawEntry, entries_in_document, resolve_all
from poller.config.resolved import ResolvedMapping
from poller.config.settings import (
    DestinationSettings,
    Settings,
    build_settings,
    env_var_expects_json,
    env_var_name,
)
from poller.config.yaml_lines import LineMap, YamlError, parse_yaml

DEFAULT_SETTINGS_FILE = Path("config") / "poller.yaml"
MAPPING_SUFFIXES = (".yaml", ".yml")
DEFAULT_FILE_ROOT: Path = DestinationSettings().file_root

__all__ = [
    "LoadedConfig",
    "MappingFiles",
    "Problem",
    "find_settings_file",
    "load_config",
    "load_mapping_files",
    "load_mappings",
    "load_settings",
]

_NO_FUNCTIONS: Mapping[str, DeclaredFunction] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    settings: Settings
    settings_file: Path | None
    base_dir: Path
    """The directory relative paths in the settings resolve against."""
    mappings: tuple[ResolvedMapping, ...]
    """Only the valid mappings; the invalid ones are in `problems`."""
    problems: tuple[Problem, ...]
    functions: Mapping[str, DeclaredFunction] = field(default_factory=lambda: _NO_FUNCTIONS)
    """The valid functions declared under `Functions:` (DESIGN §1.5.1), by name; the invalid ones
    are in `problems`."""

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")


def find_settings_file(explicit: Path | None, cwd: Path) -> Path | None:
    """`--config` if given (relative to `cwd`), else `config/poller.yaml` if present, else None."""
    if explicit is not None:
        return explicit if explicit.is_absolute() else cwd / explicit
    default = cwd / DEFAULT_SETTINGS_FILE
    return default if default.is_file() else None


def load_config(
    explicit: Path | None = None, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> LoadedConfig:
    """Settings (file, then `POLLER_*` overrides) and every valid mapping, with all problems."""
    cwd = Path.cwd() if cwd is None else cwd
    settings_file = find_settings_file(explicit, cwd)
    base_dir = settings_file.parent if settings_file is not None else cwd
    settings, problems = load_settings(settings_file, os.environ if environ is None else environ)
    if any(p.severity == "error" for p in problems):
        return LoadedConfig(settings, settings_file, base_dir, (), tuple(problems))
    found = load_mapping_files(
        settings.mappings,
        base_dir,
        kafka_bootstrap_servers=settings.kafka.bootstrap_servers,
        file_root=settings.destinations.file_root,
    )
    return LoadedConfig(
        settings,
        settings_file,
        base_dir,
        found.mappings,
        (*problems, *found.problems),
        found.functions,
    )


def load_settings(path: Path | None, environ: Mapping[str, str]) -> tuple[Settings, list[Problem]]:
    """The settings, or the defaults plus the problems that stopped them from loading."""
    values: dict[str, Any] = {}
    lines = LineMap({})
    if path is not None:
        try:
            document = parse_yaml(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _defaults(), [Problem("Settings file not found.", path)]
        except OSError as exc:
            return _defaults(), [Problem(f"Cannot read settings file: {exc.strerror}", path)]
        except UnicodeDecodeError as exc:
            return _defaults(), [
                Problem(f"Not UTF-8 text (byte {exc.start}): a settings file is UTF-8 YAML.", path)
            ]
        except YamlError as exc:
            return _defaults(), [Problem(exc.message, path, exc.line)]
        if isinstance(document.value, dict):
            values = {str(key): value for key, value in document.value.items()}
            lines = document.lines
        elif document.value is not None:
            message = "Settings are a mapping of sections (aws, http, mappings, …)."
            return _defaults(), [Problem(message, path, document.lines.line_of())]
    # Keys such as `_env_file` would reach BaseSettings' own keyword arguments, not a field.
    private = [key for key in values if key.startswith("_")]
    if private:
        return _defaults(), [
            Problem("Unknown key.", path, lines.line_of((key,)), field=key) for key in private
        ]
    try:
        return build_settings(values, environ), []
    except ValidationError as exc:
        return _defaults(), [_settings_problem(err, path, lines, environ) for err in exc.errors()]
    except SettingsError as exc:
        return _defaults(), _unparsable_env_problems(exc, environ)


def _defaults() -> Settings:
    return build_settings({}, {})


def _settings_problem(
    err: ErrorDetails, path: Path | None, lines: LineMap, environ: Mapping[str, str]
) -> Problem:
    """Blame the environment variable when one set this value (it wins over the file), else the file."""
    loc, message = err["loc"], readable(err["type"], err["msg"])
    variable = _env_var_for(loc, environ)
    if variable is not None:
        return Problem(message, field=variable)
    return Problem(message, path, lines.line_of(loc) if path is not None else None, field=dotted(loc))


def _env_var_for(loc: Sequence[int | str], environ: Mapping[str, str]) -> str | None:
    spelled = {key.upper(): key for key, value in environ.items() if value != ""}
    for depth in range(len(loc), 0, -1):
        variable = spelled.get(env_var_name(tuple(loc[:depth])))
        if variable is not None:
            return variable
    return None


_FIELD_IN_SETTINGS_ERROR = re.compile(r'field "([^"]+)"')


def _unparsable_env_problems(exc: SettingsError, environ: Mapping[str, str]) -> list[Problem]:
    """pydantic-settings could not JSON-decode a list/object variable; find which one it was.

    Its message names only the top-level field, so look at the variables under that field and
    blame those that set a list or section and are not JSON (all of them if none qualifies).
    """
    match = _FIELD_IN_SETTINGS_ERROR.search(str(exc))
    if match is None:
        return [Problem(str(exc))]
    prefix = env_var_name((match[1],))
    candidates = [
        key
        for key, value in environ.items()
        if value != "" and (key.upper() == prefix or key.upper().startswith(prefix + "__"))
    ]
    culprits = [key for key in candidates if env_var_expects_json(key) and not _is_json(environ[key])]
    culprits = culprits or candidates
    message = 'Could not parse the value: lists and sections are given as JSON, e.g. ["a.yaml", "b/"].'
    return [Problem(message, field=key) for key in sorted(culprits)] or [Problem(str(exc))]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def load_mappings(
    paths: Sequence[Path],
    base_dir: Path,
    *,
    kafka_bootstrap_servers: tuple[str, ...] = (),
    file_root: Path = DEFAULT_FILE_ROOT,
) -> tuple[list[ResolvedMapping], list[Problem]]:
    """Every mapping in `paths` (files, or directories of `*.yaml`/`*.yml`), resolved against `base_dir`.

    `kafka_bootstrap_servers` (the settings' `kafka.bootstrap_servers`) serves Kafka mappings that
    name no servers of their own. `file_root` (the settings' `destinations.file_root`, relative to
    `base_dir`) is the directory `file://` destinations must lie in; the default is the settings'.
    The functions the files declare are read too (mappings that name them depend on them), but
    only `load_mapping_files` returns them.
    """
    found = load_mapping_files(
        paths, base_dir, kafka_bootstrap_servers=kafka_bootstrap_servers, file_root=file_root
    )
    return list(found.mappings), list(found.problems)


@dataclass(frozen=True, slots=True)
class MappingFiles:
    """What the mapping files define: valid mappings and functions, and every problem in reading order."""

    mappings: tuple[ResolvedMapping, ...]
    functions: Mapping[str, DeclaredFunction]
    problems: tuple[Problem, ...]


def load_mapping_files(
    paths: Sequence[Path],
    base_dir: Path,
    *,
    kafka_bootstrap_servers: tuple[str, ...] = (),
    file_root: Path = DEFAULT_FILE_ROOT,
) -> MappingFiles:
    """`load_mappings`, with the functions declared under `Functions:` in any of the files.

    Functions are read first, from every file, because a mapping in one file may name a function
    declared in another.
    """
    files, problems = _mapping_files(paths, base_dir)
    entries: list[RawEntry] = []
    found_functions: list[FoundFunction] = []
    for file in files:
        try:
            document = parse_yaml(file.read_text(encoding="utf-8"))
        except OSError as exc:
            problems.append(Problem(f"Cannot read mapping file: {exc.strerror}", file))
            continue
        except UnicodeDecodeError as exc:
            problems.append(
                Problem(f"Not UTF-8 text (byte {exc.start}): a mapping file is UTF-8 YAML.", file)
            )
            continue
        except YamlError as exc:
            problems.append(Problem(exc.message, file, exc.line))
            continue
        found, file_problems = entries_in_document(document, file)
        entries += found
        problems += file_problems
        functions_here, function_problems = functions_in_document(document, file)
        found_functions += functions_here
        problems += function_problems
    functions, duplicate_problems = declared_functions(found_functions)
    problems += duplicate_problems
    mappings, mapping_problems = resolve_all(
        entries,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        file_root=Path(os.path.normpath(base_dir / file_root)),
        functions=functions,
    )
    problems += mapping_problems
    # Report in reading order (file by file, top to bottom), not in the order the checks ran.
    order = {file: position for position, file in enumerate(files)}
    problems.sort(key=lambda p: (order.get(p.file, -1) if p.file is not None else -1, p.line or 0))
    return MappingFiles(tuple(mappings), functions.valid, tuple(problems))


def _mapping_files(paths: Sequence[Path], base_dir: Path) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for entry in paths:
        path = Path(os.path.normpath(entry if entry.is_absolute() else base_dir / entry))
        try:
            # is_dir raises for what it cannot tell (EACCES on a parent, EIO, a name too long).
            is_dir = path.is_dir()
        except OSError as exc:
            problems.append(Problem(f"Cannot read mapping path: {exc.strerror}", path))
            continue
        if is_dir:
            try:
                found = sorted(child for child in path.iterdir() if _is_mapping_file(child))
            except OSError as exc:
                problems.append(Problem(f"Cannot list mapping directory: {exc.strerror}", path))
                continue
            if not found:
                problems.append(
                    Problem("No mapping files (*.yaml, *.yml) in directory.", path, severity="warning")
                )
        elif path.is_file():
            found = [path]
        else:
            problems.append(Problem("Mapping file or directory does not exist.", path))
            continue
        for file in found:
            # A file reached twice (listed and inside a listed directory) is one set of mappings,
            # not a set of duplicates.
            if (real := file.resolve()) not in seen:
                seen.add(real)
                files.append(file)
    return files, problems


def _is_mapping_file(path: Path) -> bool:
    # Dotfiles are skipped because a Kubernetes ConfigMap mount holds `..data` and `..<timestamp>`
    # entries beside the real (symlinked) files; reading them too would load every mapping twice.
    return not path.name.startswith(".") and path.suffix in MAPPING_SUFFIXES and path.is_file()
