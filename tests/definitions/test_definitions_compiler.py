"""Compilation (defaults, indexes, enrichment order), dependency cycles and versioning digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from crowd.definitions.builtins import (
    BUILTIN_ATTRIBUTES,
    AttributeSource,
    resolve_attribute,
)
from crowd.definitions.errors import InvalidDefinitionsError
from crowd.definitions.loader import (
    definitions_from_dict,
    load_definitions,
    parse_definitions_text,
)
from crowd.definitions.validator import validate
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.compiler import (
    canonical_bytes,
    check_and_compile,
    compile_definitions,
    digest,
)
from profile_service.definitions.model import EngineLimits

SEED = Path(__file__).resolve().parents[2] / "examples" / "definitions" / "seed_vip.yaml"


def reads(attribute_id: str) -> dict[str, Any]:
    """An ANY_EVENT rule that reads ``attribute_id``."""
    return {
        "groups": [
            {"conditions": [{"input": {"attribute": attribute_id}, "operator": "is_assigned"}]}
        ]
    }


def number(attribute_id: str, *enrichments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": attribute_id,
        "scope": "visitor",
        "type": "number",
        "enrichments": list(enrichments),
    }


def increment(**fields: Any) -> dict[str, Any]:
    return {"kind": "increment", "when": "any_event", "operands": [{"constant": 1}], **fields}


def order_of(document: dict[str, Any]) -> list[str]:
    compiled = compile_definitions(definitions_from_dict(document))
    return [f"{c.attribute.id}.{c.enrichment.id}" for c in compiled.enrichments]


def test_seed_compiles_with_defaults_indexes_and_document_order() -> None:
    defs = load_definitions(SEED)
    compiled = check_and_compile(defs, version="v1")
    assert compiled.version == "v1"
    assert compiled.document == defs
    assert compiled.limits == EngineLimits(
        visit_timeout_ms=30 * 60_000,
        visitor_retention_ms=395 * 86_400_000,
    )
    assert list(compiled.attributes) == [
        "customer_id",
        "lifetime_order_value",
        "added_to_cart",
        "purchased",
        "vip",
        "cart_abandoner",
    ]
    assert [c.path for c in compiled.enrichments] == [
        "attributes[0].enrichments[0]",
        "attributes[1].enrichments[0]",
        "attributes[2].enrichments[0]",
        "attributes[2].enrichments[1]",
        "attributes[3].enrichments[0]",
        "attributes[3].enrichments[1]",
        "attributes[4].enrichments[0]",
        "attributes[5].enrichments[0]",
        "attributes[5].enrichments[1]",
    ]
    assert compiled.enrichments[6].enrichment.id == "big_spender"
    assert compiled.enrichments[6].attribute.id == "vip"
    assert list(compiled.audiences) == ["vip_cart_abandoners"]
    assert list(compiled.feeds) == ["account_deleted"]
    assert list(compiled.actions) == ["braze_vip_cart_abandoner", "braze_delete_user"]
    assert compiled.visitor_id_attributes == ("customer_id",)
    action = compiled.actions["braze_vip_cart_abandoner"]
    assert action.audience.trigger == pb.TRIGGER_JOINED
    assert action.track_user.identifier.external_id.attribute == "customer_id"


def test_compiled_document_is_a_copy() -> None:
    defs = load_definitions(SEED)
    compiled = compile_definitions(defs)
    defs.attributes[0].id = "changed"
    assert compiled.attributes["customer_id"].id == "customer_id"


def test_check_and_compile_refuses_an_invalid_document() -> None:
    with pytest.raises(InvalidDefinitionsError) as caught:
        check_and_compile(definitions_from_dict({"attributes": [{"id": "a"}]}))
    assert [e.path for e in caught.value.errors] == ["attributes[0].scope", "attributes[0].type"]


def test_settings_resolve_to_engine_limits() -> None:
    defs = parse_definitions_text(
        """
