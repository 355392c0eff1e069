"""What a user agent string says about the visitor's browser, OS and device, for the
preloaded "active browser / OS / device" attributes (Tealium's §1 preloaded attributes).

Parsing is ua-parser's (the maintained Browserscope/uap-core rules, run by google-re2 in
linear time); this module only names the parts and sorts devices into a few types, which
ua-parser does not do:

- ``Bot``: ua-parser's device family ``Spider`` (crawlers).
- ``Tablet``: iPads, Kindles, devices ua-parser marks ``Generic_Android_Tablet``, and
  Android browsers without "Mobile" in their family (Android tablets drop the Mobile token).
- ``Mobile``: other iOS, Android and mobile-OS devices.
- ``Desktop``: a known desktop OS (Windows, macOS, Linux, Chrome OS, BSD...).
- ``Other``: anything else (e.g. ``curl``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import ua_parser

MAX_USER_AGENT_LENGTH: Final = 1_500
"""Longer user agents are read up to this length (Tealium truncates event strings there)."""

_MOBILE_OS: Final = frozenset(
    {
        "iOS",
        "Android",
        "Windows Phone",
        "BlackBerry OS",
        "BlackBerry Tablet OS",
        "KaiOS",
        "Firefox OS",
        "Symbian OS",
        "Tizen",
        "Sailfish",
        "webOS",
        "HarmonyOS",
    }
)
_DESKTOP_OS: Final = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Debian",
        "Fedora",
        "Red Hat",
        "SUSE",
        "Mint",
        "Chrome OS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
    }
)
_TABLET_MARKERS: Final = ("iPad", "Kindle", "Tablet")


@dataclass(frozen=True, slots=True)
class AgentTypes:
    """The named parts of one user agent (``Other`` where ua-parser knows nothing)."""

    browser_type: str
    """ua-parser's browser family, e.g. ``Chrome``, ``Mobile Safari``, ``Firefox``."""
    browser_version: str
    """The family and major version, e.g. ``Chrome 120`` (the family alone without one)."""
    os_type: str
    """ua-parser's OS family, e.g. ``Mac OS X``, ``iOS``, ``Windows``, ``Android``."""
    device_type: str
    """``Desktop``, ``Mobile``, ``Tablet``, ``Bot`` or ``Other``."""


@functools.lru_cache(maxsize=4096)
def agent_types(user_agent: str) -> AgentTypes | None:
    """The parts of ``user_agent``; ``None`` for an empty one."""
    text = user_agent[:MAX_USER_AGENT_LENGTH].strip()
    if not text:
        return None
    result = ua_parser.parse(text)
    browser = result.user_agent.family if result.user_agent is not None else "Other"
    major = result.user_agent.major if result.user_agent is not None else None
    os_type = result.os.family if result.os is not None else "Other"
    device = result.device
    family = device.family if device is not None else "Other"
    brand = (device.brand or "") if device is not None else ""
    return AgentTypes(
        browser_type=browser,
        browser_version=f"{browser} {major}" if major and browser != "Other" else browser,
        os_type=os_type,
        device_type=_device_type(browser, os_type, family, brand),
    )


def _device_type(browser: str, os_type: str, family: str, brand: str) -> str:
    if family == "Spider":
        return "Bot"
    if any(marker in family or marker in brand for marker in _TABLET_MARKERS):
        return "Tablet"
    if os_type == "Android" and browser != "Other" and "Mobile" not in browser:
        return "Tablet"
    if os_type in _MOBILE_OS:
        return "Mobile"
    if os_type in _DESKTOP_OS:
        return "Desktop"
    return "Other"
