"""What each enrichment kind and each operator applies to, as data.

The validator checks documents against these tables; the engine can rely on every valid
document respecting them (e.g. an INCREMENT always targets a number and has one operand).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from google.protobuf.descriptor import EnumDescriptor

from crowd.definitions.normalise import enum_prefix
from crowd.definitions.value_types import (
    COLLECTIONS,
    SCALARS,
    STRINGISH,
    VType,
    attribute_vtype,
)
from crowd.profile.v1 import definitions_pb2 as pb

T = pb.AttributeType

ALL_ATTRIBUTE_TYPES = frozenset(
    v.number for v in pb.AttributeType.DESCRIPTOR.values if v.number != 0
)
ARRAY_TYPES = frozenset(
    {
        pb.ATTRIBUTE_TYPE_STRING_ARRAY,
        pb.ATTRIBUTE_TYPE_NUMBER_ARRAY,
        pb.ATTRIBUTE_TYPE_BOOLEAN_ARRAY,
    }
)
VISITOR_ONLY_TYPES = frozenset({pb.ATTRIBUTE_TYPE_BADGE, pb.ATTRIBUTE_TYPE_VISITOR_ID})
"""Types that only exist with visitor scope (Tealium §1.2)."""


@dataclass(frozen=True, slots=True)
class OperandSpec:
    """One operand an enrichment reads.

    Attributes:
        accepts: Types accepted (an event value, `VType.ANY`, is always accepted).
        expected: What to call it in messages, e.g. ``"a number"``.
        constant_allowed: False when the operand must name an attribute or event field.
        required: False for trailing optional operands.
    """

    accepts: frozenset[VType]
    expected: str
    constant_allowed: bool = True
    required: bool = True


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What an enrichment kind applies to and reads.

    Attributes:
        applies_to: Attribute types it may enrich.
        operands: Operand specs by attribute type (types absent here take no operands).
        repeat_last: The last operand spec may repeat (JOIN).
        min_operands: Fewest operands when `repeat_last`.
        uses: Which optional Enrichment fields it uses (key, delimiter, date_format, capture,
            required); setting another one is reported as a mistake.
        needs_key: ``key`` must be set.
    """

    applies_to: frozenset[int]
    operands: Mapping[int, tuple[OperandSpec, ...]] = field(default_factory=dict)
    repeat_last: bool = False
    min_operands: int = 0
    uses: frozenset[str] = frozenset()
    needs_key: bool = False

    def operand_specs(self, attribute_type: int) -> tuple[OperandSpec, ...]:
        """The operand specs for an attribute of ``attribute_type``."""
        return self.operands.get(attribute_type, ())


def _spec(accepts: frozenset[VType] | set[VType], expected: str, **kw: bool) -> OperandSpec:
    return OperandSpec(frozenset(accepts), expected, **kw)


NUMBER = _spec({VType.NUMBER}, "a number")
OPTIONAL_NUMBER = _spec({VType.NUMBER}, "a number", required=False)
STRING_OR_STRINGS = _spec(
    {*STRINGISH, VType.STRING_SET, VType.STRING_ARRAY}, "a string or a list of strings"
)

_SET_OPERAND: dict[int, tuple[OperandSpec, ...]] = {
    T.ATTRIBUTE_TYPE_NUMBER: (NUMBER,),
    T.ATTRIBUTE_TYPE_STRING: (_spec(STRINGISH, "a string"),),
    T.ATTRIBUTE_TYPE_BOOLEAN: (_spec({VType.BOOLEAN}, "a boolean"),),
    # Strings are parsed (ISO 8601, epoch milliseconds or date_format), numbers are epoch ms.
    T.ATTRIBUTE_TYPE_DATE: (
        _spec(
            {VType.DATE, VType.STRING, VType.NUMBER}, "a date, a date string or epoch milliseconds"
        ),
    ),
    # Tealium: a visitor ID is set from a string identifier, never from a number.
    T.ATTRIBUTE_TYPE_VISITOR_ID: (_spec(STRINGISH, "a string"),),
    T.ATTRIBUTE_TYPE_STRING_ARRAY: (
        _spec({VType.STRING_ARRAY, VType.STRING_SET}, "a list of strings"),
    ),
    T.ATTRIBUTE_TYPE_NUMBER_ARRAY: (_spec({VType.NUMBER_ARRAY}, "a list of numbers"),),
    T.ATTRIBUTE_TYPE_BOOLEAN_ARRAY: (_spec({VType.BOOLEAN_ARRAY}, "a list of booleans"),),
}