settings:
  visit_timeout: 10m
  platform_visit_timeouts: {ios: 2m, android: 2m}
  max_visit_length: 12h
  visitor_retention: 90d
  max_string_length: 200
  max_collection_size: 50
  event_dedup_window: 1h
  date_formats: ["%d/%m/%Y"]
cooldown_groups:
  - {id: daily, wait: 24h}
  - {id: quick, wait: 90s}
actions:
  - {id: off, disabled: true, event_feed: f, connector_id: braze,
     delete_user: {identifier: {external_id: {event: user}}}}
  - {id: on, event_feed: f, connector_id: braze,
     delete_user: {identifier: {external_id: {event: user}}}}
event_feeds: [{id: f}]
"""
    )
    assert validate(defs) == []
    compiled = compile_definitions(defs)
    limits = compiled.limits
    assert limits == EngineLimits(
        visit_timeout_ms=600_000,
        platform_visit_timeout_ms={"android": 120_000, "ios": 120_000},
        max_visit_length_ms=12 * 3_600_000,
        visitor_retention_ms=90 * 86_400_000,
        max_string_length=200,
        max_collection_size=50,
        event_dedup_window_ms=3_600_000,
        date_formats=("%d/%m/%Y",),
    )
    assert limits.visit_timeout_for("ios") == 120_000
    assert limits.visit_timeout_for("web") == 600_000
    assert compiled.cooldown_wait_ms == {"daily": 86_400_000, "quick": 90_000}
    assert list(compiled.actions) == ["on"]


def test_enrichment_reading_an_attribute_runs_after_its_writers() -> None:
    # "badge" reads "total" but comes first in the document; "total" reads "count".
    document = {
        "attributes": [
            {
                "id": "badge",
                "scope": "visitor",
                "type": "badge",
                "enrichments": [
                    {
                        "id": "assign",
                        "kind": "assign_badge",
                        "when": "any_event",
                        "rule": reads("total"),
                    },
                    {"id": "drop", "kind": "remove_badge", "when": "new_visit"},
                ],
            },
            number("total", increment(id="from_count", operands=[{"attribute": "count"}])),
            number("count", increment(id="a"), increment(id="b")),
            number("unrelated", increment(id="x")),
        ]
    }
    assert validate(definitions_from_dict(document)) == []
    # count.a and count.b first (total reads count), then total, then the badge's enrichments
    # in their own document order; "unrelated" keeps its place relative to the ready ones.
    assert order_of(document) == [
        "count.a",
        "count.b",
        "total.from_count",
        "badge.assign",
        "badge.drop",
        "unrelated.x",
    ]


def test_independent_enrichments_keep_document_order_and_self_reads_are_not_dependencies() -> None:
    document = {
        "attributes": [
            number("b", increment(id="capped", rule=reads("b"))),
            number(
                "a", increment(id="one"), increment(id="two", rule=reads("lifetime_event_count"))
            ),
        ]
    }
    assert validate(definitions_from_dict(document)) == []
    assert order_of(document) == ["b.capped", "a.one", "a.two"]


def test_favorite_reads_its_tally() -> None:
    document = {
        "attributes": [
            {
                "id": "top_brand",
                "scope": "visitor",
                "type": "string",
                "enrichments": [
                    {
                        "id": "copy",
                        "kind": "set",
                        "when": "any_event",
                        "operands": [{"attribute": "brands.favorite"}],
                    }
                ],
            },
            {
                "id": "brands",
                "scope": "visitor",
                "type": "tally",
                "enrichments": [
                    {
                        "id": "count",
                        "kind": "increment_tally",
                        "when": "any_event",
                        "operands": [{"event": "brand"}],
                    }
                ],
            },
        ]
    }
    assert validate(definitions_from_dict(document)) == []
    assert order_of(document) == ["brands.count", "top_brand.copy"]


def test_two_attribute_cycle_is_reported_with_its_path() -> None:
    document = {
        "attributes": [
            number("a", increment(operands=[{"attribute": "b"}])),
            number("b", increment(), increment(rule=reads("a"))),
        ]
    }
    errors = validate(definitions_from_dict(document))
    assert [(e.path, e.message) for e in errors] == [
        (
            "attributes[0].enrichments[0]",
            'enrichments depend on each other in a cycle "a" -> "b" -> "a": '
            '"a" reads "b" (attributes[0].enrichments[0]), '
            '"b" reads "a" (attributes[1].enrichments[1])',
        )
    ]
    # compile never loops: what can run runs first, the cycle follows in document order
    assert [c.path for c in compile_definitions(definitions_from_dict(document)).enrichments] == [
        "attributes[1].enrichments[0]",
        "attributes[0].enrichments[0]",
        "attributes[1].enrichments[1]",
    ]


def test_longer_cycles_through_captures_and_favorites_each_reported_once() -> None:
    document = {
        "attributes": [
            number("x", increment(operands=[{"attribute": "y"}])),
            number(
                "y", {"kind": "set_size", "when": "any_event", "operands": [{"attribute": "z"}]}
            ),
            {
                "id": "z",
                "scope": "visitor",
                "type": "timeline",
                "enrichments": [{"kind": "update_timeline", "when": "any_event", "capture": ["x"]}],
            },
            {
                "id": "t",
                "scope": "visitor",
                "type": "tally",
                "enrichments": [
                    {
                        "kind": "increment_tally",
                        "when": "any_event",
                        "operands": [{"attribute": "s"}],
                    }
                ],
            },
            {
                "id": "s",
                "scope": "visitor",
                "type": "string",
                "enrichments": [
                    {"kind": "set", "when": "any_event", "operands": [{"attribute": "t.favorite"}]}
                ],
            },
            number("ok", increment(operands=[{"attribute": "x"}])),
        ]
    }
    errors = validate(definitions_from_dict(document))
    assert [(e.path, e.message) for e in errors] == [
        (
            "attributes[0].enrichments[0]",
            'enrichments depend on each other in a cycle "x" -> "y" -> "z" -> "x": '
            '"x" reads "y" (attributes[0].enrichments[0]), '
            '"y" reads "z" (attributes[1].enrichments[0]), '
            '"z" reads "x" (attributes[2].enrichments[0])',
        ),
        (
            "attributes[3].enrichments[0]",
            'enrichments depend on each other in a cycle "t" -> "s" -> "t": '
            '"t" reads "s" (attributes[3].enrichments[0]), '
            '"s" reads "t.favorite" (attributes[4].enrichments[0])',
        ),
    ]


def test_digest_ignores_spelling_and_changes_with_content() -> None:
    yaml_text = SEED.read_text()
    seed = parse_definitions_text(yaml_text)
    as_json = json_format.MessageToJson(seed, indent=4)
    assert digest(parse_definitions_text(as_json)) == digest(seed)
    assert canonical_bytes(parse_definitions_text(as_json)) == canonical_bytes(seed)
    changed = parse_definitions_text(
        yaml_text.replace("value: {constant: 500}", "value: {constant: 501}")
    )
    assert digest(changed) != digest(seed)
    assert len(digest(seed)) == 64
    assert canonical_bytes(seed).startswith(b'{"actions":[')


AGENT_BUILTIN_PREFIXES = (
    "active_",
    "browser_",
    "os_",
    "device_",
    "platforms_",
    "lifetime_browser",
    "lifetime_os",
    "lifetime_device",
    "lifetime_platform",
)


def test_builtin_table_and_resolution() -> None:
    agents = {b.id for b in BUILTIN_ATTRIBUTES.values() if b.id.startswith(AGENT_BUILTIN_PREFIXES)}
    assert len(agents) == 20  # 5 dimensions: active, used in the visit, lifetime, favourite
    assert BUILTIN_ATTRIBUTES["active_browser_type"].scope == pb.ATTRIBUTE_SCOPE_VISIT
    assert BUILTIN_ATTRIBUTES["os_types_used"].type == pb.ATTRIBUTE_TYPE_STRING_SET
    assert BUILTIN_ATTRIBUTES["lifetime_device_types_used"].type == pb.ATTRIBUTE_TYPE_TALLY
    platform = BUILTIN_ATTRIBUTES["lifetime_platforms_used.favorite"]
    assert (platform.scope, platform.type) == (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_STRING)
    others = {b.id: (b.scope, b.type) for b in BUILTIN_ATTRIBUTES.values() if b.id not in agents}
    assert others == {
        "lifetime_event_count": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_NUMBER),
        "lifetime_visit_count": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_NUMBER),
        "first_visit": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_DATE),
        "last_visit": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_DATE),
        "visit_start": (pb.ATTRIBUTE_SCOPE_VISIT, pb.ATTRIBUTE_TYPE_DATE),
        "visit_event_count": (pb.ATTRIBUTE_SCOPE_VISIT, pb.ATTRIBUTE_TYPE_NUMBER),
        "visit_duration": (pb.ATTRIBUTE_SCOPE_VISIT, pb.ATTRIBUTE_TYPE_NUMBER),
        "visit_end": (pb.ATTRIBUTE_SCOPE_VISIT, pb.ATTRIBUTE_TYPE_DATE),
        "total_time_on_site": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_NUMBER),
        "average_visit_duration": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_NUMBER),
        "weeks_since_first_visit": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_NUMBER),
        "average_visits_per_week": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_NUMBER),
        "unbadged": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_BADGE),
        "returning_visitor": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_BOOLEAN),
        "entry_url": (pb.ATTRIBUTE_SCOPE_VISIT, pb.ATTRIBUTE_TYPE_STRING),
        "exit_url": (pb.ATTRIBUTE_SCOPE_VISIT, pb.ATTRIBUTE_TYPE_STRING),
        "referred_visit": (pb.ATTRIBUTE_SCOPE_VISIT, pb.ATTRIBUTE_TYPE_BOOLEAN),
        "direct_visit": (pb.ATTRIBUTE_SCOPE_VISIT, pb.ATTRIBUTE_TYPE_BOOLEAN),
        "referred_visits": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_NUMBER),
        "direct_visits": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_NUMBER),
        "frequent_visitor": (pb.ATTRIBUTE_SCOPE_VISITOR, pb.ATTRIBUTE_TYPE_BADGE),
    }
    defined = {
        "brands": pb.AttributeDefinition(
            id="brands", scope=pb.ATTRIBUTE_SCOPE_VISIT, type=pb.ATTRIBUTE_TYPE_TALLY
        ),
        "ltv": pb.AttributeDefinition(
            id="ltv", scope=pb.ATTRIBUTE_SCOPE_VISITOR, type=pb.ATTRIBUTE_TYPE_NUMBER
        ),
    }
    favorite = resolve_attribute("brands.favorite", defined)
    assert favorite is not None
    assert (favorite.source, favorite.scope, favorite.type, favorite.target) == (
        AttributeSource.FAVORITE,
        pb.ATTRIBUTE_SCOPE_VISIT,
        pb.ATTRIBUTE_TYPE_STRING,
        "brands",
    )
    builtin = resolve_attribute("visit_start", defined)
    assert builtin is not None
    assert builtin.source is AttributeSource.BUILTIN
    ltv = resolve_attribute("ltv", defined)
    assert ltv is not None
    assert ltv.source is AttributeSource.DEFINED
    assert resolve_attribute("ltv.favorite", defined) is None
    assert resolve_attribute("nope", defined) is None


def test_platform_defaults_follow_tealium_unless_configured() -> None:
    limits = EngineLimits(visit_timeout_ms=600_000, platform_visit_timeout_ms={"ios": 300_000})
    assert limits.visit_timeout_for("ios") == 300_000  # configured wins
    assert limits.visit_timeout_for("android") == 120_000  # mobile: 2 minutes
    assert limits.visit_timeout_for("import") == 60_000  # file import: 1 minute
    assert limits.visit_timeout_for("web") == 600_000
    assert limits.visit_timeout_for("") == 600_000
