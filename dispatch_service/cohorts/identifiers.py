"""Cohort members: the one identifier a change names, and its field in the pending hash.

Braze's cohort import matches identified users by ``external_id`` or user alias and anonymous
users by device id ("If you pass in a device ID for an identified user, Braze will not add or
remove that user"). A change therefore names exactly one identifier, chosen by priority
external_id > user_alias > device_id; braze_id, email and phone cannot be matched and are
refused at intake.

Pending-hash fields (see ``service_common.keys.CohortKeys.pending``): ``e:<external_id>``,
``d:<device_id>``, ``a:<JSON [alias_label, alias_name]>`` (JSON keeps any characters of the
two parts apart). Values: :data:`ADD` or :data:`REMOVE`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from crowd.dispatch.v1.action_pb2 import CohortChange
from dispatch_service.braze.users import MAX_EXTERNAL_ID_BYTES
from service_common.errors import Violations

__all__ = ["ADD", "MAX_IDENTIFIER_BYTES", "REMOVE", "Member", "member_of_change"]

ADD = "1"
"""Pending value: the member should be in the cohort."""
REMOVE = "0"
"""Pending value: the member should leave the cohort."""

#: Braze matches at most 987 bytes of external_id; the same cap keeps device ids and alias
#: parts (undocumented limits) from bloating requests.
MAX_IDENTIFIER_BYTES = MAX_EXTERNAL_ID_BYTES

Kind = Literal["e", "d", "a"]


@dataclass(frozen=True)
class Member:
    """One identifier of a cohort change."""

    kind: Kind
    """``e`` external_id, ``d`` device id, ``a`` user alias."""
    value: str
    """The external_id, the device id, or the alias_name."""
    label: str = ""
    """The alias_label (aliases only)."""

    @property
    def field(self) -> str:
        """The member's field in the pending hash."""
        if self.kind == "a":
            return "a:" + json.dumps([self.label, self.value], ensure_ascii=False)
        return f"{self.kind}:{self.value}"

    @classmethod
    def from_field(cls, field: str) -> Member:
        """Decode a pending-hash field (inverse of :attr:`field`).

        Raises:
            ValueError: not a field this module wrote.
        """
        kind, sep, rest = field.partition(":")
        if not sep or kind not in ("e", "d", "a"):
            raise ValueError("not a cohort member field")
        if kind == "a":
            label, name = json.loads(rest)
            return cls("a", str(name), str(label))
        return cls("e" if kind == "e" else "d", rest)


def _too_long(value: str) -> bool:
    return len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES


def member_of_change(change: CohortChange, violations: Violations, prefix: str) -> Member | None:
    """The member a change names, or ``None`` after adding its violations under ``prefix``."""
    user = change.user
    limit = f"must be at most {MAX_IDENTIFIER_BYTES} bytes"
    if user.external_id:
        if _too_long(user.external_id):
            violations.add(f"{prefix}.user.external_id", limit)
            return None
        return Member("e", user.external_id)
    alias = user.user_alias
    if alias.alias_name or alias.alias_label:
        bad = False
        for name, value in (("alias_name", alias.alias_name), ("alias_label", alias.alias_label)):
            if not value:
                violations.add(f"{prefix}.user.user_alias.{name}", "is required in a user alias")
                bad = True
            elif _too_long(value):
                violations.add(f"{prefix}.user.user_alias.{name}", limit)
                bad = True
        return None if bad else Member("a", alias.alias_name, alias.alias_label)
    if change.device_id:
        if _too_long(change.device_id):
            violations.add(f"{prefix}.device_id", limit)
            return None
        return Member("d", change.device_id)
    if user.braze_id or user.email or user.phone:
        violations.add(
            f"{prefix}.user",
            "cohort import matches users only by external_id, user_alias or device_id "
            "(not braze_id, email or phone)",
        )
    else:
        violations.add(
            f"{prefix}.user", "needs an identifier: external_id, user_alias or device_id"
        )
    return None