_APPEND_OPERAND: dict[int, tuple[OperandSpec, ...]] = {
    T.ATTRIBUTE_TYPE_STRING_ARRAY: (STRING_OR_STRINGS,),
    T.ATTRIBUTE_TYPE_NUMBER_ARRAY: (
        _spec({VType.NUMBER, VType.NUMBER_ARRAY}, "a number or a list of numbers"),
    ),
    T.ATTRIBUTE_TYPE_BOOLEAN_ARRAY: (
        _spec({VType.BOOLEAN, VType.BOOLEAN_ARRAY}, "a boolean or a list of booleans"),
    ),
}


DATE = _spec({VType.DATE, VType.STRING, VType.NUMBER}, "a date")
TALLY = _spec({VType.TALLY}, "a tally", constant_allowed=False)
TIMELINE = _spec({VType.TIMELINE}, "a timeline", constant_allowed=False)
_STRING = _spec(STRINGISH, "a string")
_SPLIT_OPERAND: dict[int, tuple[OperandSpec, ...]] = {
    T.ATTRIBUTE_TYPE_STRING_SET: (_STRING,),
    T.ATTRIBUTE_TYPE_STRING_ARRAY: (_STRING,),
}
_STRINGS = _spec({VType.STRING_ARRAY, VType.STRING_SET}, "a list of strings")
_NUMBERS = _spec({VType.NUMBER_ARRAY}, "a list of numbers")
_BOOLEANS = _spec({VType.BOOLEAN_ARRAY}, "a list of booleans")
_DIFFERENCE_OPERANDS: dict[int, tuple[OperandSpec, ...]] = {
    T.ATTRIBUTE_TYPE_STRING_SET: (_STRINGS, _STRINGS),
    T.ATTRIBUTE_TYPE_STRING_ARRAY: (_STRINGS, _STRINGS),
    T.ATTRIBUTE_TYPE_NUMBER_ARRAY: (_NUMBERS, _NUMBERS),
    T.ATTRIBUTE_TYPE_BOOLEAN_ARRAY: (_BOOLEANS, _BOOLEANS),
}
_REMOVE_OPERAND: dict[int, tuple[OperandSpec, ...]] = {
    T.ATTRIBUTE_TYPE_STRING_ARRAY: (_STRING,),
    T.ATTRIBUTE_TYPE_NUMBER_ARRAY: (NUMBER,),
    T.ATTRIBUTE_TYPE_BOOLEAN_ARRAY: (_spec({VType.BOOLEAN}, "a boolean"),),
}


def _only(attribute_type: int, *specs: OperandSpec) -> dict[int, tuple[OperandSpec, ...]]:
    return {attribute_type: specs}


_NUM = frozenset({T.ATTRIBUTE_TYPE_NUMBER})
_TALLY = frozenset({T.ATTRIBUTE_TYPE_TALLY})
_SET = frozenset({T.ATTRIBUTE_TYPE_STRING_SET})

# A rolling aggregate reads a timeline and names the captured attribute in ``key`` (a number,
# or a tally for a tally's key-wise aggregate).
_ROLLING = KindSpec(
    frozenset({T.ATTRIBUTE_TYPE_NUMBER, T.ATTRIBUTE_TYPE_TALLY}),
    {T.ATTRIBUTE_TYPE_NUMBER: (TIMELINE,), T.ATTRIBUTE_TYPE_TALLY: (TIMELINE,)},
    uses=frozenset({"key"}),
    needs_key=True,
)

