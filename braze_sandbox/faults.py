"""Fault injection: 5xx rate, latency, down mode, forced 429 windows, forced minor errors.

(Over 400 lines on purpose: one injector whose faults (errors, latency, down mode, 429
windows, minor errors) are configured and applied together per request; a test reads every
fault the sandbox can inject in one place.)
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

INPUT_ARRAYS = ("attributes", "events", "purchases")


@dataclass(frozen=True)
class FaultSettings:
    """Faults that apply to every Braze API request (never to ``/_sandbox`` routes)."""

    fail_rate: float = 0.0
    """Probability (0..1) that a request gets ``fail_status`` instead of being served."""
    fail_status: int = 503
    """Status returned for injected failures (any 5xx)."""
    fail_groups: frozenset[str] | None = None
    """Endpoint groups the fail rate applies to; ``None`` means all groups."""
    latency_ms: float = 0.0
    """Delay added before every API response."""
    latency_jitter_ms: float = 0.0
    """Extra random delay, uniform in [0, latency_jitter_ms], drawn from the seeded RNG."""
    down: bool = False
    """When true every API request gets 503, as during a Braze incident."""
    seed: int | None = None
    """Seed for the failure/jitter RNG; the same seed and traffic give the same failures."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if not 500 <= self.fail_status <= 599:
            raise ValueError("fail_status must be a 5xx status")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError("latency must not be negative")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        data = dataclasses.asdict(self)
        data["fail_groups"] = None if self.fail_groups is None else sorted(self.fail_groups)
        return data


@dataclass
class ForcedRateLimit:
    """A window during which requests get 429 regardless of the real limiter."""

    retry_after: int
    """Value of ``Retry-After`` / ``X-Ratelimit-Retry-After`` in seconds."""
    until: float | None
    """Epoch second at which the window ends (``None``: no time bound)."""
    remaining_requests: int | None
    """How many more requests get 429 (``None``: no count bound)."""
    groups: frozenset[str] | None
    """Endpoint groups affected; ``None`` means all."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        data = dataclasses.asdict(self)
        data["groups"] = None if self.groups is None else sorted(self.groups)
        return data


@dataclass
class ForcedMinorError:
    """Turns /users/track objects of one external_id into minor errors."""

    external_id: str
    """Objects whose ``external_id`` equals this get the error."""
    error_type: str = "forced minor error"
    """Text of the ``type`` field in the ``errors`` item."""
    input_array: str | None = None
    """Restrict to ``attributes``, ``events`` or ``purchases``; ``None`` means all."""
    remaining: int | None = None
    """How many more objects to fail (``None``: until cleared)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return dataclasses.asdict(self)


