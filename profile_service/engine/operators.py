"""Condition operators: compiling ``crowd.profile.v1.Condition`` into predicates.

Semantics (shared by enrichment rules, event feeds and audiences):

- An input with no value (unassigned attribute, absent or null event field, no event at
  visit end) matches nothing except IS_NOT_ASSIGNED and the negated operators
  (NOT_EQUALS, NOT_CONTAINS), which are exact negations of EQUALS and CONTAINS.
- EQUALS compares strings exactly (or case-insensitively with ``ignore_case``), numbers
  numerically (a numeric string equals its number), booleans with ``"true"``/``"false"``
  strings, dates to the millisecond (date strings are parsed), lists item by item.
- CONTAINS: substring for strings; an item for lists and sets (exact, or ignoring case);
  a key for tallies. A list value must be contained item by item.
- CONTAINS_PARTIAL: some item of a list or set, or some key of a tally, contains the
  value as a substring (a string input: substring).
- STARTS_WITH / ENDS_WITH / MATCHES_REGEX apply to strings (RE2, linear time whatever the
  input, ``re.search`` semantics: any part may match; a list input matches if any item
  does). A pattern RE2 cannot compile matches nothing.
- LESS_THAN ... GREATER_THAN_OR_EQUAL compare numbers, or dates when the input is a date
  or the condition has an ``offset`` or no ``value``: the date is compared with the value
  (a date) or, without one, with *now*, plus the offset (positive: future).
- OCCURRED_WITHIN: the date is less than ``|offset|`` before now (dates in the future
  count as within). OCCURRED_BEFORE: more than ``|offset|`` before now. Exactly
  ``|offset|`` ago is neither.
- TALLY_KEY_VALUE: the tally has ``key`` and its count compares with ``value`` by
  ``key_operator`` (EQUALS, NOT_EQUALS, the four orderings; IS_ASSIGNED / IS_NOT_ASSIGNED
  test the key's presence). A missing key matches nothing but IS_NOT_ASSIGNED.
- HAS_CHANGED: the input's value differs from its value before the current event (or
  before the visit end), unassigned counting as a value; event fields and constants
  never change.
- IS_TRUE / IS_FALSE: booleans, and the strings ``"true"``/``"false"`` in any case.
- IS_ASSIGNED: any value, ``""`` and empty lists included; a badge is assigned or absent.
- IS_EMPTY: no value, ``""``, an empty list or an empty tally (``0`` and ``false`` are
  values); IS_NOT_EMPTY is its negation.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable
from typing import Any, Final

from crowd.definitions.patterns import Pattern, compile_pattern, search
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.engine.context import EvalContext, Predicate, Reader
from profile_service.engine.operands import OperandCompiler
from profile_service.engine.values import (
    to_bool,
    to_date,
    to_number,
    to_string,
)

UNIT_MS: Final[dict[int, int]] = {
    pb.TIME_UNIT_SECONDS: 1000,
    pb.TIME_UNIT_MINUTES: 60_000,
    pb.TIME_UNIT_HOURS: 3_600_000,
    pb.TIME_UNIT_DAYS: 86_400_000,
    pb.TIME_UNIT_WEEKS: 7 * 86_400_000,
    pb.TIME_UNIT_MONTHS: 30 * 86_400_000,
}
"""Milliseconds per TimeUnit (a month is 30 days)."""

_ORDERINGS: Final[dict[int, Callable[[Any, Any], bool]]] = {
    pb.OPERATOR_LESS_THAN: op.lt,
    pb.OPERATOR_LESS_THAN_OR_EQUAL: op.le,
    pb.OPERATOR_GREATER_THAN: op.gt,
    pb.OPERATOR_GREATER_THAN_OR_EQUAL: op.ge,
}
_NUMERIC_COMPARISONS: Final[dict[int, Callable[[Any, Any], bool]]] = {
    **_ORDERINGS,
    pb.OPERATOR_EQUALS: op.eq,
    pb.OPERATOR_NOT_EQUALS: op.ne,
}


def offset_ms(offset: pb.TimeOffset) -> int:
    """A TimeOffset in milliseconds (0 when unset)."""
    return offset.amount * UNIT_MS.get(offset.unit, 0)


class _Never(Exception):
    """Raised while compiling to say the condition can never match."""


def _never(_c: EvalContext) -> bool:
    return False


# --- value comparisons -----------------------------------------------------------------------


def values_equal(a: Any, b: Any, ignore_case: bool, formats: tuple[str, ...] = ()) -> bool:
    """EQUALS on two plain values (see the module docstring)."""
    if a is None or b is None:
        return False
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold() if ignore_case else a == b
    if isinstance(a, bool) or isinstance(b, bool):
        x = to_bool(a)
        return x is not None and x == to_bool(b)
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return False
        return all(values_equal(x, y, ignore_case, formats) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) or isinstance(b, dict):
        return bool(a == b)
    if isinstance(a, int) or isinstance(b, int):  # a date on one side
        date = to_date(a, formats)
        return date is not None and date == to_date(b, formats)
    number = to_number(a)
    return number is not None and number == to_number(b)


def value_contains(a: Any, b: Any, ignore_case: bool) -> bool:
    """CONTAINS on two plain values (see the module docstring)."""
    if a is None or b is None:
        return False
    if isinstance(a, str):
        needle = to_string(b)
        if needle is None:
            return False
        return needle.casefold() in a.casefold() if ignore_case else needle in a
    if isinstance(b, list):
        return bool(b) and all(value_contains(a, item, ignore_case) for item in b)
    if isinstance(a, list):
        if isinstance(b, str) and not ignore_case:
            return b in a
        return any(values_equal(item, b, ignore_case) for item in a)
    if isinstance(a, dict):
        key = to_string(b)
        if key is None:
            return False
        if not ignore_case:
            return key in a
        folded = key.casefold()
        return any(existing.casefold() == folded for existing in a)
    return False


def value_contains_partial(a: Any, b: Any, ignore_case: bool) -> bool:
    """CONTAINS_PARTIAL: some item (list), key (tally) or the string contains ``b``."""
    needle = to_string(b)
    if a is None or needle is None:
        return False
    if ignore_case:
        needle = needle.casefold()
    if isinstance(a, str):
        items: Any = (a,)
    elif isinstance(a, list | dict):
        items = a
    else:
        return False
    for item in items:
        if isinstance(item, str) and needle in (item.casefold() if ignore_case else item):
            return True
    return False


def _affix(a: Any, b: Any, ignore_case: bool, starts: bool) -> bool:
    affix = to_string(b)
    if not isinstance(a, str) or affix is None:
        return False
    text: str = a
    if ignore_case:
        text, affix = text.casefold(), affix.casefold()
    return text.startswith(affix) if starts else text.endswith(affix)


def _regex_matches(pattern: Pattern | None, a: Any) -> bool:
    if pattern is None:
        return False
    if isinstance(a, str):
        return search(pattern, a)
    if isinstance(a, list):
        return any(isinstance(item, str) and search(pattern, item) for item in a)
    return False


def _ordered_pair(a: Any, b: Any, formats: tuple[str, ...]) -> tuple[Any, Any] | None:
    """Numbers to compare, or dates when either side is one; ``None`` if incomparable."""
    x, y = to_number(a), to_number(b)
    if x is not None and y is not None:
        return x, y
    dates = isinstance(a, int) or isinstance(b, int)
    if dates and not isinstance(a, bool) and not isinstance(b, bool):
        dx, dy = to_date(a, formats), to_date(b, formats)
        if dx is not None and dy is not None:
            return dx, dy
    return None


# --- compilation -----------------------------------------------------------------------------


def compile_condition(
    condition: pb.Condition, operands: OperandCompiler, formats: tuple[str, ...]
) -> Predicate:
    """Compile one condition into a predicate over the evaluation context."""
    try:
        return _compile(condition, operands, formats)
    except _Never:
        return _never


def _compile(
    condition: pb.Condition, operands: OperandCompiler, formats: tuple[str, ...]
) -> Predicate:
    operator = condition.operator
    read = operands.reader(condition.input)
    ignore_case = condition.ignore_case

    if operator == pb.OPERATOR_IS_ASSIGNED:
        return lambda c: read(c) is not None
    if operator == pb.OPERATOR_IS_NOT_ASSIGNED:
        return lambda c: read(c) is None
    if operator == pb.OPERATOR_IS_EMPTY:
        return lambda c: _is_empty(read(c))
    if operator == pb.OPERATOR_IS_NOT_EMPTY:
        return lambda c: not _is_empty(read(c))
    if operator == pb.OPERATOR_IS_TRUE:
        return lambda c: to_bool(read(c)) is True
    if operator == pb.OPERATOR_IS_FALSE:
        return lambda c: to_bool(read(c)) is False
    if operator == pb.OPERATOR_HAS_CHANGED:
        previous = operands.previous_reader(condition.input)
        return lambda c: bool(read(c) != previous(c))
    if operator in (pb.OPERATOR_OCCURRED_WITHIN, pb.OPERATOR_OCCURRED_BEFORE):
        return _occurred(read, operator, abs(offset_ms(condition.offset)), formats)
    if operator in _FUNNEL_OPERATORS:
        return _funnel(read, operator, condition.key)

    value = operands.optional_reader(condition.value)
    if operator == pb.OPERATOR_TALLY_KEY_VALUE:
        return _tally_key_value(read, value, condition)
    if operator in _ORDERINGS:
        date_input = operands.static_type(condition.input) == pb.ATTRIBUTE_TYPE_DATE
        if date_input or value is None or condition.HasField("offset"):
            return _date_ordering(read, value, operator, offset_ms(condition.offset), formats)
        if condition.value.WhichOneof("source") == "constant":
            threshold = to_number(value(_NO_CONTEXT))
            if threshold is not None:
                return _number_ordering(read, value, threshold, _ORDERINGS[operator], formats)
        return _ordering(read, value, _ORDERINGS[operator], formats)
    if value is None:
        raise _Never
    return _binary(read, value, operator, ignore_case, formats, condition)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _binary(
    read: Reader,
    value: Reader,
    operator: int,
    ignore_case: bool,
    formats: tuple[str, ...],
    condition: pb.Condition,
) -> Predicate:
    if operator in (pb.OPERATOR_EQUALS, pb.OPERATOR_NOT_EQUALS):
        equals = _equals(read, value, ignore_case, formats, condition)
        if operator == pb.OPERATOR_EQUALS:
            return equals
        return lambda c: not equals(c)
    if operator == pb.OPERATOR_CONTAINS:
        return lambda c: value_contains(read(c), value(c), ignore_case)
    if operator == pb.OPERATOR_NOT_CONTAINS:
        return lambda c: not value_contains(read(c), value(c), ignore_case)
    if operator == pb.OPERATOR_CONTAINS_PARTIAL:
        return lambda c: value_contains_partial(read(c), value(c), ignore_case)
    if operator == pb.OPERATOR_STARTS_WITH:
        return lambda c: _affix(read(c), value(c), ignore_case, starts=True)
    if operator == pb.OPERATOR_ENDS_WITH:
        return lambda c: _affix(read(c), value(c), ignore_case, starts=False)
    if operator == pb.OPERATOR_MATCHES_REGEX:
        if condition.value.WhichOneof("source") == "constant":
            source = to_string(value(_NO_CONTEXT))
            pattern = compile_pattern(source, ignore_case) if source is not None else None
            return lambda c: _regex_matches(pattern, read(c))

        def matches_dynamic(c: EvalContext) -> bool:
            source = to_string(value(c))
            return source is not None and _regex_matches(
                compile_pattern(source, ignore_case), read(c)
            )

        return matches_dynamic
    raise _Never


_FUNNEL_OPERATORS = frozenset(
    {
        pb.OPERATOR_FUNNEL_STARTED,
        pb.OPERATOR_FUNNEL_COMPLETED,
        pb.OPERATOR_STEP_COMPLETED,
        pb.OPERATOR_STEP_NOT_COMPLETED,
    }
)


def _funnel(read: Reader, operator: int, step_id: str) -> Predicate:
    """Funnel conditions over the stored ``{"steps": [[id, ms, snapshot]...], "completed"}``;
    an unassigned funnel is neither started nor has any step."""

    def recorded(c: EvalContext) -> tuple[set[str], bool]:
        funnel = read(c)
        if not isinstance(funnel, dict):
            return set(), False
        steps = funnel.get("steps")
        ids = (
            {s[0] for s in steps if isinstance(s, list) and s} if isinstance(steps, list) else set()
        )
        return ids, bool(funnel.get("completed"))

    if operator == pb.OPERATOR_FUNNEL_STARTED:
        return lambda c: bool(recorded(c)[0])
    if operator == pb.OPERATOR_FUNNEL_COMPLETED:
        return lambda c: recorded(c)[1]
    if operator == pb.OPERATOR_STEP_COMPLETED:
        return lambda c: step_id in recorded(c)[0]
    return lambda c: step_id not in recorded(c)[0]


_NO_CONTEXT: Any = None
"""Passed to constant readers, which ignore their context."""


def _equals(
    read: Reader,
    value: Reader,
    ignore_case: bool,
    formats: tuple[str, ...],
    condition: pb.Condition,
) -> Predicate:
    """EQUALS; against a constant text (e.g. an event name, the most common rule) the text
    case is compared directly, against a constant boolean (e.g. a visit flag) the boolean,
    the rest goes through `values_equal` as usual."""
    constant = value(_NO_CONTEXT) if condition.value.WhichOneof("source") == "constant" else None
    if isinstance(constant, bool):
        # `values_equal` against a boolean: both sides read as booleans, no value is unequal.
        return lambda c: to_bool(read(c)) is constant
    if not isinstance(constant, str):
        return lambda c: values_equal(read(c), value(c), ignore_case, formats)
    text = constant.casefold() if ignore_case else constant

    def equals_text(c: EvalContext) -> bool:
        current = read(c)
        if type(current) is str:
            return (current.casefold() if ignore_case else current) == text
        return values_equal(current, constant, ignore_case, formats)

    return equals_text


def _ordering(
    read: Reader, value: Reader, compare: Callable[[Any, Any], bool], formats: tuple[str, ...]
) -> Predicate:
    def ordered(c: EvalContext) -> bool:
        pair = _ordered_pair(read(c), value(c), formats)
        return pair is not None and compare(pair[0], pair[1])

    return ordered


def _number_ordering(
    read: Reader,
    value: Reader,
    threshold: float,
    compare: Callable[[Any, Any], bool],
    formats: tuple[str, ...],
) -> Predicate:
    """`_ordering` against a constant number (e.g. an audience threshold), converted once;
    a value that is not a number takes the general path (a date compared with a date)."""

    def ordered_number(c: EvalContext) -> bool:
        current = read(c)
        if current is None:
            return False  # no value compares (e.g. a badge rule over an unassigned count)
        number = to_number(current)
        if number is not None:
            return compare(number, threshold)
        pair = _ordered_pair(current, value(c), formats)
        return pair is not None and compare(pair[0], pair[1])

    return ordered_number


def _date_ordering(
    read: Reader, value: Reader | None, operator: int, offset: int, formats: tuple[str, ...]
) -> Predicate:
    compare = _ORDERINGS[operator]

    def dated(c: EvalContext) -> bool:
        date = to_date(read(c), formats)
        if date is None:
            return False
        reference = c.now_ms if value is None else to_date(value(c), formats)
        return reference is not None and compare(date, reference + offset)

    return dated


def _occurred(read: Reader, operator: int, span: int, formats: tuple[str, ...]) -> Predicate:
    within = operator == pb.OPERATOR_OCCURRED_WITHIN

    def occurred(c: EvalContext) -> bool:
        date = to_date(read(c), formats)
        if date is None:
            return False
        age = c.now_ms - date
        return age < span if within else age > span

    return occurred


def _tally_key_value(read: Reader, value: Reader | None, condition: pb.Condition) -> Predicate:
    key = condition.key
    folded = key.casefold()
    ignore_case = condition.ignore_case
    key_operator = condition.key_operator
    if key_operator not in (pb.OPERATOR_IS_ASSIGNED, pb.OPERATOR_IS_NOT_ASSIGNED) and (
        value is None or key_operator not in _NUMERIC_COMPARISONS
    ):
        raise _Never
    compare: Callable[[Any, Any], bool] = _NUMERIC_COMPARISONS.get(key_operator, op.eq)

    def tally_key(c: EvalContext) -> bool:
        tally = read(c)
        count: Any = None
        if isinstance(tally, dict):
            count = tally.get(key)
            if count is None and ignore_case:
                count = next((n for k, n in tally.items() if k.casefold() == folded), None)
            count = to_number(count)
        if key_operator == pb.OPERATOR_IS_NOT_ASSIGNED:
            return count is None
        if count is None:
            return False
        if key_operator == pb.OPERATOR_IS_ASSIGNED:
            return True
        assert value is not None  # checked when compiling
        number = to_number(value(c))
        return number is not None and compare(count, number)

    return tally_key
