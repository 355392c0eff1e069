"""DefinitionService through the real API: every error listed with its path, invalid documents
refused whole, versions, and a publish while events flow on two replicas (no event sees
half of two versions)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest

from crowd.client import CrowdClient, make_event
from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import event_pb2
from service_common.errors import decode_error
from tests.profile_api.helpers import ADMIN_KEY, READ_KEY, counter_definitions, wait_for
from tests.profile_api.servers import Servers

# A document with six mistakes of different kinds, and the path of each.
FLAWED: dict[str, Any] = {
    "settings": {"visit_timeout": "1s"},
    "attributes": [
        {
            "id": "ltv",
            "scope": "visitor",
            "type": "number",
            "enrichments": [
                {
                    "id": "add",
                    "kind": "increment",
                    "when": "any_event",
                    "operands": [{"attribute": "no_such_attribute"}],
                }
            ],
        },
        {"id": "ltv", "scope": "visitor", "type": "number"},
        {"id": "visit_badge", "scope": "visit", "type": "badge"},
        {
            "id": "plan",
            "scope": "visitor",
            "type": "string",
            "enrichments": [
                {
                    "id": "set",
                    "kind": "set",
                    "when": "any_event",
                    "operands": [{"event": "plan"}],
                    "rule": {
                        "groups": [
                            {
                                "conditions": [
                                    {
                                        "input": {"attribute": "plan"},
                                        "operator": "greater_than",
                                        "value": {"constant": 3},
                                    }
                                ]
                            }
                        ]
                    },
                }
            ],
        },
    ],
    "audiences": [
        {
            "id": "big",
            "name": "Big",
            "expression": {
                "condition": {"input": {"attribute": "ghost"}, "operator": "is_assigned"}
            },
        }
    ],
}
FLAWED_PATHS = {
    "settings.visit_timeout": "at least 5s",
    "attributes[0].enrichments[0].operands[0].attribute": "no_such_attribute",
    "attributes[1].id": "already used",
    "attributes[2].scope": "visitor scope",
    "attributes[3].enrichments[0].rule.groups[0].conditions[0].operator": "does not apply",
    "audiences[0].expression.condition.input.attribute": "ghost",
}


async def test_validate_lists_every_error_with_its_path(client: CrowdClient) -> None:
    answer = await client.validate_definitions(definitions_from_dict(FLAWED))
    assert not answer.valid
    found = {error.path: error.message for error in answer.errors}
    assert set(found) == set(FLAWED_PATHS)
    for path, words in FLAWED_PATHS.items():
        assert words in found[path], (path, found[path])

    fine = await client.validate_definitions(counter_definitions())
    assert fine.valid and not fine.errors


async def test_validate_needs_only_the_read_scope(profile_server: Any) -> None:
    async with CrowdClient(profile_server.address, api_key=READ_KEY) as reader:
        answer = await reader.validate_definitions(counter_definitions())
        assert answer.valid
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await reader.publish_definitions(counter_definitions())
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_publish_refuses_an_invalid_document_whole(client: CrowdClient) -> None:
    before = await client.publish_definitions(counter_definitions())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.publish_definitions(definitions_from_dict(FLAWED))
    code, info, violations = decode_error(refused.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert info is not None and info.reason == "INVALID_DEFINITIONS"
    assert {v.field for v in violations} == {f"definitions.{path}" for path in FLAWED_PATHS}

    current = await client.get_definitions()
    assert current.version == before.version
    assert current.digest == before.digest
    assert current.definitions == counter_definitions()
    # Events still run on the old version.
    result = await client.track_event("after-refusal", "page_view")
    assert result.definitions_version == before.version
    assert result.changed_attributes[0].value.number_value == 1.0


async def test_versions_are_kept_and_readable(client: CrowdClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as nothing:
        await client.get_definitions()
    assert nothing.value.code() == grpc.StatusCode.NOT_FOUND

    first = await client.publish_definitions(counter_definitions(1))
    same = await client.publish_definitions(counter_definitions(1))
    assert same.version == first.version  # an identical document is not a new version
    second = await client.publish_definitions(counter_definitions(5))
    assert second.version != first.version

    assert (await client.get_definitions()).version == second.version
    old = await client.get_definitions(first.version)
    assert old.definitions == counter_definitions(1)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await client.get_definitions("v999")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await client.publish_definitions(counter_definitions(7), expected_current_version="v1")
    assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await client.get_definitions()).version == second.version


# --- publish while events flow ---------------------------------------------------------------

STEPS = {"v1": (1.0, 2.0), "v2": (100.0, 200.0)}
"""Per version: what one event adds to counter and to counter2."""


@dataclass
class Sender:
    """One visitor's events, sent one after another to one replica."""

    client: CrowdClient
    visitor: str
    seen: list[tuple[str, float, float]] = field(default_factory=list)
    """(definitions version, counter delta, counter2 delta) per event."""
    totals: tuple[float, float] = (0.0, 0.0)

    def record(self, result: event_pb2.EventResult) -> None:
        values = {c.attribute_id: c.value.number_value for c in result.changed_attributes}
        counter, counter2 = values["counter"], values["counter2"]
        self.seen.append(
            (result.definitions_version, counter - self.totals[0], counter2 - self.totals[1])
        )
        self.totals = (counter, counter2)

    def count(self, version: str) -> int:
        return sum(1 for seen in self.seen if seen[0] == version)

    async def send_one(self) -> None:
        self.record(await self.client.track_event(self.visitor, "tick"))

    async def send_batch(self, size: int) -> None:
        results = await self.client.track_events(
            make_event(self.visitor, "tick") for _ in range(size)
        )
        # One definitions snapshot per batch.
        assert len({r.definitions_version for r in results}) == 1
        for result in results:
            self.record(result)


