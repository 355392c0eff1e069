"""Domain errors and their one mapping to canonical gRPC status codes (AIP-193).

(Over 400 lines on purpose: one closed family of error classes and the size bounds every one of
them applies; the interceptor that sends them lives in error_mapping.py.)

Servicers raise a :class:`DomainError` subclass; ``error_mapping.ErrorMappingInterceptor`` turns it
into a ``google.rpc.Status`` carrying an ``ErrorInfo`` (domain ``crowd.dev``, an UPPER_SNAKE reason,
metadata) and, for :class:`InvalidArgument`, one ``BadRequest`` with every field violation. Any
other exception becomes ``INTERNAL`` with a generic message: the traceback is logged server-side
(secrets redacted) and never sent to the caller, unlike grpc's default which echoes ``str(exc)``.

Whatever the input, the status stays small: echoed keys and values are cut to
:data:`MAX_ECHO_CHARS` (:func:`compact_violation`), a ``BadRequest`` lists at most
:data:`MAX_LISTED_VIOLATIONS` within a byte budget (``ErrorInfo`` metadata ``violationCount``
then holds the total), and messages and metadata values are bounded too.

Clients (tests, the client library) read the details back with :func:`decode_error`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import (
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, NoReturn, cast

import grpc
import grpc.aio
import redis.exceptions
from google.protobuf import any_pb2, duration_pb2

# googleapis-common-protos ships .pyi files but no py.typed marker.
from google.rpc import (  # type: ignore[import-untyped, unused-ignore]
    error_details_pb2,
    status_pb2,
)
from grpc_status import rpc_status

__all__ = [
    "ERROR_DOMAIN",
    "STORAGE_OUTAGES",
    "Aborted",
    "AlreadyExists",
    "DecodedError",
    "DomainError",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Violations",
    "abort_with_error",
    "compact_violation",
    "decode_error",
    "shorten",
]

logger = logging.getLogger(__name__)

#: ``ErrorInfo.domain`` of every error this project raises (AIP-193: globally unique).
ERROR_DOMAIN = "crowd.dev"

# AIP-193 formats, checked when an error is constructed so a bad reason fails in tests, not in
# a client's error handling.
_REASON_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,61}[A-Z0-9]$")
_METADATA_KEY_RE = re.compile(r"^[a-z][a-zA-Z0-9\-_]+$")

# Error details must stay small whatever the input: gRPC refuses trailers over 16 KiB (the
# client then sees RESOURCE_EXHAUSTED instead of the error), and echoing a 10,000-character key
# helps nobody. Keys and values are echoed up to MAX_ECHO_CHARS, BadRequest lists at most
# MAX_LISTED_VIOLATIONS within a byte budget (the message and ErrorInfo carry the full count).
# Worst case (4-byte characters everywhere): ~2.4 KB grpc-message (percent-encoded) plus
# ~8.5 KB grpc-status-details-bin (base64), well below the limit.
MAX_ECHO_CHARS = 64
"""Longest run of an offending key or value echoed in a violation (then ``…``)."""
MAX_LISTED_VIOLATIONS = 100
"""At most this many field violations are listed in a ``BadRequest``; the rest are counted."""
_MAX_FIELD_CHARS = 160
_MAX_DESCRIPTION_CHARS = 160
_MAX_MESSAGE_CHARS = 200
_MAX_METADATA_VALUE_CHARS = 256
_BAD_REQUEST_BUDGET_BYTES = 5 * 1024
# Runs between path separators (a field name, an index, a quoted map key) and runs of
# non-space characters in a description: the places where client input is echoed.
_LONG_PATH_PART_RE = re.compile(rf"[^.\[\]]{{{MAX_ECHO_CHARS + 1},}}")
_LONG_WORD_RE = re.compile(rf"\S{{{MAX_ECHO_CHARS + 1},}}")


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid request field.

    Attributes:
        field: Dot-separated path into the request, e.g. ``events[3].attributes.email``.
        description: Why the value is invalid, in brief developer-facing English.
    """

    field: str
    description: str


