"""The ingest benchmark's definitions: 35 attributes with enrichments, 10 audiences, 5 actions.

A shop's usual AudienceStream setup, written in the loader's dict syntax (the same shape as
``examples/definitions/seed_vip.yaml``): counters and sums incremented by events (numbers),
last-seen strings, dates, tallies of categories and brands, sets of viewed products and
search terms, an array of prices, badges on thresholds, and visit flags reset at every new
visit. Audiences combine them; every action is a Braze Track User to the connector ``braze``
when a visitor joins an audience.

The events of `bench.workload` (``page_view``, ``product_view``, ``cart_add``,
``purchase``, ``search``, ``login``) carry the fields these rules read.
"""

from __future__ import annotations

from typing import Any

from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import definitions_pb2

CONNECTOR_ID = "braze"
"""The dispatch connector the actions name (unused when the profile service has no
dispatch target: fired actions then stay in the Redis outbox)."""

Doc = dict[str, Any]


def _is_event(name: str) -> Doc:
    return {"input": {"event": "event.name"}, "operator": "equals", "value": {"constant": name}}


def _assigned(field: str) -> Doc:
    return {"input": {"event": field}, "operator": "is_assigned"}


def _rule(*conditions: Doc) -> Doc:
    return {"groups": [{"conditions": list(conditions)}]}


def _enrich(kind: str, *operands: Doc, when: str = "any_event", rule: Doc | None = None) -> Doc:
    doc: Doc = {"kind": kind, "when": when, "operands": list(operands)}
    if rule is not None:
        doc["rule"] = rule
    return doc


def _attr(attribute_id: str, kind: str, *enrichments: Doc, scope: str = "visitor") -> Doc:
    return {
        "id": attribute_id,
        "name": attribute_id.replace("_", " ").capitalize(),
        "scope": scope,
        "type": kind,
        "enrichments": list(enrichments),
    }


def _event(field: str) -> Doc:
    return {"event": field}


def _attribute(attribute_id: str) -> Doc:
    return {"attribute": attribute_id}


def _const(value: Any) -> Doc:
    return {"constant": value}


def _count_on(event_name: str) -> Doc:
    return _enrich("increment", _const(1), rule=_rule(_is_event(event_name)))


def _badge_over(attribute_id: str, operator: str, threshold: float) -> Doc:
    return _enrich(
        "assign_badge",
        rule=_rule(
            {"input": _attribute(attribute_id), "operator": operator, "value": _const(threshold)}
        ),
    )


def _visit_flag(attribute_id: str, event_name: str) -> Doc:
    """A visit boolean: false at every new visit, true once the event happens."""
    return _attr(
        attribute_id,
        "boolean",
        _enrich("set_false", when="new_visit"),
        _enrich("set_true", rule=_rule(_is_event(event_name))),
        scope="visit",
    )


def _attributes() -> list[Doc]:
    purchase_total = _rule(_is_event("purchase"), _assigned("order_total"))
    visitor = [
        _attr(
            "customer_id",
            "visitor_id",
            _enrich("set", _event("customer_id"), rule=_rule(_assigned("customer_id"))),
        ),
        _attr(
            "anonymous_id",
            "string",
            _enrich("set", _event("event.visitor_id"), when="new_visitor"),
        ),
        _attr(
            "email",
            "string",
            _enrich("set", _event("email"), rule=_rule(_assigned("email"))),
            _enrich("lowercase", rule=_rule(_assigned("email"))),
        ),
        _attr(
            "lifetime_order_value",
            "number",
            _enrich("increment", _event("order_total"), rule=purchase_total),
        ),
        _attr("order_count", "number", _count_on("purchase")),
        _attr(
            "average_order_value",
            "number",
            _enrich(
                "set_ratio",
                _attribute("lifetime_order_value"),
                _attribute("order_count"),
                rule=_rule(_is_event("purchase")),
            ),
        ),
        _attr("page_views", "number", _count_on("page_view")),
        _attr("product_views", "number", _count_on("product_view")),
        _attr("cart_adds", "number", _count_on("cart_add")),
        _attr("searches", "number", _count_on("search")),
        _attr("logins", "number", _count_on("login")),
        _attr(
            "category_interest",
            "tally",
            _enrich("increment_tally", _event("category"), rule=_rule(_assigned("category"))),
        ),
        _attr(
            "brand_spend",
            "tally",
            _enrich(
                "increment_tally",
                _event("brand"),
                _event("price"),
                rule=_rule(_is_event("cart_add"), _assigned("brand"), _assigned("price")),
            ),
        ),
        _attr(
            "viewed_products",
            "string_set",
            _enrich(
                "add_to_set",
                _event("product_id"),
                rule=_rule(_is_event("product_view"), _assigned("product_id")),
            ),
        ),
        _attr(
            "search_terms",
            "string_set",
            _enrich("add_to_set", _event("query"), rule=_rule(_assigned("query"))),
        ),
        _attr(
            "distinct_products_viewed",
            "number",
            _enrich("set_size", _attribute("viewed_products"), rule=_rule(_assigned("product_id"))),
        ),
        _attr(
            "recent_prices",
            "number_array",
            _enrich(
                "append",
                _event("price"),
                rule=_rule(_is_event("product_view"), _assigned("price")),
            ),
        ),
        _attr(
            "last_page",
            "string",
            _enrich("set", _event("page"), rule=_rule(_assigned("page"))),
        ),
        _attr(
            "last_category",
            "string",
            _enrich("set", _event("category"), rule=_rule(_assigned("category"))),
        ),
        _attr("first_seen", "date", _enrich("capture_date", when="new_visitor")),
        _attr("last_seen", "date", _enrich("capture_date")),
        _attr(
            "last_purchase",
            "date",
            _enrich("capture_date", rule=_rule(_is_event("purchase"))),
        ),
        _attr(
            "has_logged_in",
            "boolean",
            _enrich("set_true", rule=_rule(_is_event("login"))),
        ),
        _attr("vip", "badge", _badge_over("lifetime_order_value", "greater_than", 500)),
        _attr("frequent_buyer", "badge", _badge_over("order_count", "greater_than_or_equal", 3)),
        _attr("browser", "badge", _badge_over("page_views", "greater_than_or_equal", 5)),
        _attr("searcher", "badge", _badge_over("searches", "greater_than_or_equal", 2)),
    ]
    visit = [
        _attr(
            "visit_page_views",
            "number",
            _count_on("page_view"),
            scope="visit",
        ),
        _attr(
            "visit_cart_value",
            "number",
            _enrich(
                "increment",
                _event("price"),
                rule=_rule(_is_event("cart_add"), _assigned("price")),
            ),
            scope="visit",
        ),
        _attr(
            "visit_spend",
            "number",
            _enrich("increment", _event("order_total"), rule=purchase_total),
            scope="visit",
        ),
        _attr(
            "visit_categories",
            "string_set",
            _enrich("add_to_set", _event("category"), rule=_rule(_assigned("category"))),
            scope="visit",
        ),
        _attr(
            "visit_landing_page",
            "string",
            _enrich("set", _event("page"), when="new_visit", rule=_rule(_assigned("page"))),
            scope="visit",
        ),
        _visit_flag("visit_added_to_cart", "cart_add"),
        _visit_flag("visit_purchased", "purchase"),
        _visit_flag("visit_searched", "search"),
    ]
    return visitor + visit