async def test_publish_while_events_flow_on_two_replicas(servers: Servers) -> None:
    replica_a = await servers.profile()
    async with CrowdClient(replica_a.address, api_key=ADMIN_KEY) as client_a:
        v1 = await client_a.publish_definitions(counter_definitions(1, second_step=2))
        assert v1.version == "v1"
        replica_b = await servers.profile()  # takes v1 when it starts
        async with CrowdClient(replica_b.address, api_key=ADMIN_KEY) as client_b:
            senders = [Sender(client_a if i % 2 == 0 else client_b, f"flow-{i}") for i in range(6)]
            stop = asyncio.Event()

            async def run(sender: Sender, batch: bool) -> None:
                while not stop.is_set():
                    await (sender.send_batch(5) if batch else sender.send_one())

            tasks = [
                asyncio.create_task(run(sender, batch=index >= 4))
                for index, sender in enumerate(senders)
            ]
            try:

                def each_saw(version: str) -> Callable[[], Awaitable[bool]]:
                    async def check() -> bool:
                        for task in tasks:
                            if task.done():
                                task.result()  # re-raises a sender's failure
                        return all(s.count(version) >= 3 for s in senders)

                    return check

                await wait_for(each_saw("v1"), "every sender to see v1")
                v2 = await client_a.publish_definitions(counter_definitions(100, second_step=200))
                assert v2.version == "v2"
                # Replica B switches on the announcement (or its poll) while events keep going.
                await wait_for(each_saw("v2"), "every sender to see v2")
            finally:
                stop.set()
                await asyncio.gather(*tasks)

            for sender in senders:
                for version, delta, delta2 in sender.seen:
                    assert (delta, delta2) == STEPS[version], (sender.visitor, version)
                versions = [seen[0] for seen in sender.seen]
                # One replica never goes back to the old version once it switched.
                first_v2 = versions.index("v2")
                assert set(versions[first_v2:]) == {"v2"}, sender.visitor
                profile = await sender.client.get_profile(sender.visitor)
                assert profile.attributes["counter"].number_value == sender.totals[0]
                assert profile.attributes["counter2"].number_value == sender.totals[1]
