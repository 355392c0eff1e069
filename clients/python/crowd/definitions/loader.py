"""Load a definitions document (YAML or JSON) into a ``crowd.profile.v1.Definitions`` message.

The document has the shape of the proto message (field names in snake_case or camelCase), made
friendlier for hand-written files by `normalise.DocumentNormaliser`: short lowercase enum names,
durations such as ``"30m"``, plain constants. Every problem comes back as a
`DefinitionsLoadError` listing `DefinitionError`s with paths; nothing here raises anything else
for bad input.

Loading only checks the shape; `validator.validate` checks the meaning.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from crowd.definitions.errors import DefinitionError, DefinitionsLoadError
from crowd.definitions.normalise import DocumentNormaliser
from crowd.profile.v1 import definitions_pb2 as pb

_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def load_definitions(source: str | bytes | os.PathLike[str]) -> pb.Definitions:
    """Load definitions from a file path or from YAML/JSON text.

    A ``Path`` (any ``os.PathLike``) is always a file. A ``str`` is a file when it is one line
    ending in ``.yaml``, ``.yml`` or ``.json``; otherwise it is the document text. ``bytes``
    are document text (UTF-8).

    Raises:
        DefinitionsLoadError: the file cannot be read, the text is not YAML/JSON, or the
            document does not fit the ``Definitions`` message (every problem listed).
    """
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and source.strip().endswith(_FILE_SUFFIXES)
    ):
        return load_definitions_file(source)
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DefinitionsLoadError(
                [DefinitionError("", f"the document is not UTF-8 text ({exc.reason})")]
            ) from None
    return parse_definitions_text(source)


def load_definitions_file(path: str | os.PathLike[str]) -> pb.Definitions:
    """Load definitions from a ``.yaml``/``.yml``/``.json`` file (JSON parsed strictly)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DefinitionsLoadError([DefinitionError("", f"cannot read {file}: {reason}")]) from None
    return parse_definitions_text(text, is_json=file.suffix.lower() == ".json")


def parse_definitions_text(text: str, *, is_json: bool | None = None) -> pb.Definitions:
    """Parse YAML or JSON text. ``is_json=None`` treats text starting with ``{`` as JSON."""
    if is_json is None:
        is_json = text.lstrip().startswith("{")
    data = _parse_json(text) if is_json else _parse_yaml(text)
    return definitions_from_dict(data)


def definitions_from_dict(data: Any) -> pb.Definitions:
    """Build definitions from already-parsed data (a mapping; ``None`` means an empty document).

    Handy in tests: ``definitions_from_dict({"attributes": [{"id": "x", ...}]})`` accepts
    everything a YAML file does.
    """
    if data is None:
        return pb.Definitions()
    if not isinstance(data, Mapping):
        raise DefinitionsLoadError(
            [DefinitionError("", "the document must be a mapping with fields such as attributes")]
        )
    normaliser = DocumentNormaliser()
    cleaned = normaliser.normalise(data, pb.Definitions.DESCRIPTOR)
    if normaliser.errors:
        raise DefinitionsLoadError(normaliser.errors)
    message = pb.Definitions()
    try:
        json_format.ParseDict(cleaned, message)
    except json_format.ParseError as exc:
        # The normaliser checks everything ParseDict does; this is a safety net.
        raise DefinitionsLoadError([DefinitionError("", str(exc))]) from None
    return message


# --- text formats -----------------------------------------------------------------------------


class _StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with three fixes for hand-written definitions.

    - Duplicate keys are refused instead of the last one silently winning.
    - Only ``true``/``false`` are booleans (YAML 1.2). YAML 1.1 also reads ``on``, ``off``,
      ``yes``, ``no``, ``y`` and ``n`` as booleans, which would turn ``id: off`` or a tally
      key ``key: no`` into ``False``.
    - ``1e3`` is a number (YAML 1.2); YAML 1.1 wants ``1.0e+3`` and reads ``1e3`` as a string.
    """


_BOOL = "tag:yaml.org,2002:bool"
_FLOAT = "tag:yaml.org,2002:float"
# Rebuild the implicit resolvers on this loader only (yaml.safe_load stays untouched); the
# new float resolver goes after int, so "10" stays an int.
_StrictSafeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictSafeLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictSafeLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_mapping_without_duplicates(
    loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Hashable, Any]:
    loader.flatten_mapping(node)
    seen: dict[Hashable, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f'found duplicate key "{key}"',
                key_node.start_mark,
            )
        if isinstance(key, Hashable):
            seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictSafeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_without_duplicates
)


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictSafeLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise DefinitionsLoadError([DefinitionError("", _yaml_error_message(exc))]) from None
    except RecursionError:
        raise DefinitionsLoadError(
            [DefinitionError("", "the document is nested too deeply")]
        ) from None


def _yaml_error_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is not None:
            return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
        return f"YAML syntax error: {problem}"
    return f"YAML syntax error: {exc}"


def _parse_json(text: str) -> Any:
    def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f'found duplicate key "{key}"')
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=reject_duplicates)
    except json.JSONDecodeError as exc:
        raise DefinitionsLoadError(
            [
                DefinitionError(
                    "", f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
                )
            ]
        ) from None
    except ValueError as exc:
        raise DefinitionsLoadError([DefinitionError("", f"JSON error: {exc}")]) from None
    except RecursionError:
        raise DefinitionsLoadError(
            [DefinitionError("", "the document is nested too deeply")]
        ) from None
