"""Configuration of the Braze sandbox: keys, limits, batch caps and defaults."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from braze_sandbox.faults import FaultSettings

#: Permissions a REST API key may carry (Braze "User Data" permissions the sandbox serves).
PERM_TRACK = "users.track"
PERM_DELETE = "users.delete"
PERM_IDENTIFY = "users.identify"
PERM_EXPORT_IDS = "users.export.ids"
PERM_MERGE = "users.merge"
PERM_ALIAS_NEW = "users.alias.new"
ALL_PERMISSIONS: frozenset[str] = frozenset(
    {PERM_TRACK, PERM_DELETE, PERM_IDENTIFY, PERM_EXPORT_IDS, PERM_MERGE, PERM_ALIAS_NEW}
)

#: Key the sandbox accepts when no keys are configured, so `make run` works out of the box.
DEFAULT_API_KEY = "sandbox-rest-api-key"
DEFAULT_PARTNER = "crowd"
DEFAULT_PARTNER_API_KEY = "sandbox-partner-api-key"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"

#: Payload limit for every Braze endpoint ("4 MB"; bodies above it get 413).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: Per-object cap. Braze does not document one for /users/track; 100 KB is what peers enforce.
DEFAULT_MAX_OBJECT_BYTES = 100 * 1024
#: "String attributes can be up to 255 characters long."
DEFAULT_MAX_STRING_LENGTH = 255
#: "The default and maximum number of elements in an array is 500."
DEFAULT_MAX_ARRAY_LENGTH = 500
#: /users/delete, /users/identify and /users/export/ids take at most 50 ids per request.
DEFAULT_MAX_IDS_PER_REQUEST = 50
#: Cohort import: "maximum of 1,000 user IDs per request".
DEFAULT_MAX_COHORT_IDS = 1000

#: external_ids Braze refuses as "dummy" ids (compared case-insensitively).
DEFAULT_BLOCKED_EXTERNAL_IDS: frozenset[str] = frozenset(
    {"null", "none", "nil", "undefined", "n/a", "-1", "0", "anonymous", "unknown"}
)


class EndpointGroup(StrEnum):
    """Endpoints that share one Braze rate limit."""

    TRACK = "track"
    """/users/track: 3,000 requests per 3 seconds."""
    IDENTITY = "identity"
    """/users/delete, /users/alias/new, /users/identify and /users/merge share 20,000
    requests per minute."""
    EXPORT = "export"
    """/users/export/ids: 250 requests per minute for accounts created after 2024-08-22."""
    COHORTS = "cohorts"
    """Partner cohort import endpoints: 250,000 requests per hour."""


class BatchMode(StrEnum):
    """How many objects one /users/track request may carry (depends on the Braze contract)."""

    COMBINED75 = "combined75"
    """75 objects in total across attributes, events and purchases (current default)."""
    PER_ARRAY75 = "per_array75"
    """Legacy: 75 objects per array, up to 225 per request."""
    COMBINED50 = "combined50"
    """Older MAU CY 24-25 text: 50 objects in total."""

    @classmethod
    def parse(cls, text: str) -> BatchMode:
        """Parse a mode name; accepts the camel-case spelling used in the reference doc."""
        normalized = text.strip().lower().replace("-", "_")
        if normalized == "perarray75":
            normalized = "per_array75"
        return cls(normalized)

    @property
    def limit(self) -> int:
        """Object cap: per array for PER_ARRAY75, in total for the combined modes."""
        return 50 if self is BatchMode.COMBINED50 else 75


_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class RateLimit:
    """A fixed-window request budget: ``requests`` per ``window_seconds``."""

    requests: int
    """Requests allowed in one window."""
    window_seconds: float
    """Window length in seconds."""

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window_seconds <= 0:
            raise ValueError("a rate limit needs at least 1 request and a positive window")

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse ``"3000/3"``, ``"20000/1m"`` or ``"250000/1h"`` (window in s, m or h)."""
        match = _RATE_RE.match(text)
        if match is None:
            raise ValueError(f"invalid rate {text!r}; expected N/SECONDS such as 3000/3")
        count, window, unit = match.groups()
        return cls(int(count), float(window) * _UNIT_SECONDS[unit])

    def __str__(self) -> str:
        return f"{self.requests}/{self.window_seconds:g}"


def default_rate_limits() -> dict[str, RateLimit | None]:
    """Braze's documented base limits for each endpoint group."""
    return {
        EndpointGroup.TRACK: RateLimit(3000, 3.0),
        EndpointGroup.IDENTITY: RateLimit(20000, 60.0),
        EndpointGroup.EXPORT: RateLimit(250, 60.0),
        EndpointGroup.COHORTS: RateLimit(250000, 3600.0),
    }


