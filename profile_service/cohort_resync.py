"""ResyncCohort: send every current member of a bound audience to its Braze cohort(s).

For recovery (a cohort deleted or edited in Braze, a dead-lettered change): the audience set
is paged (``SSCAN`` pages of up to 1,000 profiles, as ListAudienceMembers), each member's
identifier is built from its stored profile with the binding's mapping, and each page goes to
the dispatch service as one ``SyncCohort`` stream of additions per bound cohort, so the
dispatch service's durable cohort path applies (1,000 ids per Braze request, rate limits,
retries, dead letters). A progress message follows every page; the last has ``done``.
Members that left meanwhile may be re-added; their own LEFT change (sent later) removes them
again. Members without a value for the identifier are counted as skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import grpc.aio

from crowd.channels import ChannelPool
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2_grpc
from crowd.profile.v1 import definitions_pb2 as pb
from crowd.profile.v1 import profile_service_pb2
from profile_service.cohort_link import sync_cohort
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.cohort_bindings import change_builder, cohort_name
from profile_service.engine.context import EvalContext
from profile_service.engine.plan import plan_for
from profile_service.storage import ProfileReader
from service_common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)

RESYNC_PAGE_SIZE = 1000


class CohortResync:
    """Runs ResyncCohort requests against the reader and the dispatch service."""

    def __init__(
        self,
        reader: ProfileReader,
        definitions: Callable[[], CompiledDefinitions],
        channels: list[grpc.aio.Channel],
    ) -> None:
        self._reader = reader
        self._definitions = definitions
        self._pool = ChannelPool(channels) if channels else None

    def _bindings(
        self, defs: CompiledDefinitions, request: profile_service_pb2.ResyncCohortRequest
    ) -> list[pb.CohortBinding]:
        if not request.audience_id:
            raise InvalidArgument([FieldViolation("audience_id", "is required")])
        if request.audience_id not in defs.audiences:
            raise NotFound(
                f"audience {request.audience_id!r} is not defined",
                reason="AUDIENCE_NOT_FOUND",
                metadata={"audience_id": request.audience_id},
            )
        bindings = [
            b
            for b in defs.document.cohort_bindings
            if b.audience_id == request.audience_id
            and (not request.cohort_id or b.cohort_id == request.cohort_id)
        ]
        if not bindings:
            raise FailedPrecondition(
                "the audience is not bound to a cohort"
                + (" with this cohort id" if request.cohort_id else ""),
                reason="AUDIENCE_NOT_BOUND",
                metadata={"audience_id": request.audience_id},
            )
        if self._pool is None:
            raise FailedPrecondition(
                "no dispatch service is configured", reason="NO_DISPATCH_SERVICE"
            )
        return bindings

    async def run(
        self, request: profile_service_pb2.ResyncCohortRequest
    ) -> AsyncIterator[profile_service_pb2.ResyncCohortResponse]:
        """Resync; yields progress after every page (raises before the first on bad input)."""
        defs = self._definitions()
        bindings = self._bindings(defs, request)
        assert self._pool is not None
        plan = plan_for(defs)
        builders = [(b, change_builder(b, plan.operands)) for b in bindings]
        progress = profile_service_pb2.ResyncCohortResponse(
            cohort_ids=sorted({b.cohort_id for b in bindings})
        )
        token = ""
        while True:
            page = await self._reader.audience_members(request.audience_id, RESYNC_PAGE_SIZE, token)
            stored = await asyncio.gather(*(self._reader.get_profile(p) for p in page.profile_ids))
            now_ms = int(time.time() * 1000)
            progress.members_scanned += len(page.profile_ids)
            for binding, build in builders:
                changes: list[action_pb2.CohortChange] = []
                for found in stored:
                    if found is None:
                        continue
                    c = EvalContext(
                        found.state, None, now_ms, now_ms, plan.limits, track_favorites=False
                    )
                    change = build(c, False)
                    if change is None:
                        progress.members_skipped += 1
                    else:
                        changes.append(change)
                if changes:
                    stub = dispatch_service_pb2_grpc.DispatchServiceStub(self._pool.take())
                    key = (binding.connector_id, binding.cohort_id, cohort_name(binding))
                    await _send(stub, key, changes)
                    progress.members_sent += len(changes)
            token = page.next_page_token
            progress.done = not token
            yield progress
            if not token:
                return


async def _send(
    stub: dispatch_service_pb2_grpc.DispatchServiceAsyncStub,
    key: tuple[str, str, str],
    changes: list[action_pb2.CohortChange],
) -> None:
    """One page to the dispatch service; its refusals become this RPC's fitting errors."""
    try:
        await sync_cohort(stub, key, changes)
    except grpc.aio.AioRpcError as exc:
        metadata = {"connector_id": key[0], "cohort_id": key[1]}
        if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED):
            raise FailedPrecondition(
                f"the dispatch service refused the cohort: {(exc.details() or '')[:200]}",
                reason="COHORT_REFUSED",
                metadata=metadata,
            ) from None
        raise Unavailable(
            "the dispatch service is unavailable; retry the resync",
            reason="DISPATCH_UNAVAILABLE",
            metadata=metadata,
        ) from None
