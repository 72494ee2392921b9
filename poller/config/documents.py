"""Mapping documents that come from somewhere other than a file: the Lambda API (DESIGN §1.9).

A request to the API becomes the same document a YAML file holds (PascalCase keys plus `Name`),
so the one resolver judges both. There are no lines to point at, so the origin stands where a
file would (e.g. `api:<uuid>`), and problems name the mapping and the field as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from poller.config.mapping import RawMapping
from poller.config.problems import MappingContext, Problem
from poller.config.resolve import RawEntry
from poller.config.yaml_lines import LineMap


def entry_from_document(document: Mapping[str, object], origin: str) -> tuple[RawEntry | None, list[Problem]]:
    """The entry for one mapping document, or None and what is wrong with its shape."""
    name = document.get("Name")
    ctx = MappingContext(name if isinstance(name, str) else None, Path(origin), LineMap({}))
    try:
        raw = RawMapping.model_validate(dict(document))
    except ValidationError as exc:
        return None, ctx.validation_problems(exc)
    return RawEntry(raw, ctx), []
