"""An asyncio Python client for the crowd profile and dispatch services.

It wraps the generated stubs with plain-Python arguments (dicts of event data, datetimes)
and adds the API key to every call::

    async with CrowdClient("127.0.0.1:50051", api_key=key) as crowd:
        result = await crowd.track_event("visitor-1", "purchase", {"order_total": 120.0})
        profile = await crowd.get_profile("visitor-1")

Errors surface as ``grpc.aio.AioRpcError``; `violations` lists the field violations of an
INVALID_ARGUMENT error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Self

import grpc
import grpc.aio
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from crowd.channels import ChannelPool
from crowd.definitions.loader import load_definitions_file
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2, dispatch_service_pb2_grpc
from crowd.profile.v1 import (
    definition_service_pb2,
    definition_service_pb2_grpc,
    definitions_pb2,
    event_pb2,
    profile_pb2,
    profile_service_pb2,
    profile_service_pb2_grpc,
)
from crowd.values import to_value_map

__all__ = [
    "DEFAULT_CHANNELS",
    "CrowdClient",
    "load_definitions_file",
    "lookup",
    "make_event",
    "violations",
]


def violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """Return the (field, description) pairs of an error's google.rpc.BadRequest detail."""
    if not isinstance(error, grpc.aio.AioRpcError | grpc.Call):
        return []
    status = rpc_status.from_call(error)
    found: list[tuple[str, str]] = []
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found += [(v.field, v.description) for v in bad_request.field_violations]
    return found


def make_event(
    visitor_id: str,
    name: str,
    data: Mapping[str, Any] | None = None,
    *,
    event_id: str = "",
    time: datetime | None = None,
    trace_id: str = "",
    platform: str = "",
) -> event_pb2.Event:
    """Build an Event message from plain Python values."""
    event = event_pb2.Event(
        visitor_id=visitor_id,
        name=name,
        event_id=event_id,
        data=to_value_map(data or {}),
        trace_id=trace_id,
        platform=platform,
    )
    if time is not None:
        event.time.FromDatetime(time)
    return event


def lookup(
    visitor_id: str = "", *, attribute_id: str = "", value: str = ""
) -> event_pb2.VisitorLookup:
    """Build a VisitorLookup by anonymous id, or by a visitor-ID attribute and value."""
    if attribute_id:
        return event_pb2.VisitorLookup(
            visitor_id_value=event_pb2.VisitorIdValue(attribute_id=attribute_id, value=value)
        )
    return event_pb2.VisitorLookup(visitor_id=visitor_id)


DEFAULT_CHANNELS = 16
"""Connections per service a `CrowdClient` spreads its calls over (see its ``channels``).

The kernel hands each new connection to a worker process at random (a hash), so the split
of one client's calls is as even as a fair coin over this many tosses: with 16 over two
workers, within 70/30 nine times in ten. Connections open on first use, so a short-lived
client (the CLI) opens one."""


