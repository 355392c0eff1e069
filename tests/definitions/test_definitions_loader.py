"""Loading definitions from YAML/JSON: friendly spellings, and every problem as path + message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

from crowd.definitions.errors import DefinitionError, DefinitionsLoadError
from crowd.definitions.loader import (
    definitions_from_dict,
    load_definitions,
    parse_definitions_text,
)
from crowd.profile.v1 import definitions_pb2 as pb

SEED = Path(__file__).resolve().parents[2] / "examples" / "definitions" / "seed_vip.yaml"


def load_errors(text: str) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionsLoadError) as caught:
        parse_definitions_text(text)
    return [(e.path, e.message) for e in caught.value.errors]


def test_short_lowercase_enum_names_and_friendly_values_load() -> None:
    defs = parse_definitions_text(
        """
settings:
  visit_timeout: 30m
  max_visit_length: 24h
  visitor_retention: 395d
  event_dedup_window: 1h30m
  platform_visit_timeouts: {ios: 2m, web: "1800s"}
attributes:
  - id: ltv
    scope: visitor
    type: number
    merge_rule: sum
    enrichments:
      - kind: increment
        when: any_event
        operands: [{event: order_total}]
        rule:
          groups:
            - conditions:
                - {input: {event: event.name}, operator: equals, value: {constant: purchase}}
                - {input: {attribute: ltv}, operator: ">", value: {constant: 10.5}}
                - {input: {attribute: first_visit}, operator: occurred within,
                   offset: {amount: 3, unit: days}}
  - id: tags
    scope: VISIT
    type: String-Set
    enrichments:
      - {kind: ADD_TO_SET, when: WHEN_NEW_VISIT, operands: [{constant: [a, b]}]}
actions:
  - id: a
    audience: {audience_id: x, trigger: joined}
    delay: 48h
    connector_id: braze
    track_user:
      membership: segment_membership
      attributes:
        - {name: n, value: {constant: null}, operation: increment}
        - {name: t, value: {constant: 2024-05-01}}
        - {name: f, value: {constant: false}}
        - {name: l, value: {constant: [1, 2.5]}}