K = pb.EnrichmentKind
KIND_SPECS: Mapping[int, KindSpec] = MappingProxyType(
    {
        K.ENRICHMENT_KIND_INCREMENT: KindSpec(_NUM, _only(T.ATTRIBUTE_TYPE_NUMBER, NUMBER)),
        K.ENRICHMENT_KIND_DECREMENT: KindSpec(_NUM, _only(T.ATTRIBUTE_TYPE_NUMBER, NUMBER)),
        K.ENRICHMENT_KIND_SET: KindSpec(
            frozenset(_SET_OPERAND), _SET_OPERAND, uses=frozenset({"date_format"})
        ),
        K.ENRICHMENT_KIND_SET_SUM: KindSpec(_NUM, _only(T.ATTRIBUTE_TYPE_NUMBER, NUMBER, NUMBER)),
        K.ENRICHMENT_KIND_SET_DIFFERENCE: KindSpec(
            _NUM, _only(T.ATTRIBUTE_TYPE_NUMBER, NUMBER, NUMBER)
        ),
        K.ENRICHMENT_KIND_SET_PRODUCT: KindSpec(
            _NUM, _only(T.ATTRIBUTE_TYPE_NUMBER, NUMBER, NUMBER)
        ),
        K.ENRICHMENT_KIND_SET_RATIO: KindSpec(_NUM, _only(T.ATTRIBUTE_TYPE_NUMBER, NUMBER, NUMBER)),
        K.ENRICHMENT_KIND_SET_SIZE: KindSpec(
            _NUM,
            _only(
                T.ATTRIBUTE_TYPE_NUMBER,
                _spec(COLLECTIONS, "a set, tally, array or timeline", constant_allowed=False),
            ),
        ),
        K.ENRICHMENT_KIND_LOWERCASE: KindSpec(
            frozenset(
                {
                    T.ATTRIBUTE_TYPE_STRING,
                    T.ATTRIBUTE_TYPE_STRING_SET,
                    T.ATTRIBUTE_TYPE_STRING_ARRAY,
                }
            )
        ),
        K.ENRICHMENT_KIND_JOIN: KindSpec(
            frozenset({T.ATTRIBUTE_TYPE_STRING}),
            _only(T.ATTRIBUTE_TYPE_STRING, _spec(SCALARS, "a number, string, boolean or date")),
            repeat_last=True,
            min_operands=2,
            uses=frozenset({"delimiter"}),
        ),
        # A visitor ID cannot change once set (Tealium), so it cannot be removed either.
        K.ENRICHMENT_KIND_REMOVE: KindSpec(ALL_ATTRIBUTE_TYPES - {T.ATTRIBUTE_TYPE_VISITOR_ID}),
        K.ENRICHMENT_KIND_SET_TRUE: KindSpec(frozenset({T.ATTRIBUTE_TYPE_BOOLEAN})),
        K.ENRICHMENT_KIND_SET_FALSE: KindSpec(frozenset({T.ATTRIBUTE_TYPE_BOOLEAN})),
        K.ENRICHMENT_KIND_CAPTURE_DATE: KindSpec(frozenset({T.ATTRIBUTE_TYPE_DATE})),
        K.ENRICHMENT_KIND_ASSIGN_BADGE: KindSpec(frozenset({T.ATTRIBUTE_TYPE_BADGE})),
        K.ENRICHMENT_KIND_REMOVE_BADGE: KindSpec(frozenset({T.ATTRIBUTE_TYPE_BADGE})),
        K.ENRICHMENT_KIND_INCREMENT_TALLY: KindSpec(
            _TALLY,
            _only(
                T.ATTRIBUTE_TYPE_TALLY,
                # A constant key is INCREMENT_TALLY_KEY's job.
                _spec(STRINGISH, "a string (the key)", constant_allowed=False),
                OPTIONAL_NUMBER,
            ),
        ),
        K.ENRICHMENT_KIND_INCREMENT_TALLY_KEY: KindSpec(
            _TALLY,
            _only(T.ATTRIBUTE_TYPE_TALLY, OPTIONAL_NUMBER),
            uses=frozenset({"key"}),
            needs_key=True,
        ),
        K.ENRICHMENT_KIND_REMOVE_TALLY_KEY: KindSpec(
            _TALLY, uses=frozenset({"key"}), needs_key=True
        ),
        K.ENRICHMENT_KIND_ADD_TO_SET: KindSpec(
            _SET, _only(T.ATTRIBUTE_TYPE_STRING_SET, STRING_OR_STRINGS)
        ),
        K.ENRICHMENT_KIND_REMOVE_FROM_SET: KindSpec(
            _SET, _only(T.ATTRIBUTE_TYPE_STRING_SET, STRING_OR_STRINGS)
        ),
        K.ENRICHMENT_KIND_STORE_AS_SET: KindSpec(
            _SET,
            _only(
                T.ATTRIBUTE_TYPE_STRING_SET,
                _spec({VType.STRING_ARRAY, VType.STRING_SET}, "a list of strings"),
            ),
        ),
        K.ENRICHMENT_KIND_APPEND: KindSpec(frozenset(_APPEND_OPERAND), _APPEND_OPERAND),
        K.ENRICHMENT_KIND_RESET: KindSpec(ARRAY_TYPES | _SET),
        K.ENRICHMENT_KIND_UPDATE_TIMELINE: KindSpec(
            frozenset({T.ATTRIBUTE_TYPE_TIMELINE}), uses=frozenset({"capture"})
        ),
        K.ENRICHMENT_KIND_FUNNEL_STEP: KindSpec(
            frozenset({T.ATTRIBUTE_TYPE_FUNNEL}),
            uses=frozenset({"key", "capture", "required"}),
            needs_key=True,
        ),
        K.ENRICHMENT_KIND_SET_DATE_DIFFERENCE: KindSpec(
            _NUM, _only(T.ATTRIBUTE_TYPE_NUMBER, DATE, DATE), uses=frozenset({"unit"})
        ),
        K.ENRICHMENT_KIND_FORMAT_DATE: KindSpec(
            frozenset({T.ATTRIBUTE_TYPE_STRING}),
            _only(T.ATTRIBUTE_TYPE_STRING, DATE),
            uses=frozenset({"date_format"}),
        ),
        K.ENRICHMENT_KIND_SPLIT: KindSpec(
            frozenset(_SPLIT_OPERAND), _SPLIT_OPERAND, uses=frozenset({"delimiter"})
        ),
        K.ENRICHMENT_KIND_SET_TO_DIFFERENCE: KindSpec(
            frozenset(_DIFFERENCE_OPERANDS), _DIFFERENCE_OPERANDS
        ),
        K.ENRICHMENT_KIND_REMOVE_ENTRIES: KindSpec(
            frozenset(_REMOVE_OPERAND), _REMOVE_OPERAND, uses=frozenset({"occurrence"})
        ),
        K.ENRICHMENT_KIND_TOP_KEYS: KindSpec(
            _SET, _only(T.ATTRIBUTE_TYPE_STRING_SET, TALLY), uses=frozenset({"count"})
        ),
        K.ENRICHMENT_KIND_INCREMENT_TALLY_BY_TALLY: KindSpec(
            _TALLY, _only(T.ATTRIBUTE_TYPE_TALLY, TALLY)
        ),
        K.ENRICHMENT_KIND_SET_ROLLING_SUM: _ROLLING,
        K.ENRICHMENT_KIND_SET_ROLLING_AVERAGE: _ROLLING,
        K.ENRICHMENT_KIND_SET_ROLLING_MAX: _ROLLING,
        K.ENRICHMENT_KIND_EXPIRE_TIMELINE_ENTRIES: KindSpec(
            frozenset({T.ATTRIBUTE_TYPE_TIMELINE}), uses=frozenset({"count", "unit"})
        ),
        # A change is measured on something that changes: an attribute or an event field.
        K.ENRICHMENT_KIND_SET_CHANGE_IN_NUMBER: KindSpec(
            _NUM,
            _only(
                T.ATTRIBUTE_TYPE_NUMBER, _spec({VType.NUMBER}, "a number", constant_allowed=False)
            ),
        ),
        K.ENRICHMENT_KIND_SET_CHANGE_IN_DATE: KindSpec(
            _NUM,
            _only(T.ATTRIBUTE_TYPE_NUMBER, _spec(DATE.accepts, "a date", constant_allowed=False)),
            uses=frozenset({"unit"}),
        ),
        K.ENRICHMENT_KIND_RANDOM_SPLIT: KindSpec(
            frozenset({T.ATTRIBUTE_TYPE_STRING}), uses=frozenset({"split_values"})
        ),
        K.ENRICHMENT_KIND_SET_TALLY_FROM_ARRAYS: KindSpec(
            _TALLY,
            _only(
                T.ATTRIBUTE_TYPE_TALLY,
                _spec({VType.STRING_ARRAY, VType.STRING_SET}, "a list of strings (the keys)"),
                _spec({VType.NUMBER_ARRAY}, "a list of numbers (the values)"),
            ),
        ),
        K.ENRICHMENT_KIND_KEYS_ABOVE: KindSpec(
            _SET, _only(T.ATTRIBUTE_TYPE_STRING_SET, TALLY, NUMBER)
        ),
        K.ENRICHMENT_KIND_SET_TO_TALLY_VALUE: KindSpec(
            _NUM, _only(T.ATTRIBUTE_TYPE_NUMBER, TALLY), uses=frozenset({"key"}), needs_key=True
        ),
    }
)