class FaultInjector:
    """Mutable fault state shared by the HTTP handlers, tests and ``/_sandbox/faults``.

    All methods are synchronous and called from the event loop thread, so no locking is needed.
    """

    def __init__(self, settings: FaultSettings, clock: Callable[[], float] = time.time) -> None:
        self._initial = settings
        self._settings = settings
        self._clock = clock
        self._rng = random.Random(settings.seed)
        self._forced_429: ForcedRateLimit | None = None
        self._minor_errors: list[ForcedMinorError] = []

    @property
    def settings(self) -> FaultSettings:
        """The current settings."""
        return self._settings

    @property
    def forced_rate_limit(self) -> ForcedRateLimit | None:
        """The active forced-429 window, if any."""
        return self._forced_429

    @property
    def minor_errors(self) -> list[ForcedMinorError]:
        """Active forced minor errors (a copy)."""
        return list(self._minor_errors)

    def set(
        self,
        *,
        fail_rate: float | None = None,
        fail_status: int | None = None,
        fail_groups: Collection[str] | None = None,
        all_groups: bool = False,
        latency_ms: float | None = None,
        latency_jitter_ms: float | None = None,
        down: bool | None = None,
        seed: int | None = None,
    ) -> FaultSettings:
        """Change some settings; arguments left as ``None`` keep their current value.

        Args:
            fail_rate: Probability of an injected 5xx.
            fail_status: Status for injected failures.
            fail_groups: Restrict the fail rate to these endpoint groups.
            all_groups: Apply the fail rate to every group again (clears ``fail_groups``).
            latency_ms: Fixed added latency.
            latency_jitter_ms: Random extra latency bound.
            down: Down mode on or off.
            seed: Re-seed the RNG (restarts the deterministic failure sequence).

        Returns:
            The new settings.
        """
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("fail_rate", fail_rate),
                ("fail_status", fail_status),
                ("latency_ms", latency_ms),
                ("latency_jitter_ms", latency_jitter_ms),
                ("down", down),
                ("seed", seed),
            )
            if value is not None
        }
        if fail_groups is not None:
            changes["fail_groups"] = frozenset(fail_groups)
        elif all_groups:
            changes["fail_groups"] = None
        self._settings = dataclasses.replace(self._settings, **changes)
        if seed is not None:
            self._rng = random.Random(seed)
        return self._settings

    def force_rate_limit(
        self,
        retry_after: int,
        *,
        seconds: float | None = None,
        requests: int | None = None,
        groups: Collection[str] | None = None,
    ) -> ForcedRateLimit:
        """Answer 429 with ``Retry-After: retry_after`` for a while.

        Args:
            retry_after: Seconds announced in ``Retry-After`` / ``X-Ratelimit-Retry-After``.
            seconds: End the window after this many seconds.
            requests: End the window after this many 429 responses.
            groups: Only affect these endpoint groups.

        With neither ``seconds`` nor ``requests`` the window lasts until
        :meth:`clear_rate_limit`; with both it ends at whichever comes first.
        """
        if retry_after < 0 or (seconds is not None and seconds <= 0):
            raise ValueError("retry_after must be >= 0 and seconds > 0")
        if requests is not None and requests < 1:
            raise ValueError("requests must be >= 1")
        self._forced_429 = ForcedRateLimit(
            retry_after=retry_after,
            until=None if seconds is None else self._clock() + seconds,
            remaining_requests=requests,
            groups=None if groups is None else frozenset(groups),
        )
        return self._forced_429

    def clear_rate_limit(self) -> None:
        """End a forced-429 window."""
        self._forced_429 = None

    def add_minor_error(
        self,
        external_id: str,
        error_type: str = "forced minor error",
        *,
        input_array: str | None = None,
        times: int | None = None,
    ) -> ForcedMinorError:
        """Make /users/track reject objects for ``external_id`` as minor errors.

        Args:
            external_id: The user whose objects fail.
            error_type: The ``type`` text reported in ``errors``.
            input_array: Only fail objects of this array.
            times: Only fail this many objects, then stop.
        """
        if input_array is not None and input_array not in INPUT_ARRAYS:
            raise ValueError(f"input_array must be one of {', '.join(INPUT_ARRAYS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1")
        forced = ForcedMinorError(external_id, error_type, input_array, times)
        self._minor_errors.append(forced)
        return forced

    def clear_minor_errors(self) -> None:
        """Remove all forced minor errors."""
        self._minor_errors.clear()

    def reset(self) -> None:
        """Back to the settings the sandbox started with, with a fresh RNG."""
        self._settings = self._initial
        self._rng = random.Random(self._initial.seed)
        self._forced_429 = None
        self._minor_errors.clear()

    # --- decisions used by the request pipeline -------------------------------------------

    def latency_seconds(self) -> float:
        """Delay to add to the current request."""
        s = self._settings
        jitter = self._rng.uniform(0.0, s.latency_jitter_ms) if s.latency_jitter_ms else 0.0
        return (s.latency_ms + jitter) / 1000.0

    def take_forced_rate_limit(self, group: str) -> int | None:
        """Retry-After seconds if this request falls in a forced-429 window, else ``None``."""
        forced = self._forced_429
        if forced is None:
            return None
        if forced.until is not None and self._clock() >= forced.until:
            self._forced_429 = None
            return None
        if forced.groups is not None and group not in forced.groups:
            return None
        if forced.remaining_requests is not None:
            forced.remaining_requests -= 1
            if forced.remaining_requests <= 0:
                self._forced_429 = None
        return forced.retry_after

    def take_failure(self, group: str) -> int | None:
        """Status of an injected failure for this request, or ``None`` to serve it."""
        s = self._settings
        if s.down:
            return 503
        if s.fail_rate <= 0.0 or (s.fail_groups is not None and group not in s.fail_groups):
            return None
        # Draw only for eligible requests, so the sequence per seed depends on eligible traffic.
        return s.fail_status if self._rng.random() < s.fail_rate else None

    def take_minor_error(self, external_id: object, input_array: str) -> str | None:
        """The forced error type for this /users/track object, if one matches."""
        if not isinstance(external_id, str):
            return None
        for forced in self._minor_errors:
            if forced.external_id != external_id:
                continue
            if forced.input_array is not None and forced.input_array != input_array:
                continue
            if forced.remaining is not None:
                forced.remaining -= 1
                if forced.remaining <= 0:
                    self._minor_errors.remove(forced)
            return forced.error_type
        return None

    # --- JSON control (POST /_sandbox/faults) ---------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of every active fault."""
        return {
            **self._settings.to_dict(),
            "force_rate_limit": None if self._forced_429 is None else self._forced_429.to_dict(),
            "minor_errors": [m.to_dict() for m in self._minor_errors],
        }

    def apply_json(self, payload: Mapping[str, Any]) -> None:
        """Apply a ``POST /_sandbox/faults`` body; raises ``ValueError``/``TypeError`` if bad.

        Keys: ``reset``, ``fail_rate``, ``fail_status``, ``fail_groups`` (list or null),
        ``latency_ms``, ``latency_jitter_ms``, ``down``, ``seed``, ``force_rate_limit``
        (``{"retry_after", "seconds", "requests", "groups"}`` or null to clear),
        ``clear_minor_errors`` and ``minor_errors`` (list of ``{"external_id", "type",
        "input_array", "times"}``).
        """
        known = {
            "reset",
            "fail_rate",
            "fail_status",
            "fail_groups",
            "latency_ms",
            "latency_jitter_ms",
            "down",
            "seed",
            "force_rate_limit",
            "clear_minor_errors",
            "minor_errors",
        }
        unknown = set(payload) - known
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        # All or nothing: a bad field late in the body must not leave earlier ones applied.
        saved = (
            self._settings,
            self._rng.getstate(),
            dataclasses.replace(self._forced_429) if self._forced_429 else None,
            [dataclasses.replace(m) for m in self._minor_errors],
        )
        try:
            self._apply_json(payload)
        except (ValueError, TypeError):
            self._settings, rng_state, self._forced_429, self._minor_errors = saved
            self._rng.setstate(rng_state)
            raise

    def _apply_json(self, payload: Mapping[str, Any]) -> None:
        if payload.get("reset") is True:
            self.reset()
        groups = payload.get("fail_groups", ...)
        self.set(
            fail_rate=_opt_number(payload, "fail_rate"),
            fail_status=_opt_int(payload, "fail_status"),
            fail_groups=None if groups in (None, ...) else _str_list(groups, "fail_groups"),
            all_groups=groups is None,
            latency_ms=_opt_number(payload, "latency_ms"),
            latency_jitter_ms=_opt_number(payload, "latency_jitter_ms"),
            down=_opt_bool(payload, "down"),
            seed=_opt_int(payload, "seed"),
        )
        if "force_rate_limit" in payload:
            self._apply_forced_429_json(payload["force_rate_limit"])
        if payload.get("clear_minor_errors") is True:
            self.clear_minor_errors()
        for item in _list(payload.get("minor_errors", []), "minor_errors"):
            if not isinstance(item, dict) or not isinstance(item.get("external_id"), str):
                raise ValueError("each minor_errors item needs a string external_id")
            error_type = item.get("type", "forced minor error")
            if not isinstance(error_type, str):
                raise ValueError("minor_errors[].type must be a string")
            input_array = item.get("input_array")
            if input_array is not None and not isinstance(input_array, str):
                raise ValueError("minor_errors[].input_array must be a string")
            self.add_minor_error(
                item["external_id"],
                error_type,
                input_array=input_array,
                times=_opt_int(item, "times"),
            )

    def _apply_forced_429_json(self, spec: object) -> None:
        if spec is None:
            self.clear_rate_limit()
            return
        if not isinstance(spec, dict):
            raise ValueError("force_rate_limit must be an object or null")
        retry_after = _opt_int(spec, "retry_after")
        groups = spec.get("groups")
        self.force_rate_limit(
            1 if retry_after is None else retry_after,
            seconds=_opt_number(spec, "seconds"),
            requests=_opt_int(spec, "requests"),
            groups=None if groups is None else _str_list(groups, "groups"),
        )


def _opt_number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    return float(value)


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value


def _opt_bool(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be a boolean")
    return value


def _list(value: object, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list")
    return value


def _str_list(value: object, key: str) -> list[str]:
    items = _list(value, key)
    if not all(isinstance(v, str) for v in items):
        raise ValueError(f"{key} must be a list of strings")
    return [str(v) for v in items]
