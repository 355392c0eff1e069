"""Recording the visitor's browser, OS, device and platform from each event, for the
preloaded attributes of Tealium's §1 (read through `builtin_values`).

The user agent is the event data field ``user_agent`` (with ``collect_user_agent_header``,
a Collect request without one gets the request's ``User-Agent`` header); the platform is
the event's ``platform``, else ``browser`` for an event with a user agent. Each event that
carries one sets the visit's *active* values, adds them to the visit's sets and, the first
time a value is seen in a visit, counts that visit in the visitor's lifetime tally of the
dimension.

Lists and dicts are replaced, never changed in place (readers may hold them).
"""

from __future__ import annotations

from typing import Final

from profile_service.engine.state import NormalizedEvent, ProfileState, VisitState
from profile_service.engine.user_agents import agent_types
from profile_service.engine.values import tally_favorite

USER_AGENT_FIELD: Final = "user_agent"
"""The event data field holding the user agent string."""

BROWSER_PLATFORM: Final = "browser"
"""The platform of an event with a user agent and no ``platform``."""

DIMENSIONS: Final = ("browser_type", "browser_version", "os_type", "device_type", "platform")

MAX_TALLY_KEYS: Final = 100
"""Most values a lifetime tally keeps; a new value beyond is not counted."""

MAX_VALUE_LENGTH: Final = 200
"""Longer values (only possible from unusual user agents) are cut to this length."""


def agent_values(event: NormalizedEvent) -> dict[str, str]:
    """The dimensions the event tells (empty without a user agent or platform)."""
    values: dict[str, str] = {}
    raw = event.data.get(USER_AGENT_FIELD)
    if not event.platform and not isinstance(raw, str):
        return values  # most server-side events: nothing to parse or cut
    types = agent_types(raw) if isinstance(raw, str) else None
    if types is not None:
        values["browser_type"] = types.browser_type
        values["browser_version"] = types.browser_version
        values["os_type"] = types.os_type
        values["device_type"] = types.device_type
    platform = event.platform or (BROWSER_PLATFORM if types is not None else "")
    if platform:
        values["platform"] = platform
    return {name: value[:MAX_VALUE_LENGTH] for name, value in values.items()}


def record_agent(state: ProfileState, visit: VisitState, event: NormalizedEvent) -> None:
    """Update the visit's active values and sets and the lifetime tallies from ``event``."""
    values = agent_values(event)
    if not values:
        return
    visit.agent = {**visit.agent, **values}
    used = dict(visit.agents_used)
    lifetime = dict(state.lifetime_agents)
    for name, value in values.items():
        seen = used.get(name, [])
        if value in seen:
            continue
        used[name] = sorted([*seen, value])
        tally = lifetime.get(name, {})
        if value not in tally and len(tally) >= MAX_TALLY_KEYS:
            continue
        count = tally.get(value, 0.0) + 1.0
        # Re-inserted last: the most recently counted value wins a favourite tie.
        lifetime[name] = {**{k: v for k, v in tally.items() if k != value}, value: count}
    visit.agents_used = used
    state.lifetime_agents = lifetime


def recency_of(value: object) -> dict[str, int] | None:
    """A built-in tally's recency record (its order: the last counted value last), so its
    typed value names the same favourite as `favorite`; ``None`` for other values."""
    if not isinstance(value, dict):
        return None
    return {key: position for position, key in enumerate(value)}


def favorite(tally: dict[str, float]) -> str | None:
    """The value with the most visits; ties go to the most recently counted."""
    return tally_favorite(tally, recency_of(tally))
