"""The definitions of the stitching tests: two visitor-ID attributes (one guarded), a summed
counter and an audience every profile joins."""

from __future__ import annotations

from typing import Any

from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import definitions_pb2

EVERYONE = "everyone"


def _id_attribute(attribute_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": attribute_id,
        "scope": "visitor",
        "type": "visitor_id",
        "enrichments": [
            {
                "id": "from_event",
                "kind": "set",
                "when": "any_event",
                "operands": [{"event": attribute_id}],
                "rule": {
                    "groups": [
                        {
                            "conditions": [
                                {"input": {"event": attribute_id}, "operator": "is_assigned"}
                            ]
                        }
                    ]
                },
            }
        ],
        **extra,
    }


def identity_definitions() -> definitions_pb2.Definitions:
    """``customer_id`` and ``email`` stitch freely; ``loyalty_id`` joins at most 2 profiles."""
    return definitions_from_dict(
        {
            "attributes": [
                _id_attribute("customer_id"),
                _id_attribute("email"),
                _id_attribute("loyalty_id", identity={"max_profiles": 2}),
                {
                    "id": "n",
                    "scope": "visitor",
                    "type": "number",
                    "merge_rule": "sum",
                    "enrichments": [
                        {
                            "id": "count",
                            "kind": "increment",
                            "when": "any_event",
                            "operands": [{"constant": 1}],
                        }
                    ],
                },
            ],
            "audiences": [
                {
                    "id": EVERYONE,
                    "name": "Everyone",
                    "expression": {
                        "condition": {"input": {"attribute": "n"}, "operator": "is_assigned"}
                    },
                }
            ],
        }
    )
