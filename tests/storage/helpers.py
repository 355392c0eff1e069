"""Helpers of the storage tests: a tiny stand-in engine, definitions, clients (waiting:
`tests.harness.eventually`).

The stand-in engine is deliberately simple but follows the real engine's contract
(`profile_service.storage.engine_api`): it is pure (works on a copy of the state), starts
and ends visits by inactivity, counts events into a ``count`` attribute, puts the visitor
in audience ``big`` once ``count`` reaches `BIG_AT`, and fires actions with deterministic
idempotency keys:

- ``joined_big`` when the visitor joins ``big`` (key ``<profile>:joined_big:<event id>``);
- ``feed`` for every event named ``fire`` (key ``<profile>:feed:<event id>``);
- ``visit_end`` when a visit ends (key ``<profile>:visit_end:<visit id>``), and, when the
  visit saw an event with ``delay_ms``, a delayed ``delayed_end`` action.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import redis.asyncio

from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import definitions_pb2 as pb
from crowd.profile.v1 import trace_pb2
from profile_service.definitions.model import CompiledDefinitions, EngineLimits
from profile_service.engine.state import (
    FiredAction,
    NormalizedEvent,
    Outcome,
    ProfileState,
    TraceRecord,
    VisitState,
)
from profile_service.storage import EngineFunctions, Layout
from profile_service.storage.replies import range_entries

T0 = 1_700_000_000_000
BIG_AT = 3
EMAIL = "email"


def make_defs(
    *,
    version: str = "test",
    visit_timeout_ms: int = 30 * 60 * 1000,
    audiences: tuple[str, ...] = ("big",),
    retention_ms: int = 395 * 24 * 3600 * 1000,
) -> CompiledDefinitions:
    """Compiled definitions for the stand-in engine (only the parts storage reads)."""
    document = pb.Definitions()
    for audience_id in audiences:
        document.audiences.add(id=audience_id, name=audience_id)
    return CompiledDefinitions(
        version=version,
        document=document,
        limits=EngineLimits(visit_timeout_ms=visit_timeout_ms, visitor_retention_ms=retention_ms),
        attributes={},
        enrichments=(),
        audiences={a.id: a for a in document.audiences},
        feeds={},
        actions={},
        cooldown_wait_ms={},
        visitor_id_attributes=(EMAIL,),
    )


def event(
    visitor_id: str,
    event_id: str,
    *,
    name: str = "view",
    time_ms: int = T0,
    trace_id: str = "",
    **data: Any,
) -> NormalizedEvent:
    return NormalizedEvent(
        visitor_id=visitor_id,
        event_id=event_id,
        name=name,
        time_ms=time_ms,
        data=dict(data),
        trace_id=trace_id,
    )


def _fired(profile_id: str, action_id: str, suffix: str, delay_ms: int = 0) -> FiredAction:
    key = f"{profile_id}:{action_id}:{suffix}"
    return FiredAction(
        action_id=action_id,
        idempotency_key=key,
        action=action_pb2.Action(
            idempotency_key=key, connector_id="braze", visitor_id=profile_id, action_id=action_id
        ),
        delay_ms=delay_ms,
    )


def _end_visit_into(defs: CompiledDefinitions, state: ProfileState, outcome: Outcome) -> None:
    visit = state.visit
    assert visit is not None
    state.attributes["visits_ended"] = state.attributes.get("visits_ended", 0) + 1
    state.visit_count += 1
    outcome.visit_ended = True
    outcome.actions.append(_fired(state.profile_id, "visit_end", visit.visit_id))
    delay = visit.attributes.get("delay_ms")
    if delay:
        outcome.actions.append(
            _fired(state.profile_id, "delayed_end", visit.visit_id, delay_ms=int(delay))
        )
    if outcome.traced:
        outcome.trace.append(
            TraceRecord(trace_pb2.TRACE_ENTRY_KIND_VISIT_ENDED, f"visit {visit.visit_id} ended")
        )
    state.visit = None


def process_event(
    defs: CompiledDefinitions,
    state: ProfileState | None,
    ev: NormalizedEvent,
    now_ms: int,
    *,
    trace: bool = True,
) -> Outcome:
    new = state is None
    if state is None:
        state = ProfileState(
            profile_id=ev.visitor_id,
            created_ms=now_ms,
            updated_ms=now_ms,
            visitor_ids=[ev.visitor_id],
        )
    else:
        state = copy.deepcopy(state)
    outcome = Outcome(state=state, new_visitor=new, traced=trace)
    limits = defs.limits
    if state.visit is not None and state.visit.expires_ms(limits.max_visit_length_ms) <= now_ms:
        _end_visit_into(defs, state, outcome)
    if state.visit is None:
        state.visit = VisitState(
            visit_id=f"{state.profile_id}-{state.visit_count + 1}",
            started_ms=now_ms,
            last_event_ms=now_ms,
            timeout_ms=limits.visit_timeout_for(ev.platform),
        )
        outcome.visit_started = True
    state.visit.last_event_ms = now_ms
    state.visit.event_count += 1
    if "delay_ms" in ev.data:
        state.visit.attributes["delay_ms"] = ev.data["delay_ms"]
    state.event_count += 1
    state.updated_ms = now_ms
    count = state.attributes.get("count", 0) + ev.data.get("amount", 1)
    state.attributes["count"] = count
    outcome.changed_attributes["count"] = count
    if EMAIL in ev.data:
        state.attributes[EMAIL] = ev.data[EMAIL]
    if count >= BIG_AT and "big" in defs.audiences and "big" not in state.audiences:
        state.audiences["big"] = now_ms
        outcome.audiences_joined.append("big")
        outcome.actions.append(_fired(state.profile_id, "joined_big", ev.event_id))
    if count < BIG_AT and "big" in state.audiences:
        del state.audiences["big"]
        outcome.audiences_left.append("big")
    if ev.name == "fire":
        outcome.actions.append(_fired(state.profile_id, "feed", ev.event_id))
    if trace:  # as the real engine: no records for a visitor whose history nobody keeps
        outcome.trace.append(
            TraceRecord(
                trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED, f"event {ev.name}", {"count": count}
            )
        )
    return outcome


def end_visit(
    defs: CompiledDefinitions, state: ProfileState, now_ms: int, *, trace: bool = True
) -> Outcome:
    state = copy.deepcopy(state)
    outcome = Outcome(state=state, traced=trace)
    _end_visit_into(defs, state, outcome)
    return outcome


def evaluate_delayed(
    defs: CompiledDefinitions, state: ProfileState, action_id: str, now_ms: int
) -> FiredAction | None:
    """Fires while the visitor is still in ``big``."""
    if "big" not in state.audiences:
        return None
    return _fired(state.profile_id, action_id, f"delayed-{state.visit_count}")


STAND_IN_ENGINE = EngineFunctions(
    process_event=process_event, end_visit=end_visit, evaluate_delayed=evaluate_delayed
)


async def stream(client: redis.asyncio.Redis, key: str) -> list[tuple[str, dict[str, bytes]]]:
    """Every entry of a stream (id, fields), oldest first."""
    return range_entries(await client.xrange(key))


async def outbox_actions(
    client: redis.asyncio.Redis, layout: Layout, visitor_id: str
) -> list[action_pb2.Action]:
    """The visitor's actions in its partition's outbox, in order."""
    entries = await stream(client, layout.keys_for(visitor_id).outbox)
    actions = [action_pb2.Action.FromString(fields["a"]) for _, fields in entries]
    return [a for a in actions if a.visitor_id == visitor_id]


class CountingConnection(redis.asyncio.Connection):
    """A connection that counts what it sends: one send = one network round trip."""

    sends: ClassVar[int] = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


def counting_client(url: str) -> tuple[redis.asyncio.Redis, type[CountingConnection]]:
    """A client whose sends are counted on the returned (fresh) connection class."""
    connection_class = type("Counting", (CountingConnection,), {"sends": 0})
    client = redis.asyncio.Redis.from_url(url, connection_class=connection_class)
    return client, connection_class


@dataclass
class RecordingSubmit:
    """A submit callable recording every accepted action; fails its first ``failures`` calls."""

    failures: int = 0
    accepted: list[action_pb2.Action] = field(default_factory=list)
    attempts: int = 0

    async def __call__(self, actions: list[action_pb2.Action]) -> None:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("dispatch service unavailable")
        self.accepted.extend(actions)

    def idempotency_keys(self) -> list[str]:
        return [a.idempotency_key for a in self.accepted]
