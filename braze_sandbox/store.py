"""In-memory user store: profiles, identifiers, events, purchases and cohort membership.

(Over 400 lines on purpose: one user model (identifiers, events, purchases, cohort
membership) that every endpoint reads and writes and that must stay consistent across them.)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from braze_sandbox.attributes import apply_attribute
from braze_sandbox.subscriptions import GROUPS_FIELD, merged_groups
from braze_sandbox.timestamps import isoformat

IdentifierKind = Literal["external_id", "braze_id", "user_alias", "email", "phone"]
#: Profile fields that live at the top level of an export rather than in custom_attributes.
STANDARD_FIELDS = frozenset(
    {
        "country",
        "current_location",
        "date_of_first_session",
        "date_of_last_session",
        "dob",
        "email",
        "email_subscribe",
        "email_open_tracking_disabled",
        "email_click_tracking_disabled",
        "facebook",
        "first_name",
        "gender",
        "home_city",
        "language",
        "last_name",
        "marked_email_as_spam_at",
        "phone",
        "push_subscribe",
        "push_tokens",
        "subscription_groups",
        "time_zone",
        "twitter",
        "image_url",
    }
)


@dataclass(frozen=True)
class Identifier:
    """How a request object names its user."""

    kind: IdentifierKind
    value: str
    """The id, email or phone; for ``user_alias`` the ``alias_name``."""
    alias_label: str | None = None
    """The ``alias_label`` for ``user_alias`` identifiers."""


@dataclass(frozen=True)
class StoredEvent:
    """A custom event as recorded on a profile."""

    name: str
    time: datetime
    properties: dict[str, Any]
    app_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "name": self.name,
            "time": isoformat(self.time),
            "properties": self.properties,
            "app_id": self.app_id,
        }


@dataclass(frozen=True)
class StoredPurchase:
    """A purchase as recorded on a profile."""

    product_id: str
    currency: str
    price: float
    quantity: int
    time: datetime
    properties: dict[str, Any]
    app_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "product_id": self.product_id,
            "currency": self.currency,
            "price": self.price,
            "quantity": self.quantity,
            "time": isoformat(self.time),
            "properties": self.properties,
            "app_id": self.app_id,
        }


@dataclass
class User:
    """One profile. Tests read these objects; only the store mutates them."""

    braze_id: str
    external_id: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    """alias_label -> alias_name ("only one alias_name per alias_label")."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Standard and custom attributes, e.g. ``email``, ``first_name``, ``loyalty_points``."""
    events: list[StoredEvent] = field(default_factory=list)
    purchases: list[StoredPurchase] = field(default_factory=list)
    cohorts: set[tuple[str, str]] = field(default_factory=set)
    """(partner, cohort_id) pairs the user belongs to."""
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def email(self) -> str | None:
        """The profile's email, if set."""
        value = self.attributes.get("email")
        return value if isinstance(value, str) else None

    @property
    def phone(self) -> str | None:
        """The profile's phone, if set."""
        value = self.attributes.get("phone")
        return value if isinstance(value, str) else None

    def events_named(self, name: str) -> list[StoredEvent]:
        """Events with the given name, oldest first."""
        return [e for e in self.events if e.name == name]

    def to_dict(self) -> dict[str, Any]:
        """Export-like JSON view (standard fields at top level, the rest in custom_attributes)."""
        return {
            "braze_id": self.braze_id,
            "external_id": self.external_id,
            "user_aliases": [
                {"alias_name": name, "alias_label": label} for label, name in self.aliases.items()
            ],
            **{k: v for k, v in self.attributes.items() if k in STANDARD_FIELDS},
            "custom_attributes": {
                k: v for k, v in self.attributes.items() if k not in STANDARD_FIELDS
            },
            "custom_events": [e.to_dict() for e in self.events],
            "purchases": [p.to_dict() for p in self.purchases],
            "cohorts": [{"partner": p, "cohort_id": c} for p, c in sorted(self.cohorts)],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Cohort:
    """A partner cohort and its members (by braze_id)."""

    partner: str
    cohort_id: str
    name: str | None = None
    created_at: str | None = None
    members: set[str] = field(default_factory=set)


class UserStore:
    """Profiles with the identifier indexes Braze resolves objects through."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._ids = itertools.count(1)
        self._by_braze_id: dict[str, User] = {}
        self._by_external_id: dict[str, User] = {}
        self._by_alias: dict[tuple[str, str], User] = {}
        self._by_email: dict[str, set[str]] = {}
        self._by_phone: dict[str, set[str]] = {}
        self.cohorts: dict[tuple[str, str], Cohort] = {}
        """(partner, cohort_id) -> cohort."""

    # --- lookups ---------------------------------------------------------------------------

    @property
    def users(self) -> list[User]:
        """Every profile, in creation order."""
        return list(self._by_braze_id.values())

    def __len__(self) -> int:
        return len(self._by_braze_id)

    def get(self, external_id: str) -> User | None:
        """Profile with this external_id."""
        return self._by_external_id.get(external_id)

    def get_by_alias(self, alias_name: str, alias_label: str) -> User | None:
        """Profile holding this alias."""
        return self._by_alias.get((alias_label, alias_name))

    def get_by_braze_id(self, braze_id: str) -> User | None:
        """Profile with this braze_id."""
        return self._by_braze_id.get(braze_id)

    def find_by_email(self, email: str, prioritization: Sequence[str] = ()) -> list[User]:
        """Profiles with this email, best candidate first (see :meth:`_prioritize`)."""
        return self._prioritize(self._by_email.get(email.lower(), set()), prioritization)

    def find_by_phone(self, phone: str, prioritization: Sequence[str] = ()) -> list[User]:
        """Profiles with this phone, best candidate first."""
        return self._prioritize(self._by_phone.get(phone, set()), prioritization)

    def find(self, identifier: Identifier) -> User | None:
        """Resolve an identifier the way /users/track does."""
        if identifier.kind == "external_id":
            return self.get(identifier.value)
        if identifier.kind == "braze_id":
            return self.get_by_braze_id(identifier.value)
        if identifier.kind == "user_alias":
            return self.get_by_alias(identifier.value, identifier.alias_label or "")
        # Email/phone lookups prefer "the most recently updated profile with an external ID",
        # then the most recently updated profile.
        candidates = (
            self.find_by_email(identifier.value)
            if identifier.kind == "email"
            else self.find_by_phone(identifier.value)
        )
        return candidates[0] if candidates else None

    # --- mutations -------------------------------------------------------------------------

    def create(self, identifier: Identifier) -> User:
        """New profile carrying ``identifier`` (braze_id identifiers cannot create profiles)."""
        now = self._clock()
        user = User(braze_id=f"{next(self._ids):024x}", created_at=now, updated_at=now)
        self._by_braze_id[user.braze_id] = user
        if identifier.kind == "external_id":
            self._set_external_id(user, identifier.value)
        elif identifier.kind == "user_alias":
            self._add_alias(user, identifier.value, identifier.alias_label or "")
        elif identifier.kind in ("email", "phone"):
            self.set_attributes(user, {identifier.kind: identifier.value}, merge_objects=False)
        else:
            raise ValueError("profiles cannot be created from a braze_id")
        return user

    def set_attributes(
        self,
        user: User,
        updates: dict[str, Any],
        *,
        merge_objects: bool,
        max_array_length: int = 500,
    ) -> int:
        """Apply attribute updates; returns the data points used (one per key)."""
        for key, value in updates.items():
            old_email, old_phone = user.email, user.phone
            if key == GROUPS_FIELD and isinstance(value, list):
                # Each entry sets one group; groups the update does not name keep their state.
                user.attributes[key] = merged_groups(user.attributes.get(key), value)
                continue
            apply_attribute(
                user.attributes,
                key,
                value,
                merge_objects=merge_objects,
                max_array_length=max_array_length,
            )
            if key == "email":
                self._reindex(self._by_email, user, _lower(old_email), _lower(user.email))
            elif key == "phone":
                self._reindex(self._by_phone, user, old_phone, user.phone)
        self._touch(user)
        return len(updates)

    def add_event(self, user: User, event: StoredEvent) -> None:
        """Record a custom event."""
        user.events.append(event)
        self._touch(user)

    def add_purchase(self, user: User, purchase: StoredPurchase) -> None:
        """Record a purchase."""
        user.purchases.append(purchase)
        self._touch(user)

    def delete(self, user: User) -> None:
        """Remove a profile and every index and cohort entry pointing at it."""
        self._by_braze_id.pop(user.braze_id, None)
        if user.external_id is not None:
            self._by_external_id.pop(user.external_id, None)
        for label, name in user.aliases.items():
            self._by_alias.pop((label, name), None)
        self._reindex(self._by_email, user, _lower(user.email), None)
        self._reindex(self._by_phone, user, user.phone, None)
        for key in user.cohorts:
            cohort = self.cohorts.get(key)
            if cohort is not None:
                cohort.members.discard(user.braze_id)

    def add_alias(self, user: User, alias_name: str, alias_label: str) -> None:
        """Give ``user`` an alias (/users/alias/new for an identified user)."""
        self._add_alias(user, alias_name, alias_label)
        self._touch(user)

    def identify(
        self, source: User, external_id: str, *, merge: bool, alias: tuple[str, str] | None
    ) -> bool:
        """Attach ``external_id`` to an unidentified profile, merging if it already exists.

        Args:
            source: The alias-only / email-only / phone-only profile.
            external_id: The identified user's id.
            merge: ``merge_behavior == "merge"``: copy the source's attributes the target lacks,
                and its events, purchases and cohorts. Otherwise only the alias moves.
            alias: (alias_label, alias_name) to move to the identified profile.

        Returns:
            False when nothing happened (source already identified, or label conflict).
        """
        if source.external_id is not None:
            return False
        target = self.get(external_id)
        if target is None:
            self._set_external_id(source, external_id)
            self._touch(source)
            return True
        if target is source:
            return False
        if alias is not None and alias[0] in target.aliases:
            # "If a user already exists with the external_id and has an existing alias with the
            # same label ... the user profiles are not combined."
            return False
        self.delete(source)
        if alias is not None:
            self._add_alias(target, alias[1], alias[0])
        if merge:
            missing = {k: v for k, v in source.attributes.items() if k not in target.attributes}
            self.set_attributes(target, missing, merge_objects=False)
            target.events.extend(source.events)
            target.purchases.extend(source.purchases)
            for key in source.cohorts:
                self._join(target, key)
        self._touch(target)
        return True

    def merge(self, source: User, target: User | None, *, keep: tuple[str, Any]) -> None:
        """/users/merge: ``source`` into ``target`` (Braze's documented merge: the kept user
        keeps its attributes and gains the ones it lacks, plus every event, purchase and
        cohort of ``source``; ``source`` is removed). With no ``target`` (undocumented),
        ``source`` takes the kept identifier ``keep`` = (kind, value) instead."""
        if target is None:
            kind, value = keep
            if kind == "external_id":
                if source.external_id is not None:
                    self._by_external_id.pop(source.external_id, None)
                self._set_external_id(source, value)
            elif kind == "user_alias":
                self._add_alias(source, value[0], value[1])
            self._touch(source)
            return
        self.delete(source)
        missing = {k: v for k, v in source.attributes.items() if k not in target.attributes}
        self.set_attributes(target, missing, merge_objects=False)
        target.events.extend(source.events)
        target.purchases.extend(source.purchases)
        for key in source.cohorts:
            self._join(target, key)
        self._touch(target)

    def upsert_cohort(
        self, partner: str, cohort_id: str, name: str | None, created_at: str | None
    ) -> Cohort:
        """Create or rename a cohort."""
        cohort = self.cohorts.get((partner, cohort_id))
        if cohort is None:
            cohort = self.cohorts[(partner, cohort_id)] = Cohort(partner, cohort_id)
        if name is not None:
            cohort.name = name
        if created_at is not None:
            cohort.created_at = created_at
        return cohort

    def change_membership(self, partner: str, cohort_id: str, user: User, remove: bool) -> bool:
        """Add or remove ``user``; returns whether membership changed."""
        key = (partner, cohort_id)
        if remove:
            if key not in user.cohorts:
                return False
            user.cohorts.discard(key)
            self.upsert_cohort(partner, cohort_id, None, None).members.discard(user.braze_id)
            return True
        return self._join(user, key)

    def drop_cohort(self, partner: str, cohort_id: str) -> bool:
        """Delete a cohort and every membership in it (as deleting it in the dashboard);
        returns whether it existed."""
        cohort = self.cohorts.pop((partner, cohort_id), None)
        if cohort is None:
            return False
        for braze_id in cohort.members:
            user = self._by_braze_id.get(braze_id)
            if user is not None:
                user.cohorts.discard((partner, cohort_id))
        return True

    def cohort_members(self, partner: str, cohort_id: str) -> list[User]:
        """Current members of a cohort."""
        cohort = self.cohorts.get((partner, cohort_id))
        if cohort is None:
            return []
        return [self._by_braze_id[b] for b in sorted(cohort.members) if b in self._by_braze_id]

    def clear(self) -> None:
        """Drop every profile and cohort."""
        self._by_braze_id.clear()
        self._by_external_id.clear()
        self._by_alias.clear()
        self._by_email.clear()
        self._by_phone.clear()
        self.cohorts.clear()

    # --- helpers ---------------------------------------------------------------------------

    def _join(self, user: User, key: tuple[str, str]) -> bool:
        if key in user.cohorts:
            return False
        user.cohorts.add(key)
        self.upsert_cohort(key[0], key[1], None, None).members.add(user.braze_id)
        return True

    def _set_external_id(self, user: User, external_id: str) -> None:
        user.external_id = external_id
        self._by_external_id[external_id] = user

    def _add_alias(self, user: User, alias_name: str, alias_label: str) -> None:
        old_name = user.aliases.get(alias_label)
        if old_name is not None:
            self._by_alias.pop((alias_label, old_name), None)
        user.aliases[alias_label] = alias_name
        self._by_alias[(alias_label, alias_name)] = user

    def _touch(self, user: User) -> None:
        user.updated_at = self._clock()

    @staticmethod
    def _reindex(index: dict[str, set[str]], user: User, old: str | None, new: str | None) -> None:
        if old is not None and old in index:
            index[old].discard(user.braze_id)
            if not index[old]:
                del index[old]
        if new is not None and user.braze_id:
            index.setdefault(new, set()).add(user.braze_id)

    def _prioritize(self, braze_ids: Iterable[str], prioritization: Sequence[str]) -> list[User]:
        users = [self._by_braze_id[b] for b in braze_ids if b in self._by_braze_id]
        if "identified" in prioritization:
            users = [u for u in users if u.external_id is not None]
        elif "unidentified" in prioritization:
            users = [u for u in users if u.external_id is None]
        if "least_recently_updated" in prioritization:
            return sorted(users, key=lambda u: u.updated_at)
        # Default order: identified profiles first, each group most recently updated first.
        return sorted(users, key=lambda u: (u.external_id is not None, u.updated_at), reverse=True)


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None