"""
    )
    settings = defs.settings
    assert settings.visit_timeout.seconds == 1800
    assert settings.max_visit_length.seconds == 86400
    assert settings.visitor_retention.seconds == 395 * 86400
    assert settings.event_dedup_window.seconds == 5400
    assert settings.platform_visit_timeouts["ios"].seconds == 120
    assert settings.platform_visit_timeouts["web"].seconds == 1800

    ltv, tags = defs.attributes
    assert (ltv.scope, ltv.type, ltv.merge_rule) == (
        pb.ATTRIBUTE_SCOPE_VISITOR,
        pb.ATTRIBUTE_TYPE_NUMBER,
        pb.MERGE_RULE_SUM,
    )
    enrichment = ltv.enrichments[0]
    assert (enrichment.kind, enrichment.when) == (pb.ENRICHMENT_KIND_INCREMENT, pb.WHEN_ANY_EVENT)
    assert enrichment.operands[0].event == "order_total"
    equals, greater, within = enrichment.rule.groups[0].conditions
    assert equals.operator == pb.OPERATOR_EQUALS
    assert equals.value.constant.string_value == "purchase"
    assert greater.operator == pb.OPERATOR_GREATER_THAN
    assert greater.value.constant.number_value == 10.5
    assert within.operator == pb.OPERATOR_OCCURRED_WITHIN
    assert (within.offset.amount, within.offset.unit) == (3, pb.TIME_UNIT_DAYS)

    assert (tags.scope, tags.type) == (pb.ATTRIBUTE_SCOPE_VISIT, pb.ATTRIBUTE_TYPE_STRING_SET)
    assert tags.enrichments[0].kind == pb.ENRICHMENT_KIND_ADD_TO_SET
    assert tags.enrichments[0].when == pb.WHEN_NEW_VISIT
    assert list(tags.enrichments[0].operands[0].constant.string_list.values) == ["a", "b"]

    action = defs.actions[0]
    assert action.audience.trigger == pb.TRIGGER_JOINED
    assert action.delay.seconds == 48 * 3600
    mapping = action.track_user
    assert mapping.membership == pb.MEMBERSHIP_MODE_SEGMENT_MEMBERSHIP
    null, stamp, flag, numbers = mapping.attributes
    assert null.value.constant.WhichOneof("kind") == "null_value"
    assert null.operation == pb.ATTRIBUTE_OPERATION_INCREMENT
    assert stamp.value.constant.timestamp_value.ToJsonString() == "2024-05-01T00:00:00Z"
    assert flag.value.constant.WhichOneof("kind") == "bool_value"
    assert not flag.value.constant.bool_value
    assert list(numbers.value.constant.number_list.values) == [1.0, 2.5]


def test_camel_case_proto_json_loads_like_snake_case_yaml() -> None:
    snake = parse_definitions_text(
        "settings: {visit_timeout: 30m, max_string_length: 50}\n"
        "attributes: [{id: a, scope: visit, type: number, merge_rule: max}]\n"
    )
    camel = parse_definitions_text(
        json.dumps(
            {
                "settings": {"visitTimeout": "1800s", "maxStringLength": 50},
                "attributes": [
                    {
                        "id": "a",
                        "scope": "ATTRIBUTE_SCOPE_VISIT",
                        "type": "ATTRIBUTE_TYPE_NUMBER",
                        "mergeRule": "MERGE_RULE_MAX",
                    }
                ],
            }
        )
    )
    assert snake == camel


def test_proto_json_round_trip_of_the_seed_loads_back_equal() -> None:
    seed = load_definitions(SEED)
    text = json_format.MessageToJson(seed)
    assert parse_definitions_text(text) == seed
    assert definitions_from_dict(json.loads(text)) == seed


def test_load_definitions_accepts_a_path_a_path_string_and_text(tmp_path: Path) -> None:
    from_path = load_definitions(SEED)
    assert from_path.attributes[1].id == "lifetime_order_value"
    assert load_definitions(str(SEED)) == from_path
    assert load_definitions(SEED.read_text()) == from_path
    assert load_definitions(SEED.read_bytes()) == from_path
    json_file = tmp_path / "seed.json"
    json_file.write_text(json_format.MessageToJson(from_path))
    assert load_definitions(json_file) == from_path


def test_missing_file_is_a_load_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DefinitionsLoadError) as caught:
        load_definitions(str(missing))
    assert caught.value.errors == (
        DefinitionError("", f"cannot read {missing}: No such file or directory"),
    )


def test_empty_document_is_empty_definitions() -> None:
    assert parse_definitions_text("") == pb.Definitions()
    assert parse_definitions_text("# nothing yet\n") == pb.Definitions()


def test_yaml_syntax_error_reports_line_and_column() -> None:
    assert load_errors("attributes:\n  - id: a\n   scope: visit\n") == [
        (
            "",
            "YAML syntax error at line 3, column 4: "
            "expected <block end>, but found '<block mapping start>'",
        )
    ]


def test_json_syntax_error_reports_line_and_column() -> None:
    assert load_errors('{"attributes": [\n  {"id": "a",}\n]}') == [
        (
            "",
            "JSON syntax error at line 2, column 14: "
            "Expecting property name enclosed in double quotes",
        )
    ]


def test_duplicate_yaml_key_is_refused_not_silently_overwritten() -> None:
    errors = load_errors("attributes:\n  - id: a\n    id: b\n")
    assert errors == [("", 'YAML syntax error at line 3, column 5: found duplicate key "id"')]


def test_document_that_is_not_a_mapping() -> None:
    assert load_errors("- a\n- b\n") == [
        ("", "the document must be a mapping with fields such as attributes")
    ]


def test_every_shape_problem_is_reported_at_once_with_its_path() -> None:
    errors = load_errors(
        """
settings:
  visit_timeout: 1800
  max_string_length: "many"
  visitor_retention: 3 weeks-ish
attributes:
  - id: a
    scope: lifetime
    type: numbr
    colour: red
    enrichments:
      - kind: increment
        when: true
        operands:
          - {constant: 1, attribute: b}
          - {constant: []}
          - {constant: [1, "x"]}
          - {constant: .inf}
  - "just a string"
  - id: 12
audiences:
  - id: x
    expresion: {}
actions:
  - id: y
    delay: {seconds: 5}
    audience: {audience_id: x, trigger: 7}
