"""Where a `DefinitionError` path is in the YAML (or JSON) text: line and column, 1-based.

Validation works on the proto message, which has no positions; this walks the document's YAML
node tree along the error path instead (``attributes[3].rule.groups[0]``). A path that goes
deeper than the text (a normalised shorthand such as ``constant: 500`` reported at
``constant.number_value``) stops at the deepest node the text has.
"""

from __future__ import annotations

import re

import yaml

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def compose(text: str) -> yaml.Node | None:
    """The YAML node tree of ``text`` (JSON is YAML too), or None when it does not compose."""
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)  # builds no objects
    except (yaml.YAMLError, RecursionError):
        return None
    return node


def locate(root: yaml.Node | None, path: str) -> tuple[int, int] | None:
    """``(line, column)`` of ``path`` under ``root`` (from `compose`); None without a tree."""
    if root is None:
        return None
    node = root
    for name, index in _SEGMENT.findall(path):
        child = _child(node, name, index)
        if child is None:
            break
        node = child
    return node.start_mark.line + 1, node.start_mark.column + 1


def _child(node: yaml.Node, name: str, index: str) -> yaml.Node | None:
    if index:
        if isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            child: yaml.Node = node.value[int(index)]
            return child
        return None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value in (name, _camel(name)):
                found: yaml.Node = value
                return found
    return None
