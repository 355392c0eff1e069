"""``DefinitionService.TryDefinitions``: events through the engine with a document that is
not published, purely in memory.

Nothing touches Redis: the document is validated and compiled here, each visitor id starts
as a fresh profile held in a dict, and the engine's outcomes become ``EventResult``s as
ingest reports them. Actions are reported, never queued.
"""

from __future__ import annotations

import asyncio
import time

from crowd.profile.v1 import definition_service_pb2, event_pb2
from profile_service.api.validation import normalize_batch
from profile_service.app import event_result
from profile_service.definitions.checked import validate_off_loop
from profile_service.definitions.compiler import compile_definitions
from profile_service.definitions.violations import field_violations
from profile_service.engine.processor import process_event
from profile_service.engine.state import NormalizedEvent, ProfileState
from profile_service.storage.store_core import EventApplyResult
from service_common.errors import InvalidArgument

TRIAL_VERSION = "try"
"""The ``definitions_version`` of every trial result: the document has no version."""


async def try_definitions(
    request: definition_service_pb2.TryDefinitionsRequest,
) -> definition_service_pb2.TryDefinitionsResponse:
    """Validate the document and the events (INVALID_ARGUMENT naming every bad field), then
    apply the events in order to in-memory profiles."""
    errors = await validate_off_loop(request.definitions)
    if errors:
        raise InvalidArgument(
            field_violations(errors),
            f"the definitions have {len(errors)} error(s); nothing was tried",
            reason="INVALID_DEFINITIONS",
        )
    now_ms = int(time.time() * 1000)
    events = normalize_batch(request.events, now_ms, field="events")
    # Compiling and running up to 1,000 events is CPU work: keep it off the event loop.
    results = await asyncio.to_thread(_run, request, events, now_ms)
    return definition_service_pb2.TryDefinitionsResponse(results=results)


def _run(
    request: definition_service_pb2.TryDefinitionsRequest,
    events: list[NormalizedEvent],
    now_ms: int,
) -> list[event_pb2.EventResult]:
    defs = compile_definitions(request.definitions, TRIAL_VERSION)
    profiles: dict[str, ProfileState] = {}
    results = []
    for index, event in enumerate(events):
        outcome = process_event(defs, profiles.get(event.visitor_id), event, now_ms)
        profiles[event.visitor_id] = outcome.state
        applied = EventApplyResult(
            index=index, profile_id=outcome.state.profile_id, outcome=outcome
        )
        results.append(event_result(defs, applied, event))
    return results
