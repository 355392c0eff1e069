"""Automatic audience forwarding (issue 15 C) end to end: events through the profile service,
the engine firing the forwarding's Track User itself, delivery by the dispatch service to the
Braze sandbox over HTTP; assertions on the sandbox's user."""

from __future__ import annotations

from typing import Any

from crowd.definitions.loader import definitions_from_dict
from tests.forwarding.conftest import Stack
from tests.forwarding.documents import definitions, document, forwarding


def _attributes(stack: Stack, external_id: str) -> dict[str, Any]:
    user = stack.sandbox.get_user(external_id)
    return dict(user.attributes) if user is not None else {}


async def _wait_attributes(stack: Stack, external_id: str, expected: dict[str, Any]) -> None:
    def matches() -> bool:
        attributes = _attributes(stack, external_id)
        return all(attributes.get(k) == v for k, v in expected.items())

    await stack.sandbox.wait_until(matches, timeout=20)


async def test_default_mode_sends_audience_ids_in_segment_membership(stack: Stack) -> None:
    client = stack.client
    await client.publish_definitions(definitions(forwarding("mp", audience_ids=["silver", "gold"])))
    await client.track_event("v1", "score", {"customer_id": "cust-0001", "points": 50.0})
    await _wait_attributes(stack, "cust-0001", {"SegmentMembership": ["silver"]})

    await client.track_event("v1", "score", {"points": 500.0})
    await _wait_attributes(stack, "cust-0001", {"SegmentMembership": ["silver", "gold"]})

    await client.track_event("v1", "score", {"points": 20.0})
    await _wait_attributes(stack, "cust-0001", {"SegmentMembership": ["silver"]})
    await client.track_event("v1", "score", {"points": 1.0})
    await _wait_attributes(stack, "cust-0001", {"SegmentMembership": []})
    # Platinum is not forwarded and no per-audience attribute exists in the default mode.
    await client.track_event("v1", "score", {"points": 5000.0})
    await _wait_attributes(stack, "cust-0001", {"SegmentMembership": ["silver", "gold"]})
    assert not any(name.startswith("In ") for name in _attributes(stack, "cust-0001"))


async def test_boolean_mode_and_names(stack: Stack) -> None:
    client = stack.client
    await client.publish_definitions(
        definitions(
            forwarding(
                "mp", mode="in_audience_attributes", audience_ids=["silver", "gold"], use_names=True
            )
        )
    )
    await client.track_event("v2", "score", {"customer_id": "cust-0002", "points": 500.0})
    await _wait_attributes(stack, "cust-0002", {"In Silver": True, "In Gold": True})
    await client.track_event("v2", "score", {"points": 50.0})
    await _wait_attributes(stack, "cust-0002", {"In Silver": True, "In Gold": False})
    assert "SegmentMembership" not in _attributes(stack, "cust-0002")


async def test_both_modes_with_explicit_labels_for_all_audiences(stack: Stack) -> None:
    client = stack.client
    await client.publish_definitions(
        definitions(forwarding("mp", mode="both", all_audiences=True, labels={"platinum": "11036"}))
    )
    await client.track_event("v3", "score", {"customer_id": "cust-0003", "points": 5000.0})
    await _wait_attributes(
        stack,
        "cust-0003",
        {
            "SegmentMembership": ["silver", "gold", "11036"],
            "In silver": True,
            "In gold": True,
            "In 11036": True,
        },
    )
    await client.track_event("v3", "score", {"points": 50.0})
    await _wait_attributes(
        stack,
        "cust-0003",
        {"SegmentMembership": ["silver"], "In gold": False, "In 11036": False},
    )


async def test_one_connector_forwards_several_audiences_with_two_forwardings(stack: Stack) -> None:
    client = stack.client
    await client.publish_definitions(
        definitions(
            forwarding("ids", audience_ids=["silver", "gold", "platinum"]),
            forwarding("flags", mode="in_audience_attributes", audience_ids=["platinum"]),
        )
    )
    await client.track_event("v4", "score", {"customer_id": "cust-0004", "points": 5000.0})
    await _wait_attributes(
        stack,
        "cust-0004",
        {"SegmentMembership": ["silver", "gold", "platinum"], "In platinum": True},
    )


async def test_deleting_a_forwarded_audience_clears_it_in_braze(stack: Stack) -> None:
    client = stack.client
    await client.publish_definitions(
        definitions(forwarding("mp", mode="both", audience_ids=["silver", "gold"]))
    )
    for visitor, customer in (("d1", "cust-d0001"), ("d2", "cust-d0002")):
        await client.track_event(visitor, "score", {"customer_id": customer, "points": 500.0})
        await _wait_attributes(
            stack, customer, {"SegmentMembership": ["silver", "gold"], "In gold": True}
        )

    without_gold = document(forwarding("mp", mode="both", audience_ids=["silver"]))
    without_gold["audiences"] = [a for a in without_gold["audiences"] if a["id"] != "gold"]
    await client.publish_definitions(definitions_from_dict(without_gold))
    # No event for these visitors: the publish itself queues the clearing updates.
    for customer in ("cust-d0001", "cust-d0002"):
        await _wait_attributes(
            stack,
            customer,
            {"SegmentMembership": ["silver"], "In gold": False, "In silver": True},
        )
