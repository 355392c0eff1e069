"""Validation: a valid seed passes; invalid documents list every error with its exact path."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from crowd.common.v1 import value_pb2
from crowd.definitions.errors import (
    DefinitionViolation,
    InvalidDefinitionsError,
    definition_errors_to_violations,
)
from crowd.definitions.loader import definitions_from_dict, load_definitions
from crowd.definitions.validator import ensure_valid, validate
from crowd.profile.v1 import definitions_pb2 as pb

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "definitions"


def errors_of(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.path, e.message) for e in validate(definitions_from_dict(document))]


def condition(input_: dict[str, str], operator: str, **extra: Any) -> dict[str, Any]:
    return {"input": input_, "operator": operator, **extra}


def rule(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"groups": [{"conditions": list(conditions)}]}


# A small valid document; each case below adds one element with mistakes to it.
BASE: dict[str, Any] = {
    "attributes": [
        {"id": "ltv", "scope": "visitor", "type": "number"},
        {"id": "nickname", "scope": "visitor", "type": "string"},
        {"id": "vip", "scope": "visitor", "type": "badge"},
        {"id": "brands", "scope": "visitor", "type": "tally"},
        {"id": "tags", "scope": "visitor", "type": "string_set"},
        {"id": "seen", "scope": "visit", "type": "date"},
        {"id": "flag", "scope": "visit", "type": "boolean"},
        {"id": "customer", "scope": "visitor", "type": "visitor_id"},
    ],
    "audiences": [
        {"id": "aud", "expression": {"condition": condition({"attribute": "vip"}, "is_assigned")}}
    ],
    "event_feeds": [{"id": "feed"}],
    "cooldown_groups": [{"id": "daily", "wait": "24h"}],
}
NEXT_ATTRIBUTE = f"attributes[{len(BASE['attributes'])}]"


def with_attribute(
    attribute_type: str, *enrichments: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    attribute = {"id": "subject", "scope": "visitor", "type": attribute_type, **fields}
    attribute["enrichments"] = list(enrichments)
    document["attributes"].append(attribute)
    return document


def with_audience(expression: dict[str, Any], **fields: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    document["audiences"].append({"id": "subject", "expression": expression, **fields})
    return document


def with_action(**fields: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    action = {"id": "subject", "connector_id": "braze", **fields}
    document["actions"] = [action]
    return document


TRACK_CUSTOMER = {
    "identifier": {"external_id": {"attribute": "customer"}},
    "events": [{"name": {"constant": "x"}}],
}


def test_base_document_and_every_example_are_valid() -> None:
    assert errors_of(BASE) == []
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert examples, "examples/definitions has no documents"
    for example in examples:
        assert validate(load_definitions(example)) == [], example.name


def test_ensure_valid_raises_with_every_error() -> None:
    ensure_valid(definitions_from_dict(BASE))
    broken = pb.Definitions(attributes=[pb.AttributeDefinition(id="x")])
    with pytest.raises(InvalidDefinitionsError) as caught:
        ensure_valid(broken)
    assert [e.path for e in caught.value.errors] == ["attributes[0].scope", "attributes[0].type"]


def test_invalid_document_lists_all_its_errors_with_paths_and_sentences() -> None:
    document = {
        "settings": {"visit_timeout": "25h", "max_string_length": -1, "date_formats": ["plain"]},
        "attributes": [
            {"id": "Lifetime Value", "scope": "visitor", "type": "number"},
            {
                "id": "ltv",
                "scope": "visitor",
                "type": "number",
                "enrichments": [
                    {"kind": "increment", "when": "any_event", "operands": [{"constant": "ten"}]},
                    {"kind": "lowercase", "when": "any_event"},
                ],
            },
            {
                "id": "vip",
                "scope": "visit",
                "type": "badge",
                "enrichments": [
                    {
                        "kind": "assign_badge",
                        "rule": rule(
                            condition({"attribute": "ltv"}, "starts_with", value={"constant": "1"}),
                            condition(
                                {"attribute": "nickname"}, "greater_than", value={"constant": 5}
                            ),
                        ),
                    }
                ],
            },
            {
                "id": "nickname",
                "scope": "visitor",
                "type": "string",
                "enrichments": [
                    {"kind": "set", "when": "visit_ended", "operands": [{"event": "nick"}]},
                    {
                        "kind": "set",
                        "when": "any_event",
                        "operands": [{"attribute": "ltv"}],
                        "rule": rule(
                            condition(
                                {"event": "email"},
                                "matches_regex",
                                value={"constant": "(unclosed"},
                            ),
                            condition(
                                {"attribute": "brands"},
                                "tally_key_value",
                                key="nike",
                                key_operator="contains",
                                value={"constant": 1},
                            ),
                            condition({"attribute": "first_visit"}, "occurred_within"),
                        ),
                    },
                ],
            },
            {"id": "visit_start", "scope": "visit", "type": "date"},
            {"id": "brands", "scope": "visitor", "type": "tally"},
            {"id": "ltv", "scope": "visitor", "type": "string"},
        ],
        "audiences": [
            {
                "id": "big_spenders",
                "name": "Big spenders",
                "expression": {
                    "any": {
                        "items": [
                            {
                                "condition": condition(
                                    {"event": "order_total"},
                                    "greater_than",
                                    value={"constant": 100},
                                )
                            },
                            {
                                "condition": condition(
                                    {"attribute": "vip"}, "equals", value={"constant": True}
                                )
                            },
                            {"negate": {}},
                        ]
                    }
                },
            }
        ],
        "event_feeds": [{"id": "vip"}],
        "cooldown_groups": [{"id": "daily"}],
        "actions": [
            {
                "id": "send",
                "audience": {"audience_id": "unknown_audience", "trigger": "joined"},
                "delay": "2h",
                "connector_id": "braze",
                "track_user": {"identifier": {"alias_name": {"attribute": "nickname"}}},
            },
            {
                "id": "remove",
                "event_feed": "nope",
                "frequency_cap": {"cooldown_group": "weekly", "priority": 10},
                "delete_user": {},
            },
        ],
    }
    assert errors_of(document) == [
        (
            "attributes[0].id",
            'the id "Lifetime Value" is not valid; use lowercase letters, digits and '
            "underscores, 1 to 64 characters",
        ),
        ("attributes[4].id", '"visit_start" is the id of a built-in attribute'),
        ("attributes[6].id", 'id "ltv" is already used by attributes[1]'),
        ("event_feeds[0].id", 'id "vip" is already used by attributes[2]'),
        ("settings.visit_timeout", "the visit timeout must be at most 24h"),
        ("settings.max_string_length", "must be between 1 and 1,000,000 (0 or unset: 1,000)"),
        ("settings.date_formats[0]", '"plain" is not a strftime pattern (e.g. "%d/%m/%Y %H:%M")'),
        (
            "attributes[1].enrichments[0].operands[0]",
            '"increment" needs a number, but the constant is a string',
        ),
        (
            "attributes[1].enrichments[1].kind",
            '"lowercase" does not apply to a number; a number takes increment, decrement, set, '
            "set sum, set difference, set product, set ratio, set size, remove, "
            "set date difference, set rolling sum, set rolling average, set rolling max, "
            "set change in number, set change in date, set to tally value",
        ),
        (
            "attributes[2].scope",
            "a badge must have visitor scope (a badge belongs to the visitor, not to one visit)",
        ),
        (
            "attributes[2].enrichments[0].when",
            "when is not set; use one of new_visitor, new_visit, any_event, visit_ended",
        ),
        (
            "attributes[2].enrichments[0].rule.groups[0].conditions[0].operator",
            '"starts with" does not apply to a number',
        ),
        (
            "attributes[2].enrichments[0].rule.groups[0].conditions[1].operator",
            '"greater than" does not apply to a string',
        ),
        (
            "attributes[3].enrichments[0].operands[0].event",
            "a visit_ended enrichment runs when the visit times out, without an event, so it "
            "cannot read event data",
        ),
        (
            "attributes[3].enrichments[1].rule.groups[0].conditions[0].value.constant.string_value",
            "invalid regular expression: missing ): (unclosed",
        ),
        (
            "attributes[3].enrichments[1].rule.groups[0].conditions[1].key_operator",
            '"contains" cannot compare a tally value; use one of equals, not equals, less than, '
            "less than or equal, greater than, greater than or equal",
        ),
        (
            "attributes[3].enrichments[1].rule.groups[0].conditions[2].offset",
            '"occurred within" needs an offset: an amount and a unit, e.g. 30 days',
        ),
        (
            "attributes[3].enrichments[1].operands[0]",
            '"set" needs a string, but attribute "ltv" is a number',
        ),
        (
            "audiences[0].expression.any.items[0].condition.input.event",
            "audiences read only visit and visitor attributes, not event data; enrich an "
            "attribute from the event and test that instead",
        ),
        (
            "audiences[0].expression.any.items[1].condition.operator",
            '"equals" does not apply to a badge; test badges with is assigned or is not assigned',
        ),
        (
            "audiences[0].expression.any.items[2].negate",
            "the expression is empty; set one of all, any, negate or condition",
        ),
        ("cooldown_groups[0].wait", "the cooldown group needs a wait, e.g. 24h"),
        ("actions[0].audience.audience_id", 'unknown audience "unknown_audience"'),
        (
            "actions[0].delay",
            "a delay is only allowed with the in_audience_at_visit_end trigger",
        ),
        (
            "actions[0].track_user.identifier.alias_label",
            "a user alias needs both alias_name and alias_label",
        ),
        (
            "actions[0].track_user",
            "track user sends nothing; map attributes, events, purchases or subscription "
            "groups, or set membership",
        ),
        ("actions[1].event_feed", 'unknown event feed "nope"'),
        ("actions[1].frequency_cap.cooldown_group", 'unknown cooldown group "weekly"'),
        ("actions[1].connector_id", "the connector id is empty"),
        (
            "actions[1].delete_user.identifier",
            "map at least one user id: external_id, braze_id, alias_name + alias_label, "
            "email or phone",
        ),
    ]


def test_errors_become_bad_request_field_violations_under_the_request_field() -> None:
    errors = validate(pb.Definitions(attributes=[pb.AttributeDefinition(id="x")]))
    assert definition_errors_to_violations(errors) == [
        DefinitionViolation(
            "definitions.attributes[0].scope", "the scope is not set; use visit or visitor"
        ),
        DefinitionViolation(
            "definitions.attributes[0].type",
            "the type is not set; use one of number, string, boolean, date, badge, tally, "
            "string_set, string_array, number_array, boolean_array, timeline, funnel, visitor_id",
        ),
    ]
    assert definition_errors_to_violations(errors, prefix="")[0].field == "attributes[0].scope"


A = NEXT_ATTRIBUTE
E0 = f"{A}.enrichments[0]"
C0 = f"{E0}.rule.groups[0].conditions[0]"
ANY = "any_event"


def when_any(kind: str, *operands: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "when": ANY, "operands": list(operands), **fields}


ATTRIBUTE_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "increment needs one operand",
        with_attribute("number", when_any("increment")),
        [(f"{E0}.operands", '"increment" needs 1 operand (a number), got 0')],
    ),
    (
        "lowercase takes no operands",
        with_attribute("string", when_any("lowercase", {"constant": "x"})),
        [(f"{E0}.operands", '"lowercase" takes no operands, got 1')],
    ),
    (
        "increment by a string attribute",
        with_attribute("number", when_any("increment", {"attribute": "nickname"})),
        [(f"{E0}.operands[0]", '"increment" needs a number, but attribute "nickname" is a string')],
    ),
    (
        "increment by an event value or a built-in number is fine",
        with_attribute(
            "number",
            when_any("increment", {"event": "amount"}),
            when_any("set_sum", {"attribute": "lifetime_event_count"}, {"constant": 2}),
        ),
        [],
    ),
    (
        "unknown attribute with a suggestion",
        with_attribute("number", when_any("increment", {"attribute": "ltvv"})),
        [(f"{E0}.operands[0].attribute", 'unknown attribute "ltvv"; did you mean "ltv"?')],
    ),
    (
        "unknown event own field",
        with_attribute("string", when_any("set", {"event": "event.nam"})),
        [
            (
                f"{E0}.operands[0].event",
                'unknown event field "event.nam"; the event\'s own fields are event.name, '
                "event.time, event.visitor_id",
            )
        ],
    ),
    (
        "favourite of a tally is a string; of a number it is unknown",
        with_attribute(
            "string",
            when_any("set", {"attribute": "brands.favorite"}),
            when_any("set", {"attribute": "ltv.favorite"}),
        ),
        [
            (
                f"{A}.enrichments[1].operands[0].attribute",
                '"ltv" is a number, not a tally; only tallies have a favorite',
            )
        ],
    ),
    (
        "join needs two operands and a delimiter",
        with_attribute("string", when_any("join", {"attribute": "nickname"})),
        [
            (f"{E0}.operands", '"join" needs at least 2 operands, got 1'),
            (f"{E0}.delimiter", '"join" needs a delimiter of at least one character'),
        ],
    ),
    (
        "set date difference needs a unit and two dates",
        with_attribute(
            "number", when_any("set_date_difference", {"attribute": "seen"}, {"constant": True})
        ),
        [
            (
                f"{E0}.operands[1]",
                '"set date difference" needs a date, but the constant is a boolean',
            ),
            (
                f"{E0}.unit",
                '"set date difference" needs a unit; use one of seconds, minutes, hours, days, '
                "weeks, months",
            ),
        ],
    ),
    (
        "split needs a delimiter; top keys a count and a tally",
        with_attribute(
            "string_set",
            when_any("split", {"event": "csv"}),
            when_any("top_keys", {"attribute": "tags"}),
        ),
        [
            (f"{E0}.delimiter", '"split" needs a delimiter of at least one character'),
            (
                f"{A}.enrichments[1].operands[0]",
                '"top keys" needs a tally, but attribute "tags" is a set of strings',
            ),
            (
                f"{A}.enrichments[1].count",
                '"top keys" needs a count from 1 to 30000 (the collection limit)',
            ),
        ],
    ),
    (
        "a rolling aggregate names a captured attribute of a timeline",
        {
            **copy.deepcopy(BASE),
            "attributes": [
                *copy.deepcopy(BASE["attributes"]),
                {
                    "id": "orders",
                    "scope": "visitor",
                    "type": "timeline",
                    "enrichments": [
                        when_any("update_timeline", capture=["ltv"]),
                        when_any("expire_timeline_entries", unit="days"),
                    ],
                },
                {
                    "id": "subject",
                    "scope": "visitor",
                    "type": "number",
                    "enrichments": [
                        when_any("set_rolling_sum", {"attribute": "orders"}, key="nickname"),
                        when_any("set_rolling_max", {"attribute": "orders"}),
                    ],
                },
            ],
        },
        [
            (
                f"{NEXT_ATTRIBUTE}.enrichments[1].count",
                '"expire timeline entries" needs a count of at least 1 (the age limit in units)',
            ),
            (
                f"attributes[{len(BASE['attributes']) + 1}].enrichments[0].key",
                '"nickname" is not captured by the timeline "orders" (it captures ltv)',
            ),
            (
                f"attributes[{len(BASE['attributes']) + 1}].enrichments[1].key",
                '"set rolling max" needs the captured attribute\'s id in "key"',
            ),
        ],
    ),
    (
        "occurrence and unit only where they are used",
        with_attribute(
            "string_set", {**when_any("add_to_set", {"event": "tag"}), "occurrence": "first"}
        ),
        [
            (
                f"{E0}.occurrence",
                '"occurrence" is not used by "add to set"; only by "remove entries"',
            )
        ],
    ),
    (
        "set size of a constant",
        with_attribute("number", when_any("set_size", {"constant": ["a"]})),
        [
            (
                f"{E0}.operands[0]",
                '"set size" needs a set, tally, array or timeline from an attribute or an event '
                "field, not a constant",
            )
        ],
    ),
    (
        "visitor id cannot be set from a number nor removed",
        with_attribute("visitor_id", when_any("set", {"attribute": "ltv"}), when_any("remove")),
        [
            (f"{E0}.operands[0]", '"set" needs a string, but attribute "ltv" is a number'),
            (
                f"{A}.enrichments[1].kind",
                '"remove" does not apply to a visitor ID; a visitor ID takes set',
            ),
        ],
    ),
    (
        "visitor id must be visitor scoped and merge older",
        with_attribute("visitor_id", scope="visit", merge_rule="newer"),
        [
            (
                f"{A}.scope",
                "a visitor ID must have visitor scope (a visitor ID belongs to the visitor, not "
                "to one visit)",
            ),
            (f"{A}.merge_rule", "a visitor ID always keeps the older value; use older"),
        ],
    ),
    (
        "merge rule must fit the type",
        with_attribute("string", merge_rule="sum"),
        [(f"{A}.merge_rule", 'merge rule "sum" does not apply to a string')],
    ),
    (
        "tally key enrichments need a key; key unused elsewhere",
        with_attribute(
            "tally",
            when_any("increment_tally_key"),
            when_any("increment_tally", {"constant": "shoes"}),
            when_any("remove", key="x"),
        ),
        [
            (f"{E0}.key", '"increment tally key" needs a tally key in "key"'),
            (
                f"{A}.enrichments[1].operands[0]",
                '"increment tally" needs a string (the key) from an attribute or an event field, '
                "not a constant",
            ),
            (
                f"{A}.enrichments[2].key",
                '"key" is not used by "remove"; only by "increment tally key" and "remove tally '
                'key" and "funnel step" and "set rolling sum" and "set rolling average" and '
                '"set rolling max" and "set to tally value"',
            ),
        ],
    ),
    (
        "date set from strings parses them",
        with_attribute(
            "date",
            when_any("set", {"constant": "2024-05-01T10:00:00Z"}),
            when_any("set", {"constant": "yesterday"}),
            when_any("set", {"constant": "01/05/2024"}, date_format="%d/%m/%Y"),
            when_any("set", {"event": "dob"}, date_format="no percent"),
            when_any("capture_date", date_format="%Y"),
        ),
        [
            (
                f"{A}.enrichments[1].operands[0].constant.string_value",
                '"yesterday" does not parse as ISO 8601',
            ),
            (
                f"{A}.enrichments[3].date_format",
                '"no percent" is not a strftime pattern (e.g. "%d/%m/%Y %H:%M")',
            ),
            (
                f"{A}.enrichments[4].date_format",
                '"date_format" is not used by "capture date"; only by "set" on a date',
            ),
        ],
    ),
    (
        "timeline capture must name capturable attributes",
        with_attribute(
            "timeline",
            when_any("update_timeline", capture=["ltv", "nope", "ltv", "brands.favorite"]),
        ),
        [
            (f"{E0}.capture[1]", 'unknown attribute "nope"'),
            (f"{E0}.capture[2]", '"ltv" is captured twice'),
        ],
    ),
    (
        "funnel steps need distinct well-formed step ids",
        with_attribute(
            "funnel",
            when_any("funnel_step", key="cart", required=True),
            when_any("funnel_step", key="cart"),
            when_any("funnel_step", key="Check Out"),
            when_any("funnel_step"),
        ),
        [
            (
                f"{A}.enrichments[1].key",
                'funnel step "cart" is already defined by '
                f"{A}.enrichments[0]; give one step several rule groups instead",
            ),
            (
                f"{A}.enrichments[2].key",
                'the funnel step id "Check Out" is not valid; use lowercase letters, digits and '
                "underscores, 1 to 64 characters",
            ),
            (f"{A}.enrichments[3].key", '"funnel step" needs a step id in "key"'),
        ],
    ),
    (
        "enrichment ids unique within the attribute",
        with_attribute(
            "boolean",
            {"id": "on", "kind": "set_true", "when": ANY},
            {"id": "on", "kind": "set_false", "when": "new_visit"},
        ),
        [(f"{A}.enrichments[1].id", f'enrichment id "on" is already used by {E0}')],
    ),
    (
        "constant string longer than max_string_length",
        {
            **with_attribute("string", when_any("set", {"constant": "x" * 11})),
            "settings": {"max_string_length": 10},
        },
        [
            (
                f"{E0}.operands[0].constant.string_value",
                "the string is 11 characters long; strings are kept up to 10 characters "
                "(settings.max_string_length)",
            )
        ],
    ),
    (
        "arrays append their item type",
        with_attribute(
            "number_array",
            when_any("append", {"constant": 3}),
            when_any("append", {"constant": [1, 2]}),
            when_any("append", {"constant": "x"}),
            when_any("reset"),
        ),
        [
            (
                f"{A}.enrichments[2].operands[0]",
                '"append" needs a number or a list of numbers, but the constant is a string',
            )
        ],
    ),
]

RULE_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "string operators on strings only; ignore_case only for strings",
        with_attribute(
            "boolean",
            when_any(
                "set_true",
                rule=rule(
                    condition(
                        {"attribute": "nickname"},
                        "contains",
                        value={"constant": "x"},
                        ignore_case=True,
                    ),
                    condition(
                        {"attribute": "ltv"}, "equals", value={"constant": 3}, ignore_case=True
                    ),
                ),
            ),
        ),
        [
            (
                f"{E0}.rule.groups[0].conditions[1].ignore_case",
                "ignore_case only applies to comparisons of strings",
            )
        ],
    ),
    (
        "number compared with a string value",
        with_attribute(
            "boolean",
            when_any(
                "set_true",
                rule=rule(condition({"attribute": "ltv"}, "greater_than", value={"constant": "5"})),
            ),
        ),
        [
            (
                f"{C0}.value",
                '"greater than" needs a number to compare with a number, but the constant is a '
                "string",
            )
        ],
    ),
    (
        "date comparisons use an offset from now, not a value",
        with_attribute(
            "boolean",
            when_any(
                "set_true",
                rule=rule(
                    condition(
                        {"attribute": "seen"}, "less_than", offset={"amount": -2, "unit": "hours"}
                    ),
                    condition({"attribute": "seen"}, "greater_than", value={"constant": 1}),
                    condition(
                        {"attribute": "seen"},
                        "occurred_before",
                        offset={"amount": 0, "unit": "days"},
                    ),
                    condition({"event": "when"}, "less_than", offset={"amount": 1}),
                    condition({"event": "when"}, "less_than"),
                ),
            ),
        ),
        [
            (
                f"{E0}.rule.groups[0].conditions[1].value",
                '"greater than" on a date compares with now plus the offset; it takes no value',
            ),
            (
                f"{E0}.rule.groups[0].conditions[2].offset.amount",
                '"occurred before" needs a positive amount',
            ),
            (
                f"{E0}.rule.groups[0].conditions[3].offset.unit",
                "the offset needs a unit: one of seconds, minutes, hours, days, weeks, months",
            ),
            (
                f"{E0}.rule.groups[0].conditions[4].value",
                '"less than" needs a value to compare with (or an offset, to compare a date '
                "with now)",
            ),
        ],
    ),
    (
        "is true only on booleans; badges use is assigned",
        with_attribute(
            "boolean",
            when_any(
                "set_true",
                rule=rule(
                    condition({"attribute": "vip"}, "is_true"),
                    condition({"attribute": "flag"}, "is_true", value={"constant": True}),
                    condition({"event": "opt_in"}, "is_false"),
                ),
            ),
        ),
        [
            (
                f"{C0}.operator",
                '"is true" does not apply to a badge; test badges with is assigned or is not '
                "assigned",
            ),
            (f"{E0}.rule.groups[0].conditions[1].value", '"is true" takes no value'),
        ],
    ),
    (
        "tally key value needs a key and a numeric key operator",
        with_attribute(
            "boolean",
            when_any(
                "set_true",
                rule=rule(
                    condition({"attribute": "brands"}, "tally_key_value", value={"constant": 1}),
                    condition({"attribute": "brands"}, "greater_than", value={"constant": 1}),
                    condition(
                        {"event": "x"},
                        "tally_key_value",
                        key="k",
                        key_operator="equals",
                        value={"constant": 1},
                    ),
                    condition({"attribute": "ltv"}, "equals", key="k", value={"constant": 1}),
                ),
            ),
        ),
        [
            (f"{C0}.key", '"tally key value" needs the tally key whose value is compared'),
            (
                f"{C0}.key_operator",
                '"tally key value" needs a key_operator: one of equals, not equals, less than, '
                "less than or equal, greater than, greater than or equal",
            ),
            (
                f"{E0}.rule.groups[0].conditions[1].operator",
                '"greater than" does not apply to a tally; compare a key\'s value with tally key '
                "value",
            ),
            (
                f"{E0}.rule.groups[0].conditions[2].operator",
                '"tally key value" applies to attributes, not to event data',
            ),
            (
                f"{E0}.rule.groups[0].conditions[3].key",
                '"key" is only used by the tally key value and funnel step operators',
            ),
        ],
    ),
    (
        "regex must be a constant pattern; input must not be a constant",
        with_attribute(
            "boolean",
            when_any(
                "set_true",
                rule=rule(
                    condition(
                        {"attribute": "nickname"}, "matches_regex", value={"attribute": "nickname"}
                    ),
                    condition({"constant": "x"}, "is_assigned"),
                    {"input": {"attribute": "ltv"}},
                ),
            ),
        ),
        [
            (f"{C0}.value", '"matches regex" needs the pattern as a string constant'),
            (
                f"{E0}.rule.groups[0].conditions[1].input",
                "the input must be an attribute or an event field, not a constant",
            ),
            (
                f"{E0}.rule.groups[0].conditions[2].operator",
                "the operator is not set; use one of equals, not_equals, contains, not_contains, "
                "starts_with, ends_with, matches_regex, less_than, less_than_or_equal, "
                "greater_than, greater_than_or_equal, is_assigned, is_not_assigned, is_true, "
                "is_false, occurred_within, occurred_before, tally_key_value, has_changed, "
                "contains_partial, funnel_started, funnel_completed, step_completed, "
                "step_not_completed, is_empty, is_not_empty",
            ),
        ],
    ),
    (
        "empty condition group",
        with_attribute("boolean", when_any("set_true", rule={"groups": [{}]})),
        [
            (
                f"{E0}.rule.groups[0].conditions",
                "a condition group needs at least one condition (an empty group matches "
                "everything; remove the rule instead)",
            )
        ],
    ),
    (
        "visit ended rules cannot read event data",
        with_attribute(
            "boolean",
            {
                "kind": "set_true",
                "when": "visit_ended",
                "rule": rule(condition({"event": "event.name"}, "is_assigned")),
            },
        ),
        [
            (
                f"{C0}.input.event",
                "a visit_ended enrichment runs when the visit times out, without an event, so it "
                "cannot read event data",
            )
        ],
    ),
    (
        "contains on sets and arrays compares items",
        with_attribute(
            "boolean",
            when_any(
                "set_true",
                rule=rule(
                    condition({"attribute": "tags"}, "contains", value={"constant": "a"}),
                    condition({"attribute": "tags"}, "contains_partial", value={"constant": 1}),
                    condition({"attribute": "brands"}, "contains", value={"constant": "nike"}),
                ),
            ),
        ),
        [
            (
                f"{E0}.rule.groups[0].conditions[1].value",
                '"contains partial" needs a string or a visitor ID to compare with a set of '
                "strings, but the constant is a number",
            )
        ],
    ),
]

AUDIENCE_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "audience expressions: empty lists, missing expression, long and duplicate names",
        {
            **with_audience({"all": {}}, name="x" * 128),
            "audiences": [
                *BASE["audiences"],
                {"id": "subject", "expression": {"all": {}}, "name": "x" * 128},
                {"id": "other", "name": "aud"},
            ],
        },
        [
            ("audiences[1].name", "audience names must be shorter than 128 characters"),
            ("audiences[1].expression.all.items", '"all" needs at least one item'),
            (
                "audiences[2].name",
                'audience name "aud" is already used by audiences[0]; Braze membership '
                "attributes need distinct names",
            ),
            ("audiences[2].expression", "the audience has no expression"),
        ],
    ),
    (
        "audiences read attributes, builtins and favourites but no event values",
        with_audience(
            {
                "all": {
                    "items": [
                        {
                            "condition": condition(
                                {"attribute": "lifetime_visit_count"},
                                "greater_than",
                                value={"constant": 3},
                            )
                        },
                        {
                            "condition": condition(
                                {"attribute": "brands.favorite"},
                                "equals",
                                value={"constant": "nike"},
                            )
                        },
                        {"negate": {"condition": condition({"attribute": "flag"}, "is_true")}},
                        {
                            "condition": condition(
                                {"attribute": "ltv"}, "greater_than", value={"event": "limit"}
                            )
                        },
                    ]
                }
            }
        ),
        [
            (
                "audiences[1].expression.all.items[3].condition.value.event",
                "audiences read only visit and visitor attributes, not event data; enrich an "
                "attribute from the event and test that instead",
            )
        ],
    ),
]

ACTION_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "no source and no mapping",
        with_action(),
        [
            (
                "actions[0]",
                "the action has no source; set audience (an audience and a trigger) or event_feed",
            ),
            (
                "actions[0]",
                "the action has no mapping; set track_user, delete_user, identify_user or "
                "create_alias",
            ),
        ],
    ),
    (
        "delays: end-of-visit trigger, whole hours, 1h to 365d",
        {
            **BASE,
            "actions": [
                {
                    "id": f"a{n}",
                    "connector_id": "braze",
                    "delay": delay,
                    "audience": {"audience_id": "aud", "trigger": "in_audience_at_visit_end"},
                    "track_user": TRACK_CUSTOMER,
                }
                for n, delay in enumerate(["90m", "30m", "366d", "36h"])
            ],
        },
        [
            ("actions[0].delay", "the delay must be a whole number of hours"),
            ("actions[1].delay", "the delay must be at least 1h"),
            ("actions[2].delay", "the delay must be at most 365d"),
        ],
    ),
    (
        "trigger must be set",
        with_action(audience={"audience_id": "aud"}, track_user=TRACK_CUSTOMER),
        [
            (
                "actions[0].audience.trigger",
                "the trigger is not set; use one of joined, left, in_audience_at_visit_start, "
                "in_audience_at_visit_end",
            )
        ],
    ),
    (
        "frequency caps",
        {
            **BASE,
            "actions": [
                {
                    "id": "a0",
                    "connector_id": "c",
                    "event_feed": "feed",
                    "track_user": TRACK_CUSTOMER,
                    "frequency_cap": cap,
                }
                for cap in [
                    {"priority": 5, "max_sends": 2},
                    {"cooldown_group": "daily", "priority": -1, "window": "1h"},
                    {},
                ]
            ],
        },
        [
            ("actions[1].id", 'id "a0" is already used by actions[0]'),
            ("actions[2].id", 'id "a0" is already used by actions[0]'),
            (
                "actions[0].frequency_cap.priority",
                "a priority only matters within a cooldown group",
            ),
            ("actions[0].frequency_cap.window", "max_sends needs a window, e.g. 24h"),
            (
                "actions[1].frequency_cap.priority",
                "the priority must not be negative (higher wins)",
            ),
            ("actions[1].frequency_cap.window", "the window is only used with max_sends"),
            (
                "actions[2].frequency_cap",
                "the frequency cap sets neither cooldown_group nor max_sends",
            ),
        ],
    ),
    (
        "audience actions map attributes, never event data; ids never constants",
        with_action(
            audience={"audience_id": "aud", "trigger": "joined"},
            track_user={
                "identifier": {"external_id": {"event": "user"}, "braze_id": {"constant": "b"}},
                "attributes": [{"name": "x", "value": {"attribute": "ltv"}}],
            },
        ),
        [
            (
                "actions[0].track_user.identifier.external_id.event",
                "an audience-triggered action may fire at visit end, when there is no event; map "
                "attributes (enrich one from the event), or trigger the action from an event feed",
            ),
            (
                "actions[0].track_user.identifier.braze_id",
                '"braze_id" needs a string or a visitor ID from an attribute or an event field, '
                "not a constant",
            ),
        ],
    ),
    (
        "Braze naming and typing rules",
        with_action(
            event_feed="feed",
            track_user={
                "identifier": {"external_id": {"event": "user"}},
                "attributes": [
                    {"name": "$bad", "value": {"constant": 1}},
                    {"name": "ok", "value": {"attribute": "nickname"}, "operation": "increment"},
                    {"name": "ok", "value": {"constant": ["a"]}, "operation": "add"},
                    {"name": "external_id", "value": {"attribute": "customer"}},
                    {"name": "nothing"},
                ],
                "events": [
                    {"properties": {"time": {"constant": 1}}},
                    {"name": {"constant": "viewed"}, "time": {"constant": True}},
                ],
                "purchases": [
                    {
                        "product_id": {"event": "sku"},
                        "currency": {"constant": "usd"},
                        "quantity": {"constant": 101},
                    }
                ],
            },
        ),
        [
            (
                "actions[0].track_user.attributes[0].name",
                'Braze attribute names cannot start with "$"',
            ),
            (
                "actions[0].track_user.attributes[1].value",
                '"increment" needs a number, but attribute "nickname" is a string',
            ),
            (
                "actions[0].track_user.attributes[2].name",
                'attribute "ok" is already mapped by actions[0].track_user.attributes[1]',
            ),
            (
                "actions[0].track_user.attributes[3].name",
                '"external_id" is a user identifier, not an attribute; map it in identifier',
            ),
            ("actions[0].track_user.attributes[4].value", "the attribute mapping has no value"),
            ("actions[0].track_user.events[0].name", "a Braze event needs a name"),
            (
                "actions[0].track_user.events[0].properties['time']",
                '"time" is a reserved Braze property name',
            ),
            (
                "actions[0].track_user.events[1].time",
                '"time" needs a number, a string or a date, but the constant is a boolean',
            ),
            ("actions[0].track_user.purchases[0].price", "a Braze purchase needs price"),
            (
                "actions[0].track_user.purchases[0].currency.constant.string_value",
                "the currency must be an ISO 4217 code such as USD",
            ),
            (
                "actions[0].track_user.purchases[0].quantity.constant.number_value",
                "the quantity must be a whole number from 1 to 100",
            ),
        ],
    ),
    (
        "identify user needs all three fields",
        with_action(event_feed="feed", identify_user={"external_id": {"attribute": "customer"}}),
        [
            ("actions[0].identify_user.alias_name", "identify user needs alias_name"),
            ("actions[0].identify_user.alias_label", "identify user needs alias_label"),
        ],
    ),
]

SETTINGS_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "timeouts, retention and sizes",
        {
            **BASE,
            "settings": {
                "visit_timeout": "2s",
                "platform_visit_timeouts": {"ios": "2m", "": "1h", "tv": "-1s"},
                "max_visit_length": "48h",
                "visitor_retention": "30m",
                "event_dedup_window": "31d",
                "max_collection_size": -5,
            },
        },
        [
            ("settings.visit_timeout", "the visit timeout must be at least 5s"),
            ("settings.platform_visit_timeouts['']", "the platform name is empty"),
            ("settings.platform_visit_timeouts['tv']", "the visit timeout must not be negative"),
            ("settings.max_visit_length", "the maximum visit length must be at most 24h"),
            ("settings.visitor_retention", "the visitor retention must be at least 1h"),
            ("settings.event_dedup_window", "the deduplication window must be at most 30d"),
            (
                "settings.max_collection_size",
                "must be between 1 and 1,000,000 (0 or unset: 30,000)",
            ),
        ],
    ),
]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(document, expected, id=name)
        for name, document, expected in ATTRIBUTE_CASES
        + RULE_CASES
        + AUDIENCE_CASES
        + ACTION_CASES
        + SETTINGS_CASES
    ],
)
def test_validation_case(document: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert errors_of(document) == expected


def test_built_in_attribute_ids_are_reserved_in_every_section() -> None:
    document = {**BASE, "cooldown_groups": [{"id": "returning_visitor", "wait": "1h"}]}
    assert errors_of(document) == [
        ("cooldown_groups[0].id", '"returning_visitor" is the id of a built-in attribute')
    ]


def test_too_many_attributes() -> None:
    document = {
        "attributes": [{"id": f"a{n}", "scope": "visit", "type": "number"} for n in range(501)]
    }
    assert errors_of(document) == [
        ("attributes", "the document has 501 attributes; at most 500 allowed")
    ]


def test_unknown_enum_numbers_from_grpc_clients_are_errors_not_crashes() -> None:
    defs = pb.Definitions()
    attribute = defs.attributes.add(id="a", scope=9, type=99)
    attribute.enrichments.add(kind=77, when=8)
    feed = defs.event_feeds.add(id="f")
    feed.rule.groups.add().conditions.add(
        input=pb.Operand(event="x"),
        operator=55,
    )
    defs.actions.add(id="x", event_feed="f", connector_id="c").track_user.membership = 9  # type: ignore[assignment]
    assert [(e.path, e.message) for e in validate(defs)] == [
        ("attributes[0].scope", "unknown scope 9; use visit or visitor"),
        (
            "attributes[0].type",
            "unknown type 99; use one of number, string, boolean, date, badge, tally, string_set, "
            "string_array, number_array, boolean_array, timeline, funnel, visitor_id",
        ),
        ("attributes[0].enrichments[0].when", "unknown when 8"),
        ("attributes[0].enrichments[0].kind", "unknown kind 77"),
        ("event_feeds[0].rule.groups[0].conditions[0].operator", "unknown operator 55"),
        (
            "actions[0].track_user.identifier",
            "map at least one user id: external_id, braze_id, alias_name + alias_label, "
            "email or phone",
        ),
        ("actions[0].track_user.membership", "unknown membership mode 9"),
    ]


def test_non_finite_constants_sent_over_grpc_are_errors() -> None:
    defs = definitions_from_dict(with_attribute("number"))
    enrichment = defs.attributes[-1].enrichments.add(
        kind=pb.ENRICHMENT_KIND_INCREMENT, when=pb.WHEN_ANY_EVENT
    )
    enrichment.operands.add(constant=value_pb2.Value(number_value=float("nan")))
    assert [(e.path, e.message) for e in validate(defs)] == [
        (f"{E0}.operands[0].constant.number_value", "numbers must be finite")
    ]


def test_validate_never_raises_on_randomly_damaged_documents() -> None:
    """Drop, duplicate and scramble parts of the seed; validation must always answer."""
    seed = load_definitions(EXAMPLES / "seed_vip.yaml")
    rng = random.Random(20240501)
    for _ in range(300):
        damaged = pb.Definitions()
        damaged.CopyFrom(seed)
        for _ in range(rng.randint(1, 6)):
            _damage(damaged, rng)
        errors = validate(damaged)
        assert all(e.message for e in errors)


def _damage(defs: pb.Definitions, rng: random.Random) -> None:
    attribute = rng.choice(defs.attributes)
    choice = rng.randrange(8)
    if choice == 0:
        attribute.type = rng.randrange(0, 16)  # type: ignore[assignment]
    elif choice == 1:
        attribute.scope = rng.randrange(0, 4)  # type: ignore[assignment]
    elif choice == 2 and attribute.enrichments:
        rng.choice(attribute.enrichments).kind = rng.randrange(0, 30)  # type: ignore[assignment]
    elif choice == 3:
        attribute.id = rng.choice(["", "vip", "lifetime_order_value", "X", "visit_start"])
    elif choice == 4 and defs.audiences:
        defs.audiences[0].expression.Clear()
    elif choice == 5 and attribute.enrichments:
        enrichment = rng.choice(attribute.enrichments)
        enrichment.operands.add(attribute=rng.choice(["vip", "nope", "added_to_cart", ""]))
        enrichment.rule.groups.add().conditions.add(
            input=pb.Operand(attribute=rng.choice([a.id for a in defs.attributes])),
            operator=rng.randrange(0, 22),
            value=pb.Operand(constant=value_pb2.Value(number_value=1)),
        )
    elif choice == 6 and defs.actions:
        action = rng.choice(defs.actions)
        action.ClearField(rng.choice(["track_user", "audience", "connector_id", "event_feed"]))
    else:
        enrichment = attribute.enrichments.add(kind=pb.ENRICHMENT_KIND_SET, when=pb.WHEN_ANY_EVENT)
        enrichment.operands.add(attribute=rng.choice([a.id for a in defs.attributes]))


def test_funnel_operators_name_a_step_of_their_funnel() -> None:
    document = copy.deepcopy(BASE)
    step = {"kind": "funnel_step", "when": ANY, "key": "cart"}
    document["attributes"].append(
        {"id": "checkout", "scope": "visitor", "type": "funnel", "enrichments": [step]}
    )
    document["audiences"] = [
        {
            "id": "started",
            "expression": {"condition": condition({"attribute": "checkout"}, "funnel_started")},
        },
        {
            "id": "paid",
            "expression": {
                "condition": condition({"attribute": "checkout"}, "step_completed", key="pay")
            },
        },
        {
            "id": "nokey",
            "expression": {"condition": condition({"attribute": "checkout"}, "step_not_completed")},
        },
        {
            "id": "wrong",
            "expression": {"condition": condition({"attribute": "ltv"}, "funnel_completed")},
        },
    ]
    assert errors_of(document) == [
        (
            "audiences[1].expression.condition.key",
            '"pay" is not a step of the funnel "checkout" (steps: cart)',
        ),
        (
            "audiences[2].expression.condition.key",
            '"step not completed" needs the funnel step id in "key"',
        ),
        (
            "audiences[3].expression.condition.operator",
            '"funnel completed" does not apply to a number',
        ),
    ]
