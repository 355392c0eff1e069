"""Recording where visits enter and leave and whether they were referred, for the preloaded
Entry URL, Exit URL and referred / direct visit attributes of Tealium's §1 (read through
`builtin_values`).

The page is the event data field ``current_url`` and the referrer ``referring_url`` (Tealium's
"Current URL" and "Referring URL" event attributes). A visit is *referred* when its first
event carries a referring URL on another host than its current URL (any referring URL when
the current URL is unknown), otherwise *direct*; each visit counts once in the visitor's
``referred_visits`` or ``direct_visits``. A visit whose first event carries neither URL is
neither (the four stay unassigned until a visit tells, so profiles of sources without
page data do not change). URLs longer than the visit string limit (1,000
characters) are not kept, as Tealium does not save such visit strings.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from profile_service.engine.state import NormalizedEvent, ProfileState, VisitState

CURRENT_URL_FIELD: Final = "current_url"
REFERRING_URL_FIELD: Final = "referring_url"
MAX_URL_LENGTH: Final = 1_000


def _url(event: NormalizedEvent, field: str) -> str:
    value = event.data.get(field)
    if isinstance(value, str) and 0 < len(value) <= MAX_URL_LENGTH:
        return value
    return ""


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:  # e.g. an invalid IPv6 literal
        return ""


def is_referred(current_url: str, referring_url: str) -> bool:
    """True if ``referring_url`` names another site than ``current_url``."""
    if not referring_url:
        return False
    if not current_url:
        return True
    return _host(referring_url) != _host(current_url)


def record_page(
    state: ProfileState, visit: VisitState, event: NormalizedEvent, first_event: bool
) -> None:
    """Update the visit's entry and exit URLs and, on its first event, the referral."""
    url = _url(event, CURRENT_URL_FIELD)
    if url:
        if not visit.entry_url:
            visit.entry_url = url
        visit.exit_url = url
    if first_event:
        referrer = _url(event, REFERRING_URL_FIELD)
        if not url and not referrer:
            return  # the event says nothing about pages: the visit stays unclassified
        visit.referred = is_referred(url, referrer)
        if visit.referred:
            state.referred_visits += 1
        else:
            state.direct_visits += 1
