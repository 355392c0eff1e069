"""gRPC servicers of the profile service: validation and translation only.

Everything stateful is behind `ProfileBackend`. Errors are raised as
`service_common.errors.DomainError` subclasses; the shared interceptor turns them into
canonical status codes with ``google.rpc`` details.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc.aio
from opentelemetry import propagate

from crowd.common.v1 import value_pb2
from crowd.profile.v1 import (
    definition_service_pb2,
    definition_service_pb2_grpc,
    event_pb2,
    profile_service_pb2,
    profile_service_pb2_grpc,
)
from profile_service.api.backend import ProfileBackend
from profile_service.api.trial import try_definitions
from profile_service.api.validation import (
    MAX_ID_LENGTH,
    normalize_batch,
    normalize_event,
)
from profile_service.cohort_resync import CohortResync
from profile_service.engine.state import NormalizedEvent
from profile_service.metrics import record_rejected, record_results
from service_common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Violations,
    compact_violation,
)

Context = grpc.aio.ServicerContext[Any, Any]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
IMPORT_PLATFORM = "import"
"""Imported records get this platform: their visits last one minute unless the
definitions set ``platform_visit_timeouts.import`` (Tealium file-import semantics)."""


def _violation_pb(violation: FieldViolation) -> value_pb2.FieldViolation:
    """A violation for a response body, echoed keys and values cut like in error details."""
    compact = compact_violation(violation)
    return value_pb2.FieldViolation(field=compact.field, description=compact.description)


def _prefixed(prefix: str, violations: Violations) -> Violations:
    nested = Violations()
    nested.extend_prefixed(prefix, violations)
    return nested


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(field, description)])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _current_traceparent() -> str:
    """The W3C traceparent of the active span (the RPC's server span), for fired actions."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def _check_lookup(lookup: event_pb2.VisitorLookup, field: str) -> None:
    violations = Violations()
    kind = lookup.WhichOneof("by")
    if kind is None:
        violations.add(field, "set visitor_id or visitor_id_value")
    elif kind == "visitor_id":
        if not lookup.visitor_id or len(lookup.visitor_id) > MAX_ID_LENGTH:
            violations.add(f"{field}.visitor_id", f"must have 1 to {MAX_ID_LENGTH} characters")
    else:
        value = lookup.visitor_id_value
        if not value.attribute_id:
            violations.add(f"{field}.visitor_id_value.attribute_id", "is required")
        if not value.value or len(value.value) > 2048:
            violations.add(f"{field}.visitor_id_value.value", "must have 1 to 2048 characters")
    violations.raise_if_any()


def _check_audience_id(audience_id: str) -> None:
    if not audience_id:
        raise _invalid("audience_id", "is required")


def _page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise _invalid("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


class ProfileServicer(profile_service_pb2_grpc.ProfileServiceServicer):
    """Implements crowd.profile.v1.ProfileService."""

    def __init__(self, backend: ProfileBackend, resync: CohortResync | None = None) -> None:
        self._backend = backend
        self._resync = resync

    async def ResyncCohort(
        self, request: profile_service_pb2.ResyncCohortRequest, context: Context
    ) -> AsyncIterator[profile_service_pb2.ResyncCohortResponse]:
        if self._resync is None:
            raise FailedPrecondition("cohort resync is not configured", reason="NO_RESYNC")
        async for progress in self._resync.run(request):
            yield progress

    async def _resolve(self, lookup: event_pb2.VisitorLookup, field: str) -> str:
        _check_lookup(lookup, field)
        profile_id = await self._backend.resolve(lookup)
        if profile_id is None:
            raise NotFound("no profile matches the lookup", reason="PROFILE_NOT_FOUND")
        return profile_id

    async def TrackEvent(
        self, request: profile_service_pb2.TrackEventRequest, context: Context
    ) -> profile_service_pb2.TrackEventResponse:
        if not request.HasField("event"):
            raise _invalid("event", "is required")
        # Validated on its own (not as a batch of one) so violations name the request's field
        # "event.visitor_id", not "event[0].visitor_id".
        own = Violations()
        event = normalize_event(request.event, _now_ms(), own, traceparent=_current_traceparent())
        if event is None:
            record_rejected("invalid")
        _prefixed("event", own).raise_if_any()
        assert event is not None  # normalize_event returns None only with violations
        results = await self._backend.track([event], request.result_view)
        record_results("TrackEvent", results)
        return profile_service_pb2.TrackEventResponse(result=results[0])

    async def TrackEvents(
        self, request: profile_service_pb2.TrackEventsRequest, context: Context
    ) -> profile_service_pb2.TrackEventsResponse:
        try:
            events = normalize_batch(request.events, _now_ms(), traceparent=_current_traceparent())
        except InvalidArgument:
            record_rejected("invalid", len(request.events))
            raise
        results = await self._backend.track(events, request.result_view)
        record_results("TrackEvents", results)
        return profile_service_pb2.TrackEventsResponse(results=results)

    async def StreamEvents(
        self,
        request_iterator: AsyncIterator[profile_service_pb2.StreamEventsRequest],
        context: Context,
    ) -> AsyncIterator[profile_service_pb2.StreamEventsResponse]:
        traceparent = _current_traceparent()
        async for request in request_iterator:
            try:
                events = normalize_batch(request.events, _now_ms(), traceparent=traceparent)
            except InvalidArgument as exc:
                # A bad batch is answered and skipped; the stream goes on.
                record_rejected("invalid", len(request.events))
                yield profile_service_pb2.StreamEventsResponse(
                    sequence=request.sequence,
                    violations=[_violation_pb(v) for v in exc.violations],
                )
                continue
            results = await self._backend.track(events, request.result_view)
            record_results("StreamEvents", results)
            yield profile_service_pb2.StreamEventsResponse(
                sequence=request.sequence, results=results
            )

    async def GetProfile(
        self, request: profile_service_pb2.GetProfileRequest, context: Context
    ) -> profile_service_pb2.GetProfileResponse:
        _check_lookup(request.visitor, "visitor")
        profile = await self._backend.lookup_profile(request.visitor)
        if profile is None:
            raise NotFound("no profile matches the lookup", reason="PROFILE_NOT_FOUND")
        looked_up = request.visitor.visitor_id
        if looked_up and looked_up != profile.profile_id:
            profile.replaced_by = profile.profile_id  # the id names a stitched-in profile
        return profile_service_pb2.GetProfileResponse(profile=profile)

    async def DeleteProfile(
        self, request: profile_service_pb2.DeleteProfileRequest, context: Context
    ) -> profile_service_pb2.DeleteProfileResponse:
        profile_id = await self._resolve(request.visitor, "visitor")
        removed = await self._backend.delete_profile(profile_id)
        return profile_service_pb2.DeleteProfileResponse(profile_id=profile_id, visitor_ids=removed)

    async def ImportRecords(
        self,
        request_iterator: AsyncIterator[profile_service_pb2.ImportRecordsRequest],
        context: Context,
    ) -> profile_service_pb2.ImportRecordsResponse:
        # Records are validated one by one: a bad record is reported by its position in the
        # whole stream ("records[<i>]") and skipped; the others of its chunk are imported.
        response = profile_service_pb2.ImportRecordsResponse()
        position = 0
        async for request in request_iterator:
            events: list[NormalizedEvent] = []
            # Visitor-ID values are looked up together (one round trip each, concurrently);
            # anonymous ids need no lookup: ingest itself follows their aliases.
            owners = await asyncio.gather(*(self._owner(r.visitor) for r in request.records))
            for record, owner in zip(request.records, owners, strict=True):
                violations = Violations()
                event = self._import_event(record, owner, violations)
                if event is None:
                    record_rejected("invalid")
                    response.violations.extend(
                        _violation_pb(v) for v in _prefixed(f"records[{position}]", violations)
                    )
                else:
                    events.append(event)
                position += 1
            if events:
                results = await self._backend.track(events)
                record_results("ImportRecords", results)
                response.duplicates += sum(1 for r in results if r.duplicate)
                response.imported += sum(1 for r in results if not r.duplicate)
        return response

    async def _owner(self, lookup: event_pb2.VisitorLookup) -> str | None:
        """The profile holding a visitor-ID value lookup's value (None: unknown, or not such
        a lookup)."""
        if lookup.WhichOneof("by") != "visitor_id_value" or not lookup.visitor_id_value.value:
            return None
        return await self._backend.resolve(lookup)

    def _import_event(
        self,
        record: profile_service_pb2.ImportRecord,
        owner: str | None,
        violations: Violations,
    ) -> NormalizedEvent | None:
        """The event one offline record becomes, or None after recording its violations."""
        lookup = record.visitor
        try:
            _check_lookup(lookup, "visitor")
        except InvalidArgument as exc:
            violations.extend_prefixed("", exc.violations)
            return None
        identities: dict[str, str] = {}
        visitor_id = owner
        if lookup.WhichOneof("by") == "visitor_id_value":
            identities[lookup.visitor_id_value.attribute_id] = lookup.visitor_id_value.value
            if visitor_id is None:
                # An unknown visitor-ID value starts a profile keyed by that value; the value
                # is assigned to the attribute, so later lookups and events find it.
                visitor_id = (
                    f"{lookup.visitor_id_value.attribute_id}:{lookup.visitor_id_value.value}"
                )
        event = event_pb2.Event(
            visitor_id=visitor_id or lookup.visitor_id,
            event_id=record.record_id,
            name=record.name or "import",
            data=record.data,
            platform=IMPORT_PLATFORM,
        )
        if record.HasField("time"):
            event.time.CopyFrom(record.time)
        normalized = normalize_event(event, _now_ms(), violations)
        if normalized is None:
            return None
        return dataclasses.replace(normalized, identities=identities)

    async def GetAudienceSize(
        self, request: profile_service_pb2.GetAudienceSizeRequest, context: Context
    ) -> profile_service_pb2.GetAudienceSizeResponse:
        self._check_audience(request.audience_id)
        size = await self._backend.audience_size(request.audience_id)
        return profile_service_pb2.GetAudienceSizeResponse(
            audience_id=request.audience_id, size=size
        )

    async def ListAudienceMembers(
        self, request: profile_service_pb2.ListAudienceMembersRequest, context: Context
    ) -> profile_service_pb2.ListAudienceMembersResponse:
        self._check_audience(request.audience_id)
        members, token = await self._backend.audience_members(
            request.audience_id, _page_size(request.page_size), request.page_token
        )
        return profile_service_pb2.ListAudienceMembersResponse(
            profile_ids=members, next_page_token=token
        )

    def _check_audience(self, audience_id: str) -> None:
        _check_audience_id(audience_id)
        if not self._backend.audience_exists(audience_id):
            raise NotFound(
                f"audience {audience_id!r} is not defined",
                reason="AUDIENCE_NOT_FOUND",
                metadata={"audience_id": audience_id},
            )

    async def StreamTrace(
        self, request: profile_service_pb2.StreamTraceRequest, context: Context
    ) -> AsyncIterator[profile_service_pb2.StreamTraceResponse]:
        target = request.WhichOneof("target")
        if target is None:
            raise _invalid("target", "set visitor_id or trace_id")
        if target == "visitor_id":
            lookup = event_pb2.VisitorLookup(visitor_id=request.visitor_id)
            profile_id = await self._resolve(lookup, "visitor_id")
            entries = self._backend.trace(
                profile_id=profile_id, after=request.after, active=lambda: not context.done()
            )
        else:
            if not request.trace_id or len(request.trace_id) > MAX_ID_LENGTH:
                raise _invalid("trace_id", f"must have 1 to {MAX_ID_LENGTH} characters")
            entries = self._backend.trace(
                trace_id=request.trace_id, after=request.after, active=lambda: not context.done()
            )
        async for entry in entries:
            yield profile_service_pb2.StreamTraceResponse(entry=entry)


class DefinitionServicer(definition_service_pb2_grpc.DefinitionServiceServicer):
    """Implements crowd.profile.v1.DefinitionService."""

    def __init__(self, backend: ProfileBackend) -> None:
        self._backend = backend

    async def ValidateDefinitions(
        self, request: definition_service_pb2.ValidateDefinitionsRequest, context: Context
    ) -> definition_service_pb2.ValidateDefinitionsResponse:
        errors = await self._backend.validate_definitions(request.definitions)
        return definition_service_pb2.ValidateDefinitionsResponse(valid=not errors, errors=errors)

    async def PublishDefinitions(
        self, request: definition_service_pb2.PublishDefinitionsRequest, context: Context
    ) -> definition_service_pb2.PublishDefinitionsResponse:
        version = await self._backend.publish_definitions(
            request.definitions, request.expected_current_version
        )
        return definition_service_pb2.PublishDefinitionsResponse(version=version)

    async def GetDefinitions(
        self, request: definition_service_pb2.GetDefinitionsRequest, context: Context
    ) -> definition_service_pb2.GetDefinitionsResponse:
        version = await self._backend.get_definitions(request.version)
        if version is None:
            what = f"version {request.version!r}" if request.version else "any version"
            raise NotFound(
                f"no definitions: {what} has not been published",
                reason="DEFINITIONS_NOT_FOUND",
                metadata={"version": request.version},
            )
        return definition_service_pb2.GetDefinitionsResponse(version=version)

    async def TryDefinitions(
        self, request: definition_service_pb2.TryDefinitionsRequest, context: Context
    ) -> definition_service_pb2.TryDefinitionsResponse:
        return await try_definitions(request)

    async def GetBackfillStatus(
        self, request: definition_service_pb2.GetBackfillStatusRequest, context: Context
    ) -> definition_service_pb2.GetBackfillStatusResponse:
        return await self._backend.backfill_status()


__all__ = ["DefinitionServicer", "ProfileServicer"]
