"""Automatic audience forwarding (issue 15 C) end to end: events through the profile service,
the engine firing the forwarding's Track User itself, delivery by the dispatch service to the
Braze sandbox over HTTP; assertions on the sandbox's user."""

from __future__ import annotations

from typing import Any

from tests.forwarding.conftest import Stack
from tests.forwarding.documents import definitions, forwarding


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
