"""Problems found in a definitions document, each with its path and a sentence.

Loading (`loader.py`) and validation (`validator.py`) both report `DefinitionError`s, so a
caller shows one list whatever the stage: every problem of the document at once, never only
the first one, and never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crowd.profile.v1 import definitions_pb2 as pb


@dataclass(frozen=True, slots=True)
class DefinitionError:
    """One problem in a definitions document.

    Attributes:
        path: Where it is, in proto field names, e.g.
            ``attributes[3].enrichments[0].rule.groups[1].conditions[0].operator``;
            ``""`` for the document as a whole (e.g. a YAML syntax error).
        message: What is wrong, as a sentence.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_proto(self) -> pb.DefinitionError:
        """The ``crowd.profile.v1.DefinitionError`` message (ValidateDefinitions responses)."""
        return pb.DefinitionError(path=self.path, message=self.message)


@dataclass(frozen=True, slots=True)
class DefinitionViolation:
    """A `DefinitionError` placed in a request, as a ``google.rpc.BadRequest`` field violation.

    The client distribution has no service code; the service turns these into its own
    ``service_common.errors.FieldViolation`` at the API edge.
    """

    field: str
    description: str


class DefinitionsError(Exception):
    """Base of the errors that carry a list of `DefinitionError`s."""

    def __init__(self, errors: Sequence[DefinitionError], summary: str) -> None:
        self.errors: tuple[DefinitionError, ...] = tuple(errors)
        first = f": {self.errors[0]}" if self.errors else ""
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"{summary}{first}{more}")


class DefinitionsLoadError(DefinitionsError):
    """The document could not be read or parsed into a ``Definitions`` message."""

    def __init__(self, errors: Sequence[DefinitionError]) -> None:
        super().__init__(errors, "cannot load the definitions")


class InvalidDefinitionsError(DefinitionsError):
    """The document parsed but is not valid (see `validator.validate`)."""

    def __init__(self, errors: Sequence[DefinitionError]) -> None:
        super().__init__(errors, "invalid definitions")


def definition_errors_to_violations(
    errors: Iterable[DefinitionError], prefix: str = "definitions"
) -> list[DefinitionViolation]:
    """Turn definition errors into ``google.rpc.BadRequest`` field violations.

    Args:
        errors: The problems, as returned by ``validate`` or carried by a `DefinitionsError`.
        prefix: The request field holding the document (``definitions`` in
            ``PublishDefinitionsRequest``); a document-level error gets the prefix itself.
    """
    violations: list[DefinitionViolation] = []
    for error in errors:
        field = f"{prefix}.{error.path}" if prefix and error.path else prefix or error.path
        violations.append(DefinitionViolation(field=field, description=error.message))
    return violations


def definition_errors_to_proto(errors: Iterable[DefinitionError]) -> list[pb.DefinitionError]:
    """The errors as ``crowd.profile.v1.DefinitionError`` messages."""
    return [error.to_proto() for error in errors]
