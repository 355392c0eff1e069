"""The preloaded browser / OS / device / platform attributes (Tealium's §1): parsed from the
event's ``user_agent`` field by ua-parser, kept per visit (active value and the values used)
and per visitor (visits per value and the favourite)."""

from __future__ import annotations

from crowd.definitions.builtins import BUILTIN_ATTRIBUTES
from crowd.definitions.loader import definitions_from_dict
from crowd.definitions.validator import validate
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.model import CompiledDefinitions
from profile_service.engine.builtin_values import BUILTIN_TYPES, VISIT_BUILTINS, builtin_values
from profile_service.engine.stitching import merge_profiles
from profile_service.engine.user_agents import agent_types
from tests.engine.helpers import (
    HOUR,
    MINUTE,
    T0,
    Visitor,
    attr,
    compile_doc,
    cond,
    const,
    event,
)

MAC_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"
)
IOS = const("iOS")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def _defs() -> CompiledDefinitions:
    return compile_doc(
        {
            "audiences": [
                {
                    "id": "mobile_now",
                    "expression": {
                        "condition": cond(attr("active_device_type"), "equals", const("Mobile"))
                    },
                },
                {
                    "id": "chrome_fans",
                    "expression": {
                        "condition": cond(
                            attr("lifetime_browser_types_used.favorite"),
                            "equals",
                            const("Chrome"),
                        )
                    },
                },
            ]
        }
    )


def test_user_agents_are_named_by_ua_parser_and_sorted_into_device_types() -> None:
    desktop = agent_types(MAC_CHROME)
    assert desktop is not None
    assert (desktop.browser_type, desktop.browser_version) == ("Chrome", "Chrome 120")
    assert (desktop.os_type, desktop.device_type) == ("Mac OS X", "Desktop")
    phone = agent_types(IPHONE_SAFARI)
    assert phone is not None
    assert (phone.browser_type, phone.os_type, phone.device_type) == (
        "Mobile Safari",
        "iOS",
        "Mobile",
    )
    assert [t.device_type for t in map(agent_types, (IPAD_SAFARI, ANDROID_TABLET)) if t] == [
        "Tablet",
        "Tablet",
    ]
    bot = agent_types(GOOGLEBOT)
    assert bot is not None and bot.device_type == "Bot"
    assert agent_types("   ") is None


def test_active_values_sets_and_lifetime_tallies_follow_the_events() -> None:
    v = Visitor(_defs())
    outcome = v.send("view", T0, user_agent=MAC_CHROME)
    values = builtin_values(v.profile)
    assert values["active_browser_type"] == "Chrome"
    assert values["active_browser_version"] == "Chrome 120"
    assert values["active_os_type"] == "Mac OS X"
    assert values["active_device_type"] == "Desktop"
    assert values["active_platform"] == "browser"
    assert values["lifetime_browser_types_used"] == {"Chrome": 1.0}
    assert outcome.audiences_joined == ["chrome_fans"]

    outcome = v.send("view", T0 + MINUTE, user_agent=IPHONE_SAFARI)
    values = builtin_values(v.profile)
    assert values["active_device_type"] == "Mobile"
    assert values["device_types_used"] == ["Desktop", "Mobile"]
    assert values["browser_types_used"] == ["Chrome", "Mobile Safari"]
    assert outcome.audiences_joined == ["mobile_now"]

    v.send("view", T0 + 2 * MINUTE, user_agent=MAC_CHROME)  # the same visit: counted once
    values = builtin_values(v.profile)
    assert values["lifetime_browser_types_used"] == {"Chrome": 1.0, "Mobile Safari": 1.0}
    # A tie: the most recently counted value is the favourite.
    assert values["lifetime_browser_types_used.favorite"] == "Mobile Safari"

    v.send("view", T0 + 3 * HOUR, user_agent=MAC_CHROME)  # a new visit
    values = builtin_values(v.profile)
    assert values["lifetime_browser_types_used"] == {"Mobile Safari": 1.0, "Chrome": 2.0}
    assert values["lifetime_browser_types_used.favorite"] == "Chrome"
    assert values["browser_types_used"] == ["Chrome"]  # the visit's set starts again
    assert values["lifetime_os_types_used"] == {"iOS": 1.0, "Mac OS X": 2.0}


def test_the_platform_comes_from_the_event_and_no_user_agent_changes_nothing() -> None:
    v = Visitor(_defs())
    v.send("view", T0)
    values = builtin_values(v.profile)
    assert "active_browser_type" not in values and "active_platform" not in values
    v.apply(event("open", T0 + MINUTE, {"user_agent": IPHONE_SAFARI}, platform="ios"))
    v.send("view", T0 + 2 * MINUTE, user_agent=42.0)  # not a string: ignored
    values = builtin_values(v.profile)
    assert values["active_platform"] == "ios"
    assert values["active_browser_type"] == "Mobile Safari"
    assert values["lifetime_platforms_used"] == {"ios": 1.0}


def test_definitions_may_read_them_and_the_engine_knows_every_one_the_validator_does() -> None:
    document = definitions_from_dict(
        {
            "audiences": [
                {
                    "id": "safari_on_ios",
                    "expression": {
                        "all": {
                            "items": [
                                {
                                    "condition": cond(
                                        attr("os_types_used"), "contains", const("iOS")
                                    )
                                },
                                {
                                    "condition": {
                                        "input": attr("lifetime_browser_types_used"),
                                        "operator": "tally_key_value",
                                        "key": "Mobile Safari",
                                        "key_operator": "greater_than_or_equal",
                                        "value": const(2),
                                    }
                                },
                            ]
                        }
                    },
                }
            ]
        }
    )
    assert validate(document) == []
    for builtin in BUILTIN_ATTRIBUTES.values():
        if builtin.id == "unbadged":  # depends on the document: see is_unbadged
            continue
        assert BUILTIN_TYPES[builtin.id] == builtin.type, builtin.id
        assert (builtin.id in VISIT_BUILTINS) == (builtin.scope == pb.ATTRIBUTE_SCOPE_VISIT)


def test_stitching_adds_up_the_lifetime_tallies_of_both_profiles() -> None:
    defs = _defs()
    phone = Visitor(defs, visitor_id="phone")
    phone.send("view", T0, user_agent=IPHONE_SAFARI)
    laptop = Visitor(defs, visitor_id="laptop")
    laptop.send("view", T0 + MINUTE, user_agent=MAC_CHROME)
    laptop.send("view", T0 + 3 * HOUR, user_agent=MAC_CHROME)
    merged = merge_profiles(
        defs,
        phone.profile,
        laptop.profile,
        attribute_id="email",
        value="ann@example.com",
        event=None,
        stitch_id="s1",
        now_ms=T0 + 4 * HOUR,
    ).state
    values = builtin_values(merged)
    assert values["lifetime_device_types_used"] == {"Desktop": 2.0, "Mobile": 1.0}
    assert values["lifetime_device_types_used.favorite"] == "Desktop"
