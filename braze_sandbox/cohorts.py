"""Partner cohort import: POST /partners/{partner}/cohorts and /cohorts/users.

Braze documents the error texts with the field names in code formatting; the sandbox sends
them as plain text (the exact punctuation on the wire is not documented).
"""

from __future__ import annotations

import hmac
from typing import Any

from braze_sandbox.context import HandlerContext, Reply, error
from braze_sandbox.store import User
from braze_sandbox.timestamps import parse_datetime
from braze_sandbox.validation import parse_user_alias

MSG_INVALID_PARTNER_KEY = "Invalid Partner API key"
MSG_INVALID_CLIENT_SECRET = "Invalid client secret"
# Braze appends the secret itself; the sandbox never echoes credentials.
MSG_PARTNER_NOT_ENABLED = "Partner not enabled for client with client secret: [REDACTED]"
MSG_COHORT_ID = "cohort_id must be a valid string"
MSG_NAME = "name must be a non-empty string"
MSG_CREATED_AT = "created_at must be a valid time as an ISO-8601 string"
MSG_COHORT_CHANGES = (
    "cohort_changes must be an array of objects each with key user_ids and/or device_ids "
    "mapping to an array of strings, or an aliases object"
)
MSG_TOO_MANY_IDS = "Only 1,000 user_ids, device_ids, and aliases are allowed per request"


def _authorize(partner: str, body: dict[str, Any], ctx: HandlerContext) -> Reply | None:
    """401 reply when the body's credentials do not open ``partner``, else ``None``."""
    expected = ctx.config.partners.get(partner)
    given = body.get("partner_api_key")
    if (
        expected is None
        or not isinstance(given, str)
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        return error(401, MSG_INVALID_PARTNER_KEY)
    secret = body.get("client_secret")
    enabled = ctx.config.client_secrets.get(secret) if isinstance(secret, str) else None
    if enabled is None:
        return error(401, MSG_INVALID_CLIENT_SECRET)
    if "*" not in enabled and partner not in enabled:
        return error(401, MSG_PARTNER_NOT_ENABLED)
    return None


def _prelude(partner: str, body: Any, ctx: HandlerContext) -> Reply | str:
    """Auth and cohort_id checks shared by both endpoints; returns the cohort_id."""
    if not isinstance(body, dict):
        return error(401, MSG_INVALID_PARTNER_KEY)
    denied = _authorize(partner, body, ctx)
    if denied is not None:
        return denied
    cohort_id = body.get("cohort_id")
    if not isinstance(cohort_id, str) or not cohort_id.strip():
        return error(400, MSG_COHORT_ID)
    return cohort_id


def handle_cohort(partner: str, body: Any, ctx: HandlerContext) -> Reply:
    """Create or rename a cohort."""
    cohort_id = _prelude(partner, body, ctx)
    if isinstance(cohort_id, Reply):
        return cohort_id
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return error(400, MSG_NAME)
    created_at = body.get("created_at")
    if parse_datetime(created_at) is None:
        return error(400, MSG_CREATED_AT)
    ctx.store.upsert_cohort(partner, cohort_id, name, created_at)
    return Reply(201, {"message": "success"})


def _parse_change(change: object) -> tuple[list[str], list[str], list[tuple[str, str]], bool]:
    """(user_ids, device_ids, aliases, should_remove) of one cohort_changes item."""
    if not isinstance(change, dict) or not ({"user_ids", "device_ids", "aliases"} & set(change)):
        raise ValueError(MSG_COHORT_CHANGES)
    ids: dict[str, list[str]] = {}
    for key in ("user_ids", "device_ids"):
        value = change.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(MSG_COHORT_CHANGES)
        ids[key] = value
    raw_aliases = change.get("aliases", [])
    # Documented as "an aliases object"; partners send an array of {alias_name, alias_label}.
    alias_items = raw_aliases if isinstance(raw_aliases, list) else [raw_aliases]
    aliases = [parse_user_alias(a) for a in alias_items]
    should_remove = change.get("should_remove", False)
    if not isinstance(should_remove, bool) or any(a is None for a in aliases):
        raise ValueError(MSG_COHORT_CHANGES)
    return ids["user_ids"], ids["device_ids"], [a for a in aliases if a], should_remove


def handle_cohort_users(partner: str, body: Any, ctx: HandlerContext) -> Reply:
    """Add users to, or remove them from, a cohort; unknown users are ignored."""
    cohort_id = _prelude(partner, body, ctx)
    if isinstance(cohort_id, Reply):
        return cohort_id
    changes = body.get("cohort_changes")
    if not isinstance(changes, list) or not changes:
        return error(400, MSG_COHORT_CHANGES)
    try:
        parsed = [_parse_change(change) for change in changes]
    except ValueError as exc:
        return error(400, str(exc))
    total = sum(len(u) + len(d) + len(a) for u, d, a, _ in parsed)
    if total > ctx.config.max_cohort_ids:
        return error(400, MSG_TOO_MANY_IDS)

    for user_ids, _device_ids, aliases, remove in parsed:
        # "Cohort Import will not create new users"; device ids never match identified
        # users, and the sandbox keeps no anonymous device profiles.
        users: list[User | None] = [ctx.store.get(u) for u in user_ids]
        users += [ctx.store.get_by_alias(name, label) for name, label in aliases]
        for user in users:
            if user is not None and ctx.store.change_membership(partner, cohort_id, user, remove):
                ctx.data_points.cohort_assignments += 1
    return Reply(201, {"message": "success"})
