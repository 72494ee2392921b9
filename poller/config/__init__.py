"""Settings and mapping definitions: YAML in, frozen typed values out (DESIGN §1.3, §1.4).

Every problem is reported as `file:line: Mapping 'name': field: message` (`Function 'name'` for a
function declared under `Functions:`); see `loader`.
"""

from poller.config.functions import DeclaredFunction
from poller.config.loader import (
    LoadedConfig,
    find_settings_file,
    load_config,
    load_mappings,
    load_settings,
)
from poller.config.problems import Problem
from poller.config.resolved import KafkaMapping, Location, ResolvedMapping, SqsMapping, StreamMapping
from poller.config.settings import KafkaSettings, Settings
from poller.config.validate import run_validate

__all__ = [
    "DeclaredFunction",
    "KafkaMapping",
    "KafkaSettings",
    "LoadedConfig",
    "Location",
    "Problem",
    "ResolvedMapping",
    "Settings",
    "SqsMapping",
    "StreamMapping",
    "find_settings_file",
    "load_config",
    "load_mappings",
    "load_settings",
    "run_validate",
]
