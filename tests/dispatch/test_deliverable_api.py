"""Issue 8 through the public API: ``SubmitActions`` of a real dispatch server (its connectors
from a file, as in production) refuses what Braze would refuse, naming the field, and delivers
a value at the limit whole."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import grpc.aio
import pytest

from braze_sandbox import BrazeSandbox
from crowd.client import CrowdClient
from crowd.dispatch.v1 import action_pb2
from dispatch_service.worker import WorkerSettings
from service_common.errors import decode_error
from tests.dispatch.helpers import API_KEY, CONNECTOR, track_action
from tests.profile_api.helpers import DISPATCH_KEY, wait_for
from tests.profile_api.servers import Servers, Tracing

DELIVERED = action_pb2.ACTION_STATE_DELIVERED


def _connectors_file(directory: Path, url: str) -> Path:
    """The test connector at ``url``, its key given by reference (a key file)."""
    key_file = directory / "braze.key"
    key_file.write_text(API_KEY, encoding="utf-8")
    path = directory / "connectors.json"
    connector = {"id": CONNECTOR, "url": url, "api_key_file": str(key_file), "linger_ms": 50}
    path.write_text(json.dumps({"connectors": [connector]}), encoding="utf-8")
    return path


async def test_submit_actions_refuses_a_300_character_string_and_delivers_255(
    redis_url: str, tracing: Tracing, sandbox: BrazeSandbox, tmp_path: Path
) -> None:
    servers = Servers(redis_url, tracing)
    try:
        dispatch = await servers.dispatch(
            _connectors_file(tmp_path, sandbox.url),
            WorkerSettings(block_ms=50, promote_interval_s=0.05),
        )
        async with CrowdClient("", dispatch.address, api_key=DISPATCH_KEY) as client:
            too_long = track_action("bio-300", external_id="u-300", attributes={"bio": "b" * 300})
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.submit_actions([too_long])
            code, _, violations = decode_error(caught.value)
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in violations] == [
                "actions[0].track_user.attributes[0].set.string_value"
            ]
            assert "255" in violations[0].description

            at_limit = track_action("bio-255", external_id="u-255", attributes={"bio": "b" * 255})
            [outcome] = await client.submit_actions([at_limit])
            assert outcome.state == action_pb2.ACTION_STATE_ACCEPTED

            async def delivered() -> bool:
                return (await client.get_action("bio-255")).state == DELIVERED

            await wait_for(delivered, "the 255-character action to be delivered")
        user = sandbox.get_user("u-255")
        assert user is not None and user.attributes["bio"] == "b" * 255
        assert sandbox.get_user("u-300") is None
    finally:
        await servers.close()