def parse_api_key(spec: str) -> tuple[str, frozenset[str]]:
    """Parse ``KEY:perm1,perm2``; no permission list (or ``*``) grants every permission."""
    key, _, perms = spec.partition(":")
    if not key:
        raise ValueError("an API key spec needs a key before the ':'")
    names = {p.strip() for p in perms.split(",") if p.strip()}
    if not names or "*" in names:
        return key, ALL_PERMISSIONS
    unknown = names - ALL_PERMISSIONS
    if unknown:
        raise ValueError(f"unknown permission(s): {', '.join(sorted(unknown))}")
    return key, frozenset(names)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that shapes the sandbox's behaviour; immutable once the sandbox runs."""

    api_keys: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: {DEFAULT_API_KEY: ALL_PERMISSIONS}
    )
    """REST API key -> permissions (``users.track``, ``users.delete``, ...)."""
    batch_mode: BatchMode = BatchMode.COMBINED75
    """Object cap for /users/track (see :class:`BatchMode`)."""
    rate_limits: Mapping[str, RateLimit | None] = field(default_factory=default_rate_limits)
    """Endpoint group -> limit; a missing group or ``None`` means unlimited (no headers)."""
    window_alignment: Literal["clock", "first_request"] = "clock"
    """``clock``: windows start at multiples of their length, as Braze resets "on the clock".
    ``first_request``: a window opens at the first request, so tests never straddle a boundary."""
    reset_header: Literal["epoch", "seconds"] = "epoch"
    """``X-RateLimit-Reset`` as UTC epoch seconds (generic docs) or seconds left (/users/track
    MAU docs); Braze documents both."""
    partners: Mapping[str, str] = field(
        default_factory=lambda: {DEFAULT_PARTNER: DEFAULT_PARTNER_API_KEY}
    )
    """Cohort partner name (the ``{partner}`` path segment) -> its ``partner_api_key``."""
    client_secrets: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: {DEFAULT_CLIENT_SECRET: frozenset({"*"})}
    )
    """Cohort "Data Import Key" -> partner names enabled for it (``*`` = all partners)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Bodies larger than this get 413."""
    max_object_bytes: int | None = DEFAULT_MAX_OBJECT_BYTES
    """Compact-JSON size cap per /users/track object (minor error); ``None`` disables it."""
    max_string_length: int = DEFAULT_MAX_STRING_LENGTH
    """Longest accepted string attribute / property value."""
    max_array_length: int = DEFAULT_MAX_ARRAY_LENGTH
    """Arrays keep their newest ``max_array_length`` elements, as Braze does."""
    max_ids_per_request: int = DEFAULT_MAX_IDS_PER_REQUEST
    """Cap for /users/delete, /users/identify and /users/export/ids."""
    max_cohort_ids: int = DEFAULT_MAX_COHORT_IDS
    """Cap on user_ids + device_ids + aliases in one cohort membership request."""
    delete_single_id_type: bool = True
    """Enforce the documented "only one of external_ids, user_aliases, ..." rule on delete."""
    blocked_external_ids: frozenset[str] = DEFAULT_BLOCKED_EXTERNAL_IDS
    """external_ids rejected as blocklisted (case-insensitive)."""
    max_recorded_requests: int | None = 50_000
    """Recorded requests kept in memory (oldest dropped first); ``None`` keeps all."""
    record_bodies: bool = True
    """Keep parsed request bodies in the recorder (turn off for long benchmarks)."""
    faults: FaultSettings = field(default_factory=FaultSettings)
    """Faults active from start-up; change them later through ``sandbox.faults``."""
    clock: Callable[[], float] = time.time
    """Wall clock in epoch seconds; tests may inject a fake one to move rate-limit windows."""

    def __post_init__(self) -> None:
        if not isinstance(self.batch_mode, BatchMode):
            # Accept the plain names ("combined75") too; frozen, hence object.__setattr__.
            object.__setattr__(self, "batch_mode", BatchMode.parse(str(self.batch_mode)))
        if self.max_body_bytes < 1 or self.max_string_length < 1 or self.max_array_length < 1:
            raise ValueError("size limits must be positive")
        if self.max_recorded_requests is not None and self.max_recorded_requests < 1:
            raise ValueError("max_recorded_requests must be positive or None")
        if self.max_object_bytes is not None and self.max_object_bytes < 1:
            raise ValueError("max_object_bytes must be positive or None")
        if self.window_alignment not in ("clock", "first_request"):
            raise ValueError("window_alignment must be 'clock' or 'first_request'")
        if self.reset_header not in ("epoch", "seconds"):
            raise ValueError("reset_header must be 'epoch' or 'seconds'")
        unknown = {p for perms in self.api_keys.values() for p in perms} - ALL_PERMISSIONS
        if unknown:
            raise ValueError(f"unknown permission(s): {', '.join(sorted(unknown))}")

    def __repr__(self) -> str:
        # Never let a key or secret reach a log line through repr().
        limits = {str(g): str(r) for g, r in self.rate_limits.items()}
        return (
            f"SandboxConfig(api_keys=<{len(self.api_keys)} keys>, batch_mode={self.batch_mode}, "
            f"rate_limits={limits}, partners={sorted(self.partners)}, faults={self.faults!r})"
        )
