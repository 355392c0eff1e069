"""Values of the built-in attributes the engine maintains, derived from `ProfileState`.

Built-ins are not stored as attributes: they are computed from the state's counters and
visit, so they can never disagree with them. Each is readable like any attribute (in rules,
audiences, operands and mappings) under the ids below, plus ``<tally id>.favorite`` for
every tally (see `profile_service.engine.operands`).

=====================  ======  =======  ===================================================
id                     scope   type     value
=====================  ======  =======  ===================================================
lifetime_event_count   visitor number   events received, the current one included
lifetime_visit_count   visitor number   visits started, the current one included
first_visit            visitor date     when the first visit started
last_visit             visitor date     when the most recent visit ended (unset until then)
returning_visitor      visitor boolean  true from the visitor's second visit on
visit_start            visit    date     when the current visit started
visit_event_count      visit    number   events in the current visit, the current one included
visit_duration         visit    number   minutes from the visit's start to its latest event
visit_end              visit    date     the time of the visit's latest event
total_time_on_site     visitor number   minutes of every ended visit, added at visit end
average_visit_duration visitor number   total_time_on_site / ended visits (unset before one)
weeks_since_first_visit visitor number  whole weeks from first_visit to the latest activity
average_visits_per_week visitor number  lifetime visits / weeks since the first (at least 1)
active_<dimension>     visit    string   the visit's latest value of the dimension
<dimension>s_used      visit    set      every value of the dimension seen in the visit
lifetime_<dimension>s_used visitor tally  value -> visits that used it
lifetime_<dimension>s_used.favorite visitor string  the value of the most visits
entry_url              visit    string   ``current_url`` of the visit's first event with one
exit_url               visit    string   ``current_url`` of the visit's latest event with one
referred_visit         visit    boolean  the visit's first event came from another site
direct_visit           visit    boolean  it carried a URL but no referrer of another site
referred_visits        visitor  number   referred visits, the current one included
direct_visits          visitor  number   direct visits (both unset until a visit is either)
frequent_visitor       visitor  badge    held while average_visits_per_week >= 2
=====================  ======  =======  ===================================================

The dimensions (`agent_visits`) are ``browser_type``, ``browser_version``, ``os_type``,
``device_type`` and ``platform``, from the event's ``user_agent`` field and platform.

``unbadged`` (visitor badge) is assigned while the visitor holds none of the definitions'
badges: Tealium's preloaded Unbadged, given to every new visitor and gone once a custom
badge is earned (it comes back if every badge is removed). It depends on the definitions,
so `OperandCompiler` and the API view compute it with `is_unbadged`.

"Latest activity" is the profile's update time (its latest event or visit end), so the
figures are those of the moment the profile last changed, the same in rules and lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.agent_visits import DIMENSIONS, favorite
from profile_service.engine.state import ProfileState
from profile_service.engine.values import (
    MS_PER_MINUTE,
)

MS_PER_WEEK = 7 * 24 * 60 * MS_PER_MINUTE

BuiltinReader = Callable[[ProfileState], Any]


def _lifetime_event_count(state: ProfileState) -> Any:
    return float(state.event_count)


def _lifetime_visit_count(state: ProfileState) -> Any:
    return float(state.visit_count)


def _first_visit(state: ProfileState) -> Any:
    return state.first_visit_ms


def _last_visit(state: ProfileState) -> Any:
    return state.last_visit_ms


def _returning_visitor(state: ProfileState) -> Any:
    return state.visit_count > 1


def _visit_start(state: ProfileState) -> Any:
    return state.visit.started_ms if state.visit is not None else None


def _visit_event_count(state: ProfileState) -> Any:
    return float(state.visit.event_count) if state.visit is not None else None


def _visit_duration(state: ProfileState) -> Any:
    visit = state.visit
    if visit is None:
        return None
    return (visit.last_event_ms - visit.started_ms) / MS_PER_MINUTE


def _visit_end(state: ProfileState) -> Any:
    return state.visit.last_event_ms if state.visit is not None else None


def _total_time_on_site(state: ProfileState) -> Any:
    return state.time_on_site_ms / MS_PER_MINUTE


def _average_visit_duration(state: ProfileState) -> Any:
    if state.ended_visits == 0:
        return None
    return state.time_on_site_ms / MS_PER_MINUTE / state.ended_visits


def _weeks(state: ProfileState) -> float | None:
    if state.first_visit_ms is None:
        return None
    return max(0, state.updated_ms - state.first_visit_ms) / MS_PER_WEEK


def _weeks_since_first_visit(state: ProfileState) -> Any:
    weeks = _weeks(state)
    return float(int(weeks)) if weeks is not None else None


def _average_visits_per_week(state: ProfileState) -> Any:
    weeks = _weeks(state)
    return state.visit_count / max(1.0, weeks) if weeks is not None else None


def _active(dimension: str) -> BuiltinReader:
    def read(state: ProfileState) -> Any:
        return state.visit.agent.get(dimension) if state.visit is not None else None

    return read


def _used(dimension: str) -> BuiltinReader:
    def read(state: ProfileState) -> Any:
        return state.visit.agents_used.get(dimension) if state.visit is not None else None

    return read


def _lifetime(dimension: str) -> BuiltinReader:
    def read(state: ProfileState) -> Any:
        return state.lifetime_agents.get(dimension)

    return read


def _lifetime_favorite(dimension: str) -> BuiltinReader:
    def read(state: ProfileState) -> Any:
        tally = state.lifetime_agents.get(dimension)
        return favorite(tally) if tally else None

    return read


def _agent_builtins() -> tuple[dict[str, BuiltinReader], dict[str, int], set[str]]:
    """Readers, types and the visit-scoped ids of the user-agent built-ins."""
    readers: dict[str, BuiltinReader] = {}
    types: dict[str, int] = {}
    visit: set[str] = set()
    for dimension in DIMENSIONS:
        plural = f"{dimension}s_used"
        readers[f"active_{dimension}"] = _active(dimension)
        types[f"active_{dimension}"] = pb.ATTRIBUTE_TYPE_STRING
        readers[plural] = _used(dimension)
        types[plural] = pb.ATTRIBUTE_TYPE_STRING_SET
        visit |= {f"active_{dimension}", plural}
        readers[f"lifetime_{plural}"] = _lifetime(dimension)
        types[f"lifetime_{plural}"] = pb.ATTRIBUTE_TYPE_TALLY
        readers[f"lifetime_{plural}.favorite"] = _lifetime_favorite(dimension)
        types[f"lifetime_{plural}.favorite"] = pb.ATTRIBUTE_TYPE_STRING
    return readers, types, visit


_AGENT_READERS, _AGENT_TYPES, _AGENT_VISIT = _agent_builtins()


def _entry_url(state: ProfileState) -> Any:
    return (state.visit.entry_url or None) if state.visit is not None else None


def _exit_url(state: ProfileState) -> Any:
    return (state.visit.exit_url or None) if state.visit is not None else None


def _referred_visit(state: ProfileState) -> Any:
    return state.visit.referred if state.visit is not None else None


def _direct_visit(state: ProfileState) -> Any:
    visit = state.visit
    return (not visit.referred) if visit is not None and visit.referred is not None else None


def _classified(state: ProfileState) -> bool:
    return state.referred_visits + state.direct_visits > 0


def _referred_visits(state: ProfileState) -> Any:
    return float(state.referred_visits) if _classified(state) else None


def _direct_visits(state: ProfileState) -> Any:
    return float(state.direct_visits) if _classified(state) else None


FREQUENT_VISITS_PER_WEEK = 2.0
"""Tealium's preloaded Frequent visitor badge: average visits per week of at least 2."""


