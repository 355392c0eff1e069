"""Wrong-typed data never makes the engine raise, and the state always serialises.

Every enrichment kind is attached to an attribute of every type (combinations the
validator would refuse included), every operator appears in rules and audiences, and
events carry values of every shape in every field.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.processor import end_visit, evaluate_delayed, process_event
from profile_service.engine.state import ProfileState
from tests.engine.helpers import MINUTE, T0, compile_doc, cond, const, enum_names, event, evt

TYPES = enum_names(pb.AttributeType, "ATTRIBUTE_TYPE_")
KINDS = enum_names(pb.EnrichmentKind, "ENRICHMENT_KIND_")
OPERATORS = enum_names(pb.Operator, "OPERATOR_")
WHENS = ["new_visitor", "new_visit", "any_event", "visit_ended"]

SHAPES: list[Any] = [
    None,
    "",
    "text",
    "12.5",
    "2024-01-01T00:00:00Z",
    "true",
    0.0,
    -3.5,
    1e308,
    float("nan"),
    T0,
    True,
    False,
    [],
    ["a", "b"],
    [1.0, 2.0],
    [True],
    ["x", 1.0, None, True],
    "x" * 2000,
]


def chaos_document() -> dict[str, Any]:
    attributes = []
    for t_index, kind_of_value in enumerate(TYPES):
        for scope in ("visit", "visitor"):
            enrichments = []
            for k_index, kind in enumerate(KINDS):
                when = WHENS[(t_index + k_index) % len(WHENS)]
                operator = OPERATORS[(t_index * 7 + k_index) % len(OPERATORS)]
                enrichments.append(
                    {
                        "kind": kind,
                        "when": when,
                        "operands": [
                            evt("a"),
                            evt("b"),
                            {"attribute": f"{TYPES[k_index % len(TYPES)]}_visitor"},
                        ],
                        "key": "k",
                        "delimiter": ",",
                        "capture": ["number_visitor", "tally_visitor"],
                        "rule": {
                            "groups": [
                                {
                                    "conditions": [
                                        cond(
                                            evt("c"),
                                            operator,
                                            evt("a"),
                                            key="k",
                                            key_operator="greater_than",
                                            offset={"amount": 1, "unit": "days"},
                                        )
                                    ]
                                },
                                {"conditions": []},
                            ]
                        },
                    }
                )
            attributes.append(
                {
                    "id": f"{kind_of_value}_{scope}",
                    "scope": scope,
                    "type": kind_of_value,
                    "enrichments": enrichments,
                }
            )
    audiences = [
        {
            "id": f"aud_{operator}",
            "name": f"Audience {operator}",
            "expression": {
                "any": {
                    "items": [
                        {
                            "condition": cond(
                                {"attribute": f"{TYPES[i % len(TYPES)]}_visitor"},
                                operator,
                                evt("a"),
                            )
                        },
                        {
                            "negate": {
                                "condition": cond(
                                    {"attribute": "tally_visitor.favorite"}, operator, const("k")
                                )
                            }
                        },
                    ]
                }
            },
        }
        for i, operator in enumerate(OPERATORS)
    ]
    triggers = ["joined", "left", "in_audience_at_visit_start", "in_audience_at_visit_end"]
    actions = [
        {
            "id": f"act_{i}",
            "connector_id": "braze",
            "audience": {"audience_id": audience["id"], "trigger": triggers[i % 4]},
            "delay": "1h",
            "track_user": {
                "identifier": {"external_id": evt("a"), "email": const("x@y.z")},
                "attributes": [
                    {
                        "name": f"m{j}",
                        "value": {"attribute": f"{TYPES[j]}_visitor"},
                        "operation": ["set", "increment", "add", "remove"][j % 4],
                    }
                    for j in range(len(TYPES))
                ],
                "events": [{"name": evt("b"), "time": evt("c"), "properties": {"p": evt("a")}}],
                "purchases": [
                    {
                        "product_id": evt("a"),
                        "currency": evt("b"),
                        "price": evt("c"),
                        "quantity": evt("a"),
                    }
                ],
                "membership": "both",
            },
        }
        for i, audience in enumerate(audiences)
    ]
    return {
        "settings": {"max_string_length": 50, "max_collection_size": 5},
        "attributes": attributes,
        "audiences": audiences,
        "event_feeds": [
            {
                "id": "feed",
                "rule": {"groups": [{"conditions": [cond(evt("a"), "matches_regex", evt("b"))]}]},
            }
        ],
        "actions": actions,
    }


def test_random_data_never_raises_and_state_stays_serialisable() -> None:
    defs = compile_doc(chaos_document())
    rng = random.Random(7)
    state: ProfileState | None = None
    now = T0
    fired = 0
    for i in range(300):
        now += rng.choice([MINUTE, 5 * MINUTE, 45 * MINUTE])
        data = {field: rng.choice(SHAPES) for field in ("a", "b", "c") if rng.random() < 0.8}
        outcome = process_event(defs, state, event(rng.choice(["x", "y"]), now, data), now)
        fired += len(outcome.actions)
        for action in outcome.actions:
            action.action.SerializeToString()
        raw = outcome.state.to_bytes()
        json.loads(raw)  # strict JSON: no NaN or Infinity
        state = ProfileState.from_bytes(raw)
        if i % 37 == 0:
            end = end_visit(defs, state, now + 31 * MINUTE)
            state = ProfileState.from_bytes(end.state.to_bytes())
            for action in end.actions:
                evaluate_delayed(defs, state, action.action_id, now + 2 * 60 * MINUTE)
    assert state is not None
    assert fired > 0
    numbers = [v for v in state.attributes.values() if isinstance(v, float)]
    assert all(math.isfinite(n) for n in numbers)


def test_values_stored_under_an_earlier_type_are_tolerated() -> None:
    old = compile_doc(
        {
            "attributes": [
                {
                    "id": "x",
                    "scope": "visitor",
                    "type": "number_array",
                    "enrichments": [
                        {"kind": "append", "when": "any_event", "operands": [evt("n")]}
                    ],
                },
                {
                    "id": "y",
                    "scope": "visitor",
                    "type": "funnel",
                    "enrichments": [{"kind": "funnel_step", "when": "any_event", "key": "s"}],
                },
            ]
        }
    )
    new = compile_doc(
        {
            "attributes": [
                {
                    "id": "x",
                    "scope": "visitor",
                    "type": "string_set",
                    "enrichments": [
                        {"kind": "add_to_set", "when": "any_event", "operands": [evt("tag")]}
                    ],
                },
                {
                    "id": "y",
                    "scope": "visitor",
                    "type": "tally",
                    "enrichments": [
                        {"kind": "increment_tally", "when": "any_event", "operands": [evt("tag")]}
                    ],
                },
            ],
            "audiences": [
                {
                    "id": "a",
                    "expression": {
                        "condition": cond(
                            {"attribute": "y"},
                            "tally_key_value",
                            const(0),
                            key="steps",
                            key_operator="greater_than",
                        )
                    },
                },
                {
                    "id": "b",
                    "expression": {
                        "condition": cond({"attribute": "y.favorite"}, "equals", const("t"))
                    },
                },
            ],
        }
    )
    state = process_event(old, None, event("e", T0, {"n": 1.0}), T0).state
    assert state.attributes == {"x": [1.0], "y": {"steps": [["s", T0, {}]], "completed": True}}
    from profile_service.engine.processor import visitor_attribute_values

    assert set(visitor_attribute_values(new, state)) >= {"lifetime_event_count"}
    assert "x" not in visitor_attribute_values(new, state)  # numbers are not a set of strings
    outcome = process_event(new, state, event("e", T0 + MINUTE, {"tag": "t"}), T0 + MINUTE)
    assert outcome.state.attributes == {"x": ["1", "t"], "y": {"t": 1.0}}
    assert outcome.audiences_joined == ["b"]
