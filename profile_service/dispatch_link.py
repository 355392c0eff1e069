"""The profile service's link to the dispatch service: the outbox forwarder's ``submit``."""

from __future__ import annotations

import re
from collections.abc import Sequence

import grpc
import grpc.aio

from crowd.channels import ChannelPool
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2, dispatch_service_pb2_grpc
from profile_service.cohort_link import submit_cohort_actions
from profile_service.metrics import record_submit_outcomes
from profile_service.storage import SubmitRejected
from service_common.errors import decode_error

_ACTION_INDEX = re.compile(r"^actions\[(\d+)\]")

SUBMIT_TIMEOUT_S = 30.0


class DispatchSubmitter:
    """Submits fired actions with ``SubmitActions`` (the dispatch service dedups by key).

    Transient failures (dispatch down, timeouts) raise, so the forwarder keeps the actions
    and retries. INVALID_ARGUMENT names the refused actions by index: they can never be
    accepted, so they are reported as `SubmitRejected` and the rest is retried.

    Calls rotate over the given channels (each its own connection), so that a dispatch
    service with several worker processes on one port, or several replicas behind one
    address, shares the load instead of one of them getting every call.
    """

    def __init__(self, channels: grpc.aio.Channel | Sequence[grpc.aio.Channel]) -> None:
        self._pool = ChannelPool(
            [channels] if isinstance(channels, grpc.aio.Channel) else list(channels)
        )

    def _stub(self) -> dispatch_service_pb2_grpc.DispatchServiceAsyncStub:
        return dispatch_service_pb2_grpc.DispatchServiceStub(self._pool.take())

    async def __call__(self, all_actions: list[action_pb2.Action]) -> None:
        # Changes of bound cohorts take the dispatch service's cohort path (SyncCohort).
        cohort = [a for a in all_actions if a.WhichOneof("payload") == "cohort_membership"]
        actions = [a for a in all_actions if a.WhichOneof("payload") != "cohort_membership"]
        refused: set[str] = set()
        reasons: list[str] = []
        if cohort:
            refused, reasons = await submit_cohort_actions(self._stub(), cohort)
        if actions:
            try:
                response = await self._stub().SubmitActions(
                    dispatch_service_pb2.SubmitActionsRequest(actions=actions),
                    timeout=SUBMIT_TIMEOUT_S,
                )
                record_submit_outcomes(actions, response.outcomes)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                _, _, violations = decode_error(exc)
                refused |= {
                    actions[int(m.group(1))].idempotency_key
                    for v in violations
                    if (m := _ACTION_INDEX.match(v.field)) and int(m.group(1)) < len(actions)
                }
                reasons += [f"{v.field}: {v.description}" for v in violations[:5]]
        if refused:
            raise SubmitRejected(refused, "; ".join(reasons))
