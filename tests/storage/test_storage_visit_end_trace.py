"""The sweeper's visit ends build and keep trace records only for visitors whose history is
kept (sampled or followed), as event commits do."""

from __future__ import annotations

import redis.asyncio

from crowd.profile.v1 import trace_pb2
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import Outcome, ProfileState
from profile_service.storage import EngineFunctions, Layout, ProfileStore, VisitSweeper
from profile_service.storage.trace_history import TraceHistory
from profile_service.storage.trace_log import TraceLog
from tests.storage.helpers import T0, end_visit, evaluate_delayed, event, make_defs, process_event


async def test_a_visit_end_keeps_trace_records_only_for_sampled_or_followed_visitors(
    client: redis.asyncio.Redis, layout: Layout
) -> None:
    history = TraceHistory(sample_rate=0.5)
    ids = [f"v{i}" for i in range(50)]
    sampled = next(i for i in ids if history.sampled(i))
    quiet, followed = [i for i in ids if not history.sampled(i)][:2]
    traced_by_engine: dict[str, bool] = {}

    def recording_end_visit(
        defs: CompiledDefinitions, state: ProfileState, now_ms: int, *, trace: bool = True
    ) -> Outcome:
        traced_by_engine[state.profile_id] = trace
        return end_visit(defs, state, now_ms, trace=trace)

    store = ProfileStore(
        client,
        layout,
        EngineFunctions(process_event, recording_end_visit, evaluate_delayed),
        trace_history=history,
    )
    await store.prepare()
    defs = make_defs(visit_timeout_ms=1000)
    await store.apply_events(defs, [event(v, "e1") for v in (sampled, quiet, followed)], T0)
    # Someone starts following after the event: only the visit end can be kept for it.
    await client.set(layout.keys_for(followed).tracing(followed), "1")

    report = await VisitSweeper(client, store, lambda: defs).sweep_once(T0 + 1000)

    assert report.visits_ended == 3
    assert traced_by_engine == {sampled: True, quiet: False, followed: True}
    log = TraceLog(client, layout)
    kinds = {
        v: [e.kind for e in await log.history(await log.visitor_stream(v))]
        for v in (sampled, quiet, followed)
    }
    ended = trace_pb2.TRACE_ENTRY_KIND_VISIT_ENDED
    assert kinds[sampled] == [trace_pb2.TRACE_ENTRY_KIND_EVENT_RECEIVED, ended]
    assert kinds[quiet] == []
    assert kinds[followed] == [ended]
    assert not await client.exists(layout.keys_for(quiet).trace(quiet))
