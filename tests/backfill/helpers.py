"""Definitions and Redis readers shared by the backfill tests."""

from __future__ import annotations

from typing import Any

import redis.asyncio

from crowd.client import CrowdClient, make_event
from crowd.definitions.loader import definitions_from_dict
from crowd.dispatch.v1 import action_pb2
from crowd.profile.v1 import definitions_pb2
from service_common.keys import PartitionKeys
from tests.storage.helpers import stream

AUDIENCE = "big_spenders"
ACTION = "braze_big_spender"


def _spend_attributes() -> list[dict[str, Any]]:
    return [
        {
            "id": "customer_id",
            "scope": "visitor",
            "type": "visitor_id",
            "enrichments": [
                {
                    "id": "from_event",
                    "kind": "set",
                    "when": "any_event",
                    "operands": [{"event": "customer_id"}],
                }
            ],
        },
        {
            "id": "spend",
            "scope": "visitor",
            "type": "number",
            "enrichments": [
                {
                    "id": "add",
                    "kind": "increment",
                    "when": "any_event",
                    "operands": [{"event": "amount"}],
                }
            ],
        },
    ]


def base_definitions() -> definitions_pb2.Definitions:
    """Attributes only: no audience yet."""
    return definitions_from_dict({"attributes": _spend_attributes()})


def with_audience(
    *, fires_actions: bool = False, threshold: float = 50
) -> definitions_pb2.Definitions:
    """The base plus ``big_spenders`` (spend > threshold) and a JOINED action on it."""
    audience: dict[str, Any] = {
        "id": AUDIENCE,
        "name": "Big spenders",
        "expression": {
            "condition": {
                "input": {"attribute": "spend"},
                "operator": "greater_than",
                "value": {"constant": threshold},
            }
        },
    }
    if fires_actions:
        audience["backfill_fires_actions"] = True
    return definitions_from_dict(
        {
            "attributes": _spend_attributes(),
            "audiences": [audience],
            "actions": [
                {
                    "id": ACTION,
                    "name": "Braze - big spender",
                    "audience": {"audience_id": AUDIENCE, "trigger": "joined"},
                    "connector_id": "braze",
                    "track_user": {
                        "identifier": {"external_id": {"attribute": "customer_id"}},
                        "attributes": [{"name": "spend", "value": {"attribute": "spend"}}],
                    },
                }
            ],
        }
    )


def amount_of(n: int) -> int:
    """Visitor ``n`` spends ``n % 100``: those above 50 qualify (49 in every 100)."""
    return n % 100


async def load_profiles(client: CrowdClient, count: int, batch: int = 1000) -> None:
    """``count`` profiles ``p<n>``, one event each, in batches."""
    for start in range(0, count, batch):
        events = [
            make_event(
                f"p{n}", "purchase", {"amount": amount_of(n), "customer_id": f"cust-{n:05d}"}
            )
            for n in range(start, min(count, start + batch))
        ]
        await client.track_events(events)


async def outbox_actions(redis_client: redis.asyncio.Redis, partitions: int) -> list[str]:
    """Idempotency keys of every action in every partition's outbox."""
    keys: list[str] = []
    for partition in range(partitions):
        for _, fields in await stream(redis_client, PartitionKeys(partition).outbox):
            action = action_pb2.Action.FromString(fields["a"])
            keys.append(action.idempotency_key)
    return keys
