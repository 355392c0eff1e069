"""Validation of /users/track objects: identifiers, attributes, events and purchases.

(Over 400 lines on purpose: one validator per field kind of /users/track, each
mirroring one documented Braze rule; splitting would scatter one spec.)

Each ``validate_*`` function returns either a validated value or an error text. The texts
become ``{"type": ..., "input_array": ..., "index": ...}`` minor errors, the shape Braze
returns (seen in third-party fixtures; Braze documents the codes but not their wording).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from braze_sandbox.attributes import operation_of
from braze_sandbox.config import SandboxConfig
from braze_sandbox.store import Identifier, StoredEvent, StoredPurchase
from braze_sandbox.subscriptions import GROUPS_FIELD, SUBSCRIBE_FIELDS, subscription_problem
from braze_sandbox.timestamps import parse_datetime

ERR_IDENTIFIER_REQUIRED = "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
ERR_MULTIPLE_PRIMARY = (
    "Only one of 'external_id', 'braze_id' or 'user_alias' may be provided per object"
)
ERR_EXTERNAL_ID = "'external_id' must be a non-empty string"
ERR_EXTERNAL_ID_TOO_LARGE = "The 'external_id' exceeds the maximum allowed length of 987 bytes"
ERR_BLOCKLISTED = "provided external_id is blacklisted and disallowed"
ERR_USER_ALIAS = (
    "'user_alias' must be an object with non-empty string 'alias_name' and 'alias_label'"
)
ERR_BRAZE_ID = "'braze_id' must be a non-empty string"
ERR_EMAIL = "The value provided for the 'email' field is not a valid email."
ERR_PHONE = "The value provided for the 'phone' field is not a valid phone number."
ERR_NOT_OBJECT = "Each item must be a JSON object"
ERR_FLAG = "'{key}' must be a boolean"
ERR_ATTRIBUTE_NAME = "Attribute names must be non-empty strings"
ERR_STRING_TOO_LONG = "The value of '{key}' exceeds the maximum length of {limit} characters"
ERR_INC = "The 'inc' value of '{key}' must be an integer"
ERR_ARRAY_OP = "The 'add' and 'remove' values of '{key}' must be arrays of strings or numbers"
ERR_OBJECT_ARRAY_OP = "Invalid array-of-objects operation for '{key}'"
ERR_NESTED = "Invalid nested custom attribute '{key}'"
ERR_TIME_VALUE = "Invalid '$time' value for '{key}'"
ERR_ARRAY = "Array attribute '{key}' may only contain strings, numbers, booleans or objects"
ERR_GENDER = "Invalid value for 'gender': expected M, F, O, N, P or null"
ERR_DOB = "Invalid value for 'dob': expected YYYY-MM-DD"
ERR_EVENT_NAME = "'name' is required and must be a non-empty string"
ERR_TIME = "'time' is required and must be an ISO-8601 datetime string"
ERR_PROPERTIES = "Invalid 'properties' field"
ERR_APP_ID = "'app_id' must be a string"
ERR_PRODUCT_ID = "'product_id' is required and must be a non-empty string of at most 255 characters"
ERR_CURRENCY = "'currency' is required and must be a 3-letter ISO 4217 currency code"
ERR_PRICE = "'price' is required and must be a number"
ERR_QUANTITY = "'quantity' must be an integer between 1 and 100"
ERR_OBJECT_TOO_LARGE = "The object exceeds the maximum size of {limit} bytes"

PRIMARY_IDENTIFIERS = ("external_id", "braze_id", "user_alias")
#: Keys of an attributes object that are flags, not profile attributes.
CONTROL_KEYS = frozenset({"_update_existing_only", "_merge_objects", "push_token_import"})
GENDERS = frozenset({"M", "F", "O", "N", "P"})
EVENT_RESERVED_PROPERTIES = frozenset({"time", "event_name"})
PURCHASE_RESERVED_PROPERTIES = frozenset(
    {"time", "product_id", "quantity", "event_name", "price", "currency"}
)
#: "Event property objects ... up to 100 KB"; purchase properties "up to 50 KB".
EVENT_PROPERTIES_MAX_BYTES = 100 * 1024
PURCHASE_PROPERTIES_MAX_BYTES = 50 * 1024
MAX_EXTERNAL_ID_BYTES = 987

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_RE = re.compile(r"^\+?[0-9()\-. ]{7,20}$")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_DOB_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class AttributesUpdate:
    """A valid attributes object."""

    identifier: Identifier
    update_existing_only: bool
    merge_objects: bool
    updates: dict[str, Any]
    """Attribute name -> value/operation, identifiers and flags removed."""


@dataclass(frozen=True)
class EventUpdate:
    """A valid event object."""

    identifier: Identifier
    update_existing_only: bool
    event: StoredEvent


@dataclass(frozen=True)
class PurchaseUpdate:
    """A valid purchase object."""

    identifier: Identifier
    update_existing_only: bool
    purchase: StoredPurchase


def compact_size(value: Any) -> int:
    """Bytes of ``value`` serialized as compact UTF-8 JSON."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def is_valid_email(value: object) -> bool:
    """Loose syntactic check: one ``@``, no spaces, a dot in the domain."""
    return isinstance(value, str) and _EMAIL_RE.match(value) is not None


