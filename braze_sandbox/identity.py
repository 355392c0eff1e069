"""POST /users/delete, /users/identify and /users/export/ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from braze_sandbox.context import HandlerContext, Reply, error
from braze_sandbox.store import STANDARD_FIELDS, User
from braze_sandbox.timestamps import isoformat
from braze_sandbox.validation import (
    is_valid_email,
    parse_user_alias,
    validate_external_id,
)

DELETE_KEYS = ("external_ids", "user_aliases", "braze_ids", "email_addresses", "phone_numbers")
IDENTIFY_KEYS = ("aliases_to_identify", "emails_to_identify", "phone_numbers_to_identify")
PRIORITIZATIONS = frozenset(
    {"identified", "unidentified", "most_recently_updated", "least_recently_updated"}
)
MSG_MAX_IDS = "The max number of ids per request was exceeded"
MSG_MAX_IDS_AND_ALIASES = "The max number of external_ids and aliases per request was exceeded"
MSG_DELETE_ONE_TYPE = (
    "Only one of external_ids, user_aliases, braze_ids, email_addresses, or phone_numbers "
    "can be included in a single request"
)


class BadRequest(Exception):
    """A fatal 400 with the given message."""


def _list_field(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"'{key}' must be an array")
    return value


def _prioritization(item: dict[str, Any], where: str) -> list[str]:
    value = item.get("prioritization")
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(p, str) and p in PRIORITIZATIONS for p in value)
        or {"identified", "unidentified"} <= set(value)
    ):
        raise BadRequest(
            f"'{where}' items need a 'prioritization' array of identified, unidentified, "
            "most_recently_updated or least_recently_updated (not both identified and "
            "unidentified)"
        )
    return [str(p) for p in value]


def _pick(candidates: list[User], prioritization: Sequence[str]) -> User | None:
    """One profile per the prioritization, or ``None`` when it stays ambiguous."""
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    if {"most_recently_updated", "least_recently_updated"} & set(prioritization):
        return candidates[0]
    return None  # "If more than one user matches, no delete happens."


def _external_id(value: object, ctx: HandlerContext, where: str) -> str:
    problem = validate_external_id(value, ctx.config)
    if problem is not None or not isinstance(value, str):
        raise BadRequest(f"'{where}': {problem}")
    return value


def _alias(value: object, where: str) -> tuple[str, str]:
    alias = parse_user_alias(value)
    if alias is None:
        raise BadRequest(
            f"'{where}' items must be user alias objects with 'alias_name' and 'alias_label'"
        )
    return alias


def handle_delete(body: Any, ctx: HandlerContext) -> Reply:
    """Delete up to 50 profiles named by one identifier type."""
    try:
        return _delete(body, ctx)
    except BadRequest as exc:
        return error(400, str(exc))


def _delete(body: Any, ctx: HandlerContext) -> Reply:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    lists = {key: _list_field(body, key) for key in DELETE_KEYS}
    used = [key for key, items in lists.items() if items]
    total = sum(len(items) for items in lists.values())
    if total == 0:
        raise BadRequest(
            "One of external_ids, user_aliases, braze_ids, email_addresses, or phone_numbers "
            "must be provided"
        )
    if ctx.config.delete_single_id_type and len(used) > 1:
        raise BadRequest(MSG_DELETE_ONE_TYPE)
    if total > ctx.config.max_ids_per_request:
        raise BadRequest(MSG_MAX_IDS)

    # Validate everything before deleting anything: a fatal error must change nothing.
    targets: list[User | None] = []
    for value in lists["external_ids"]:
        if not isinstance(value, str) or not value:
            raise BadRequest("'external_ids' must be an array of strings")
        targets.append(ctx.store.get(value))
    for value in lists["braze_ids"]:
        if not isinstance(value, str) or not value:
            raise BadRequest("'braze_ids' must be an array of strings")
        targets.append(ctx.store.get_by_braze_id(value))
    for value in lists["user_aliases"]:
        name, label = _alias(value, "user_aliases")
        targets.append(ctx.store.get_by_alias(name, label))
    for value in lists["email_addresses"]:
        if not isinstance(value, dict) or not is_valid_email(value.get("email")):
            raise BadRequest("'email_addresses' items need a valid 'email'")
        prio = _prioritization(value, "email_addresses")
        targets.append(_pick(ctx.store.find_by_email(value["email"], prio), prio))
    for value in lists["phone_numbers"]:
        if not isinstance(value, dict) or not isinstance(value.get("phone"), str):
            raise BadRequest("'phone_numbers' items need a string 'phone'")
        prio = _prioritization(value, "phone_numbers")
        targets.append(_pick(ctx.store.find_by_phone(value["phone"], prio), prio))

    for user in targets:
        if user is not None and ctx.store.get_by_braze_id(user.braze_id) is user:
            ctx.store.delete(user)
    # Braze answers with the number of ids *queued* for deletion, found or not.
    return Reply(201, {"deleted": total, "message": "success"})


def handle_identify(body: Any, ctx: HandlerContext) -> Reply:
    """Identify alias-only / email-only / phone-only profiles with an external_id."""
    try:
        return _identify(body, ctx)
    except BadRequest as exc:
        return error(400, str(exc))


def _identify(body: Any, ctx: HandlerContext) -> Reply:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    lists = {key: _list_field(body, key) for key in IDENTIFY_KEYS}
    total = sum(len(items) for items in lists.values())
    if total == 0:
        raise BadRequest(
            "One of aliases_to_identify, emails_to_identify or phone_numbers_to_identify "
            "must be provided"
        )
    if total > ctx.config.max_ids_per_request:
        raise BadRequest(MSG_MAX_IDS_AND_ALIASES)
    merge_behavior = body.get("merge_behavior", "none")
    if merge_behavior not in ("none", "merge"):
        raise BadRequest("'merge_behavior' must be 'none' or 'merge'")
    merge = merge_behavior == "merge"

    aliases: list[tuple[str, tuple[str, str]]] = []
    for item in lists["aliases_to_identify"]:
        if not isinstance(item, dict):
            raise BadRequest("'aliases_to_identify' items must be objects")
        external_id = _external_id(item.get("external_id"), ctx, "aliases_to_identify")
        aliases.append((external_id, _alias(item.get("user_alias"), "aliases_to_identify")))
    contacts: list[tuple[str, str, str, list[str]]] = []
    for key, field in (("emails_to_identify", "email"), ("phone_numbers_to_identify", "phone")):
        for item in lists[key]:
            if not isinstance(item, dict) or not isinstance(item.get(field), str):
                raise BadRequest(f"'{key}' items need a string '{field}'")
            if field == "email" and not is_valid_email(item["email"]):
                raise BadRequest(f"'{key}' items need a valid 'email'")
            external_id = _external_id(item.get("external_id"), ctx, key)
            contacts.append((external_id, field, item[field], _prioritization(item, key)))

    for external_id, (name, label) in aliases:
        source = ctx.store.get_by_alias(name, label)
        # alias_name is case-sensitive; a miss "silently fail[s]" with 201.
        if source is not None:
            ctx.store.identify(source, external_id, merge=merge, alias=(label, name))
    for external_id, field, value, prio in contacts:
        found = (
            ctx.store.find_by_email(value, prio)
            if field == "email"
            else ctx.store.find_by_phone(value, prio)
        )
        source = _pick([u for u in found if u.external_id is None], prio)
        if source is not None:
            ctx.store.identify(source, external_id, merge=merge, alias=None)

    reply: dict[str, Any] = {"message": "success"}
    for key, label in zip(
        IDENTIFY_KEYS,
        ("aliases_processed", "emails_processed", "phone_numbers_processed"),
        strict=True,
    ):
        if key in body:
            reply[label] = len(lists[key])
    return Reply(201, reply)


def handle_export_ids(body: Any, ctx: HandlerContext) -> Reply:
    """Export profiles by external_id, alias, braze_id, email or phone."""
    try:
        return _export(body, ctx)
    except BadRequest as exc:
        return error(400, str(exc))


def _export(body: Any, ctx: HandlerContext) -> Reply:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    external_ids = _list_field(body, "external_ids")
    aliases = _list_field(body, "user_aliases")
    if len(external_ids) + len(aliases) > ctx.config.max_ids_per_request:
        raise BadRequest(MSG_MAX_IDS_AND_ALIASES)
    fields = body.get("fields_to_export")
    if fields is not None and not (
        isinstance(fields, list) and all(isinstance(f, str) for f in fields)
    ):
        raise BadRequest("'fields_to_export' must be an array of strings")
    singles = {k: body.get(k) for k in ("braze_id", "email_address", "phone", "device_id")}
    for key, value in singles.items():
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"'{key}' must be a string")
    if not external_ids and not aliases and all(v is None for v in singles.values()):
        raise BadRequest(
            "One of external_ids, user_aliases, braze_id, email_address, phone or device_id "
            "must be provided"
        )

    found: list[User] = []
    invalid: list[str] = []
    for value in external_ids:
        if not isinstance(value, str):
            raise BadRequest("'external_ids' must be an array of strings")
        user = ctx.store.get(value)
        if user is None:
            invalid.append(value)
        else:
            found.append(user)
    for value in aliases:
        name, label = _alias(value, "user_aliases")
        alias_user = ctx.store.get_by_alias(name, label)
        if alias_user is not None:
            found.append(alias_user)
    if isinstance(singles["braze_id"], str):
        by_braze = ctx.store.get_by_braze_id(singles["braze_id"])
        found.extend([by_braze] if by_braze else [])
    if isinstance(singles["email_address"], str):
        found.extend(ctx.store.find_by_email(singles["email_address"]))
    if isinstance(singles["phone"], str):
        found.extend(ctx.store.find_by_phone(singles["phone"]))

    unique = list({u.braze_id: u for u in found}.values())
    users = [export_user(u, fields) for u in unique]
    reply: dict[str, Any] = {"users": users, "message": "success"}
    if invalid:
        reply["invalid_user_ids"] = invalid
    return Reply(201, reply)


def export_user(user: User, fields: list[str] | None) -> dict[str, Any]:
    """A profile in the shape of a /users/export/ids ``users`` item."""
    data: dict[str, Any] = {
        "external_id": user.external_id,
        "braze_id": user.braze_id,
        "user_aliases": [
            {"alias_name": name, "alias_label": label} for label, name in user.aliases.items()
        ],
        **{k: v for k, v in user.attributes.items() if k in STANDARD_FIELDS},
        "custom_attributes": {k: v for k, v in user.attributes.items() if k not in STANDARD_FIELDS},
        "custom_events": _summaries([(e.name, e.time) for e in user.events]),
        "purchases": _summaries([(p.product_id, p.time) for p in user.purchases]),
    }
    if user.external_id is None:
        del data["external_id"]
    if fields is not None:
        data = {k: v for k, v in data.items() if k in fields}
    return data


def _summaries(items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for name, moment in items:
        entry = summary.setdefault(
            name, {"name": name, "first": moment, "last": moment, "count": 0}
        )
        entry["first"] = min(entry["first"], moment)
        entry["last"] = max(entry["last"], moment)
        entry["count"] += 1
    return [
        {**entry, "first": isoformat(entry["first"]), "last": isoformat(entry["last"])}
        for entry in summary.values()
    ]