"""
    )
    assert errors == [
        (
            "settings.visit_timeout",
            "expected a duration, got a number; a bare number is ambiguous; write a duration "
            'with a unit, e.g. "500ms", "90s", "30m", "24h", "395d" or "1h30m"',
        ),
        ("settings.max_string_length", "expected a whole number, got a string"),
        (
            "settings.visitor_retention",
            '"3 weeks-ish" is not a duration; write a duration with a unit, e.g. "500ms", '
            '"90s", "30m", "24h", "395d" or "1h30m"',
        ),
        (
            "attributes[0].scope",
            'unknown attribute scope "lifetime"; expected one of visit, visitor',
        ),
        (
            "attributes[0].type",
            'unknown attribute type "numbr"; expected one of number, string, boolean, date, '
            "badge, tally, string_set, string_array, number_array, boolean_array, timeline, "
            "funnel, visitor_id",
        ),
        (
            "attributes[0].colour",
            'unknown field "colour"; AttributeDefinition has: id, name, scope, type, '
            "enrichments, merge_rule, description, identity",
        ),
        (
            "attributes[0].enrichments[0].when",
            "expected one of new_visitor, new_visit, any_event, visit_ended, got true",
        ),
        (
            "attributes[0].enrichments[0].operands[0].attribute",
            '"constant" and "attribute" are both set; only one of the "source" fields may be set',
        ),
        (
            "attributes[0].enrichments[0].operands[1].constant",
            "an empty list has no item type; write {string_list: {}}, {number_list: {}} or "
            "{bool_list: {}}",
        ),
        (
            "attributes[0].enrichments[0].operands[2].constant",
            "a list constant must hold only strings, only numbers or only booleans",
        ),
        ("attributes[0].enrichments[0].operands[3].constant", "numbers must be finite"),
        ("attributes[1]", "expected a mapping of AttributeDefinition fields, got a string"),
        ("attributes[2].id", "expected a string, got a number; put the value in quotes"),
        ("audiences[0].expresion", 'unknown field "expresion"; did you mean "expression"?'),
        (
            "actions[0].delay",
            'expected a duration, got a mapping; write a duration with a unit, e.g. "500ms", '
            '"90s", "30m", "24h", "395d" or "1h30m"',
        ),
        (
            "actions[0].audience.trigger",
            "7 is not a valid Trigger; expected one of joined, left, in_audience_at_visit_start, "
            "in_audience_at_visit_end",
        ),
    ]


def test_load_error_message_summarises_the_first_problem_and_the_count() -> None:
    with pytest.raises(DefinitionsLoadError) as caught:
        parse_definitions_text("attributes: [{id: a, scope: x, type: y}]")
    assert str(caught.value) == (
        'cannot load the definitions: attributes[0].scope: unknown attribute scope "x"; '
        "expected one of visit, visitor (and 1 more)"
    )


def test_null_field_means_unset() -> None:
    defs = parse_definitions_text(
        "attributes:\n  - id: a\n    scope: visit\n    type: number\n    enrichments:\n"
        "      - {kind: increment, when: any_event, rule: null, operands: [{constant: 1}]}\n"
    )
    assert not defs.attributes[0].enrichments[0].HasField("rule")


@pytest.mark.parametrize(
    ("text", "seconds", "nanos"),
    [
        ("1800s", 1800, 0),
        ("30m", 1800, 0),
        ("24h", 86400, 0),
        ("395d", 395 * 86400, 0),
        ("2w", 14 * 86400, 0),
        ("1h30m", 5400, 0),
        ("1.5h", 5400, 0),
        ("250ms", 0, 250_000_000),
        ("0s", 0, 0),
    ],
)
def test_duration_spellings(text: str, seconds: int, nanos: int) -> None:
    defs = parse_definitions_text(f"settings: {{visit_timeout: '{text}'}}")
    assert (defs.settings.visit_timeout.seconds, defs.settings.visit_timeout.nanos) == (
        seconds,
        nanos,
    )


def test_yaml_1_1_booleans_stay_strings_but_true_false_are_booleans() -> None:
    defs = parse_definitions_text(
        """
attributes:
  - id: off
    scope: visitor
    type: tally
    enrichments:
      - {kind: increment_tally_key, when: any_event, key: no}
      - {kind: remove_tally_key, when: any_event, key: Yes}
actions:
  - {id: on, event_feed: f, connector_id: braze, disabled: True,
     delete_user: {identifier: {external_id: {event: user}}}}
"""
    )
    assert defs.attributes[0].id == "off"
    assert [e.key for e in defs.attributes[0].enrichments] == ["no", "Yes"]
    assert defs.actions[0].id == "on"
    assert defs.actions[0].disabled is True
    # The fix is local to the definitions loader.
    assert yaml.safe_load("a: on") == {"a": True}


def test_exponent_numbers_and_integral_floats_load_as_numbers() -> None:
    defs = parse_definitions_text(
        "settings: {max_string_length: 1000.0}\n"
        "attributes:\n"
        "  - {id: a, scope: visit, type: number, enrichments: [\n"
        "      {kind: set_sum, when: any_event,\n"
        "       operands: [{constant: 1e3}, {constant: -2.5E-1}]}]}\n"
    )
    assert defs.settings.max_string_length == 1000
    operands = defs.attributes[0].enrichments[0].operands
    assert [o.constant.number_value for o in operands] == [1000.0, -0.25]


def test_absurdly_deep_nesting_is_an_error_not_a_crash() -> None:
    expression: dict[str, object] = {"condition": {"input": {"attribute": "a"}}}
    for _ in range(200):
        expression = {"negate": expression}
    with pytest.raises(DefinitionsLoadError) as caught:
        definitions_from_dict({"audiences": [{"id": "x", "expression": expression}]})
    (error,) = caught.value.errors
    assert error.message == "the document is nested more than 64 levels deep"
    assert error.path.startswith("audiences[0].expression.negate.negate.")