# --- operators --------------------------------------------------------------------------------

Op = pb.Operator
STRING_OPERATORS = frozenset(
    {
        Op.OPERATOR_EQUALS,
        Op.OPERATOR_NOT_EQUALS,
        Op.OPERATOR_CONTAINS,
        Op.OPERATOR_NOT_CONTAINS,
        Op.OPERATOR_CONTAINS_PARTIAL,
        Op.OPERATOR_STARTS_WITH,
        Op.OPERATOR_ENDS_WITH,
        Op.OPERATOR_MATCHES_REGEX,
    }
)
"""Operators that compare strings and so honour ``ignore_case``."""

ORDERING_OPERATORS = frozenset(
    {
        Op.OPERATOR_LESS_THAN,
        Op.OPERATOR_LESS_THAN_OR_EQUAL,
        Op.OPERATOR_GREATER_THAN,
        Op.OPERATOR_GREATER_THAN_OR_EQUAL,
    }
)
"""Numbers compare with ``value``; dates compare with now plus ``offset``."""

TALLY_KEY_OPERATORS = ORDERING_OPERATORS | {Op.OPERATOR_EQUALS, Op.OPERATOR_NOT_EQUALS}
"""Operators allowed as TALLY_KEY_VALUE's ``key_operator``."""

UNARY_OPERATORS = frozenset(
    {
        Op.OPERATOR_IS_ASSIGNED,
        Op.OPERATOR_IS_NOT_ASSIGNED,
        Op.OPERATOR_IS_EMPTY,
        Op.OPERATOR_IS_NOT_EMPTY,
        Op.OPERATOR_IS_TRUE,
        Op.OPERATOR_IS_FALSE,
        Op.OPERATOR_OCCURRED_WITHIN,
        Op.OPERATOR_OCCURRED_BEFORE,
        Op.OPERATOR_HAS_CHANGED,
        Op.OPERATOR_FUNNEL_STARTED,
        Op.OPERATOR_FUNNEL_COMPLETED,
        Op.OPERATOR_STEP_COMPLETED,
        Op.OPERATOR_STEP_NOT_COMPLETED,
    }
)
"""Operators that take no ``value``."""

