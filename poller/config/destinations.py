"""On-failure destinations as written in a mapping (DESIGN §1.4, spec §6.1), parsed and checked.

Pure, so the loader can reject a bad `DestinationConfig.OnFailure.Destination` with the file and
line; `poller.destinations.factory` turns a parsed spec into a live destination.

A `file://` destination must lie inside the settings' `destinations.file_root` (`confine_file`): a
mapping file must not be able to make poller append to, or create directories at, any path its
user can write.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

DEFAULT_REGION = "us-east-1"

_PARTITION = r"(?P<partition>aws(-[a-z]+)*)"
_REGION = r"(?P<region>[a-z]{2}(-[a-z]+)+-\d+)"
_ACCOUNT = r"(?P<account>\d{12})"
# Queue and topic names as SQS and SNS define them, with the `.fifo` suffix matched so that a FIFO
# ARN gets its own message rather than "not a valid ARN".
_SQS_ARN = re.compile(rf"arn:{_PARTITION}:sqs:{_REGION}:{_ACCOUNT}:(?P<name>[A-Za-z0-9_-]{{1,80}}(\.fifo)?)")
_SNS_ARN = re.compile(rf"arn:{_PARTITION}:sns:{_REGION}:{_ACCOUNT}:(?P<name>[A-Za-z0-9_-]{{1,256}}(\.fifo)?)")
_S3_ARN = re.compile(rf"arn:{_PARTITION}:s3:::(?P<bucket>[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9])")
_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")

EXPECTED = (
    "an SQS queue ARN, an SNS topic ARN, an S3 bucket ARN (arn:aws:s3:::bucket), "
    "kafka://topic or file:///absolute/path.jsonl"
)


@dataclass(frozen=True, slots=True)
class SqsDestinationSpec:
    kind: ClassVar[str] = "sqs"
    uri: str
    region: str
    account_id: str
    queue_name: str


@dataclass(frozen=True, slots=True)
class SnsDestinationSpec:
    kind: ClassVar[str] = "sns"
    uri: str
    """The topic ARN, which is also what Publish takes."""
    region: str
    account_id: str
    topic_name: str


@dataclass(frozen=True, slots=True)
class S3DestinationSpec:
    kind: ClassVar[str] = "s3"
    uri: str
    bucket: str


@dataclass(frozen=True, slots=True)
class KafkaDestinationSpec:
    kind: ClassVar[str] = "kafka"
    uri: str
    topic: str


@dataclass(frozen=True, slots=True)
class FileDestinationSpec:
    kind: ClassVar[str] = "file"
    uri: str
    path: Path


DestinationSpec = (
    SqsDestinationSpec | SnsDestinationSpec | S3DestinationSpec | KafkaDestinationSpec | FileDestinationSpec
)


def parse_destination(uri: str) -> DestinationSpec:
    """Validate an on-failure destination. Raises ValueError saying what is wrong with it."""
    if not uri:
        raise ValueError(f"destination is empty; expected {EXPECTED}")
    if uri.startswith("arn:"):
        return _parse_arn(uri)
    if uri.startswith("kafka://"):
        topic = uri.removeprefix("kafka://")
        if not _KAFKA_TOPIC.fullmatch(topic) or topic in {".", ".."}:
            raise ValueError(
                f"destination '{uri}': a Kafka topic name is 1-249 of the characters A-Z a-z 0-9 . _ -"
            )
        return KafkaDestinationSpec(uri, topic)
    if uri.startswith("file:"):
        return FileDestinationSpec(uri, _file_path(uri))
    raise ValueError(f"destination '{uri}' is not {EXPECTED}")


def _parse_arn(uri: str) -> DestinationSpec:
    if match := _SQS_ARN.fullmatch(uri):
        if match["name"].endswith(".fifo"):
            raise ValueError(
                f"destination '{uri}' is a FIFO queue; on-failure destinations must be standard queues"
            )
        return SqsDestinationSpec(uri, match["region"], match["account"], match["name"])
    if match := _SNS_ARN.fullmatch(uri):
        if match["name"].endswith(".fifo"):
            raise ValueError(
                f"destination '{uri}' is a FIFO topic; on-failure destinations must be standard topics"
            )
        return SnsDestinationSpec(uri, match["region"], match["account"], match["name"])
    if match := _S3_ARN.fullmatch(uri):
        return S3DestinationSpec(uri, match["bucket"])
    raise ValueError(f"destination '{uri}' is not a valid SQS queue, SNS topic or S3 bucket ARN")


def _file_path(uri: str) -> Path:
    parts = urlsplit(uri)
    # `file://data/x.jsonl` puts `data` in the host, and `file:x.jsonl` has a relative path:
    # both would depend on the working directory, so only `file:///absolute/path` is accepted.
    if parts.netloc or not parts.path.startswith("/"):
        raise ValueError(f"destination '{uri}' must be an absolute file URI: file:///absolute/path.jsonl")
    if parts.query or parts.fragment:
        raise ValueError(f"destination '{uri}': a file URI takes no query or fragment")
    path = unquote(parts.path)
    if path.endswith("/"):
        raise ValueError(f"destination '{uri}' names a directory, not a file")
    return Path(path)


def confine_file(spec: FileDestinationSpec, root: Path) -> None:
    """Raise ValueError unless `spec`'s file lies inside `root` (absolute) once `..` and the symlinks
    that exist now are resolved, so neither can lead out of it."""
    try:
        real_root = Path(os.path.realpath(root))
        real = Path(os.path.realpath(spec.path))
    except OSError as exc:  # a symlink loop, a name too long: nothing poller could write to anyway
        raise ValueError(f"destination '{spec.uri}' cannot be resolved: {exc.strerror}") from exc
    if real != real_root and real.is_relative_to(real_root):
        return
    where = "" if real == spec.path else f" (it resolves to {real})"
    raise ValueError(
        f"destination '{spec.uri}' is not inside destinations.file_root ({root}){where}: "
        "file:// destinations must lie inside that directory"
    )
