"""gRPC servicer of the dispatch service: translation between the RPCs and the action store.

A Redis failure that heals on its own (a failover, a slot being migrated) answers
``UNAVAILABLE``, which callers retry (:mod:`dispatch_service.transient`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from crowd.dispatch.v1 import dispatch_service_pb2, dispatch_service_pb2_grpc
from dispatch_service.cohorts import CohortStore
from dispatch_service.queue import ActionStore
from dispatch_service.transient import unavailable_on_transient
from service_common.errors import NotFound

Context = grpc.aio.ServicerContext[Any, Any]


class DispatchServicer(dispatch_service_pb2_grpc.DispatchServiceServicer):
    """Implements crowd.dispatch.v1.DispatchService on an `ActionStore`."""

    def __init__(self, store: ActionStore, cohorts: CohortStore | None = None) -> None:
        self._store = store
        self._cohorts = cohorts

    async def SubmitActions(
        self, request: dispatch_service_pb2.SubmitActionsRequest, context: Context
    ) -> dispatch_service_pb2.SubmitActionsResponse:
        with unavailable_on_transient():
            outcomes = await self._store.submit(request.actions)
        return dispatch_service_pb2.SubmitActionsResponse(outcomes=outcomes)

    async def GetAction(
        self, request: dispatch_service_pb2.GetActionRequest, context: Context
    ) -> dispatch_service_pb2.GetActionResponse:
        with unavailable_on_transient():
            status = await self._store.get(request.idempotency_key)
        if status is None:
            raise NotFound(
                "no action has this idempotency key",
                reason="ACTION_NOT_FOUND",
                metadata={"idempotency_key": request.idempotency_key[:128]},
            )
        return dispatch_service_pb2.GetActionResponse(status=status)

    async def ListFailedActions(
        self, request: dispatch_service_pb2.ListFailedActionsRequest, context: Context
    ) -> dispatch_service_pb2.ListFailedActionsResponse:
        with unavailable_on_transient():
            page = await self._store.list_failed(
                request.connector_id, request.page_size, request.page_token
            )
        return dispatch_service_pb2.ListFailedActionsResponse(
            actions=page.actions, next_page_token=page.next_page_token
        )

    async def RetryFailedActions(
        self, request: dispatch_service_pb2.RetryFailedActionsRequest, context: Context
    ) -> dispatch_service_pb2.RetryFailedActionsResponse:
        with unavailable_on_transient():
            requeued, not_failed = await self._store.retry_failed(
                request.idempotency_keys, retry_all=request.all, connector_id=request.connector_id
            )
        return dispatch_service_pb2.RetryFailedActionsResponse(
            requeued=requeued, not_failed=not_failed
        )

    async def SyncCohort(
        self,
        request_iterator: AsyncIterator[dispatch_service_pb2.SyncCohortRequest],
        context: Context,
    ) -> dispatch_service_pb2.SyncCohortResponse:
        # The whole stream is read and validated before anything is written: an invalid
        # stream writes nothing, and a valid one is stored in one atomic step (see
        # dispatch_service.cohorts.store) before the response says it is accepted.
        if self._cohorts is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "cohort sync is not configured")
            raise AssertionError("unreachable")
        intake = self._cohorts.intake()
        async for request in request_iterator:
            intake.add(request)
        sync = intake.finish()
        with unavailable_on_transient():
            receipt = await self._cohorts.write(sync)
        return dispatch_service_pb2.SyncCohortResponse(
            accepted=receipt.accepted, requests_planned=receipt.requests_planned
        )