class CrowdClient:
    """Client of both services. Either target may be empty if that service is not used.

    Calls are spread round-robin over ``channels`` connections per service (each its own
    TCP connection, opened on first use). A server with several worker processes on one
    port (``--workers``), or several replicas behind one address, shares load per
    *connection*: one connection would put all of this client's calls on one worker.
    A streaming call stays on the connection it started on; a failing connection is
    skipped while another one works (`crowd.channels.ChannelPool`).
    """

    def __init__(
        self,
        profile_target: str = "127.0.0.1:50051",
        dispatch_target: str = "",
        *,
        api_key: str = "",
        timeout: float | None = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        channels: int = DEFAULT_CHANNELS,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """
        Args:
            profile_target: ``host:port`` (or any gRPC target, e.g. ``dns:///host:port``) of
                the profile service; empty if unused.
            dispatch_target: The same for the dispatch service.
            api_key: Sent as ``authorization: Bearer <key>`` with every call.
            timeout: Deadline of each unary call, in seconds.
            credentials: TLS credentials (insecure channels without).
            channels: Connections per service (at least 1).
            options: Further gRPC channel arguments, e.g.
                ``[("grpc.lb_policy_name", "round_robin")]`` with a ``dns:///`` target that
                resolves to several replicas.
        """
        if channels < 1:
            raise ValueError("channels must be at least 1")
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        self._timeout = timeout
        self._profile_pool = (
            ChannelPool.open(profile_target, channels, credentials=credentials, options=options)
            if profile_target
            else None
        )
        self._dispatch_pool = (
            ChannelPool.open(dispatch_target, channels, credentials=credentials, options=options)
            if dispatch_target
            else None
        )

    async def close(self) -> None:
        """Close the channels."""
        for pool in (self._profile_pool, self._dispatch_pool):
            if pool is not None:
                await pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- stubs -----------------------------------------------------------------------------

    @property
    def profiles(self) -> profile_service_pb2_grpc.ProfileServiceAsyncStub:
        """A generated ProfileService stub (pass ``metadata=client.metadata``), on the next
        connection in turn."""
        return profile_service_pb2_grpc.ProfileServiceStub(self._require(self._profile_pool))

    @property
    def definitions(self) -> definition_service_pb2_grpc.DefinitionServiceAsyncStub:
        """A generated DefinitionService stub, on the next connection in turn."""
        return definition_service_pb2_grpc.DefinitionServiceStub(self._require(self._profile_pool))

    @property
    def dispatch(self) -> dispatch_service_pb2_grpc.DispatchServiceAsyncStub:
        """A generated DispatchService stub, on the next connection in turn."""
        return dispatch_service_pb2_grpc.DispatchServiceStub(self._require(self._dispatch_pool))

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying the API key."""
        return self._metadata

    @staticmethod
    def _require(pool: ChannelPool | None) -> grpc.aio.Channel:
        if pool is None:
            raise RuntimeError("no target configured for this service")
        return pool.take()

    # --- profile service -------------------------------------------------------------------

    async def track_event(
        self, visitor_id: str, name: str, data: Mapping[str, Any] | None = None, **fields: Any
    ) -> event_pb2.EventResult:
        """Send one event; return what it changed."""
        request = profile_service_pb2.TrackEventRequest(
            event=make_event(visitor_id, name, data, **fields)
        )
        response = await self.profiles.TrackEvent(
            request, metadata=self._metadata, timeout=self._timeout
        )
        return response.result

    async def track_events(
        self,
        events: Iterable[event_pb2.Event],
        *,
        result_view: event_pb2.EventResultView.ValueType = event_pb2.EVENT_RESULT_VIEW_FULL,
    ) -> list[event_pb2.EventResult]:
        """Send a batch of up to 1,000 events. ``EVENT_RESULT_VIEW_BASIC`` asks for results
        without their attribute changes (less work for the service and the network)."""
        request = profile_service_pb2.TrackEventsRequest(
            events=list(events), result_view=result_view
        )
        response = await self.profiles.TrackEvents(
            request, metadata=self._metadata, timeout=self._timeout
        )
        return list(response.results)

    async def get_profile(
        self, visitor_id: str = "", *, attribute_id: str = "", value: str = ""
    ) -> profile_pb2.Profile:
        """Look a profile up by anonymous id or by visitor-ID attribute value."""
        request = profile_service_pb2.GetProfileRequest(
            visitor=lookup(visitor_id, attribute_id=attribute_id, value=value)
        )
        response = await self.profiles.GetProfile(
            request, metadata=self._metadata, timeout=self._timeout
        )
        return response.profile

    async def delete_profile(
        self, visitor_id: str = "", *, attribute_id: str = "", value: str = ""
    ) -> profile_service_pb2.DeleteProfileResponse:
        """Delete a profile and everything linked to it."""
        request = profile_service_pb2.DeleteProfileRequest(
            visitor=lookup(visitor_id, attribute_id=attribute_id, value=value)
        )
        response: profile_service_pb2.DeleteProfileResponse = await self.profiles.DeleteProfile(
            request, metadata=self._metadata, timeout=self._timeout
        )
        return response

    async def audience_size(self, audience_id: str) -> int:
        """Return the number of visitors in an audience."""
        response = await self.profiles.GetAudienceSize(
            profile_service_pb2.GetAudienceSizeRequest(audience_id=audience_id),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return response.size

    async def audience_members(self, audience_id: str, page_size: int = 1000) -> list[str]:
        """Return every member of an audience (follows the pages)."""
        members: list[str] = []
        token = ""
        while True:
            response = await self.profiles.ListAudienceMembers(
                profile_service_pb2.ListAudienceMembersRequest(
                    audience_id=audience_id, page_size=page_size, page_token=token
                ),
                metadata=self._metadata,
                timeout=self._timeout,
            )
            members += response.profile_ids
            token = response.next_page_token
            if not token:
                return members

    async def resync_cohort(
        self, audience_id: str, cohort_id: str = ""
    ) -> AsyncIterator[profile_service_pb2.ResyncCohortResponse]:
        """Send every member of a bound audience to its Braze cohort(s); yields progress
        after every page, the last with ``done`` (admin scope; no overall timeout)."""
        request = profile_service_pb2.ResyncCohortRequest(
            audience_id=audience_id, cohort_id=cohort_id
        )
        async for progress in self.profiles.ResyncCohort(request, metadata=self._metadata):
            yield progress

    async def stream_trace(
        self, visitor_id: str = "", *, trace_id: str = "", after: str = ""
    ) -> AsyncIterator[Any]:
        """Yield trace entries of a visitor or a live-trace id as they happen."""
        request = (
            profile_service_pb2.StreamTraceRequest(trace_id=trace_id, after=after)
            if trace_id
            else profile_service_pb2.StreamTraceRequest(visitor_id=visitor_id, after=after)
        )
        async for response in self.profiles.StreamTrace(request, metadata=self._metadata):
            yield response.entry

    # --- definitions -----------------------------------------------------------------------

    async def validate_definitions(
        self, definitions: definitions_pb2.Definitions
    ) -> definition_service_pb2.ValidateDefinitionsResponse:
        """Validate a document; the response lists every error."""
        response: definition_service_pb2.ValidateDefinitionsResponse = (
            await self.definitions.ValidateDefinitions(
                definition_service_pb2.ValidateDefinitionsRequest(definitions=definitions),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        )
        return response

    async def try_definitions(
        self, definitions: definitions_pb2.Definitions, events: Sequence[event_pb2.Event]
    ) -> list[event_pb2.EventResult]:
        """Run events through the engine with an unpublished document, in memory on the
        server (nothing stored, nothing sent): one result per event."""
        response: definition_service_pb2.TryDefinitionsResponse = (
            await self.definitions.TryDefinitions(
                definition_service_pb2.TryDefinitionsRequest(
                    definitions=definitions, events=list(events)
                ),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        )
        return list(response.results)

    async def backfill_status(self) -> definition_service_pb2.GetBackfillStatusResponse:
        """Progress of the audience backfill (version, state, per-partition figures)."""
        response: definition_service_pb2.GetBackfillStatusResponse = (
            await self.definitions.GetBackfillStatus(
                definition_service_pb2.GetBackfillStatusRequest(),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        )
        return response

    async def publish_definitions(
        self, definitions: definitions_pb2.Definitions, expected_current_version: str = ""
    ) -> definitions_pb2.DefinitionsVersion:
        """Publish a document; return the new (or unchanged current) version."""
        response = await self.definitions.PublishDefinitions(
            definition_service_pb2.PublishDefinitionsRequest(
                definitions=definitions, expected_current_version=expected_current_version
            ),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return response.version

    async def get_definitions(self, version: str = "") -> definitions_pb2.DefinitionsVersion:
        """Return the current or a named definitions version."""
        response = await self.definitions.GetDefinitions(
            definition_service_pb2.GetDefinitionsRequest(version=version),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return response.version

    # --- dispatch service ------------------------------------------------------------------

    async def submit_actions(
        self, actions: Sequence[action_pb2.Action]
    ) -> list[dispatch_service_pb2.SubmitOutcome]:
        """Submit up to 1,000 actions; return one outcome per action."""
        response = await self.dispatch.SubmitActions(
            dispatch_service_pb2.SubmitActionsRequest(actions=list(actions)),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return list(response.outcomes)

    async def get_action(self, idempotency_key: str) -> action_pb2.ActionStatus:
        """Return an action's status."""
        response = await self.dispatch.GetAction(
            dispatch_service_pb2.GetActionRequest(idempotency_key=idempotency_key),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        return response.status

    async def failed_actions(self, connector_id: str = "") -> list[action_pb2.ActionStatus]:
        """Return every dead-lettered action (follows the pages)."""
        found: list[action_pb2.ActionStatus] = []
        token = ""
        while True:
            response: dispatch_service_pb2.ListFailedActionsResponse = (
                await self.dispatch.ListFailedActions(
                    dispatch_service_pb2.ListFailedActionsRequest(
                        connector_id=connector_id, page_size=1000, page_token=token
                    ),
                    metadata=self._metadata,
                    timeout=self._timeout,
                )
            )
            found += response.actions
            token = response.next_page_token
            if not token:
                return found

    async def retry_failed_actions(
        self,
        idempotency_keys: Sequence[str] = (),
        *,
        all_failed: bool = False,
        connector_id: str = "",
    ) -> dispatch_service_pb2.RetryFailedActionsResponse:
        """Requeue dead-lettered actions."""
        response: dispatch_service_pb2.RetryFailedActionsResponse = (
            await self.dispatch.RetryFailedActions(
                dispatch_service_pb2.RetryFailedActionsRequest(
                    idempotency_keys=list(idempotency_keys),
                    all=all_failed,
                    connector_id=connector_id,
                ),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        )
        return response
