"""POST /users/merge: merge one user into another (reference/braze-rest-api.md §7).

Strict like Braze: up to 50 ``merge_updates``, each exactly ``identifier_to_merge`` and
``identifier_to_keep``, each identifier an object with an ``external_id`` string, a
``user_alias`` object, or an ``email`` / ``phone`` string (with ``prioritization``); any
malformed update refuses the whole request with Braze's documented 400 message, changing
nothing. Success is ``202 {"message": "success"}``.

Merge behaviour (Braze's documented one): the kept user keeps every attribute it has and
gains the merged user's attributes it lacks; the merged user's events and purchases move to
the kept user; the merged user is removed. An identifier that matches no user is a silent
no-op (the endpoint is asynchronous, so Braze cannot report it). When only the kept user is
missing, Braze documents nothing; the sandbox then gives the merged user the kept
identifier, as /users/identify does for an unknown external_id, so one user remains.
"""

from __future__ import annotations

from typing import Any

from braze_sandbox.context import HandlerContext, Reply, error
from braze_sandbox.identity import PRIORITIZATIONS, _pick
from braze_sandbox.store import User
from braze_sandbox.validation import is_valid_email, parse_user_alias

MAX_MERGES = 50
MSG_NOT_ARRAY = "'merge_updates' must be an array of objects"
MSG_TOO_MANY = "a single request may not contain more than 50 merge updates"
MSG_IDENTIFIER = (
    "identifiers must be objects with an 'external_id' property that is a string, "
    "'user_alias' property that is an object, 'email' property that is a string, or 'phone' "
    "property that is a string"
)
MSG_KEYS = "'merge_updates' must only have 'identifier_to_merge' and 'identifier_to_keep'"
_KEYS = frozenset({"identifier_to_merge", "identifier_to_keep"})

Ident = tuple[str, Any, list[str]]
"""(kind, value, prioritization): value is the alias (name, label) for user_alias."""


class _Refused(Exception):
    pass


def _identifier(value: Any) -> Ident:
    if not isinstance(value, dict):
        raise _Refused(MSG_IDENTIFIER)
    kinds = [k for k in ("external_id", "user_alias", "email", "phone") if k in value]
    if len(kinds) != 1:
        raise _Refused(MSG_IDENTIFIER)
    kind = kinds[0]
    raw = value[kind]
    if kind == "user_alias":
        alias = parse_user_alias(raw)
        if alias is None:
            raise _Refused(MSG_IDENTIFIER)
        return kind, alias, []
    if not isinstance(raw, str) or not raw:
        raise _Refused(MSG_IDENTIFIER)
    if kind == "external_id":
        return kind, raw, []
    if kind == "email" and not is_valid_email(raw):
        raise _Refused(MSG_IDENTIFIER)
    prio = value.get("prioritization", ["most_recently_updated"])
    if not isinstance(prio, list) or not all(p in PRIORITIZATIONS for p in prio):
        raise _Refused(MSG_IDENTIFIER)
    return kind, raw, [str(p) for p in prio]


def _find(ident: Ident, ctx: HandlerContext) -> User | None:
    kind, value, prio = ident
    store = ctx.store
    if kind == "external_id":
        return store.get(value)
    if kind == "user_alias":
        name, label = value
        return store.get_by_alias(name, label)
    found = (
        store.find_by_email(value, prio) if kind == "email" else store.find_by_phone(value, prio)
    )
    return _pick(found, prio or ["most_recently_updated"])


def handle_merge(body: Any, ctx: HandlerContext) -> Reply:
    """Validate every update first (a fatal error changes nothing), then merge in order."""
    if not isinstance(body, dict):
        return error(400, MSG_NOT_ARRAY)
    updates = body.get("merge_updates")
    if not isinstance(updates, list) or not updates:
        return error(400, MSG_NOT_ARRAY)
    if len(updates) > MAX_MERGES:
        return error(400, MSG_TOO_MANY)
    parsed: list[tuple[Ident, Ident]] = []
    try:
        for update in updates:
            if not isinstance(update, dict):
                raise _Refused(MSG_NOT_ARRAY)
            if set(update) != _KEYS:
                raise _Refused(MSG_KEYS)
            parsed.append(
                (
                    _identifier(update["identifier_to_merge"]),
                    _identifier(update["identifier_to_keep"]),
                )
            )
    except _Refused as exc:
        return error(400, str(exc))
    for to_merge, to_keep in parsed:
        source = _find(to_merge, ctx)
        if source is None:
            continue
        target = _find(to_keep, ctx)
        if target is source:
            continue
        ctx.store.merge(source, target, keep=(to_keep[0], to_keep[1]))
    return Reply(202, {"message": "success"})
