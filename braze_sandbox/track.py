"""POST /users/track: batch caps, per-object validation, minor errors and store updates."""

from __future__ import annotations

from typing import Any

from braze_sandbox.config import BatchMode
from braze_sandbox.context import HandlerContext, Reply, error
from braze_sandbox.store import Identifier, User
from braze_sandbox.validation import (
    AttributesUpdate,
    EventUpdate,
    PurchaseUpdate,
    utcnow,
    validate_attributes_object,
    validate_event,
    validate_purchase,
)

ARRAYS = ("attributes", "events", "purchases")
MSG_VALID_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
MSG_MAX_INPUT = "Max Input Length Exceeded"

Update = AttributesUpdate | EventUpdate | PurchaseUpdate


def batch_cap_error(arrays: dict[str, list[Any]], mode: BatchMode) -> str | None:
    """Detail of a batch-cap violation, ``None`` if the request is within the cap."""
    if mode is BatchMode.PER_ARRAY75:
        for name, items in arrays.items():
            if len(items) > mode.limit:
                return f"'{name}' holds {len(items)} objects; the limit is {mode.limit} per array"
        return None
    total = sum(len(items) for items in arrays.values())
    if total > mode.limit:
        return (
            f"{total} objects across attributes, events and purchases; "
            f"the limit is {mode.limit} combined"
        )
    return None


def handle_track(body: Any, ctx: HandlerContext) -> Reply:
    """Validate and apply a /users/track body.

    Fatal problems (not an object, arrays of the wrong type, too many objects, no valid
    object) reject the whole request with 400; bad objects become minor errors of a 201.
    """
    if not isinstance(body, dict):
        return error(400, MSG_VALID_DATA, errors=[])
    arrays: dict[str, list[Any]] = {}
    for name in ARRAYS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, list):
            return error(400, f"'{name}' must be an array of objects", errors=[])
        arrays[name] = value
    cap = batch_cap_error(arrays, ctx.config.batch_mode)
    if cap is not None:
        return error(400, MSG_MAX_INPUT, errors=[{"type": cap}])
    if not any(arrays.values()):
        return error(400, MSG_VALID_DATA, errors=[])

    valid, errors = _validate_all(arrays, ctx)
    if not any(valid.values()):
        return error(400, MSG_VALID_DATA, errors=errors)

    # Braze processes attributes, then events, then purchases, so an attribute object can
    # create the profile that an update-only event in the same request then finds.
    for name in ARRAYS:
        for update in valid.get(name, []):
            _apply(update, ctx)

    reply: dict[str, Any] = {"message": "success"}
    for name in arrays:
        reply[f"{name}_processed"] = len(valid[name])
    if errors:
        reply["errors"] = errors
    return Reply(201, reply)


def _validate_all(
    arrays: dict[str, list[Any]], ctx: HandlerContext
) -> tuple[dict[str, list[Update]], list[dict[str, Any]]]:
    now = utcnow(ctx.config.clock())
    valid: dict[str, list[Update]] = {name: [] for name in arrays}
    errors: list[dict[str, Any]] = []
    for name, items in arrays.items():
        for index, obj in enumerate(items):
            result: Update | str
            if name == "attributes":
                result = validate_attributes_object(obj, ctx.config)
            elif name == "events":
                result = validate_event(obj, ctx.config, now)
            else:
                result = validate_purchase(obj, ctx.config, now)
            if not isinstance(result, str) and isinstance(obj, dict):
                forced = ctx.faults.take_minor_error(obj.get("external_id"), name)
                result = forced if forced is not None else result
            if isinstance(result, str):
                errors.append({"type": result, "input_array": name, "index": index})
            else:
                valid[name].append(result)
    return valid, errors


def _resolve(identifier: Identifier, update_only: bool, ctx: HandlerContext) -> User | None:
    user = ctx.store.find(identifier)
    if user is not None:
        return user
    # Update-only objects for unknown users are skipped silently (the docs describe no error);
    # a braze_id is assigned by Braze, so it can never create a profile.
    if update_only or identifier.kind == "braze_id":
        return None
    return ctx.store.create(identifier)


def _apply(update: Update, ctx: HandlerContext) -> None:
    user = _resolve(update.identifier, update.update_existing_only, ctx)
    if user is None:
        return
    points = ctx.data_points
    if isinstance(update, AttributesUpdate):
        points.attributes += ctx.store.set_attributes(
            user,
            update.updates,
            merge_objects=update.merge_objects,
            max_array_length=ctx.config.max_array_length,
        )
    elif isinstance(update, EventUpdate):
        ctx.store.add_event(user, update.event)
        points.events += 1
    else:
        ctx.store.add_purchase(user, update.purchase)
        points.purchases += 1
