"""What the gRPC servicers need from the rest of the service.

The servicers only translate between protobuf and this interface (validation,
defaults, error mapping); `profile_service.app.ProfileApp` implements it on the engine
and the Redis storage. Keeping the boundary explicit lets the servicers stay thin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from crowd.profile.v1 import (
    definition_service_pb2,
    definitions_pb2,
    event_pb2,
    profile_pb2,
    trace_pb2,
)
from profile_service.engine.state import NormalizedEvent


class ProfileBackend(Protocol):
    """Operations behind the ProfileService and DefinitionService RPCs."""

    async def track(
        self,
        events: Sequence[NormalizedEvent],
        view: event_pb2.EventResultView.ValueType = event_pb2.EVENT_RESULT_VIEW_FULL,
    ) -> list[event_pb2.EventResult]:
        """Apply validated events (in order per visitor); one result per event, in order,
        with the fields ``view`` asks for."""
        ...

    async def resolve(self, lookup: event_pb2.VisitorLookup) -> str | None:
        """Return the profile id a lookup finds, or None."""
        ...

    async def lookup_profile(self, lookup: event_pb2.VisitorLookup) -> profile_pb2.Profile | None:
        """Return the profile a lookup finds, or None (one read, where `resolve` and then
        reading the profile by its id would read it twice)."""
        ...

    async def delete_profile(self, profile_id: str) -> list[str]:
        """Delete a profile; return the anonymous ids that no longer find one."""
        ...

    def audience_exists(self, audience_id: str) -> bool:
        """Whether the current definitions define the audience."""
        ...

    async def audience_size(self, audience_id: str) -> int:
        """Return the number of members of an audience."""
        ...

    async def audience_members(
        self, audience_id: str, page_size: int, page_token: str
    ) -> tuple[list[str], str]:
        """Return a page of members and the next page token ("" on the last page)."""
        ...

    def trace(
        self,
        *,
        profile_id: str = "",
        trace_id: str = "",
        after: str = "",
        active: Callable[[], bool] | None = None,
    ) -> AsyncIterator[trace_pb2.TraceEntry]:
        """Yield stored entries after ``after`` (if given), then new ones as they happen,
        until ``active()`` turns false (the caller went away)."""
        ...

    async def validate_definitions(
        self, definitions: definitions_pb2.Definitions
    ) -> list[definitions_pb2.DefinitionError]:
        """Return every error of a document (empty if valid); raise InvalidArgument for a
        document over a size limit."""
        ...

    async def publish_definitions(
        self, definitions: definitions_pb2.Definitions, expected_current_version: str
    ) -> definitions_pb2.DefinitionsVersion:
        """Publish a valid document (raises InvalidArgument / FailedPrecondition)."""
        ...

    async def get_definitions(self, version: str) -> definitions_pb2.DefinitionsVersion | None:
        """Return the current ("" ) or a named version, or None."""
        ...

    async def backfill_status(self) -> definition_service_pb2.GetBackfillStatusResponse:
        """Progress of the current audience backfill."""
        ...
