"""Attribute writes of one Braze user, and how two writes of the same attribute combine.

Coalescing merges the attribute objects of one user into one object; the merged object must
leave the profile exactly as the objects would have one after the other. The rules:

- set, then set            -> the later set
- set v, then inc n        -> set v + n (v a number; null counts as absent, i.e. 0)
- set list, then add/remove -> set the edited list (Braze arrays hold unique values, an added
  value moves to the end)
- inc a, then inc b        -> inc a + b
- add/remove, then add/remove -> one edit whose add and remove lists never share a value, so the
  order Braze applies them in does not matter
- anything, then set       -> the set
- subscription groups, then subscription groups -> one entry per group, the later state winning
Combinations with no exact single-operation form (inc after an array edit, an array edit after
a string, ...) keep the later operation; Braze would refuse the type mix anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatch_service.braze.cached import cached
from dispatch_service.braze.users import BrazeUser
from dispatch_service.braze.values import canonical_json, compact_size


@dataclass(frozen=True)
class SetValue:
    """Set the attribute (``None`` removes it)."""

    value: Any

    @cached
    def token(self) -> str:
        """``canonical_json(value)``, computed once: delta loading, filtering and recording
        each compare or store it."""
        return canonical_json(self.value)


@dataclass(frozen=True)
class Increment:
    """``{"inc": amount}``; Braze increments by whole numbers only."""

    amount: int


@dataclass(frozen=True)
class ArrayEdit:
    """``{"add": [...], "remove": [...]}``; ``add`` and ``remove`` never share a value."""

    add: tuple[Any, ...] = ()
    remove: tuple[Any, ...] = ()


@dataclass(frozen=True)
class SubscriptionStates:
    """``subscription_groups``: one state per group id, in first-write order. Each entry sets
    one group's state in Braze; groups not named keep theirs."""

    states: tuple[tuple[str, str], ...]
    """(subscription_group_id, subscription_state) pairs, one per group id."""

    def then(self, later: SubscriptionStates) -> SubscriptionStates:
        """These states followed by ``later``'s: a group named again takes the later state."""
        merged = dict(self.states)
        merged.update(later.states)
        return SubscriptionStates(tuple(merged.items()))


AttributeOp = SetValue | Increment | ArrayEdit | SubscriptionStates


def _unique(values: Iterable[Any]) -> list[Any]:
    seen: set[str] = set()
    out: list[Any] = []
    for value in values:
        token = canonical_json(value)
        if token not in seen:
            seen.add(token)
            out.append(value)
    return out


def _minus(values: Iterable[Any], removed: Iterable[Any]) -> list[Any]:
    gone = {canonical_json(v) for v in removed}
    return [v for v in values if canonical_json(v) not in gone]


def _apply_edit(items: list[Any], edit: ArrayEdit) -> list[Any]:
    # Braze: an added value is appended, or moved to the end if present; values are unique.
    kept = _minus(_unique(items), [*edit.remove, *edit.add])
    return [*kept, *edit.add]


def combine(earlier: AttributeOp, later: AttributeOp) -> AttributeOp:
    """One operation with the effect of ``earlier`` followed by ``later`` (see module doc)."""
    if isinstance(later, SetValue):
        return later
    if isinstance(later, SubscriptionStates):
        return earlier.then(later) if isinstance(earlier, SubscriptionStates) else later
    if isinstance(later, Increment):
        if isinstance(earlier, Increment):
            return Increment(earlier.amount + later.amount)
        if isinstance(earlier, SetValue):
            base = earlier.value
            if base is None:
                return SetValue(later.amount)
            if isinstance(base, int | float) and not isinstance(base, bool):
                return SetValue(base + later.amount)
        return later
    # later is an ArrayEdit
    if isinstance(earlier, ArrayEdit):
        # Values added again move to the end, as Braze moves a re-added value.
        add = _unique([*_minus(earlier.add, [*later.remove, *later.add]), *later.add])
        remove = _unique([*_minus(earlier.remove, later.add), *later.remove])
        return ArrayEdit(tuple(add), tuple(_minus(remove, add)))
    if isinstance(earlier, SetValue):
        if earlier.value is None:
            return SetValue(list(later.add))
        if isinstance(earlier.value, list):
            return SetValue(_apply_edit(earlier.value, later))
    return later


def op_json(op: AttributeOp) -> Any:
    """The Braze JSON of an operation."""
    if isinstance(op, SetValue):
        return op.value
    if isinstance(op, Increment):
        return {"inc": op.amount}
    if isinstance(op, SubscriptionStates):
        return [
            {"subscription_group_id": group_id, "subscription_state": state}
            for group_id, state in op.states
        ]
    edit: dict[str, list[Any]] = {}
    if op.add:
        edit["add"] = list(op.add)
    if op.remove:
        edit["remove"] = list(op.remove)
    return edit


@dataclass(frozen=True)
class AttributeObject:
    """The attribute writes of one action (or of several, once merged) for one user."""

    user: BrazeUser
    ops: Mapping[str, AttributeOp]
    """Attribute name -> operation, in first-write order. Treated as immutable."""
    update_existing_only: bool = False
    """Only update an existing profile (``_update_existing_only``)."""

    @cached
    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(self.user.fields())
        # Explicit for aliases: Braze defaults alias objects to update-only, which would
        # silently skip creating the alias-only profile the action asked for.
        if self.update_existing_only or self.user.kind == "user_alias":
            body["_update_existing_only"] = self.update_existing_only
        for name, op in self.ops.items():
            body[name] = op_json(op)
        return body

    def to_json(self) -> dict[str, Any]:
        """The attributes object as sent to Braze (cached; do not mutate the result)."""
        return self._body

    @cached
    def size(self) -> int:
        """Compact JSON size in bytes."""
        return compact_size(self._body)

    def merged(self, later: AttributeObject) -> AttributeObject:
        """This object followed by ``later`` (same user) as one object.

        The merged object is update-only only if both were: a create-mode write in the same
        object creates the profile for the update-only writes anyway.
        """
        ops = dict(self.ops)
        for name, op in later.ops.items():
            ops[name] = combine(ops[name], op) if name in ops else op
        return AttributeObject(
            self.user, ops, self.update_existing_only and later.update_existing_only
        )

    def replacing(self, name: str, op: AttributeOp) -> AttributeObject:
        """A copy whose ``name`` write is ``op``."""
        return AttributeObject(self.user, {**self.ops, name: op}, self.update_existing_only)

    def without(self, names: Iterable[str]) -> AttributeObject:
        """A copy without the named attributes."""
        dropped = set(names)
        ops = {n: op for n, op in self.ops.items() if n not in dropped}
        return AttributeObject(self.user, ops, self.update_existing_only)