def _has(attribute_id: str) -> Doc:
    return {"condition": {"input": _attribute(attribute_id), "operator": "is_assigned"}}


def _compare(attribute_id: str, operator: str, value: Any) -> Doc:
    return {
        "condition": {
            "input": _attribute(attribute_id),
            "operator": operator,
            "value": _const(value),
        }
    }


def _audience(audience_id: str, expression: Doc) -> Doc:
    return {
        "id": audience_id,
        "name": audience_id.replace("_", " ").capitalize(),
        "expression": expression,
    }


def _audiences() -> list[Doc]:
    return [
        _audience("vip_customers", _has("vip")),
        _audience("frequent_buyers", _has("frequent_buyer")),
        _audience(
            "cart_abandoners",
            {
                "all": {
                    "items": [
                        _compare("visit_added_to_cart", "equals", True),
                        _compare("visit_purchased", "equals", False),
                    ]
                }
            },
        ),
        _audience("big_spenders", _compare("lifetime_order_value", "greater_than", 1000)),
        _audience(
            "browsers_not_buyers",
            {
                "all": {
                    "items": [
                        _has("browser"),
                        {"negate": _has("order_count")},
                    ]
                }
            },
        ),
        _audience("searchers", _has("searcher")),
        _audience(
            "electronics_fans",
            {
                "condition": {
                    "input": _attribute("category_interest"),
                    "operator": "contains",
                    "value": _const("electronics"),
                }
            },
        ),
        _audience("known_customers", _has("customer_id")),
        _audience("high_intent_visit", _compare("visit_cart_value", "greater_than", 200)),
        _audience(
            "vip_or_frequent",
            {"any": {"items": [_has("vip"), _has("frequent_buyer")]}},
        ),
    ]


def _track_user(action_id: str, audience_id: str, attributes: list[str], event: str) -> Doc:
    return {
        "id": action_id,
        "name": action_id.replace("_", " ").capitalize(),
        "audience": {"audience_id": audience_id, "trigger": "joined"},
        "connector_id": CONNECTOR_ID,
        "track_user": {
            "identifier": {
                "external_id": _attribute("customer_id"),
                "alias_name": _attribute("anonymous_id"),
                "alias_label": _const("crowd_visitor"),
            },
            "attributes": [{"name": name, "value": _attribute(name)} for name in attributes],
            "events": [{"name": _const(event)}],
        },
    }


def _actions() -> list[Doc]:
    return [
        _track_user(
            "braze_vip", "vip_customers", ["lifetime_order_value", "order_count"], "became_vip"
        ),
        _track_user(
            "braze_frequent_buyer", "frequent_buyers", ["order_count"], "became_frequent_buyer"
        ),
        _track_user(
            "braze_cart_abandoner", "cart_abandoners", ["visit_cart_value"], "cart_abandoned"
        ),
        _track_user(
            "braze_big_spender", "big_spenders", ["lifetime_order_value"], "became_big_spender"
        ),
        _track_user(
            "braze_known_customer", "known_customers", ["email", "last_category"], "identified"
        ),
    ]


def bench_document() -> Doc:
    """The definitions document as a dict (loader syntax)."""
    return {
        "settings": {"visit_timeout": "30m", "visitor_retention": "1d"},
        "attributes": _attributes(),
        "audiences": _audiences(),
        "actions": _actions(),
    }


def bench_definitions() -> definitions_pb2.Definitions:
    """The definitions message published before the ingest benchmark."""
    return definitions_from_dict(bench_document())
