"""The clearing scan of a deleted forwarded audience is durable: a replica that dies mid-scan
leaves its job in Redis and the next one resumes at the last saved page. Every member is
cleared in Braze exactly once (a redone page is deduplicated by the dispatch service).

Real parts: Redis, the real engine and store (profiles), a real dispatch server over gRPC
and the Braze sandbox over HTTP. The clearer's explicit hook (``fault_after_submit``) kills
a step after a page was accepted and before its progress was saved, the worst moment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from braze_sandbox import BrazeSandbox
from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import definitions_pb2
from dispatch_service.worker import WorkerSettings
from profile_service.definitions.checked import validate_remembered
from profile_service.definitions.compiler import compile_definitions, digest
from profile_service.definitions.model import CompiledDefinitions
from profile_service.dispatch_link import DispatchSubmitter
from profile_service.engine.state import NormalizedEvent
from profile_service.forwarding_removal import ForwardingClearer
from profile_service.storage import (
    DefinitionsStore,
    EngineFunctions,
    Layout,
    ProfileReader,
    ProfileStore,
)
from service_common import keys
from service_common.client import create_channels
from tests.forwarding.documents import definitions, document, forwarding
from tests.profile_api.helpers import DISPATCH_KEY
from tests.profile_api.servers import Servers, Tracing, write_connectors

PARTITIONS = 4
MEMBERS = 23
PAGE = 5  # several pages per partition walk: the scan dies between two of them


class Died(Exception):
    """The fault hook's stand-in for a replica dying."""


def gold_cleared(sandbox: BrazeSandbox) -> Counter[str]:
    """external_id -> how many Track User objects set ``In gold`` to false."""
    cleared: Counter[str] = Counter()
    for request in sandbox.requests:
        if request.path != "/users/track" or not isinstance(request.body, dict):
            continue
        for item in request.body.get("attributes", []):
            if item.get("In gold") is False:
                cleared[item["external_id"]] += 1
    return cleared


def customers() -> Iterator[tuple[str, str]]:
    for n in range(MEMBERS):
        yield f"member-{n:02d}", f"cust-m{n:04d}"


async def _publish(
    store: DefinitionsStore, document_pb: definitions_pb2.Definitions
) -> CompiledDefinitions:
    published = await store.publish(document_pb)
    return compile_definitions(document_pb, published.version.version)


@pytest.mark.parametrize("die_after_pages", [1, 3])
async def test_a_clearing_scan_killed_mid_way_resumes_and_clears_each_member_once(
    redis_client: redis.asyncio.Redis,
    redis_url: str,
    tracing: Tracing,
    sandbox: BrazeSandbox,
    tmp_path: Path,
    die_after_pages: int,
) -> None:
    servers = Servers(redis_url, tracing)
    channels = []
    try:
        dispatch = await servers.dispatch(
            write_connectors(tmp_path, sandbox.url),
            WorkerSettings(block_ms=50, promote_interval_s=0.05),
        )
        channels = create_channels(dispatch.address, 1, api_key=DISPATCH_KEY)
        layout = Layout(PARTITIONS)
        store = ProfileStore(redis_client, layout, EngineFunctions.real())
        await store.prepare()
        defs_store = DefinitionsStore(redis_client, validate=validate_remembered, digest=digest)
        before = await _publish(
            defs_store,
            definitions(forwarding("mp", mode="both", audience_ids=["silver", "gold"])),
        )
        events = [
            NormalizedEvent(visitor, f"e-{visitor}", "score", 1_000, {
                "customer_id": customer, "points": 500.0,
            })
            for visitor, customer in customers()
        ]  # fmt: skip
        await store.apply_events(before, events)
        without_gold: dict[str, Any] = document(
            forwarding("mp", mode="both", audience_ids=["silver"])
        )
        without_gold["audiences"] = [a for a in without_gold["audiences"] if a["id"] != "gold"]
        after = await _publish(defs_store, definitions_from_dict(without_gold))

        def clearer() -> ForwardingClearer:
            made = ForwardingClearer(
                redis_client,
                ProfileReader(redis_client, layout),
                defs_store,
                lambda: after,
                compile_definitions,
                DispatchSubmitter(channels),
                page_size=PAGE,
            )
            return made

        dying = clearer()
        pages = 0

        def die() -> None:
            nonlocal pages
            pages += 1
            if pages == die_after_pages:
                raise Died

        dying.fault_after_submit = die
        with pytest.raises(Died):
            await dying.step()
        (job,) = await dying.jobs()
        assert job.version == after.version
        # The dead replica's lease is released by its `finally`; a crash would leave it to
        # expire: the record, not the lease, is what the next replica resumes from.
        await redis_client.delete(keys.forwarding_clearing_lease(after.version))

        # Saved: the pages before the fatal one (none when it died on the first).
        assert (job.sent > 0) is (die_after_pages > 1)

        restarted = clearer()
        resumed_sent = await restarted.step()
        assert await restarted.jobs() == []
        # It resumed at the saved page: the members already cleared are not sent again.
        assert resumed_sent == MEMBERS - job.sent

        expected = {customer for _, customer in customers()}

        def all_cleared() -> bool:
            return set(gold_cleared(sandbox)) == expected

        await sandbox.wait_until(all_cleared, timeout=30)
        # Exactly once each, though one page was submitted twice.
        assert gold_cleared(sandbox) == Counter(dict.fromkeys(expected, 1))
        assert await restarted.step() == 0  # nothing left: no job, nothing sent again
    finally:
        for channel in channels:
            await channel.close()
        await servers.close()
