"""Packing pending cohort changes into /partners/{partner}/cohorts/users requests.

Braze allows "a maximum of 1,000 user IDs per request", counting user_ids, device_ids and
aliases together, and each ``cohort_changes`` item says whether its ids are added or removed.
One request may carry an add item and a remove item, so requests are filled to 1,000 ids
whatever the mix: the number of requests is ``ceil(ids / 1000)``, the minimum possible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatch_service.cohorts.identifiers import ADD, REMOVE, Member

__all__ = ["MAX_IDS_PER_REQUEST", "MembersRequest", "plan_member_requests", "requests_needed"]

MAX_IDS_PER_REQUEST = 1000
"""Braze: "The maximum combined length of the user IDs in a single request is 1,000"."""


def requests_needed(ids: int) -> int:
    """Requests ``ids`` identifiers take at most (``ceil(ids / 1000)``)."""
    return -(-ids // MAX_IDS_PER_REQUEST)


@dataclass
class MembersRequest:
    """One /cohorts/users request: its pending fields and the values it sends for them."""

    sent: dict[str, str] = field(default_factory=dict)
    """Pending field -> value (:data:`ADD` / :data:`REMOVE`) this request carries."""

    @property
    def size(self) -> int:
        """Identifiers carried."""
        return len(self.sent)

    def cohort_changes(self) -> list[dict[str, Any]]:
        """The ``cohort_changes`` array: one item for the additions, one for the removals.

        Keys with no ids are left out (Braze needs ``user_ids`` and/or ``device_ids`` or
        ``aliases``); ``should_remove`` is always explicit.
        """
        items: list[dict[str, Any]] = []
        for value, remove in ((ADD, False), (REMOVE, True)):
            user_ids: list[str] = []
            device_ids: list[str] = []
            aliases: list[dict[str, str]] = []
            for name, wanted in self.sent.items():
                if wanted != value:
                    continue
                member = Member.from_field(name)
                if member.kind == "e":
                    user_ids.append(member.value)
                elif member.kind == "d":
                    device_ids.append(member.value)
                else:
                    aliases.append({"alias_name": member.value, "alias_label": member.label})
            if not (user_ids or device_ids or aliases):
                continue
            item: dict[str, Any] = {}
            if user_ids:
                item["user_ids"] = user_ids
            if device_ids:
                item["device_ids"] = device_ids
            if aliases:
                item["aliases"] = aliases
            item["should_remove"] = remove
            items.append(item)
        return items


def plan_member_requests(
    pending: Mapping[str, str], *, complete: bool, max_ids: int = MAX_IDS_PER_REQUEST
) -> list[MembersRequest]:
    """Requests of up to ``max_ids`` identifiers for a snapshot of pending changes.

    Args:
        pending: Field -> wanted value, one entry per identifier (the hash already keeps
            only the last change of each).
        complete: The snapshot holds every pending change. If not, a trailing request that
            is not full is left out: its changes wait for the next round, with company.
        max_ids: Identifiers per request.
    """
    requests: list[MembersRequest] = []
    current = MembersRequest()
    # Additions first, then removals: the split between requests does not matter to Braze
    # (each identifier appears once), but a stable order keeps requests reproducible.
    for wanted in (ADD, REMOVE):
        for name, value in pending.items():
            if value != wanted:
                continue
            current.sent[name] = value
            if current.size == max_ids:
                requests.append(current)
                current = MembersRequest()
    if current.size and complete:
        requests.append(current)
    return requests
