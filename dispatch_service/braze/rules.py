"""Braze's payload rules, in one place: what a /users/track, /users/delete or /users/identify
object may hold (reference/braze-rest-api.md §1.3-§1.7).

Intake (``dispatch_service.validation``, through ``admission.py``) and the payload builder
(``payload.py``, ``users.py``, ``values.py``) both ask these functions, so an action that intake
accepts is one the builder can turn into a request Braze accepts. Each ``*_problem`` function
returns ``None`` for a valid input, or a short sentence saying why Braze would refuse it.

Every limit is enforced by refusing the action at intake, never by truncating it (README,
"Braze payload rules"): Braze documents these as limits and refuses the object (a minor
error, then a dead letter), and a silently shortened value (an id, a URL, a list that lost
its oldest items) would look valid while being wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

#: "String attributes can be up to 255 characters long"; event and purchase property values
#: ("255 characters or fewer"), array items, product_id and property names alike.
MAX_STRING_LENGTH = 255
#: Attribute names and event names. Braze documents no limit for them (open item 8); the
#: 255 of nested keys and property names keeps them in step.
MAX_NAME_LENGTH = 255
#: "The `external_id` exceeds the maximum allowed length of 987 bytes".
MAX_EXTERNAL_ID_BYTES = 987
#: external_ids Braze refuses as "blacklisted and disallowed" dummies (compared trimmed and
#: case-insensitively), as the strict sandbox does.
BLOCKED_EXTERNAL_IDS = frozenset(
    {"null", "none", "nil", "undefined", "n/a", "-1", "0", "anonymous", "unknown"}
)
#: "The default and maximum number of elements in an array is 500"; Braze drops the oldest
#: items beyond it, so a longer array could never arrive whole.
MAX_ARRAY_ITEMS = 500
#: "Each custom event or purchase can have up to 256 distinct custom event properties ...
#: only the first 256 will be captured".
MAX_PROPERTIES = 256
#: Property payloads: events "up to 100 KB", purchases "up to 50 KB" (decimal, the stricter
#: reading, like the planner's 100 KB object cap).
EVENT_PROPERTIES_MAX_BYTES = 100_000
PURCHASE_PROPERTIES_MAX_BYTES = 50_000
#: Purchase quantity: "must be <= 100" (0 in the API means the default, 1).
MAX_QUANTITY = 100
#: Increments are whole numbers; beyond 2**53 a double no longer holds every integer.
MAX_INCREMENT = 2**53

#: Keys of an attributes object that are identifiers or flags, never attribute names.
RESERVED_ATTRIBUTE_NAMES = frozenset(
    {"external_id", "braze_id", "user_alias", "alias_name", "alias_label",
     "_update_existing_only", "_merge_objects", "push_token_import", "app_id"}
)  # fmt: skip
#: Standard fields whose value is an object or an array of objects, which an action's values
#: (scalars and lists of scalars) cannot express: only null (removal) is deliverable.
OBJECT_FIELDS = frozenset(
    {"current_location", "facebook", "twitter", "push_tokens", "subscription_groups"}
)
BOOLEAN_FIELDS = frozenset({"email_open_tracking_disabled", "email_click_tracking_disabled"})
EVENT_RESERVED_PROPERTIES = frozenset({"time", "event_name"})
PURCHASE_RESERVED_PROPERTIES = frozenset(
    {"time", "product_id", "quantity", "event_name", "price", "currency"}
)
SUBSCRIPTION_STATES = ("opted_in", "subscribed", "unsubscribed")
GENDERS = ("M", "F", "O", "N", "P")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9()\-. ]{7,20}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_DOB = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# protobuf Timestamp's documented range: 0001-01-01 to 9999-12-31.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


# --- identifiers ---------------------------------------------------------------------------


def external_id_problem(external_id: str) -> str | None:
    """Braze refuses external_ids over 987 bytes and a list of dummy ids."""
    if not external_id:
        return "external_id is required"
    if len(external_id.encode("utf-8")) > MAX_EXTERNAL_ID_BYTES:
        return f"external_id exceeds {MAX_EXTERNAL_ID_BYTES} bytes"
    if external_id.strip().lower() in BLOCKED_EXTERNAL_IDS:
        return f"Braze refuses the placeholder external_id {external_id!r}"
    return None


def email_problem(email: str) -> str | None:
    """An email Braze can match or store: one ``@``, no spaces, a dot in the domain."""
    if not _EMAIL.match(email):
        return "must be an email address such as name@example.com"
    return None


def phone_problem(phone: str) -> str | None:
    """A phone number Braze accepts: digits (7 to 20, with optional + ( ) - . and spaces)."""
    if not _PHONE.match(phone):
        return "must be a phone number such as +15555550100 (E.164)"
    return None


# --- attributes ----------------------------------------------------------------------------


def attribute_name_problem(name: str, identifier_kind: str) -> str | None:
    """Attribute names: not empty, no surrounding spaces (Braze strips them, so two names
    would collide), no leading ``$`` (Braze's operator prefix), not an identifier or flag."""
    stripped = name.strip()
    if not stripped:
        return "attribute names must not be empty"
    if stripped != name:
        return "attribute names must not start or end with spaces"
    if len(name) > MAX_NAME_LENGTH:
        return f"attribute names are at most {MAX_NAME_LENGTH} characters"
    if name.startswith("$"):
        return "attribute names must not start with '$'"
    if name in RESERVED_ATTRIBUTE_NAMES or name == identifier_kind:
        return f"{name!r} is an identifier or flag, not an attribute"
    if name == "email" and identifier_kind == "phone":
        # Without a primary identifier Braze looks a user up by email before phone.
        return (
            "a user identified by phone cannot get an email here (Braze would look the user "
            "up by that email); identify the user by external_id"
        )
    return None


STANDARD_FIELDS = frozenset(
    {"email", "phone", "email_subscribe", "push_subscribe", "gender", "dob"}
    | OBJECT_FIELDS
    | BOOLEAN_FIELDS
)
"""The attribute names :func:`standard_attribute_problem` checks (any other name passes)."""


def standard_attribute_problem(name: str, value: Any) -> str | None:
    """Braze's standard profile fields take only set values of their own format (or null).

    ``value`` is the attribute's Braze JSON (an ``{"inc": ...}`` or ``{"add": ...}`` edit of
    a standard field is refused like any other wrong value).
    """
    if value is None:
        return None
    if name == "email" and not (isinstance(value, str) and _EMAIL.match(value)):
        return "email must be set to an email address such as name@example.com (or null)"
    if name == "phone" and not isinstance(value, str):
        return "phone must be set to a string (or null)"
    if name in ("email_subscribe", "push_subscribe") and value not in SUBSCRIPTION_STATES:
        return f"{name} must be set to one of {', '.join(SUBSCRIPTION_STATES)} (or null)"
    if name == "gender" and not (isinstance(value, str) and value.upper() in GENDERS):
        return f"gender must be set to one of {', '.join(GENDERS)} (or null)"
    if name == "dob" and not (isinstance(value, str) and _DOB.match(value)):
        return "dob must be set to a YYYY-MM-DD string (or null)"
    if name in OBJECT_FIELDS:
        return f"{name} takes an object in Braze; only null (removal) can be sent"
    if name in BOOLEAN_FIELDS and not isinstance(value, bool):
        return f"{name} must be set to a boolean (or null)"
    return None


#: States of a subscription group ("subscribed" | "unsubscribed").
SUBSCRIPTION_GROUP_STATES = ("subscribed", "unsubscribed")


def subscription_group_problems(group_id: str, state: str) -> list[tuple[str, str]]:
    """(part, problem) for a ``subscription_groups`` entry Braze would refuse
    (BAD_SUBSCRIPTION_GROUP_ID, BAD_SUBSCRIPTION_GROUP_STATE)."""
    problems: list[tuple[str, str]] = []
    if not group_id.strip():
        problems.append(("subscription_group_id", "the subscription group id is required"))
    elif (too_long := string_problem(group_id)) is not None:
        problems.append(("subscription_group_id", too_long))
    if state not in SUBSCRIPTION_GROUP_STATES:
        problems.append(
            (
                "subscription_state",
                f"must be one of {', '.join(SUBSCRIPTION_GROUP_STATES)} (got {state!r})",
            )
        )
    return problems


def string_problem(text: str) -> str | None:
    """String values (attributes, array items, property values): at most 255 characters."""
    if len(text) > MAX_STRING_LENGTH:
        return f"strings may hold at most {MAX_STRING_LENGTH} characters (this one has {len(text)})"
    return None


def array_problem(items: Sequence[Any]) -> str | None:
    """Array attributes hold at most 500 items."""
    if len(items) > MAX_ARRAY_ITEMS:
        return f"arrays hold at most {MAX_ARRAY_ITEMS} items (this one has {len(items)})"
    return None


def array_edit_problem(items: Sequence[Any]) -> str | None:
    """An add or remove edit lists 1 to 500 items."""
    if not items:
        return "must list at least one item"
    return array_problem(items)


def number_problem(number: float) -> str | None:
    """JSON has no NaN or infinity."""
    if not math.isfinite(number):
        return "numbers must be finite (no NaN or infinity)"
    return None


def increment_problem(amount: float) -> str | None:
    """ "Integer custom attributes may be incremented by positive or negative integers"."""
    if not math.isfinite(amount) or not amount.is_integer():
        return "Braze increments by whole numbers only"
    if abs(amount) > MAX_INCREMENT:
        return f"increments are at most {MAX_INCREMENT:,} either way"
    return None


def timestamp_problem(stamp: Timestamp) -> str | None:
    """A protobuf Timestamp that can be written as an ISO 8601 time."""
    if not (_MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS and 0 <= stamp.nanos < 1_000_000_000):
        return "must be a valid timestamp (years 1 to 9999)"
    return None


# --- events and purchases ------------------------------------------------------------------


def event_name_problem(name: str) -> str | None:
    """Event names are required (not blank)."""
    if not name.strip():
        return "the event name is required"
    if len(name) > MAX_NAME_LENGTH:
        return f"event names are at most {MAX_NAME_LENGTH} characters"
    return None


def property_name_problem(name: str, reserved: frozenset[str]) -> str | None:
    """ "Non-empty strings less than or equal to 255 characters, with no leading dollar signs"
    and none of the reserved keys."""
    if not name or len(name) > MAX_STRING_LENGTH or name.startswith("$"):
        return f"property names are 1 to {MAX_STRING_LENGTH} characters, not starting with '$'"
    if name in reserved:
        return f"{name!r} is reserved by Braze"
    return None


def properties_problem(count: int, size: int, max_bytes: int) -> str | None:
    """At most 256 properties, and at most ``max_bytes`` of compact JSON."""
    if count > MAX_PROPERTIES:
        return f"at most {MAX_PROPERTIES} properties (Braze drops the rest); got {count}"
    if size > max_bytes:
        return f"properties are at most {max_bytes:,} bytes as JSON (these are {size:,})"
    return None


def product_id_problem(product_id: str) -> str | None:
    """product_id "can be up to 255 characters" and is required."""
    if not product_id.strip():
        return "product_id is required"
    if len(product_id) > MAX_STRING_LENGTH:
        return f"product_id is at most {MAX_STRING_LENGTH} characters"
    return None


def currency_problem(currency: str) -> str | None:
    """An ISO 4217 alphabetic code, upper case."""
    if not currency:
        return "currency is required"
    if not _CURRENCY.match(currency):
        return "currency must be an ISO 4217 alphabetic code such as USD"
    return None


def quantity_problem(quantity: int) -> str | None:
    """1 to 100 (0 in the API means 1)."""
    if not 0 <= quantity <= MAX_QUANTITY:
        return f"quantity must be 1 to {MAX_QUANTITY} (0 means 1)"
    return None


# --- user aliases --------------------------------------------------------------------------


def alias_problems(alias_name: str, alias_label: str) -> list[tuple[str, str]]:
    """(part, problem) for each missing part of a user alias; Braze needs both."""
    problems: list[tuple[str, str]] = []
    if not alias_name:
        problems.append(("alias_name", "is required in a user alias"))
    if not alias_label:
        problems.append(("alias_label", "is required in a user alias"))
    return problems
