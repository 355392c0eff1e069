"""POST /users/alias/new: new alias-only users, or aliases added to identified users
(reference/braze-rest-api.md §7).

Strict like Braze: ``user_aliases`` is an array of at most 50 objects, each with a non-empty
string ``alias_name`` and ``alias_label`` and an optional ``external_id``; any malformed item
refuses the whole request (400, nothing changed). Success is ``201 {"aliases_processed": n,
"message": "success"}``.

Behaviour (Braze's documented one): without ``external_id`` an alias-only user is created;
with one, the alias is added to that user, and nothing happens when no user has it. The
``alias_label`` + ``alias_name`` pair is unique across the user base: re-sending an existing
pair succeeds and changes nothing. A user holds one ``alias_name`` per ``alias_label``, so an
alias whose label the identified user already uses under another name is not added either
(Braze changes names with /users/alias/update, which the sandbox does not serve).
"""

from __future__ import annotations

from typing import Any

from braze_sandbox.context import HandlerContext, Reply, error
from braze_sandbox.store import Identifier
from braze_sandbox.validation import validate_external_id

MAX_ALIASES = 50
MSG_NOT_ARRAY = "'user_aliases' must be an array of user alias objects"
MSG_TOO_MANY = "The max number of external_ids and aliases per request was exceeded"
MSG_ALIAS = "'user_aliases' items need a non-empty string 'alias_name' and 'alias_label'"
MSG_KEYS = "'user_aliases' items may only have 'external_id', 'alias_name' and 'alias_label'"
_KEYS = frozenset({"external_id", "alias_name", "alias_label"})

NewAlias = tuple[str, str, str | None]
"""(alias_name, alias_label, external_id or None)."""


class _Refused(Exception):
    pass


def _parse(item: Any, ctx: HandlerContext) -> NewAlias:
    if not isinstance(item, dict):
        raise _Refused(MSG_NOT_ARRAY)
    if not set(item) <= _KEYS:
        raise _Refused(MSG_KEYS)
    name, label = item.get("alias_name"), item.get("alias_label")
    if not (isinstance(name, str) and name and isinstance(label, str) and label):
        raise _Refused(MSG_ALIAS)
    external_id = item.get("external_id")
    if external_id is not None:
        problem = validate_external_id(external_id, ctx.config)
        if problem is not None:
            raise _Refused(f"'user_aliases': {problem}")
    return name, label, external_id


def handle_alias_new(body: Any, ctx: HandlerContext) -> Reply:
    """Validate every alias first (a fatal error changes nothing), then create them in order."""
    items = body.get("user_aliases") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return error(400, MSG_NOT_ARRAY)
    if len(items) > min(MAX_ALIASES, ctx.config.max_ids_per_request):
        return error(400, MSG_TOO_MANY)
    try:
        aliases = [_parse(item, ctx) for item in items]
    except _Refused as exc:
        return error(400, str(exc))
    store = ctx.store
    for name, label, external_id in aliases:
        if store.get_by_alias(name, label) is not None:
            continue  # "Re-sending an existing pair returns success but changes nothing."
        if external_id is None:
            store.create(Identifier("user_alias", name, alias_label=label))
            continue
        user = store.get(external_id)
        if user is not None and label not in user.aliases:
            store.add_alias(user, name, label)
    return Reply(201, {"aliases_processed": len(aliases), "message": "success"})
