"""Settings shared by both services, loaded from a file, the environment and the command line.

Each service subclasses :class:`ServiceSettings` with its own environment prefix::

    class ProfileSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="CROWD_PROFILE_")
        visit_timeout_seconds: float = Field(1800, description="Inactivity that ends a visit.")

Precedence, highest first: command-line overrides / keyword arguments, environment variables,
the config file (``--config PATH`` or ``CROWD_CONFIG_FILE``; YAML or JSON, keys are field
names), defaults. :func:`settings_cli` builds the ``--help`` from the fields themselves, so a new
field documents itself by having a ``Field(description=...)``.

Secrets (API keys, the Redis password) are registered with the log redactor as soon as the
settings validate, and never appear in ``repr``. Settings typed as secrets cannot be given on the
command line, where ``ps`` would show them: use the environment or the config file.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import os
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from service_common.logging import register_secret

__all__ = [
    "CONFIG_FILE_ENV",
    "ApiKeys",
    "ServiceSettings",
    "SettingsError",
    "available_cores",
    "settings_cli",
]

#: Environment variable naming the optional config file (the same for both services).
CONFIG_FILE_ENV = "CROWD_CONFIG_FILE"

#: Minimum API key length: shorter keys are guessable.
MIN_API_KEY_LENGTH = 16

S = TypeVar("S", bound="ServiceSettings")


class SettingsError(ValueError):
    """Settings are invalid or a settings file cannot be read.

    The message lists every problem by setting name but never the offending values, which
    may be secrets.
    """


def _check_api_key(key: SecretStr) -> SecretStr:
    raw = key.get_secret_value()
    if len(raw) < MIN_API_KEY_LENGTH or not all("\x21" <= ch <= "\x7e" for ch in raw):
        # Printable ASCII without spaces: the key travels in an HTTP/2 header after "Bearer ".
        raise ValueError(
            f"API keys must be at least {MIN_API_KEY_LENGTH} printable ASCII characters "
            "without spaces"
        )
    return key


Scope = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]*$")]
ApiKey = Annotated[SecretStr, AfterValidator(_check_api_key)]
#: API key → scopes it grants. Keys are ``SecretStr`` so ``repr`` and dumps show ``**********``.
ApiKeys = dict[ApiKey, frozenset[Scope]]

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "on", "off"})

#: Upper bound of the ``workers`` setting (a guard against typos such as 1000).
MAX_WORKERS = 256


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


# The config file of the settings being built now: set by ``ServiceSettings.load`` for the
# duration of one construction (a context variable, so concurrent loads cannot mix files).
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "crowd_config_file", default=None
)


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    """Load a YAML or JSON file (YAML parses both) whose top level must be a mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read {what} {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{what} {path} is not valid YAML/JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{what} {path} must contain a mapping at the top level")
    return data


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the config file, if one is named (``load(config_file=...)`` or env)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        if path is None and os.environ.get(CONFIG_FILE_ENV):
            path = Path(os.environ[CONFIG_FILE_ENV])
        return _read_mapping(path, "config file") if path is not None else {}


class ServiceSettings(BaseSettings):
    """Settings every crowd service has. Subclass it with the service's ``env_prefix``."""

    model_config = SettingsConfigDict(
        env_prefix="CROWD_",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 or :: for all).")
    port: int = Field(0, ge=0, le=65535, description="TCP port to listen on; 0 picks a free one.")
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="HTTP port of the Prometheus /metrics endpoint; 0 turns it off. With "
        "--workers N, worker i serves it on metrics_port + i.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        repr=False,  # may hold a password
        description="Redis URL: redis://[[user]:password@]host:port/db, rediss://… or "
        "unix:///path/to/redis.sock?db=0. Give a URL with a password in the environment or "
        "the config file, not on the command line.",
    )
    redis_cluster: bool = Field(
        False,
        description="Connect to a Redis Cluster: redis_url names one node (a seed); the client "
        "discovers the others, follows MOVED/ASK and refreshes the topology after a failover.",
    )
    redis_cluster_nodes: str = Field(
        "",
        description="Cluster seed nodes as comma-separated host:port (used with redis_cluster "
        "when set, besides the node of redis_url, whose credentials and TLS apply to all): "
        "start-up then survives one seed being down.",
    )
    redis_wait_replicas: int = Field(
        0,
        ge=0,
        le=16,
        description="Acknowledge a write only once this many replicas hold it (Redis WAIT on "
        "the connection that wrote); fewer within redis_wait_timeout_ms answers UNAVAILABLE. "
        "0: off (asynchronous replication).",
    )
    redis_wait_timeout_ms: int = Field(
        1000,
        ge=1,
        le=60_000,
        description="Longest wait for redis_wait_replicas replicas to confirm a write.",
    )
    redis_max_connections: int = Field(
        256,
        ge=1,
        le=65_536,
        description="Most Redis connections of one process (per node on a cluster). Past it, a "
        "standalone client's calls wait for a free connection (within each call's deadline) "
        "instead of failing; a cluster client's fail with UNAVAILABLE.",
    )
    redis_watchdog_interval_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often Redis is pinged once serving; health is NOT_SERVING while it "
        "does not answer.",
    )
    redis_connect_retry_max_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Cap of the backoff (full jitter, doubling from 0.1 s) between attempts "
        "to reach Redis at start-up; the service retries forever, reporting NOT_SERVING.",
    )
    api_keys: ApiKeys = Field(
        default_factory=dict,
        description='API key → scopes, as a JSON object, e.g. {"<key>": ["ingest", "read"]}. '
        f"Keys need at least {MIN_API_KEY_LENGTH} printable characters.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="YAML/JSON file with more API keys (same shape as api_keys); keys given "
        "in api_keys win.",
    )
    auth_enabled: bool = Field(True, description="Require an API key for every RPC.")
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="On SIGTERM, how long in-flight RPCs may run before cancel."
    )
    shutdown_hook_timeout_seconds: float = Field(
        15.0,
        gt=0,
        description="On stop, how long each background-work shutdown step may take before it "
        "is cancelled (work it abandons is redelivered from Redis).",
    )
    gc_young_threshold: int = Field(
        10_000,
        ge=0,
        le=10_000_000,
        description="Once serving, freeze the start-up objects out of garbage collection and "
        "collect the young generation every this many allocations (Python's default is 700; "
        "see service_common.gc_tuning). 0: leave the collector as Python sets it.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Minimum level of log records written."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line; text: for humans."
    )
    otel_service_name: str = Field(
        "crowd", description="service.name of the traces (OTEL_SERVICE_NAME overrides it)."
    )
    workers: int = Field(
        default_factory=available_cores,
        ge=1,
        le=MAX_WORKERS,
        description="Worker processes serving the one port (SO_REUSEPORT), each with its own "
        "event loop, under a supervisor that restarts a killed one; default: the cores this "
        "process may run on. 1: a single process, no supervisor.",
    )
    max_connection_age_seconds: float = Field(
        300.0,
        ge=0,
        description="Clients are asked (HTTP/2 GOAWAY) to reconnect after a connection is "
        "this old (±10%), so long-lived clients spread again over workers and replicas; "
        "0: never.",
    )
    max_connection_age_grace_seconds: float = Field(
        0.0,
        ge=0,
        description="How long RPCs in flight on such a connection may still run (streams "
        "included) before it is closed; 0: until they end.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: overrides, environment, config file. No .env or secrets-dir lookups.
        return init_settings, env_settings, _ConfigFileSource(settings_cls)

    @field_validator("workers", mode="before")
    @classmethod
    def _workers_is_a_count(cls, value: Any) -> Any:
        # The dispatch service's ``workers`` used to be a boolean (now background_workers):
        # say so rather than "not a valid integer".
        if isinstance(value, bool) or (
            isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS
        ):
            raise ValueError(
                "is the number of worker processes (an integer >= 1); background_workers "
                "turns background work on or off"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in _REDIS_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(_REDIS_SCHEMES)}")
        return value

    @field_validator("redis_cluster_nodes")
    @classmethod
    def _check_cluster_nodes(cls, value: str) -> str:
        for node in (part.strip() for part in value.split(",") if part.strip()):
            host, sep, port = node.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("give host:port pairs separated by commas")
        return value

    @model_validator(mode="before")
    @classmethod
    def _merge_api_keys_file(cls, data: Any) -> Any:
        """Add the keys of ``api_keys_file`` below those given directly."""
        if not isinstance(data, dict) or not data.get("api_keys_file"):
            return data
        from_file = _read_mapping(Path(data["api_keys_file"]), "api_keys_file")
        inline = data.get("api_keys") or {}
        if isinstance(inline, str):  # JSON given as a keyword argument
            inline = json.loads(inline)
        return {**data, "api_keys": {**from_file, **inline}}

    @model_validator(mode="after")
    def _check_cluster_url(self) -> Self:
        # Refused at start, naming the setting: redis-py would only fail at the first command.
        if self.redis_cluster:
            parts = urlsplit(self.redis_url)
            if parts.scheme == "unix":
                raise ValueError("redis_url: a Redis Cluster needs redis:// or rediss://")
            if parts.path.strip("/") not in ("", "0"):
                raise ValueError("redis_url: a Redis Cluster has database 0 only")
        return self

    @model_validator(mode="after")
    def _register_secrets(self) -> Self:
        for key in self.api_keys:
            register_secret(key.get_secret_value())
        register_secret(urlsplit(self.redis_url).password)
        return self

    def worker_overrides(self, index: int) -> dict[str, Any]:
        """Settings that must differ between the worker processes of one supervisor.

        ``index`` is the worker's number (0-based, kept across its restarts). Services with
        per-process identities (e.g. a stable consumer name) extend this. Each worker serves
        its own ``/metrics`` on ``metrics_port + index`` (Prometheus sums the workers).
        """
        return {"metrics_port": self.metrics_port + index} if self.metrics_port else {}

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable that sets ``field_name``, e.g. ``CROWD_PROFILE_PORT``."""
        prefix = cls.model_config.get("env_prefix") or ""
        return f"{prefix}{field_name}".upper()

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any) -> Self:
        """Build settings from ``overrides``, the environment and the config file.

        Args:
            config_file: YAML/JSON file; ``None`` falls back to ``$CROWD_CONFIG_FILE``.
            **overrides: Field values that beat every other source (e.g. from the CLI).

        Raises:
            SettingsError: Listing each invalid setting without its value.
        """
        token = _config_file.set(Path(config_file) if config_file is not None else None)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(_describe_errors(cls, exc)) from None
        finally:
            _config_file.reset(token)


def _describe_errors(cls: type[ServiceSettings], exc: ValidationError) -> str:
    """Every error as ``setting (ENV_VAR): message``, without the input (it may be a secret)."""
    lines = [f"invalid {cls.__name__}:"]
    for err in exc.errors(include_input=False, include_url=False):
        loc = err["loc"]
        name = str(loc[0]) if loc else "(settings)"
        where = f"{name} ({cls.env_name(name)})" if name in cls.model_fields else name
        # Nested positions inside api_keys would be the keys themselves: never show them.
        if name == "api_keys" and len(loc) > 1:
            where += " [an entry]"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


# --- command line ----------------------------------------------------------------------------


def _type_args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp)


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in _type_args(tp)


def _strip_optional(tp: Any) -> Any:
    if _is_optional(tp):
        rest = [a for a in _type_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def _mentions(tp: Any, target: type) -> bool:
    """Whether annotation ``tp`` involves ``target`` anywhere (e.g. SecretStr in a dict key)."""
    if tp is target:
        return True
    return any(_mentions(arg, target) for arg in _type_args(tp))


def _type_label(tp: Any) -> str:
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in _type_args(tp))
    if origin is Annotated:
        return _type_label(_type_args(tp)[0])
    if origin in (dict, Mapping):
        return "JSON object"
    if origin in (list, tuple, set, frozenset):
        return "JSON list"
    if tp is Path:
        return "path"
    if tp is SecretStr:
        return "secret"
    return getattr(tp, "__name__", str(tp))


def _default_label(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if _mentions(info.annotation, SecretStr):
        return "(secret)"
    if info.default_factory is not None:
        return json.dumps(info.default_factory())  # type: ignore[call-arg]
    if info.default is None:
        return "none"
    return str(info.default)


def _cli_fields(settings_cls: type[ServiceSettings]) -> Iterator[tuple[str, FieldInfo, bool]]:
    """(name, field, settable on the command line) for each field, in declaration order."""
    for name, info in settings_cls.model_fields.items():
        yield name, info, not _mentions(info.annotation, SecretStr)


def build_parser(
    settings_cls: type[ServiceSettings], prog: str | None = None
) -> argparse.ArgumentParser:
    """The argparse parser behind :func:`settings_cli` (exposed for tests and docs)."""
    env_only: list[str] = []
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(settings_cls.__doc__ or "").strip().splitlines()[0]
        if settings_cls.__doc__
        else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"YAML or JSON settings file [env: {CONFIG_FILE_ENV}]",
    )
    for name, info, on_cli in _cli_fields(settings_cls):
        env = settings_cls.env_name(name)
        facts = f"env: {env}; type: {_type_label(info.annotation)}; default: {_default_label(info)}"
        help_text = f"{info.description or ''} [{facts}]".strip().replace("%", "%%")
        if not on_cli:
            env_only.append(f"  {env}\n      {help_text}")
            continue
        flag = "--" + name.replace("_", "-")
        tp = _strip_optional(info.annotation)
        if tp is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif typing.get_origin(tp) is Literal:
            choices = [str(a) for a in _type_args(tp)]
            # Upper-case choices (log levels) accept any case, as the environment does.
            convert = str.upper if all(c.isupper() for c in choices) else str
            parser.add_argument(
                flag, dest=name, type=convert, choices=choices, default=None, help=help_text
            )
        else:
            # Strings go to pydantic as given; it coerces and validates them with the env rules.
            parser.add_argument(flag, dest=name, metavar=_type_label(tp).upper(), help=help_text)
    epilog = [
        "Precedence: command line > environment > config file > defaults.",
    ]
    if env_only:
        epilog += ["", "Secret settings (environment or config file only):", *env_only]
    parser.epilog = "\n".join(epilog)
    return parser


def settings_cli(
    settings_cls: type[S], argv: Sequence[str] | None = None, *, prog: str | None = None
) -> S:
    """Parse ``argv`` (default ``sys.argv[1:]``) and return the loaded settings.

    ``--help`` lists every setting with its environment variable, type, default and description.
    Invalid settings exit with status 2 and a message naming each bad setting.
    """
    parser = build_parser(settings_cls, prog)
    namespace = vars(parser.parse_args(argv))
    config = namespace.pop("config")
    overrides = {k: v for k, v in namespace.items() if v is not None}
    try:
        return settings_cls.load(config, **overrides)
    except SettingsError as exc:
        parser.error(str(exc))
