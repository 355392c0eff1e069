"""Constants and builders of the cohort sync tests (waiting: `tests.harness.eventually`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp

from braze_sandbox import BrazeSandbox, RecordedRequest
from crowd.dispatch.v1 import action_pb2, dispatch_service_pb2

#: Distinctive values, so that a leak is easy to grep for.
API_KEY = "sk-cohort-rest-7d1e9c3b5a2f4e6d"
PARTNER = "crowd-test"
PARTNER_KEY = "pk-cohort-partner-4b8e2d6f0a1c3e5b"
CLIENT_SECRET = "cs-cohort-secret-9a7c5e3b1d2f4a6c"
WRONG_SECRET = "cs-cohort-wrong-1f3e5d7c9b0a2e4d"
DISPATCH_KEY = "dispatch-test-key-5c7e9a1b3d"

CONNECTOR = "braze-main"
BAD_SECRET_CONNECTOR = "braze-bad-secret"
NO_PARTNER_CONNECTOR = "braze-no-partner"

COHORTS_PATH = f"/partners/{PARTNER}/cohorts"
MEMBERS_PATH = f"/partners/{PARTNER}/cohorts/users"


def cohort_message(
    cohort_id: str, name: str = "VIPs", connector: str = CONNECTOR
) -> dispatch_service_pb2.SyncCohortRequest:
    """The first message of a stream."""
    return dispatch_service_pb2.SyncCohortRequest(
        cohort=dispatch_service_pb2.Cohort(connector_id=connector, cohort_id=cohort_id, name=name)
    )


def add(external_id: str) -> action_pb2.CohortChange:
    return action_pb2.CohortChange(user=action_pb2.UserIds(external_id=external_id))


def remove(external_id: str) -> action_pb2.CohortChange:
    return action_pb2.CohortChange(user=action_pb2.UserIds(external_id=external_id), remove=True)


def changes_message(
    changes: Iterable[action_pb2.CohortChange],
) -> dispatch_service_pb2.SyncCohortRequest:
    return dispatch_service_pb2.SyncCohortRequest(changes=list(changes))


def stream(
    first: dispatch_service_pb2.SyncCohortRequest,
    *batches: Sequence[action_pb2.CohortChange],
) -> list[dispatch_service_pb2.SyncCohortRequest]:
    """A stream: the cohort message, then one message per batch of changes."""
    return [first, *(changes_message(batch) for batch in batches)]


async def create_users(
    sandbox: BrazeSandbox, external_ids: Sequence[str], aliases: Sequence[tuple[str, str]] = ()
) -> None:
    """Create profiles through /users/track (cohort import only matches existing users)."""
    objects: list[dict[str, Any]] = [{"external_id": e, "plan": "gold"} for e in external_ids]
    objects += [
        {"user_alias": {"alias_name": n, "alias_label": lbl}, "_update_existing_only": False}
        for n, lbl in aliases
    ]
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        for start in range(0, len(objects), 75):
            body = {"attributes": objects[start : start + 75]}
            async with http.post(sandbox.url + "/users/track", json=body, headers=headers) as r:
                assert r.status == 201, await r.text()


def partner_requests(sandbox: BrazeSandbox, path: str) -> list[RecordedRequest]:
    """Requests the sandbox answered on one partner path, in arrival order."""
    return sorted((r for r in sandbox.requests if r.path == path), key=lambda r: r.seq)


def sent_ids(request: RecordedRequest, *, removed: bool) -> list[str]:
    """external_ids a /cohorts/users request added (or removed)."""
    return [
        user_id
        for item in request.body["cohort_changes"]
        if item.get("should_remove", False) is removed
        for user_id in item.get("user_ids", [])
    ]
