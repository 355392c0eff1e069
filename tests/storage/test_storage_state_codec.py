"""The stored form of profile states: LZ4-compressed, and plain JSON still read (profiles
written before the codec)."""

from __future__ import annotations

import redis.asyncio

from profile_service.engine.state import ProfileState
from profile_service.storage import Layout, ProfileReader, ProfileStore
from profile_service.storage.state_codec import decode_state, encode_state
from tests.storage.helpers import T0, event, make_defs


def _state(attributes: int) -> ProfileState:
    state = ProfileState(profile_id="v", created_ms=T0, updated_ms=T0, visitor_ids=["v"])
    state.attributes = {f"attribute_{i}": f"value {i}" for i in range(attributes)}
    return state


def test_a_large_state_is_stored_compressed_and_reads_back_the_same() -> None:
    state = _state(40)

    stored = encode_state(state)

    assert len(stored) < len(state.to_bytes()) / 2
    assert decode_state(stored).to_bytes() == state.to_bytes()


async def test_a_profile_stored_as_plain_json_is_read_and_updated(
    store: ProfileStore, client: redis.asyncio.Redis, layout: Layout, reader: ProfileReader
) -> None:
    defs = make_defs()
    await store.apply_events(defs, [event("v", "e1")], T0)
    key = layout.keys_for("v").profile("v")
    found = await reader.get_profile("v")
    assert found is not None
    found.state.attributes.update({f"attribute_{i}": f"value {i}" for i in range(40)})
    await client.hset(key, "s", found.state.to_bytes())

    await store.apply_events(defs, [event("v", "e2")], T0 + 1)

    after = await reader.get_profile("v")
    assert after is not None
    assert after.state.attributes["count"] == 2
    assert after.state.attributes["attribute_39"] == "value 39"
    raw = await client.hget(key, "s")
    assert raw is not None and raw[:1] == b"\x01"
