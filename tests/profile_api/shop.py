"""Definitions of the API tests: the seed document plus an audience joined *during* an event.

The seed (examples/definitions/seed_vip.yaml) joins its audience only when a visit ends; the
extra audience ``vips`` (VIP badge assigned) is joined by the purchase that crosses 500, so
one TrackEvent shows every kind of change at once: typed attributes, a badge, an audience
joined and an action fired.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import definitions_pb2

SEED_FILE = Path(__file__).resolve().parents[2] / "examples" / "definitions" / "seed_vip.yaml"

VIPS = "vips"
VIP_ACTION = "braze_vip"
SEED_AUDIENCE = "vip_cart_abandoners"
SEED_ACTION = "braze_vip_cart_abandoner"
DELETE_ACTION = "braze_delete_user"


def seed_document(visit_timeout: str = "5s") -> dict[str, Any]:
    """The seed document as data, with a short visit timeout (5 s is the minimum)."""
    document: dict[str, Any] = yaml.safe_load(SEED_FILE.read_text(encoding="utf-8"))
    document["settings"]["visit_timeout"] = visit_timeout
    return document


def seed_definitions(visit_timeout: str = "5s") -> definitions_pb2.Definitions:
    """The seed definitions with a short visit timeout."""
    return definitions_from_dict(seed_document(visit_timeout))


def shop_definitions(visit_timeout: str = "5s") -> definitions_pb2.Definitions:
    """The seed plus the audience ``vips`` and a Braze action fired when it is joined."""
    return definitions_from_dict(shop_document(visit_timeout))


def shop_document(visit_timeout: str = "5s") -> dict[str, Any]:
    """`shop_definitions` as data."""
    document = seed_document(visit_timeout)
    document["audiences"].append(
        {
            "id": VIPS,
            "name": "VIPs",
            "expression": {"condition": {"input": {"attribute": "vip"}, "operator": "is_assigned"}},
        }
    )
    document["actions"].append(
        {
            "id": VIP_ACTION,
            "name": "Braze - VIP",
            "audience": {"audience_id": VIPS, "trigger": "joined"},
            "connector_id": "braze",
            "track_user": {
                "identifier": {"external_id": {"attribute": "customer_id"}},
                "attributes": [
                    {"name": "lifetime_order_value", "value": {"attribute": "lifetime_order_value"}}
                ],
            },
        }
    )
    return document
