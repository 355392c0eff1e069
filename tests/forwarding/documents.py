"""Definitions of the forwarding tests: points set by each event, three audiences by points."""

from __future__ import annotations

from typing import Any

from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import definitions_pb2


def _above(audience_id: str, name: str, points: float) -> dict[str, Any]:
    return {
        "id": audience_id,
        "name": name,
        "expression": {
            "condition": {
                "input": {"attribute": "points"},
                "operator": "greater_than",
                "value": {"constant": points},
            }
        },
    }


def document(*forwardings: dict[str, Any]) -> dict[str, Any]:
    """customer_id (external id) and points from the events; silver > 10, gold > 100,
    platinum > 1000; the given forwardings."""
    return {
        "settings": {"visit_timeout": "30m"},
        "attributes": [
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
                        "rule": {
                            "groups": [
                                {
                                    "conditions": [
                                        {
                                            "input": {"event": "customer_id"},
                                            "operator": "is_assigned",
                                        }
                                    ]
                                }
                            ]
                        },
                    }
                ],
            },
            {
                "id": "points",
                "scope": "visitor",
                "type": "number",
                "enrichments": [
                    {
                        "id": "from_event",
                        "kind": "set",
                        "when": "any_event",
                        "operands": [{"event": "points"}],
                        "rule": {
                            "groups": [
                                {
                                    "conditions": [
                                        {"input": {"event": "points"}, "operator": "is_assigned"}
                                    ]
                                }
                            ]
                        },
                    }
                ],
            },
        ],
        "audiences": [
            _above("silver", "Silver", 10),
            _above("gold", "Gold", 100),
            _above("platinum", "Platinum", 1000),
        ],
        "audience_forwarding": list(forwardings),
    }


def forwarding(forwarding_id: str, **fields: Any) -> dict[str, Any]:
    """A forwarding to the connector "braze" by the customer id."""
    return {
        "id": forwarding_id,
        "connector_id": "braze",
        "identifier": {"external_id": {"attribute": "customer_id"}},
        **fields,
    }


def definitions(*forwardings: dict[str, Any]) -> definitions_pb2.Definitions:
    """The document as a message."""
    return definitions_from_dict(document(*forwardings))
