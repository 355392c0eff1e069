"""Braze connector settings and the loader for a connectors file (YAML or JSON).

Secrets are configured *by reference* only: ``api_key_env`` (an environment variable name) or
``api_key_file`` (a file path). The resolved key is a :class:`pydantic.SecretStr`, whose repr and
str are ``'**********'``, and configuration errors list field paths and messages, never input
values, so a key cannot leak through a log line or an exception.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from dispatch_service.braze.endpoints import RateGroup, instance_endpoint

#: Environment variable the service reads connectors from: JSON text, or a path to a YAML/JSON
#: file.
CONNECTORS_ENV = "CROWD_BRAZE_CONNECTORS"

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_URL_RE = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")


class ConnectorConfigError(ValueError):
    """A connector definition is invalid; the message lists every problem by path."""


class BatchMode(StrEnum):
    """Objects one /users/track request may carry; depends on the Braze contract."""

    COMBINED75 = "combined75"
    """75 objects in total across attributes, events and purchases (current Braze rule)."""
    PER_ARRAY75 = "per_array75"
    """Legacy plans: 75 objects per array, up to 225 per request."""
    COMBINED50 = "combined50"
    """50 objects in total (older MAU CY 24-25 text)."""

    @property
    def limit(self) -> int:
        """The cap: per array for PER_ARRAY75, in total otherwise."""
        return 50 if self is BatchMode.COMBINED50 else 75

    @property
    def per_array(self) -> bool:
        """True when the cap applies to each array separately."""
        return self is BatchMode.PER_ARRAY75


class MembershipMode(StrEnum):
    """How audience membership is written to Braze (see payload.py for the encodings)."""

    SEGMENT_MEMBERSHIP = "segment_membership"
    IN_AUDIENCE_ATTRIBUTES = "in_audience_attributes"
    BOTH = "both"


class Rate(BaseModel):
    """A request budget: at most ``requests`` per ``per_seconds``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: int = Field(ge=1)
    per_seconds: float = Field(gt=0)

    @model_validator(mode="before")
    @classmethod
    def _parse_text(cls, data: Any) -> Any:
        # Accept the compact form used in config files: "3000/3s", "20000/1m", "5/1".
        if isinstance(data, str):
            match = _RATE_RE.match(data)
            if match is None:
                raise ValueError("expected a rate such as '3000/3s' or '20000/1m'")
            count, window, unit = match.groups()
            return {"requests": int(count), "per_seconds": float(window) * _UNIT_SECONDS[unit]}
        return data

    def __str__(self) -> str:
        return f"{self.requests}/{self.per_seconds:g}s"


