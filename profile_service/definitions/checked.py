"""Validation as the service runs it: size limits first, the full check off the event loop.

Validating a large document takes long enough (tenths of a second) to stall every RPC of a
replica if run on its event loop, so the API runs it in a worker thread. The store validates
again inside ``publish`` (its own guarantee); the last few results are remembered by content,
so that second call costs one serialization instead of a second validation on the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict

from crowd.definitions.errors import DefinitionError
from crowd.definitions.validator import size_errors, validate
from crowd.profile.v1 import definitions_pb2 as pb
from profile_service.definitions.violations import field_violations
from service_common.errors import InvalidArgument

_REMEMBERED = 8
_results: OrderedDict[bytes, tuple[DefinitionError, ...]] = OrderedDict()
_lock = threading.Lock()


def validate_remembered(definitions: pb.Definitions) -> list[DefinitionError]:
    """`crowd.definitions.validator.validate`, remembering the last results by content."""
    key = hashlib.sha256(definitions.SerializeToString(deterministic=True)).digest()
    with _lock:
        known = _results.get(key)
        if known is not None:
            _results.move_to_end(key)
            return list(known)
    errors = validate(definitions)
    with _lock:
        _results[key] = tuple(errors)
        while len(_results) > _REMEMBERED:
            _results.popitem(last=False)
    return errors


def refuse_oversized(definitions: pb.Definitions) -> None:
    """Raise INVALID_ARGUMENT (reason ``DEFINITIONS_TOO_LARGE``) for a document over a size
    limit: it is refused before any validation."""
    oversized = size_errors(definitions)
    if oversized:
        raise InvalidArgument(
            field_violations(oversized),
            f"the definitions are too large ({oversized[0]}); nothing was validated",
            reason="DEFINITIONS_TOO_LARGE",
        )


async def validate_off_loop(definitions: pb.Definitions) -> list[DefinitionError]:
    """Refuse an oversized document, then validate in a worker thread."""
    refuse_oversized(definitions)
    return await asyncio.to_thread(validate_remembered, definitions)
