"""`ProfileApp`: the engine and the Redis storage behind the profile service's RPCs.

It implements `profile_service.api.backend.ProfileBackend`: it takes one definitions
snapshot per batch (so no event sees half of two versions), hands the events to the
store, and turns the engine's outcomes and stored states into API messages.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from crowd.definitions.errors import InvalidDefinitionsError, definition_errors_to_proto
from crowd.profile.v1 import (
    definition_service_pb2,
    definitions_pb2,
    event_pb2,
    profile_pb2,
    trace_pb2,
)
from profile_service.backfill_status import backfill_status_message
from profile_service.definitions.checked import validate_off_loop
from profile_service.definitions.model import CompiledDefinitions
from profile_service.definitions.violations import field_violations
from profile_service.engine.deletion import deletion_actions
from profile_service.engine.processor import (
    profile_badges,
    visit_attribute_values,
    visitor_attribute_values,
)
from profile_service.engine.state import FiredAction, NormalizedEvent, Outcome, ProfileState
from profile_service.engine.value_protos import (
    fill_attribute_value,
    timestamp_from_ms,
)
from profile_service.metrics import EVALUATION_SECONDS, result_attributes
from profile_service.storage import (
    DefinitionsStore,
    DefinitionsWatcher,
    EventApplyResult,
    ProfileReader,
    ProfileStore,
    StoredProfile,
    TraceLog,
)
from profile_service.storage.backfill import BackfillProgress
from service_common.errors import InvalidArgument
from service_common.step_spans import step_span


def event_result(
    defs: CompiledDefinitions,
    applied: EventApplyResult,
    event: NormalizedEvent,
    view: event_pb2.EventResultView.ValueType = event_pb2.EVENT_RESULT_VIEW_FULL,
) -> event_pb2.EventResult:
    """The API view of what one event did; ``EVENT_RESULT_VIEW_BASIC`` leaves out the
    attribute changes (never built, not only not sent)."""
    result = event_pb2.EventResult(
        index=applied.index,
        event_id=event.event_id,
        profile_id=applied.profile_id,
        duplicate=applied.duplicate,
        definitions_version=defs.version,
        stitched_profile_ids=applied.stitched,
    )
    outcome: Outcome | None = applied.outcome
    if outcome is None:
        return result
    for note in outcome.identity_notes:
        result.identity_notes.add(
            attribute_id=note.attribute_id,
            value=note.value,
            outcome=note.outcome,
            message=note.message,
        )
    result.visit_started = outcome.visit_started
    result.new_visitor = outcome.new_visitor
    if view != event_pb2.EVENT_RESULT_VIEW_BASIC:
        _add_changes(result, defs, outcome)
    if outcome.badges_assigned:
        result.badges_assigned.extend(outcome.badges_assigned)
    if outcome.badges_removed:
        result.badges_removed.extend(outcome.badges_removed)
    if outcome.audiences_joined:
        result.audiences_joined.extend(outcome.audiences_joined)
    if outcome.audiences_left:
        result.audiences_left.extend(outcome.audiences_left)
    for fired in outcome.actions:
        result.actions_fired.add(action_id=fired.action_id, idempotency_key=fired.idempotency_key)
    return result


def _add_changes(
    result: event_pb2.EventResult, defs: CompiledDefinitions, outcome: Outcome
) -> None:
    """Append the outcome's attribute changes, each value written in place (an event
    reports about ten: this loop is a hot path of ingest)."""
    add = result.changed_attributes.add
    attributes = defs.attributes
    tally_touched = outcome.state.tally_touched
    for attribute_id, value in outcome.changed_attributes.items():
        change = add(attribute_id=attribute_id)
        definition = attributes.get(attribute_id)
        if definition is not None and value is not None:
            fill_attribute_value(
                change.value, definition.type, value, tally_touched.get(attribute_id)
            )


def profile_message(
    defs: CompiledDefinitions, state: ProfileState, retention_ms: int
) -> profile_pb2.Profile:
    """The API view of a stored profile."""
    identities = {
        attribute_id: str(state.attributes[attribute_id])
        for attribute_id in defs.visitor_id_attributes
        if isinstance(state.attributes.get(attribute_id), str)
    }
    profile = profile_pb2.Profile(
        profile_id=state.profile_id,
        visitor_ids=state.visitor_ids or [state.profile_id],
        identities=identities,
        attributes=visitor_attribute_values(defs, state),
        badges=profile_badges(defs, state),
        audiences=[
            profile_pb2.AudienceMembership(
                audience_id=audience_id, joined_at=timestamp_from_ms(joined_ms)
            )
            for audience_id, joined_ms in sorted(state.audiences.items())
        ],
        created_at=timestamp_from_ms(state.created_ms),
        updated_at=timestamp_from_ms(state.updated_ms),
        expires_at=timestamp_from_ms(state.updated_ms + retention_ms),
        replaces=[
            profile_pb2.ReplacedProfile(
                profile_id=str(replaced.get("profile_id", "")),
                visitor_ids=[str(v) for v in replaced.get("visitor_ids") or []],
                identities={str(k): str(v) for k, v in (replaced.get("identities") or {}).items()},
                stitched_at=timestamp_from_ms(int(replaced.get("stitched_ms") or 0)),
                attribute_id=str(replaced.get("attribute_id", "")),
            )
            for replaced in state.replaces
        ],
    )
    visit = state.visit
    if visit is not None:
        profile.current_visit.CopyFrom(
            profile_pb2.Visit(
                visit_id=visit.visit_id,
                started_at=timestamp_from_ms(visit.started_ms),
                last_event_at=timestamp_from_ms(visit.last_event_ms),
                expires_at=timestamp_from_ms(visit.expires_ms(defs.limits.max_visit_length_ms)),
                event_count=visit.event_count,
                attributes=visit_attribute_values(defs, state),
            )
        )
    return profile


class ProfileApp:
    """Implements `ProfileBackend` on the storage layer and the engine."""

    def __init__(
        self,
        *,
        store: ProfileStore,
        reader: ProfileReader,
        trace_log: TraceLog,
        definitions_store: DefinitionsStore,
        watcher: DefinitionsWatcher,
        backfill_progress: Callable[[], Awaitable[BackfillProgress]] | None = None,
    ) -> None:
        self._store = store
        self._reader = reader
        self._trace_log = trace_log
        self._definitions_store = definitions_store
        self._watcher = watcher
        self._backfill_progress = backfill_progress
        self.on_published: Callable[[CompiledDefinitions, CompiledDefinitions], None] | None = None
        """Called with the previous and the new definitions after this replica published."""

    @property
    def definitions(self) -> CompiledDefinitions:
        """The current compiled definitions of this replica."""
        return self._watcher.current

    async def track(
        self,
        events: Sequence[NormalizedEvent],
        view: event_pb2.EventResultView.ValueType = event_pb2.EVENT_RESULT_VIEW_FULL,
    ) -> list[event_pb2.EventResult]:
        defs = self._watcher.current  # one snapshot for the whole batch
        with (
            step_span("engine.apply", {"crowd.event_count": len(events)}) as span,
            EVALUATION_SECONDS.time(),
        ):
            applied = await self._store.apply_events(defs, events)
            results = [event_result(defs, a, events[a.index], view) for a in applied]
            if span.is_recording():  # the counts walk every result: only for a real span
                span.set_attributes(result_attributes(results))
        return results

    async def _find(self, lookup: event_pb2.VisitorLookup) -> StoredProfile | None:
        if lookup.WhichOneof("by") == "visitor_id_value":
            by_value = lookup.visitor_id_value
            return await self._reader.find_by_identity(by_value.attribute_id, by_value.value)
        return await self._reader.get_profile(lookup.visitor_id)

    async def resolve(self, lookup: event_pb2.VisitorLookup) -> str | None:
        found = await self._find(lookup)
        return found.profile_id if found is not None else None

    async def lookup_profile(self, lookup: event_pb2.VisitorLookup) -> profile_pb2.Profile | None:
        found = await self._find(lookup)
        if found is None:
            return None
        defs = self._watcher.current
        return profile_message(defs, found.state, defs.limits.visitor_retention_ms)

    async def delete_profile(self, profile_id: str) -> list[str]:
        defs = self._watcher.current

        def actions(state: ProfileState, version: str) -> list[FiredAction]:
            return deletion_actions(defs, state, version, int(time.time() * 1000))

        deleted = await self._reader.delete_profile(profile_id, defs, actions)
        return deleted.visitor_ids if deleted is not None else []

    def audience_exists(self, audience_id: str) -> bool:
        return audience_id in self._watcher.current.audiences

    async def audience_size(self, audience_id: str) -> int:
        return await self._reader.audience_size(audience_id)

    async def audience_members(
        self, audience_id: str, page_size: int, page_token: str
    ) -> tuple[list[str], str]:
        page = await self._reader.audience_members(audience_id, page_size, page_token)
        return page.profile_ids, page.next_page_token

    async def trace(
        self,
        *,
        profile_id: str = "",
        trace_id: str = "",
        after: str = "",
        active: Callable[[], bool] | None = None,
    ) -> AsyncIterator[trace_pb2.TraceEntry]:
        if trace_id:
            stream, marker = self._trace_log.trace_id_stream(trace_id), ""
        else:
            stream, marker = await self._trace_log.visitor_follow_keys(profile_id)
        async for entry in self._trace_log.follow(stream, after, active=active, marker=marker):
            yield entry

    async def validate_definitions(
        self, definitions: definitions_pb2.Definitions
    ) -> list[definitions_pb2.DefinitionError]:
        return definition_errors_to_proto(await validate_off_loop(definitions))

    async def publish_definitions(
        self, definitions: definitions_pb2.Definitions, expected_current_version: str
    ) -> definitions_pb2.DefinitionsVersion:
        try:
            # Off the event loop; the store's own check then finds the remembered result.
            errors = await validate_off_loop(definitions)
            if errors:
                raise InvalidDefinitionsError(errors)
            before = self._watcher.current
            published = await self._definitions_store.publish(definitions, expected_current_version)
        except InvalidDefinitionsError as exc:
            raise InvalidArgument(
                field_violations(exc.errors),
                f"the definitions have {len(exc.errors)} error(s); nothing was published",
                reason="INVALID_DEFINITIONS",
            ) from None
        # Switch this replica at once; the others follow within their poll interval.
        await self._watcher.refresh()
        if self.on_published is not None and published.changed:
            self.on_published(before, self._watcher.current)
        return published.version

    async def get_definitions(self, version: str) -> definitions_pb2.DefinitionsVersion | None:
        return await self._definitions_store.find(version)

    async def backfill_status(self) -> definition_service_pb2.GetBackfillStatusResponse:
        progress = (
            await self._backfill_progress()
            if self._backfill_progress is not None
            else BackfillProgress()
        )
        return backfill_status_message(progress)


__all__ = ["ProfileApp", "event_result", "profile_message"]
