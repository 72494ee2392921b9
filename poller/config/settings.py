"""Service settings: what all mappings share (DESIGN §1.3).

Every key has a default, so an empty file (or none) is valid. `POLLER_*` environment variables
override the file, `__` separating levels (`POLLER_HTTP__PORT`), because in a container the
environment is the natural place for per-deployment values such as an endpoint URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from poller.config.kafka import bootstrap_server_problem

ENV_PREFIX = "POLLER_"
ENV_NESTED_DELIMITER = "__"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AwsSettings(_Section):
    region: str = "us-east-1"
    endpoint_url: str | None = None
    """e.g. http://127.0.0.1:4566 for LocalStack or moto; credentials come from the AWS chain."""
    account_id: str = Field(default="000000000000", pattern=r"^\d{12}$")
    role_arn: str | None = None

    @field_validator("account_id", mode="before")
    @classmethod
    def _quoted_account_id(cls, value: object) -> object:
        # YAML reads unquoted digits as a number and drops leading zeros (or reads them as
        # octal), so silently stringifying would produce a different account id.
        if isinstance(value, int):
            raise ValueError("account_id must be a quoted string (YAML reads unquoted digits as a number)")
        return value


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_SSL_PROTOCOLS = ("SSL", "SASL_SSL")


class KafkaSettings(_Section):
    """How poller reaches Kafka brokers; shared by every Kafka mapping (DESIGN §1.3).

    Credentials live here (or in `POLLER_KAFKA__*` variables), never in a mapping: a mapping's
    `SourceAccessConfigurations` is kept as written but its secret ARNs are not read.
    """

    bootstrap_servers: tuple[str, ...] = ()
    """Default for Kafka mappings that name no bootstrap servers of their own; `host:port` each."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    # The fields below are checked against `security_protocol`, so they come after it (pydantic
    # validates in declaration order) and are validated even when left at their default.
    sasl_mechanism: SaslMechanism | None = Field(default=None, validate_default=True)
    """Required with SASL_PLAINTEXT / SASL_SSL."""
    sasl_username: str | None = Field(default=None, validate_default=True)
    sasl_password: SecretStr | None = Field(default=None, validate_default=True)
    """Never printed: repr, str and JSON dumps show `**********`."""
    ssl_cafile: Path | None = None
    """CA bundle for SSL / SASL_SSL (default: the system's); relative to the settings file's directory."""
    ssl_certfile: Path | None = None
    """Client certificate (mutual TLS); may hold the key too."""
    ssl_keyfile: Path | None = None
    client_id: str = Field(default="poller", min_length=1)
    session_timeout_ms: int = Field(default=10_000, ge=6_000, le=300_000)
    """How long the group waits for a member that stopped heartbeating (a kill -9) before its
    partitions move; 6 s is the brokers' usual minimum (group.min.session.timeout.ms)."""
    fetch_max_wait_ms: int = Field(default=100, ge=0)
    """How long a broker may hold a fetch waiting for data. Kept low because some brokers (Tansu)
    answer a waiting fetch only when this expires, not when data arrives (DESIGN §4)."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_and_port(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for server in value:
            if (message := bootstrap_server_problem(server)) is not None:
                raise ValueError(message)
        return value

    @field_validator("sasl_mechanism", "sasl_username", "sasl_password")
    @classmethod
    def _sasl_needs_sasl_protocol(cls, value: object, info: ValidationInfo) -> object:
        protocol = info.data.get("security_protocol")
        if protocol is None:  # itself invalid, and reported as such
            return value
        if value is None and protocol in _SASL_PROTOCOLS:
            raise ValueError(f"Required when security_protocol is {protocol}.")
        if value is not None and protocol not in _SASL_PROTOCOLS:
            raise ValueError(
                f"Only used with security_protocol SASL_PLAINTEXT or SASL_SSL, not {protocol}; "
                "set security_protocol or remove this key."
            )
        return value

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _ssl_needs_ssl_protocol(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        protocol = info.data.get("security_protocol")
        if value is not None and protocol is not None and protocol not in _SSL_PROTOCOLS:
            raise ValueError(
                f"Only used with security_protocol SSL or SASL_SSL, not {protocol}; "
                "set security_protocol or remove this key."
            )
        return value


class StateSettings(_Section):
    backend: Literal["sqlite", "dynamodb"] = "sqlite"
    path: Path = Path("var/poller-state.sqlite3")
    """sqlite file, relative to the settings file's directory."""
    table: str = "poller-state"
    """dynamodb table, shared by replicas."""
    lease_seconds: float = Field(default=10.0, ge=3.0, le=600.0)
    """dynamodb backend: a replica that stops renewing (a kill -9) loses its shards after this
    long, as KCL's failoverTimeMillis; leases are renewed every third of it."""


class HttpSettings(_Section):
    host: str = "0.0.0.0"  # a service in a container must listen beyond loopback
    port: int = Field(default=8080, ge=0, le=65535)


class TargetSettings(_Section):
    """How poller reaches HTTP function targets (DESIGN §1.5).

    Headers live here or in `POLLER_TARGETS__HTTP_HEADERS` (JSON), never in a mapping file, so a
    bearer token does not end up in a URL, in /status or in the logs.
    """

    http_headers: dict[str, dict[str, SecretStr]] = {}
    """Extra request headers per target host (`host` or `host:port`), e.g.
    `{"handler.example.com": {"Authorization": "Bearer …"}}`. Values are never printed."""


class DestinationSettings(_Section):
    file_root: Path = Path("var/destinations")
    """`file://` on-failure destinations must lie inside this directory (relative to the settings
    file's directory); others are refused at load."""


LogLevel = Literal["debug", "info", "warning", "error"]


class LogSettings(_Section):
    format: Literal["json", "console"] = "json"
    level: LogLevel = "info"

    @field_validator("level", mode="before")
    @classmethod
    def _lowercase_level(cls, value: object) -> object:
        # `POLLER_LOG__LEVEL=INFO` is how people write it; accept it rather than argue.
        return value.lower() if isinstance(value, str) else value


class ShutdownSettings(_Section):
    drain_seconds: Annotated[float, Field(gt=0)] = 25.0
    """In-flight budget on SIGTERM; keep below Kubernetes' terminationGracePeriodSeconds."""


class FunctionSettings(_Section):
    """Execution environments of the functions declared under `Functions:` (DESIGN §1.5.1)."""

    idle_seconds: Annotated[float, Field(gt=0)] = 600.0
    """An execution environment idle this long is retired (a later invocation cold-starts)."""


class ApiSettings(_Section):
    """The Lambda event-source-mapping API on the HTTP listener (DESIGN §1.3, §1.9)."""

    enabled: bool = True
    access_key_ids: tuple[str, ...] = ()
    """If set, only requests signed (SigV4) with one of these access key ids are served; the
    signature itself is not checked, so without this list anyone who reaches the listener can
    change the mappings."""


class Settings(BaseSettings):
    """The parsed settings file with environment overrides applied. Immutable."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
        # Kubernetes manifests and shell templates often set a variable to "" to mean "unset";
        # `null` is how to override a value back to None.
        env_ignore_empty=True,
        env_parse_none_str="null",
    )

    aws: AwsSettings = AwsSettings()
    kafka: KafkaSettings = KafkaSettings()
    state: StateSettings = StateSettings()
    http: HttpSettings = HttpSettings()
    targets: TargetSettings = TargetSettings()
    destinations: DestinationSettings = DestinationSettings()
    mappings: tuple[Path, ...] = (Path("mappings"),)
    """Files or directories of mapping YAML, relative to the settings file's directory."""
    log: LogSettings = LogSettings()
    shutdown: ShutdownSettings = ShutdownSettings()
    functions: FunctionSettings = FunctionSettings()
    api: ApiSettings = ApiSettings()

    @property
    def effective_role_arn(self) -> str:
        """The role Kinesis events name as `invokeIdentityArn`; made up from the account if unset."""
        return self.aws.role_arn or f"arn:aws:iam::{self.aws.account_id}:role/poller"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file's values arrive as init kwargs; listing the environment first makes it
        # win, key by key (sources are deep-merged). No .env files or secret dirs: one file, one
        # environment, nothing implicit.
        environ = _ENVIRON.get()
        env = env_settings if environ is None else _MappingEnvSource(settings_cls, environ)
        return env, init_settings


_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("poller_settings_environ", default=None)
"""The environment `build_settings` reads instead of `os.environ` (tests, and `load_config`)."""


class _MappingEnvSource(EnvSettingsSource):
    """The standard env source reading a given mapping instead of the process environment."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)  # set first: the base __init__ loads the variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The same normalisation the base class applies to os.environ (case, "", "null").
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


@contextmanager
def _environment(environ: Mapping[str, str]) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def build_settings(values: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """`values` from the settings file, overridden by `POLLER_*` entries of `environ`.

    Raises pydantic's `ValidationError` or pydantic-settings' `SettingsError` (an env value that
    should be JSON is not); the loader turns both into problems.
    """
    with _environment(environ):
        return Settings(**values)


def env_var_expects_json(variable: str) -> bool:
    """Whether `variable` sets a list or a section, which pydantic-settings decodes as JSON."""
    parts = variable.upper().removeprefix(ENV_PREFIX).lower().split(ENV_NESTED_DELIMITER)
    model: type[BaseModel] = Settings
    for depth, part in enumerate(parts, start=1):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        section = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if depth == len(parts):
            return section is not None or get_origin(annotation) in (list, tuple, dict, set)
        if section is None:
            return False
        model = section
    return False


def env_var_name(path: tuple[str | int, ...]) -> str:
    """The variable that sets a settings path: `("http", "port")` → `POLLER_HTTP__PORT`."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in path)