def parse_user_alias(value: object) -> tuple[str, str] | None:
    """(alias_name, alias_label) of a valid user alias object, else ``None``."""
    if not isinstance(value, dict) or set(value) != {"alias_name", "alias_label"}:
        return None
    name, label = value["alias_name"], value["alias_label"]
    if not (isinstance(name, str) and name and isinstance(label, str) and label):
        return None
    return name, label


def validate_external_id(value: object, config: SandboxConfig) -> str | None:
    """Error text for a bad external_id, ``None`` if it is fine."""
    if not isinstance(value, str) or not value:
        return ERR_EXTERNAL_ID
    if len(value.encode()) > MAX_EXTERNAL_ID_BYTES:
        return ERR_EXTERNAL_ID_TOO_LARGE
    if value.strip().lower() in config.blocked_external_ids:
        return ERR_BLOCKLISTED
    return None


def validate_identifier(obj: dict[str, Any], config: SandboxConfig) -> Identifier | str:
    """Resolve the identifier of a track object.

    One primary identifier (external_id, braze_id, user_alias) is allowed; email and phone
    identify the user only when no primary identifier is present (email wins over phone).
    """
    primaries = [key for key in PRIMARY_IDENTIFIERS if key in obj]
    if len(primaries) > 1:
        return ERR_MULTIPLE_PRIMARY
    if primaries == ["external_id"]:
        error = validate_external_id(obj["external_id"], config)
        return error or Identifier("external_id", obj["external_id"])
    if primaries == ["braze_id"]:
        braze_id = obj["braze_id"]
        if not isinstance(braze_id, str) or not braze_id:
            return ERR_BRAZE_ID
        return Identifier("braze_id", braze_id)
    if primaries == ["user_alias"]:
        alias = parse_user_alias(obj["user_alias"])
        if alias is None:
            return ERR_USER_ALIAS
        return Identifier("user_alias", alias[0], alias_label=alias[1])
    if "email" in obj and obj["email"] is not None:
        if not is_valid_email(obj["email"]):
            return ERR_EMAIL
        return Identifier("email", obj["email"])
    if "phone" in obj and obj["phone"] is not None:
        if not isinstance(obj["phone"], str) or not _PHONE_RE.match(obj["phone"]):
            return ERR_PHONE
        return Identifier("phone", obj["phone"])
    return ERR_IDENTIFIER_REQUIRED


def _update_only(obj: dict[str, Any], identifier: Identifier) -> bool | str:
    """The effective ``_update_existing_only`` flag (or an error text)."""
    value = obj.get("_update_existing_only")
    if value is None:
        # Omitted: external_id/email/phone objects create profiles; alias objects only update
        # ("When using a 'user_alias', 'Update Only' defaults to true").
        return identifier.kind in ("user_alias", "braze_id")
    if not isinstance(value, bool):
        return ERR_FLAG.format(key="_update_existing_only")
    return value


