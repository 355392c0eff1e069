"""DeleteProfile erases the person in Braze too: the deletion queues every enabled Delete User
action of the definitions once, through the outbox, atomically with the deletion; a repeated
DeleteProfile finds nothing and queues nothing."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from tests.e2e.conftest import Stack
from tests.profile_api.shop import shop_definitions


async def test_delete_profile_sends_one_braze_deletion(stack: Stack) -> None:
    client, sandbox = stack.client, stack.sandbox
    await client.publish_definitions(shop_definitions())
    await client.track_event("erased", "page_view", {"customer_id": "cust-erased"})

    deleted = await client.delete_profile("erased")
    assert deleted.profile_id == "erased"
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await client.delete_profile("erased")
    assert again.value.code() == grpc.StatusCode.NOT_FOUND

    await sandbox.wait_until(
        lambda: any(r.path == "/users/delete" for r in sandbox.requests), timeout=20
    )
    # A later request through the same outbox and queue is the barrier for a duplicate.
    await client.track_event("barrier", "page_view", {"customer_id": "cust-barrier"})
    await client.track_event("barrier", "account_deleted")
    await sandbox.wait_until(
        lambda: sum(r.path == "/users/delete" for r in sandbox.requests) >= 2, timeout=20
    )
    bodies = [r.body for r in sandbox.requests if r.path == "/users/delete"]
    assert bodies.count({"external_ids": ["cust-erased"]}) == 1
    assert sandbox.get_user("cust-erased") is None
