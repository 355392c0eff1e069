"""Sending cohort changes (``cohort_membership`` actions of bound audiences) to the dispatch
service with ``SyncCohort``, its durable cohort path.

One stream per cohort: the cohort first, then its changes in the order they fired (the
dispatch service keeps the last change per user). The dispatch service stores a stream before
answering, so a forwarder that retries after a failure repeats at most idempotent changes.
An INVALID_ARGUMENT (an unknown connector, one without cohort credentials, a refused
identifier) names what can never be accepted; those actions are returned as refused.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

import grpc
import grpc.aio

from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2, dispatch_service_pb2_grpc
from service_common.errors import decode_error

_CHANGE_INDEX = re.compile(r"^requests\[1\]\.changes\[(\d+)\]")
SYNC_TIMEOUT_S = 30.0

CohortKey = tuple[str, str, str]
"""connector id, cohort id, name."""


def group_by_cohort(
    actions: Sequence[action_pb2.Action],
) -> dict[CohortKey, list[action_pb2.Action]]:
    """The cohort actions by cohort, each group in firing order."""
    groups: dict[CohortKey, list[action_pb2.Action]] = {}
    for action in actions:
        membership = action.cohort_membership
        key = (action.connector_id, membership.cohort_id, membership.name)
        groups.setdefault(key, []).append(action)
    return groups


async def _stream(
    key: CohortKey, changes: Sequence[action_pb2.CohortChange]
) -> AsyncIterator[dispatch_service_pb2.SyncCohortRequest]:
    connector_id, cohort_id, name = key
    cohort = dispatch_service_pb2.Cohort(connector_id=connector_id, cohort_id=cohort_id, name=name)
    yield dispatch_service_pb2.SyncCohortRequest(cohort=cohort)
    yield dispatch_service_pb2.SyncCohortRequest(changes=changes)


async def sync_cohort(
    stub: dispatch_service_pb2_grpc.DispatchServiceAsyncStub,
    key: CohortKey,
    changes: Sequence[action_pb2.CohortChange],
) -> dispatch_service_pb2.SyncCohortResponse:
    """Send one cohort's changes as one SyncCohort stream (errors raise)."""
    return await stub.SyncCohort(_stream(key, changes), timeout=SYNC_TIMEOUT_S)


async def submit_cohort_actions(
    stub: dispatch_service_pb2_grpc.DispatchServiceAsyncStub,
    actions: Sequence[action_pb2.Action],
) -> tuple[set[str], list[str]]:
    """Send every cohort action; returns the idempotency keys refused for good and why.

    Transient failures raise (the forwarder keeps the actions and retries).
    """
    refused: set[str] = set()
    reasons: list[str] = []
    for key, group in group_by_cohort(actions).items():
        try:
            await sync_cohort(stub, key, [a.cohort_membership.change for a in group])
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                refused.update(a.idempotency_key for a in group)
                reasons.append(f"cohort {key[1]!r}: {exc.details()}")
                continue
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            _, _, violations = decode_error(exc)
            named = {int(m.group(1)) for v in violations if (m := _CHANGE_INDEX.match(v.field))}
            # A cohort-level violation (connector, cohort id) refuses the whole group.
            whole = len(named) < len(violations) or not named
            refused.update(a.idempotency_key for i, a in enumerate(group) if whole or i in named)
            reasons.extend(f"cohort {key[1]!r}: {v.field}: {v.description}" for v in violations[:5])
    return refused, reasons