def _check_common(obj: object, config: SandboxConfig) -> tuple[dict[str, Any], Identifier] | str:
    if not isinstance(obj, dict):
        return ERR_NOT_OBJECT
    if config.max_object_bytes is not None and compact_size(obj) > config.max_object_bytes:
        return ERR_OBJECT_TOO_LARGE.format(limit=config.max_object_bytes)
    identifier = validate_identifier(obj, config)
    if isinstance(identifier, str):
        return identifier
    return obj, identifier


def validate_attributes_object(obj: object, config: SandboxConfig) -> AttributesUpdate | str:
    """Validate one item of ``attributes``."""
    checked = _check_common(obj, config)
    if isinstance(checked, str):
        return checked
    data, identifier = checked
    update_only = _update_only(data, identifier)
    if isinstance(update_only, str):
        return update_only
    merge_objects = data.get("_merge_objects", False)
    if not isinstance(merge_objects, bool):
        return ERR_FLAG.format(key="_merge_objects")
    updates: dict[str, Any] = {}
    for raw_key, value in data.items():
        if raw_key in CONTROL_KEYS or raw_key in PRIMARY_IDENTIFIERS:
            continue
        if raw_key == identifier.kind:  # email/phone used as the identifier
            continue
        key = raw_key.strip()  # "Braze strips leading and trailing spaces from attribute names"
        if not key:
            return ERR_ATTRIBUTE_NAME
        error = _validate_attribute(key, value, config)
        if error is not None:
            return error
        updates[key] = value
    return AttributesUpdate(identifier, update_only, merge_objects, updates)


def _validate_attribute(key: str, value: Any, config: SandboxConfig) -> str | None:
    """Error text for one attribute value, ``None`` if valid."""
    standard = _validate_standard_field(key, value)
    if standard is not None:
        return standard
    limit = config.max_string_length
    op = operation_of(value)
    if op == "scalar":
        if isinstance(value, str) and len(value) > limit:
            return ERR_STRING_TOO_LONG.format(key=key, limit=limit)
        return None
    if op == "inc":
        inc = value["inc"]
        return (
            None if isinstance(inc, int) and not isinstance(inc, bool) else ERR_INC.format(key=key)
        )
    if op == "array_ops":
        for part in value.values():
            if not isinstance(part, list) or not all(_is_scalar(v) for v in part):
                return ERR_ARRAY_OP.format(key=key)
            if any(isinstance(v, str) and len(v) > limit for v in part):
                return ERR_STRING_TOO_LONG.format(key=key, limit=limit)
        return None
    if op == "object_array_ops":
        return None if _valid_object_array_ops(value) else ERR_OBJECT_ARRAY_OP.format(key=key)
    if op == "time":
        return None if _valid_time_value(value) else ERR_TIME_VALUE.format(key=key)
    if op == "object":
        return None if _valid_nested(value, limit) else ERR_NESTED.format(key=key)
    if op == "array":
        if all(isinstance(v, dict) for v in value) and value:
            return (
                None if all(_valid_nested(v, limit) for v in value) else ERR_NESTED.format(key=key)
            )
        if not all(_is_scalar(v) for v in value):
            return ERR_ARRAY.format(key=key)
        if any(isinstance(v, str) and len(v) > limit for v in value):
            return ERR_STRING_TOO_LONG.format(key=key, limit=limit)
    return None


