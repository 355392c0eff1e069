"""Tealium's preloaded Entry URL, Exit URL, referred / direct visits (from the event's
``current_url`` and ``referring_url``) and the Frequent visitor badge."""

from __future__ import annotations

from profile_service.app import profile_message
from profile_service.engine.builtin_values import builtin_values
from tests.engine.helpers import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    Visitor,
    attr,
    attribute,
    compile_doc,
    cond,
    enrichment,
    evt,
)

SHOP = "https://shop.example/"
VIP_EVENT = cond(evt("v"), "is_true")


def test_entry_and_exit_urls_of_a_visit() -> None:
    v = Visitor(compile_doc({}))
    v.send("view", T0)  # no URL yet
    v.send("view", T0 + MINUTE, current_url=SHOP + "home")
    v.send("view", T0 + 2 * MINUTE, current_url=SHOP + "cart")
    v.send("view", T0 + 3 * MINUTE, current_url="x" * 1_001)  # too long for a visit string
    values = builtin_values(v.profile)
    assert values["entry_url"] == SHOP + "home"
    assert values["exit_url"] == SHOP + "cart"
    v.send("view", T0 + 2 * HOUR, current_url=SHOP + "sale")  # a new visit
    values = builtin_values(v.profile)
    assert (values["entry_url"], values["exit_url"]) == (SHOP + "sale", SHOP + "sale")


def test_visits_from_another_site_are_referred_the_others_direct() -> None:
    defs = compile_doc(
        {
            "attributes": [
                attribute(
                    "exit_page",
                    "string",
                    enrichment("set", attr("exit_url"), when="visit_ended"),
                )
            ],
            "audiences": [
                {
                    "id": "referred_now",
                    "expression": {"condition": cond(attr("referred_visit"), "is_true")},
                }
            ],
        }
    )
    v = Visitor(defs)
    first = v.send("view", T0, current_url=SHOP, referring_url="https://www.google.com/search")
    assert first.audiences_joined == ["referred_now"]
    # Later events of the visit do not change how it started.
    v.send("view", T0 + MINUTE, current_url=SHOP + "cart", referring_url=SHOP)
    assert builtin_values(v.profile)["referred_visit"] is True
    v.end(T0 + HOUR)
    assert v.value("exit_page") == SHOP + "cart"  # readable when the visit ends

    v.send("view", T0 + 2 * HOUR, current_url=SHOP + "a", referring_url="https://shop.example/b")
    values = builtin_values(v.profile)
    assert (values["referred_visit"], values["direct_visit"]) == (False, True)  # same site
    v.send("view", T0 + 4 * HOUR, current_url=SHOP)  # no referrer: direct
    v.send("view", T0 + 6 * HOUR)  # no page data at all: neither
    values = builtin_values(v.profile)
    assert "referred_visit" not in values and "direct_visit" not in values
    assert (values["referred_visits"], values["direct_visits"]) == (1.0, 2.0)


def test_profiles_without_page_data_have_no_referral_values() -> None:
    v = Visitor(compile_doc({}))
    v.send("view", T0)
    values = builtin_values(v.profile)
    for name in ("referred_visit", "direct_visit", "referred_visits", "direct_visits"):
        assert name not in values


def test_frequent_visitor_badge_while_two_visits_a_week_or_more() -> None:
    defs = compile_doc(
        {
            "attributes": [
                attribute(
                    "vip", "badge", enrichment("assign_badge", rule=[[cond(evt("v"), "is_true")]])
                )
            ],
            "audiences": [
                {
                    "id": "frequent",
                    "expression": {"condition": cond(attr("frequent_visitor"), "is_assigned")},
                }
            ],
        }
    )
    v = Visitor(defs)
    v.send("view", T0)
    assert "frequent_visitor" not in builtin_values(v.profile)
    second = v.send("view", T0 + DAY)  # 2 visits in the first week
    assert second.audiences_joined == ["frequent"]
    # Derived, so not listed among the profile's badges; Unbadged is about custom badges.
    assert list(profile_message(defs, v.profile, 0).badges) == ["unbadged"]
    v.send("view", T0 + 2 * DAY, v=True)
    assert list(profile_message(defs, v.profile, 0).badges) == ["vip"]
    assert builtin_values(v.profile)["frequent_visitor"] is True
    v.send("view", T0 + 60 * DAY)  # 4 visits in 8 weeks: 0.5 a week
    assert "frequent_visitor" not in builtin_values(v.profile)