STEP_OPERATORS = frozenset({Op.OPERATOR_STEP_COMPLETED, Op.OPERATOR_STEP_NOT_COMPLETED})
"""Funnel operators that name a step in ``key``."""

OFFSET_OPERATORS = frozenset({Op.OPERATOR_OCCURRED_WITHIN, Op.OPERATOR_OCCURRED_BEFORE})
"""Operators that need an ``offset`` (a positive amount and a unit)."""

ATTRIBUTE_ONLY_OPERATORS = frozenset(
    {
        Op.OPERATOR_TALLY_KEY_VALUE,
        Op.OPERATOR_HAS_CHANGED,
        Op.OPERATOR_FUNNEL_STARTED,
        Op.OPERATOR_FUNNEL_COMPLETED,
        *STEP_OPERATORS,
    }
)
"""Operators whose input must be an attribute (event data has no tally and no history)."""

_EVERY_VTYPE = frozenset(VType) - {VType.NULL, VType.ANY}
_CONTAINERS = frozenset(
    {
        *STRINGISH,
        VType.STRING_SET,
        VType.STRING_ARRAY,
        VType.NUMBER_ARRAY,
        VType.BOOLEAN_ARRAY,
        VType.TALLY,
    }
)

OPERATOR_INPUTS: Mapping[int, frozenset[VType]] = MappingProxyType(
    {
        Op.OPERATOR_EQUALS: SCALARS,
        Op.OPERATOR_NOT_EQUALS: SCALARS,
        Op.OPERATOR_CONTAINS: _CONTAINERS,
        Op.OPERATOR_NOT_CONTAINS: _CONTAINERS,
        Op.OPERATOR_CONTAINS_PARTIAL: frozenset(
            {VType.STRING_SET, VType.STRING_ARRAY, VType.TALLY, VType.VISITOR_ID}
        ),
        Op.OPERATOR_STARTS_WITH: STRINGISH,
        Op.OPERATOR_ENDS_WITH: STRINGISH,
        Op.OPERATOR_MATCHES_REGEX: STRINGISH,
        Op.OPERATOR_LESS_THAN: frozenset({VType.NUMBER, VType.DATE}),
        Op.OPERATOR_LESS_THAN_OR_EQUAL: frozenset({VType.NUMBER, VType.DATE}),
        Op.OPERATOR_GREATER_THAN: frozenset({VType.NUMBER, VType.DATE}),
        Op.OPERATOR_GREATER_THAN_OR_EQUAL: frozenset({VType.NUMBER, VType.DATE}),
        Op.OPERATOR_IS_ASSIGNED: _EVERY_VTYPE,
        Op.OPERATOR_IS_NOT_ASSIGNED: _EVERY_VTYPE,
        Op.OPERATOR_IS_EMPTY: _EVERY_VTYPE,
        Op.OPERATOR_IS_NOT_EMPTY: _EVERY_VTYPE,
        Op.OPERATOR_IS_TRUE: frozenset({VType.BOOLEAN}),
        Op.OPERATOR_IS_FALSE: frozenset({VType.BOOLEAN}),
        Op.OPERATOR_OCCURRED_WITHIN: frozenset({VType.DATE}),
        Op.OPERATOR_OCCURRED_BEFORE: frozenset({VType.DATE}),
        Op.OPERATOR_TALLY_KEY_VALUE: frozenset({VType.TALLY}),
        Op.OPERATOR_HAS_CHANGED: _EVERY_VTYPE,
        Op.OPERATOR_FUNNEL_STARTED: frozenset({VType.FUNNEL}),
        Op.OPERATOR_FUNNEL_COMPLETED: frozenset({VType.FUNNEL}),
        Op.OPERATOR_STEP_COMPLETED: frozenset({VType.FUNNEL}),
        Op.OPERATOR_STEP_NOT_COMPLETED: frozenset({VType.FUNNEL}),
    }
)
"""Input types each operator applies to (an event value, `VType.ANY`, fits every operator
except those in `ATTRIBUTE_ONLY_OPERATORS`)."""


