"""Braze user identifiers: choosing one by priority, and a stable key per Braze user."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from crowd.dispatch.v1.action_pb2 import UserAlias, UserIds

# Re-exported: the cohort identifiers share Braze's external_id limit.
from dispatch_service.braze.rules import MAX_EXTERNAL_ID_BYTES as MAX_EXTERNAL_ID_BYTES
from dispatch_service.braze.rules import (
    alias_problems,
    email_problem,
    external_id_problem,
    phone_problem,
)

IdentifierKind = Literal["external_id", "braze_id", "user_alias", "email", "phone"]


class IdentifierError(ValueError):
    """No usable identifier; ``field`` is the path below the user message."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(description)
        self.field = field
        self.description = description


@dataclass(frozen=True)
class BrazeUser:
    """The one identifier a Braze object carries for its user."""

    kind: IdentifierKind
    value: str
    """external_id, braze_id, email, phone, or the alias_name of a user alias."""
    alias_label: str = ""
    """alias_label (user aliases only)."""

    @property
    def key(self) -> str:
        """Stable text naming the Braze user: groups objects for coalescing and names the
        user's delta memory. JSON keeps alias names and labels with any characters apart."""
        if self.kind == "user_alias":
            return "user_alias:" + json.dumps([self.alias_label, self.value], ensure_ascii=False)
        return f"{self.kind}:{self.value}"

    def fields(self) -> dict[str, Any]:
        """The identifier as it appears in a /users/track object."""
        if self.kind == "user_alias":
            return {"user_alias": {"alias_name": self.value, "alias_label": self.alias_label}}
        return {self.kind: self.value}


def alias_user(alias: UserAlias, field: str) -> BrazeUser:
    """A user alias as a BrazeUser; both parts are required (the error names a missing one)."""
    problems = alias_problems(alias.alias_name, alias.alias_label)
    if problems:
        part, problem = problems[0]
        raise IdentifierError(f"{field}.{part}", problem)
    return BrazeUser("user_alias", alias.alias_name, alias.alias_label)


def check_external_id(external_id: str, field: str) -> None:
    """Refuse an external_id Braze would reject (rules.external_id_problem)."""
    problem = external_id_problem(external_id)
    if problem is not None:
        raise IdentifierError(field, problem)


def _checked(kind: IdentifierKind, value: str, field: str) -> BrazeUser:
    problem = email_problem(value) if kind == "email" else phone_problem(value)
    if problem is not None:
        raise IdentifierError(f"{field}.{kind}", problem)
    return BrazeUser(kind, value)


def select_user(ids: UserIds, field: str) -> BrazeUser:
    """The identifier Braze should use: external_id > braze_id > user_alias > email > phone.

    Only the chosen one is sent: Braze rejects objects with two primary identifiers, and an
    email or phone next to a primary identifier would be written as a profile attribute.

    Raises:
        IdentifierError: none is set, or the chosen one is one Braze refuses (rules.py).
    """
    if ids.external_id:
        check_external_id(ids.external_id, f"{field}.external_id")
        return BrazeUser("external_id", ids.external_id)
    if ids.braze_id:
        return BrazeUser("braze_id", ids.braze_id)
    if ids.HasField("user_alias") and (ids.user_alias.alias_name or ids.user_alias.alias_label):
        return alias_user(ids.user_alias, f"{field}.user_alias")
    if ids.email:
        return _checked("email", ids.email, field)
    if ids.phone:
        return _checked("phone", ids.phone, field)
    raise IdentifierError(
        field, "one of external_id, braze_id, user_alias, email or phone is required"
    )