def _validate_standard_field(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if key == "email" and not is_valid_email(value):
        return ERR_EMAIL
    if key == "phone" and not isinstance(value, str):
        return ERR_PHONE
    if key in SUBSCRIBE_FIELDS or key == GROUPS_FIELD:
        return subscription_problem(key, value)
    if key == "gender" and not (isinstance(value, str) and value.upper() in GENDERS):
        return ERR_GENDER
    if key == "dob" and not (isinstance(value, str) and _DOB_RE.match(value)):
        return ERR_DOB
    return None


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _valid_time_value(value: dict[str, Any]) -> bool:
    text = value.get("$time")
    if not isinstance(text, str):
        return False
    if parse_datetime(text) is not None:
        return True
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _valid_nested(value: dict[str, Any], limit: int) -> bool:
    """Nested attribute rules: keys up to 255 chars, no spaces, '.' or leading '$'."""
    for key, item in value.items():
        if not key or len(key) > limit or " " in key or "." in key or key.startswith("$"):
            return False
        if isinstance(item, str) and len(item) > limit:
            return False
        if isinstance(item, dict):
            if set(item) == {"$time"}:
                if not _valid_time_value(item):
                    return False
            elif not _valid_nested(item, limit):
                return False
        if isinstance(item, list) and not all(
            _valid_nested(v, limit) if isinstance(v, dict) else _is_scalar(v) for v in item
        ):
            return False
    return True


def _valid_object_array_ops(value: dict[str, Any]) -> bool:
    for op, items in value.items():
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return False
        if op == "$add":
            continue
        for item in items:
            if not isinstance(item.get("$identifier_key"), str) or "$identifier_value" not in item:
                return False
            if op == "$update" and not isinstance(item.get("$new_object"), dict):
                return False
    return True


def _validate_properties(
    props: object, reserved: frozenset[str], max_bytes: int, limit: int
) -> dict[str, Any] | None:
    if props is None:
        return {}
    if not isinstance(props, dict):
        return None
    for key, value in props.items():
        if not key or len(key) > limit or key.startswith("$") or key in reserved:
            return None
        if isinstance(value, str) and len(value) > limit:
            return None
    if compact_size(props) > max_bytes:
        return None
    return props


def _event_time(value: object, now: datetime) -> datetime | None:
    moment = parse_datetime(value)
    if moment is None:
        return None
    # "Events with timestamps in the future will default to the current time."
    return min(moment, now)


def validate_event(obj: object, config: SandboxConfig, now: datetime) -> EventUpdate | str:
    """Validate one item of ``events``."""
    checked = _check_common(obj, config)
    if isinstance(checked, str):
        return checked
    data, identifier = checked
    update_only = _update_only(data, identifier)
    if isinstance(update_only, str):
        return update_only
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        return ERR_EVENT_NAME
    moment = _event_time(data.get("time"), now)
    if moment is None:
        return ERR_TIME
    app_id = data.get("app_id")
    if app_id is not None and not isinstance(app_id, str):
        return ERR_APP_ID
    props = _validate_properties(
        data.get("properties"),
        EVENT_RESERVED_PROPERTIES,
        EVENT_PROPERTIES_MAX_BYTES,
        config.max_string_length,
    )
    if props is None:
        return ERR_PROPERTIES
    return EventUpdate(identifier, update_only, StoredEvent(name, moment, props, app_id))


def validate_purchase(obj: object, config: SandboxConfig, now: datetime) -> PurchaseUpdate | str:
    """Validate one item of ``purchases``."""
    checked = _check_common(obj, config)
    if isinstance(checked, str):
        return checked
    data, identifier = checked
    update_only = _update_only(data, identifier)
    if isinstance(update_only, str):
        return update_only
    product_id = data.get("product_id")
    if not isinstance(product_id, str) or not product_id or len(product_id) > 255:
        return ERR_PRODUCT_ID
    currency = data.get("currency")
    if not isinstance(currency, str) or not _CURRENCY_RE.match(currency):
        return ERR_CURRENCY
    price = data.get("price")
    if isinstance(price, bool) or not isinstance(price, int | float):
        return ERR_PRICE
    quantity = data.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 100:
        return ERR_QUANTITY
    moment = _event_time(data.get("time"), now)
    if moment is None:
        return ERR_TIME
    app_id = data.get("app_id")
    if app_id is not None and not isinstance(app_id, str):
        return ERR_APP_ID
    props = _validate_properties(
        data.get("properties"),
        PURCHASE_RESERVED_PROPERTIES,
        PURCHASE_PROPERTIES_MAX_BYTES,
        config.max_string_length,
    )
    if props is None:
        return ERR_PROPERTIES
    purchase = StoredPurchase(
        product_id, currency.upper(), float(price), quantity, moment, props, app_id
    )
    return PurchaseUpdate(identifier, update_only, purchase)


def utcnow(clock_seconds: float) -> datetime:
    """Aware UTC datetime of an epoch-seconds clock reading."""
    return datetime.fromtimestamp(clock_seconds, UTC)
