"""What the identity tests share: definitions with two visitor-ID attributes, events, and
stores on the real engine."""

from __future__ import annotations

from typing import Any

import redis.asyncio

from crowd.definitions.loader import definitions_from_dict
from profile_service.definitions.compiler import compile_definitions
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.state import NormalizedEvent
from profile_service.storage import Layout, ProfileStore
from profile_service.storage.engine_api import EngineFunctions
from profile_service.storage.replies import as_text
from service_common.keys import PartitionKeys

T0 = 1_700_000_000_000
EMAIL = "ann@example.com"


def _set_from(field: str) -> dict[str, Any]:
    return {"kind": "set", "when": "any_event", "operands": [{"event": field}]}


def identity_definitions(max_profiles: int = 0) -> CompiledDefinitions:
    """email and customer_id (visitor IDs), orders (a sum), a buyer badge, audience buyers."""
    email: dict[str, Any] = {
        "id": "email",
        "scope": "visitor",
        "type": "visitor_id",
        "enrichments": [_set_from("email")],
    }
    if max_profiles:
        email["identity"] = {"max_profiles": max_profiles}
    purchase = {
        "groups": [
            {
                "conditions": [
                    {
                        "input": {"event": "event.name"},
                        "operator": "equals",
                        "value": {"constant": "purchase"},
                    }
                ]
            }
        ]
    }
    document = {
        "attributes": [
            email,
            {
                "id": "customer_id",
                "scope": "visitor",
                "type": "visitor_id",
                "enrichments": [_set_from("customer_id")],
            },
            {
                "id": "orders",
                "scope": "visitor",
                "type": "number",
                "merge_rule": "sum",
                "enrichments": [
                    {
                        "kind": "increment",
                        "when": "any_event",
                        "operands": [{"constant": 1}],
                        "rule": purchase,
                    }
                ],
            },
            {
                "id": "buyer",
                "scope": "visitor",
                "type": "badge",
                "enrichments": [{"kind": "assign_badge", "when": "any_event", "rule": purchase}],
            },
        ],
        "audiences": [
            {
                "id": "buyers",
                "name": "Buyers",
                "expression": {
                    "condition": {"input": {"attribute": "buyer"}, "operator": "is_assigned"}
                },
            }
        ],
    }
    return compile_definitions(definitions_from_dict(document), "identity-test")


def event(
    visitor_id: str, event_id: str, name: str = "view", time_ms: int = T0, **data: Any
) -> NormalizedEvent:
    return NormalizedEvent(
        visitor_id=visitor_id, event_id=event_id, name=name, time_ms=time_ms, data=data
    )


async def real_store(client: redis.asyncio.Redis, layout: Layout) -> ProfileStore:
    store = ProfileStore(client, layout, EngineFunctions.real())
    await store.prepare()
    return store


async def audience_members(client: redis.asyncio.Redis, layout: Layout, audience: str) -> set[str]:
    members: set[str] = set()
    for partition in range(layout.partitions):
        key = PartitionKeys(partition).audience(audience)
        members |= {as_text(m) for m in await client.smembers(key)}
    return members