def shorten(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text``, or its first ``limit`` characters followed by ``…`` when it is longer."""
    return text if len(text) <= limit else text[:limit] + "…"


def compact_violation(violation: FieldViolation) -> FieldViolation:
    """``violation`` with echoed keys and values cut to :data:`MAX_ECHO_CHARS` (then ``…``).

    Every part of the field path (``events[3].data['<key>']``) and every word of the
    description is cut on its own, so the path stays readable; the whole is bounded too.
    """

    def cut(match: re.Match[str]) -> str:
        return shorten(match.group())

    field = shorten(_LONG_PATH_PART_RE.sub(cut, violation.field), _MAX_FIELD_CHARS)
    description = shorten(_LONG_WORD_RE.sub(cut, violation.description), _MAX_DESCRIPTION_CHARS)
    if field == violation.field and description == violation.description:
        return violation
    return FieldViolation(field, description)


def _listed(violations: Sequence[FieldViolation]) -> list[FieldViolation]:
    """The compacted violations a ``BadRequest`` lists: the first ones within the caps."""
    listed: list[FieldViolation] = []
    size = 0
    for violation in violations[:MAX_LISTED_VIOLATIONS]:
        compact = compact_violation(violation)
        # Serialized size of one FieldViolation: two length-delimited strings plus framing.
        size += len(compact.field.encode()) + len(compact.description.encode()) + 8
        if listed and size > _BAD_REQUEST_BUDGET_BYTES:
            break
        listed.append(compact)
    return listed


class DomainError(Exception):
    """Base of every error a servicer raises on purpose.

    Subclasses fix the gRPC code; each instance carries a message, an AIP-193 reason and
    metadata. Every dynamic value shown in ``message`` should also be in ``metadata`` so that
    clients never parse messages.

    Args:
        message: Brief developer-facing English. Never put secrets or API keys here.
        reason: UPPER_SNAKE cause, at most 63 characters (defaults to the class's reason).
        metadata: Extra facts; keys match ``[a-z][a-zA-Z0-9-_]+``, values are strings.
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    default_reason: ClassVar[str] = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})
        if not _REASON_RE.match(self.reason):
            raise ValueError(f"error reason {self.reason!r} is not UPPER_SNAKE (<= 63 chars)")
        for key, value in self.metadata.items():
            if not _METADATA_KEY_RE.match(key):
                raise ValueError(f"error metadata key {key!r} must match [a-z][a-zA-Z0-9-_]+")
            if not isinstance(value, str):
                raise TypeError(f"error metadata value for {key!r} must be a str")

    def details(self) -> list[Any]:
        """Detail messages packed into the status, ``ErrorInfo`` first (subclasses add more)."""
        return [
            error_details_pb2.ErrorInfo(
                reason=self.reason,
                domain=ERROR_DOMAIN,
                metadata={
                    key: shorten(value, _MAX_METADATA_VALUE_CHARS)
                    for key, value in self.metadata.items()
                },
            )
        ]

    def to_status(self) -> status_pb2.Status:
        """The ``google.rpc.Status`` sent to the caller."""
        packed = []
        for detail in self.details():
            any_detail = any_pb2.Any()
            any_detail.Pack(detail)
            packed.append(any_detail)
        return status_pb2.Status(
            code=self.code.value[0],
            message=shorten(self.message, _MAX_MESSAGE_CHARS),
            details=packed,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class InvalidArgument(DomainError):
    """The request is malformed: ``INVALID_ARGUMENT`` with one ``BadRequest`` detail.

    Args:
        violations: Every invalid field (report them all at once, not only the first).
        message: Defaults to a summary naming the first violation and the count.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        violations: Iterable[FieldViolation],
        message: str | None = None,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.violations = list(violations)
        if message is None:
            message = _summarise(self.violations)
        super().__init__(message, reason=reason, metadata=metadata)

    def details(self) -> list[Any]:
        listed = _listed(self.violations)
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in listed
            ]
        )
        details = super().details()
        if len(listed) < len(self.violations):
            # Not every violation fits: say how many there were (the message says it too).
            details[0].metadata["violationCount"] = str(len(self.violations))
        return [*details, bad_request]


def _summarise(violations: Sequence[FieldViolation]) -> str:
    if not violations:
        return "invalid request"
    first = compact_violation(violations[0])
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return f"invalid request: {first.field}: {first.description}{more}"


class NotFound(DomainError):
    """The named resource does not exist: ``NOT_FOUND``."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    """The resource to create exists already: ``ALREADY_EXISTS``."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The system is not in the state the call needs; retrying alone will not help."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class PermissionDenied(DomainError):
    """The caller is known but not allowed to do this: ``PERMISSION_DENIED``."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    """The caller presented no valid credentials: ``UNAUTHENTICATED``."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class Aborted(DomainError):
    """A concurrency conflict (e.g. an optimistic transaction lost); retry the whole call."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class _Retryable(DomainError):
    """An error that may carry a ``RetryInfo`` telling the client when to try again."""

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_delay: dt.timedelta | float | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        if isinstance(retry_delay, (int, float)):
            retry_delay = dt.timedelta(seconds=retry_delay)
        self.retry_delay = retry_delay

    def details(self) -> list[Any]:
        details = super().details()
        if self.retry_delay is not None:
            delay = duration_pb2.Duration()
            delay.FromTimedelta(self.retry_delay)
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
        return details


class ResourceExhausted(_Retryable):
    """A quota or rate limit is exhausted: ``RESOURCE_EXHAUSTED`` (optionally with RetryInfo)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(_Retryable):
    """A transient outage (e.g. Redis unreachable); safe to retry: ``UNAVAILABLE``."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class Internal(DomainError):
    """A bug or an unexpected failure: ``INTERNAL``. Raised for you by the interceptor."""

    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"


class Violations:
    """Collects field violations so a validator can report every problem in one error.

    Example::

        v = Violations()
        if not request.name:
            v.add("name", "must not be empty")
        v.extend_prefixed(f"events[{i}]", validate_event(event))
        v.raise_if_any()
    """

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        """Record that ``field`` is invalid because of ``description``."""
        self._items.append(FieldViolation(field, description))

    def extend_prefixed(self, prefix: str, other: Violations | Iterable[FieldViolation]) -> None:
        """Add ``other``'s violations with their field paths nested under ``prefix``.

        ``prefix`` ``"events[2]"`` turns field ``"name"`` into ``"events[2].name"``; an empty
        field (a violation of the message as a whole) becomes the prefix itself.
        """
        for v in other:
            path = f"{prefix}.{v.field}" if prefix and v.field else (prefix or v.field)
            self._items.append(FieldViolation(path, v.description))

    def raise_if_any(self, message: str | None = None, *, reason: str | None = None) -> None:
        """Raise :class:`InvalidArgument` with all violations, if any were recorded."""
        if self._items:
            raise InvalidArgument(self._items, message, reason=reason)

    def __iter__(self) -> Iterator[FieldViolation]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)


async def abort_with_error(
    context: grpc.aio.ServicerContext[Any, Any], error: DomainError
) -> NoReturn:
    """End the RPC with ``error``'s status and details; never returns.

    Uses ``context.abort`` (not ``abort_with_status``): the OpenTelemetry context proxy only
    records the status code on the span when its ``abort`` is called, and ``abort_with_status``
    on the proxy would bypass it. The trailing metadata is exactly what ``abort_with_status``
    would have sent (``grpc-status-details-bin``).
    """
    status = rpc_status.to_status(error.to_status())
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable: context.abort returned")  # pragma: no cover


#: Errors that mean the storage is briefly away: Redis unreachable or timing out, and a Redis
#: Cluster failing over or moving slots (CLUSTERDOWN, TRYAGAIN, MASTERDOWN, a redirect or an
#: uncovered slot still seen once the client's own retries ran out, no node reachable).
STORAGE_OUTAGES: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.AskError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.RedisClusterUnreachableError,
    redis.exceptions.ReadOnlyError,
)


class DecodedError(NamedTuple):
    """What :func:`decode_error` read from a failed call (unpacks as a 3-tuple)."""

    code: grpc.StatusCode
    error_info: error_details_pb2.ErrorInfo | None
    violations: list[FieldViolation]


def decode_error(rpc_error: grpc.RpcError) -> DecodedError:
    """Read the code, ``ErrorInfo`` and ``BadRequest`` field violations of a failed call.

    Accepts the ``grpc.aio.AioRpcError`` raised by aio stubs as well as a sync ``grpc.Call``
    error. Errors without rich details (e.g. UNAVAILABLE from the transport) decode to
    ``(code, None, [])``.
    """
    # Every RpcError raised by a call is also a grpc.Call (AioRpcError included).
    call = cast(grpc.Call, rpc_error)
    code = call.code()
    try:
        status = rpc_status.from_call(call)
    except ValueError:
        # The details disagree with the call's code/message: treat as having no details.
        status = None
    info: error_details_pb2.ErrorInfo | None = None
    violations: list[FieldViolation] = []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(v.field, v.description) for v in bad_request.field_violations
            )
    return DecodedError(code, info, violations)