def operator_value_types(operator: int, input_type: VType) -> frozenset[VType]:
    """The types ``value`` may have for ``input operator value`` (binary operators only)."""
    if operator in (Op.OPERATOR_EQUALS, Op.OPERATOR_NOT_EQUALS):
        if input_type in STRINGISH:
            return STRINGISH
        if input_type is VType.ANY:
            return SCALARS
        return frozenset({input_type})
    if operator in (Op.OPERATOR_CONTAINS, Op.OPERATOR_NOT_CONTAINS):
        if input_type is VType.NUMBER_ARRAY:
            return frozenset({VType.NUMBER})
        if input_type is VType.BOOLEAN_ARRAY:
            return frozenset({VType.BOOLEAN})
        if input_type is VType.ANY:
            return frozenset({*STRINGISH, VType.NUMBER, VType.BOOLEAN})
        return STRINGISH
    if operator in ORDERING_OPERATORS or operator == Op.OPERATOR_TALLY_KEY_VALUE:
        return frozenset({VType.NUMBER})
    # CONTAINS_PARTIAL, STARTS_WITH, ENDS_WITH, MATCHES_REGEX
    return STRINGISH


def enum_phrase(enum: EnumDescriptor, number: int) -> str:
    """A value's friendly name for messages: ``OPERATOR_GREATER_THAN`` -> ``greater than``."""
    value = enum.values_by_number.get(number)
    if value is None:
        return f"{enum.name} {number}"
    return value.name.removeprefix(enum_prefix(enum)).lower().replace("_", " ")


def operator_phrase(operator: int) -> str:
    """The operator's name for messages, e.g. ``greater than``."""
    return enum_phrase(pb.Operator.DESCRIPTOR, operator)


def kind_phrase(kind: int) -> str:
    """The enrichment kind's name for messages, e.g. ``increment tally key``."""
    return enum_phrase(pb.EnrichmentKind.DESCRIPTOR, kind)


def type_phrase(attribute_type: int) -> str:
    """``ATTRIBUTE_TYPE_STRING_SET`` -> ``a set of strings`` (via `VType` phrases)."""
    vtype = attribute_vtype(attribute_type)
    return vtype.phrase if vtype is not None else f"type {attribute_type}"
