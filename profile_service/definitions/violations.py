"""Definition errors as the service's ``google.rpc.BadRequest`` field violations.

The definitions package (client distribution) knows nothing of ``service_common``; this is
the one place where its violations become the service's error type.
"""

from __future__ import annotations

from collections.abc import Iterable

from crowd.definitions.errors import DefinitionError, definition_errors_to_violations
from service_common.errors import FieldViolation


def field_violations(
    errors: Iterable[DefinitionError], prefix: str = "definitions"
) -> list[FieldViolation]:
    """``errors`` as field violations of the request field ``prefix`` (see
    `crowd.definitions.errors.definition_errors_to_violations`)."""
    return [
        FieldViolation(field=violation.field, description=violation.description)
        for violation in definition_errors_to_violations(errors, prefix)
    ]