class BrazeConnector(BaseModel):
    """One Braze workspace the dispatcher delivers to, with its limits and behaviour."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Connector id referenced by actions; also part of Redis key names."""
    instance: str | None = None
    """Braze instance (US-01..US-08, US-10, EU-01, EU-02, AU-01, ID-01, JP-01, KR-01)."""
    url: str | None = None
    """Custom REST base URL (e.g. the sandbox); wins over ``instance``."""
    api_key_env: str | None = None
    """Name of the environment variable holding the REST API key."""
    api_key_file: Path | None = None
    """Path of a file holding the REST API key (surrounding whitespace is stripped)."""
    api_key: SecretStr = Field(default=SecretStr(""), repr=False)
    """The resolved key. Set from ``api_key_env``/``api_key_file``; code (tests) may pass it."""

    batch_mode: BatchMode = BatchMode.COMBINED75
    track_rate: Rate = Rate(requests=3000, per_seconds=3.0)
    """Shared budget of /users/track requests (all replicas together)."""
    admin_rate: Rate = Rate(requests=20000, per_seconds=60.0)
    """Shared budget of /users/delete, /users/identify, /users/alias/new and /users/merge."""
    cohort_rate: Rate = Rate(requests=250_000, per_seconds=3600.0)
    """Shared budget of the partner cohort endpoints (Braze: 250,000 requests per hour)."""
    rate_margin_s: float = Field(default=0.1, ge=0, le=10)
    """Added to each rate window. The send delay after a grant no longer needs it (a slot is
    held until Braze answered, see rate_limit.py); it absorbs what happens inside Braze
    (counting at a load balancer, clock drift)."""
    max_rate_wait_s: float = Field(default=10.0, gt=0, le=600)
    """Longest a send waits for a rate-limit slot (or a shared pause) before handing its
    actions back as RETRY with the remaining wait."""
    linger_ms: int = Field(default=500, ge=0, le=1000)
    """How long a worker may wait for more actions before flushing a partial request."""
    deltas: bool = True
    """Send only attributes whose value differs from what Braze last accepted."""
    delta_ttl_days: int = Field(default=30, ge=1, le=3650)
    """Lifetime of the per-user delta memory (refreshed on every write)."""
    max_attempts: int = Field(default=200, ge=1, le=10_000)
    """Delivery attempts (all transient: 408, 429, 5xx, timeouts, connection errors) before an
    action is dead-lettered. With the default backoff (capped at 60 s, full jitter) 200
    attempts ride out roughly 1.5 hours of Braze failing; ``max_age_s`` bounds it too."""
    max_age_s: float = Field(default=86_400.0, gt=0)
    """Age after which a still-failing action is dead-lettered."""
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    """Total timeout of one HTTP request to Braze."""
    max_concurrent_requests: int = Field(default=8, ge=1, le=256)
    """Requests one delivery call keeps in flight at once."""
    membership_default_mode: MembershipMode = MembershipMode.IN_AUDIENCE_ATTRIBUTES
    """Membership encoding when an action leaves it unspecified."""
    segment_membership_attribute: str = Field(default="SegmentMembership", min_length=1)
    """Name of the array attribute listing the user's audiences."""
    audience_attribute_prefix: str = Field(default="In ", min_length=1)
    """Prefix of the per-audience boolean attributes (``In VIP``)."""
    identify_merge_behavior: Literal["none", "merge"] = "merge"
    """/users/identify ``merge_behavior``: ``merge`` keeps the alias profile's history."""

    partner_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Cohort import partner name (the ``/partners/{partner_name}/...`` path segment)."""
    partner_api_key_env: str | None = None
    client_secret_env: str | None = None
    partner_api_key: SecretStr | None = Field(default=None, repr=False)
    client_secret: SecretStr | None = Field(default=None, repr=False)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.rstrip("/")
        if not _URL_RE.match(value):
            raise ValueError("url must be an http(s) URL without query or fragment")
        return value

    @field_validator("instance")
    @classmethod
    def _check_instance(cls, value: str | None) -> str | None:
        if value is not None:
            instance_endpoint(value)  # raises ValueError naming the known instances
        return value

    @model_validator(mode="before")
    @classmethod
    def _resolve_secrets(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if not data.get("api_key"):
            data["api_key"] = _resolve_secret(
                "api_key", data.get("api_key_env"), data.get("api_key_file")
            )
        for name in ("partner_api_key", "client_secret"):
            env = data.get(f"{name}_env")
            if data.get(name) is None and env:
                data[name] = _resolve_secret(name, env, None)
        return data

    @model_validator(mode="after")
    def _check_target(self) -> BrazeConnector:
        if self.url is None and self.instance is None:
            raise ValueError("set either instance (e.g. US-01) or url")
        if not self.api_key.get_secret_value():
            raise ValueError("the REST API key is empty")
        return self

    @property
    def base_url(self) -> str:
        """REST base URL without a trailing slash."""
        if self.url is not None:
            return self.url
        assert self.instance is not None  # guaranteed by _check_target
        return instance_endpoint(self.instance)

    def rate_for(self, group: RateGroup) -> Rate:
        """The configured budget of an endpoint group."""
        if group is RateGroup.COHORTS:
            return self.cohort_rate
        return self.track_rate if group is RateGroup.TRACK else self.admin_rate

    def redacted(self) -> dict[str, Any]:
        """Settings as a JSON-ready dict with every secret left out (for logs and status)."""
        data = self.model_dump(mode="json", exclude={"api_key", "partner_api_key", "client_secret"})
        data["base_url"] = self.base_url
        return data


def _resolve_secret(name: str, env: object, file: object) -> SecretStr:
    """Read a secret from the environment variable or file named by the connector."""
    if env is not None and file is not None:
        raise ValueError(f"set only one of {name}_env and {name}_file")
    if isinstance(env, str) and env:
        value = os.environ.get(env)
        if not value:
            # The variable's *name* is configuration, not a secret; its value is never shown.
            raise ValueError(f"environment variable {env} (from {name}_env) is not set")
        return SecretStr(value.strip())
    if isinstance(file, str | os.PathLike) and str(file):
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {name}_file {os.fspath(file)}: {exc.strerror}") from None
        return SecretStr(text.strip())
    raise ValueError(f"set {name}_env (an environment variable name) or {name}_file (a path)")


def _format_errors(exc: ValidationError, where: str) -> str:
    # include_input=False: pydantic would otherwise echo input values, which may hold secrets.
    lines = [
        f"{where}{'.'.join(str(p) for p in err['loc']) or '<connector>'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    ]
    return "; ".join(lines)


def parse_connectors(document: Any) -> dict[str, BrazeConnector]:
    """Build connectors from a parsed document: ``{"connectors": [...]}`` or a list.

    Raises:
        ConnectorConfigError: the document is malformed, a connector is invalid, an id repeats,
            or a connector gives its key literally (keys are configured by reference only).
    """
    items = document.get("connectors") if isinstance(document, Mapping) else document
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise ConnectorConfigError("expected a list of connectors or {'connectors': [...]}")
    connectors: dict[str, BrazeConnector] = {}
    problems: list[str] = []
    for index, item in enumerate(items):
        where = f"connectors[{index}]."
        if not isinstance(item, Mapping):
            problems.append(f"{where[:-1]}: must be a mapping")
            continue
        literal = sorted({"api_key", "partner_api_key", "client_secret"} & set(item))
        if literal:
            problems.append(
                f"{where}{literal[0]}: secrets must be given by reference "
                f"({literal[0]}_env or {literal[0]}_file), never inline"
            )
            continue
        try:
            connector = BrazeConnector.model_validate(item)
        except ValidationError as exc:
            problems.append(_format_errors(exc, where))
            continue
        if connector.id in connectors:
            problems.append(f"{where}id: duplicate connector id {connector.id!r}")
            continue
        connectors[connector.id] = connector
    if problems:
        raise ConnectorConfigError("; ".join(problems))
    return connectors


def load_connectors(path: str | os.PathLike[str]) -> dict[str, BrazeConnector]:
    """Load connectors from a YAML or JSON file (JSON is valid YAML)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConnectorConfigError(f"cannot read {os.fspath(path)}: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the position: the parser's message quotes the offending line.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConnectorConfigError(f"{os.fspath(path)} is not valid YAML/JSON{where}") from None
    return parse_connectors(document)


def load_connectors_from_env(
    environ: Mapping[str, str] | None = None, variable: str = CONNECTORS_ENV
) -> dict[str, BrazeConnector]:
    """Connectors from ``$CROWD_BRAZE_CONNECTORS``: inline JSON, or a path to a file.

    Returns an empty dict when the variable is unset.
    """
    value = (os.environ if environ is None else environ).get(variable, "").strip()
    if not value:
        return {}
    if value.startswith(("{", "[")):
        try:
            document = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConnectorConfigError(f"{variable} is not valid JSON: {exc.msg}") from None
        return parse_connectors(document)
    return load_connectors(value)
