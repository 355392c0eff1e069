"""DefinitionsStore and DefinitionsWatcher on a real Redis: publish, refuse, switch, watch."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio
import redis.asyncio

from crowd.definitions.errors import DefinitionError, InvalidDefinitionsError
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions, EngineLimits
from profile_service.storage import DefinitionsStore, DefinitionsWatcher
from profile_service.storage.replies import as_text
from service_common import keys
from service_common.errors import FailedPrecondition, NotFound


def validate(document: pb.Definitions) -> Sequence[DefinitionError]:
    """Stand-in validator: every audience needs a name."""
    return [
        DefinitionError(f"audiences[{i}].name", "must not be empty")
        for i, audience in enumerate(document.audiences)
        if not audience.name
    ]


def digest(document: pb.Definitions) -> str:
    return hashlib.sha256(document.SerializeToString(deterministic=True)).hexdigest()


def compile_document(document: pb.Definitions, version: str) -> CompiledDefinitions:
    return CompiledDefinitions(
        version=version,
        document=document,
        limits=EngineLimits(),
        attributes={},
        enrichments=(),
        audiences={a.id: a for a in document.audiences},
        feeds={},
        actions={},
        cooldown_wait_ms={},
        visitor_id_attributes=(),
    )


def document(*audiences: tuple[str, str]) -> pb.Definitions:
    doc = pb.Definitions()
    for audience_id, name in audiences:
        doc.audiences.add(id=audience_id, name=name)
    return doc


@pytest_asyncio.fixture
async def definitions(client: redis.asyncio.Redis) -> DefinitionsStore:
    return DefinitionsStore(client, validate=validate, digest=digest, clock=lambda: 1_000)


@pytest_asyncio.fixture
async def watcher(
    redis_url: str, definitions: DefinitionsStore
) -> AsyncIterator[DefinitionsWatcher]:
    """A watcher on its own client, as on another replica."""
    client = redis.asyncio.Redis.from_url(redis_url)
    store = DefinitionsStore(client, validate=validate, digest=digest)
    watching = DefinitionsWatcher(client, store, compile_document, poll_interval_s=0.2)
    try:
        yield watching
    finally:
        await watching.stop()
        await client.aclose()


async def test_publishing_stores_a_version_and_makes_it_current(
    definitions: DefinitionsStore, client: redis.asyncio.Redis
) -> None:
    result = await definitions.publish(document(("vip", "VIP")))

    assert result.changed
    assert result.version.version == "v1"
    assert result.version.digest == digest(document(("vip", "VIP")))
    assert result.version.published_at.ToMilliseconds() == 1_000
    assert await definitions.current_version_id() == "v1"
    assert (await definitions.get()).definitions == document(("vip", "VIP"))
    assert await client.zscore(keys.DEFINITIONS_HISTORY, "v1") == 1_000


async def test_an_invalid_document_is_refused_whole_with_every_error(
    definitions: DefinitionsStore, client: redis.asyncio.Redis
) -> None:
    await definitions.publish(document(("vip", "VIP")))

    with pytest.raises(InvalidDefinitionsError) as refused:
        await definitions.publish(document(("a", ""), ("b", "B"), ("c", "")))

    assert [e.path for e in refused.value.errors] == ["audiences[0].name", "audiences[2].name"]
    assert await definitions.current_version_id() == "v1"
    assert await client.get(keys.DEFINITIONS_SEQUENCE) == b"1"  # not even numbered


async def test_an_unchanged_document_returns_the_current_version(
    definitions: DefinitionsStore,
) -> None:
    first = await definitions.publish(document(("vip", "VIP")))

    again = await definitions.publish(document(("vip", "VIP")))

    assert not again.changed
    assert again.version == first.version
    assert await definitions.current_version_id() == "v1"


async def test_expected_current_version_guards_against_concurrent_edits(
    definitions: DefinitionsStore,
) -> None:
    await definitions.publish(document(("a", "A")))
    await definitions.publish(document(("b", "B")), expected_current_version="v1")

    with pytest.raises(FailedPrecondition) as stale:
        await definitions.publish(document(("c", "C")), expected_current_version="v1")

    assert stale.value.metadata == {"expectedVersion": "v1", "currentVersion": "v2"}
    assert await definitions.current_version_id() == "v2"


async def test_named_and_unknown_versions(definitions: DefinitionsStore) -> None:
    with pytest.raises(NotFound):
        await definitions.get()
    await definitions.publish(document(("a", "A")))
    await definitions.publish(document(("b", "B")))

    assert (await definitions.get("v1")).definitions == document(("a", "A"))
    assert (await definitions.get("v2")).definitions == document(("b", "B"))
    with pytest.raises(NotFound):
        await definitions.get("v9")


async def test_concurrent_publishers_each_get_their_own_version(
    redis_url: str, definitions: DefinitionsStore, client: redis.asyncio.Redis
) -> None:
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(4)]
    try:
        stores = [DefinitionsStore(c, validate=validate, digest=digest) for c in clients]
        results = await asyncio.gather(
            *(s.publish(document((f"a{n}", f"A{n}"))) for n, s in enumerate(stores))
        )
    finally:
        for c in clients:
            await c.aclose()

    # Every publisher's document became a version of its own (numbers may skip: a publisher
    # that lost the switch numbers its next attempt anew).
    versions = {r.version.version for r in results}
    assert len(versions) == 4 and all(r.changed for r in results)
    history = await client.zrange(keys.DEFINITIONS_HISTORY, 0, -1)
    assert {as_text(h) for h in history} == versions
    for result in results:
        assert (await definitions.get(result.version.version)).digest == result.version.digest
    assert await definitions.current_version_id() in versions


async def test_the_watcher_switches_to_a_newly_published_version(
    definitions: DefinitionsStore, watcher: DefinitionsWatcher
) -> None:
    await definitions.publish(document(("a", "A")))
    await watcher.start()
    assert watcher.version == "v1"
    snapshot = watcher.current

    await definitions.publish(document(("b", "B")))
    switched = await watcher.wait_for("v2", timeout_s=1.0)

    assert switched is watcher.current
    assert set(switched.audiences) == {"b"}
    assert set(snapshot.audiences) == {"a"}  # a batch's snapshot never changes under it


async def test_the_watcher_polls_when_an_announcement_is_lost(
    definitions: DefinitionsStore, watcher: DefinitionsWatcher, client: redis.asyncio.Redis
) -> None:
    await watcher.start()
    assert watcher.version == ""
    assert watcher.current.audiences == {}
    # Switch the pointer the way publish does, but without the pub/sub announcement.
    version = pb.DefinitionsVersion(version="v7", digest="x", definitions=document(("q", "Q")))
    await client.set(keys.definitions_version("v7"), version.SerializeToString())
    await client.set(keys.DEFINITIONS_CURRENT, "v7")

    switched = await watcher.wait_for("v7", timeout_s=2.0)

    assert set(switched.audiences) == {"q"}