def _frequent_visitor(state: ProfileState) -> Any:
    average = _average_visits_per_week(state)
    return True if average is not None and average >= FREQUENT_VISITS_PER_WEEK else None


BUILTIN_READERS: Final[dict[str, BuiltinReader]] = {
    "lifetime_event_count": _lifetime_event_count,
    "lifetime_visit_count": _lifetime_visit_count,
    "first_visit": _first_visit,
    "last_visit": _last_visit,
    "returning_visitor": _returning_visitor,
    "visit_start": _visit_start,
    "visit_event_count": _visit_event_count,
    "visit_duration": _visit_duration,
    "visit_end": _visit_end,
    "total_time_on_site": _total_time_on_site,
    "average_visit_duration": _average_visit_duration,
    "weeks_since_first_visit": _weeks_since_first_visit,
    "average_visits_per_week": _average_visits_per_week,
    "entry_url": _entry_url,
    "exit_url": _exit_url,
    "referred_visit": _referred_visit,
    "direct_visit": _direct_visit,
    "referred_visits": _referred_visits,
    "direct_visits": _direct_visits,
    "frequent_visitor": _frequent_visitor,
    **_AGENT_READERS,
}
"""Built-in attribute id -> how its value is read (``None`` when unassigned)."""

BUILTIN_TYPES: Final[dict[str, int]] = {
    "lifetime_event_count": pb.ATTRIBUTE_TYPE_NUMBER,
    "lifetime_visit_count": pb.ATTRIBUTE_TYPE_NUMBER,
    "first_visit": pb.ATTRIBUTE_TYPE_DATE,
    "last_visit": pb.ATTRIBUTE_TYPE_DATE,
    "returning_visitor": pb.ATTRIBUTE_TYPE_BOOLEAN,
    "visit_start": pb.ATTRIBUTE_TYPE_DATE,
    "visit_event_count": pb.ATTRIBUTE_TYPE_NUMBER,
    "visit_duration": pb.ATTRIBUTE_TYPE_NUMBER,
    "visit_end": pb.ATTRIBUTE_TYPE_DATE,
    "total_time_on_site": pb.ATTRIBUTE_TYPE_NUMBER,
    "average_visit_duration": pb.ATTRIBUTE_TYPE_NUMBER,
    "weeks_since_first_visit": pb.ATTRIBUTE_TYPE_NUMBER,
    "average_visits_per_week": pb.ATTRIBUTE_TYPE_NUMBER,
    "entry_url": pb.ATTRIBUTE_TYPE_STRING,
    "exit_url": pb.ATTRIBUTE_TYPE_STRING,
    "referred_visit": pb.ATTRIBUTE_TYPE_BOOLEAN,
    "direct_visit": pb.ATTRIBUTE_TYPE_BOOLEAN,
    "referred_visits": pb.ATTRIBUTE_TYPE_NUMBER,
    "direct_visits": pb.ATTRIBUTE_TYPE_NUMBER,
    "frequent_visitor": pb.ATTRIBUTE_TYPE_BADGE,
    **_AGENT_TYPES,
}
"""Built-in attribute id -> ``crowd.profile.v1.AttributeType``."""

VISIT_BUILTINS: Final = frozenset(
    {
        "visit_start",
        "visit_event_count",
        "visit_duration",
        "visit_end",
        "entry_url",
        "exit_url",
        "referred_visit",
        "direct_visit",
        *_AGENT_VISIT,
    }
)
"""Built-ins of the current visit (the others are visitor-scoped)."""


UNBADGED: Final = "unbadged"
"""The id of the preloaded Unbadged badge."""


def is_unbadged(state: ProfileState, badge_ids: Iterable[str]) -> bool:
    """True while the profile holds none of ``badge_ids`` (the definitions' badges)."""
    return not any(state.attributes.get(badge) is True for badge in badge_ids)


BUILTIN_BADGES: Final = frozenset({"frequent_visitor"})
"""Built-in badges computed from the state: readable in rules and audiences, not listed
among a profile's attributes (nor, being derived, among its badges)."""


def builtin_values(state: ProfileState) -> dict[str, Any]:
    """Every assigned built-in value of a profile, by id (for GetProfile and snapshots)."""
    values: dict[str, Any] = {}
    for name, read in BUILTIN_READERS.items():
        value = read(state)
        if value is not None:
            values[name] = value
    return values
