"""Regular expressions of ``matches_regex`` rules, compiled with RE2.

RE2 matches in time linear in the input whatever the pattern, so a published rule such as
``(a+)+$`` can never pin an event loop the way Python's backtracking ``re`` would. The price
is RE2's syntax: no back-references (``\\1``) and no look-around (``(?=``, ``(?<!``...). The
validator refuses such patterns with RE2's own reason; the engine treats a pattern that
does not compile as matching nothing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, TypeAlias

import re2

if TYPE_CHECKING:
    # Only the stubs make the compiled pattern's class generic.
    Pattern: TypeAlias = re2._Regexp[str]
else:
    Pattern: TypeAlias = re2._Regexp
"""A compiled pattern (``search`` semantics: any part of the text may match)."""

# Bound RE2's memory per pattern (its default, 8 MiB): a huge counted repetition such as
# "a{1000}{1000}" fails to compile instead of growing without limit.
_MAX_MEMORY_BYTES = 8 << 20


def _options(ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.max_mem = _MAX_MEMORY_BYTES
    # Errors are reported to the caller; RE2 must not also write them to stderr.
    options.log_errors = False
    return options


def pattern_error(source: str, ignore_case: bool = False) -> str | None:
    """Why RE2 cannot compile ``source`` (``None`` if it can), as a short sentence."""
    try:
        re2.compile(source, _options(ignore_case))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return f"invalid regular expression: {reason}{_hint(reason)}"
    except (TypeError, ValueError) as exc:  # e.g. a NUL in the pattern
        return f"invalid regular expression: {exc}"
    return None


def _hint(reason: str) -> str:
    """Name the unsupported feature when RE2's reason alone would puzzle a Python user."""
    if reason.startswith("invalid perl operator"):
        return " (RE2 does not support look-ahead or look-behind)"
    if reason.startswith("invalid escape sequence: \\") and reason[-1:].isdigit():
        return " (RE2 does not support back-references)"
    return ""


@lru_cache(maxsize=1024)
def compile_pattern(source: str, ignore_case: bool = False) -> Pattern | None:
    """The compiled pattern, or ``None`` if RE2 cannot compile it (such a rule matches nothing).

    Cached: rules with a constant pattern compile once, dynamic ones once per distinct value.
    """
    try:
        return re2.compile(source, _options(ignore_case))
    except (re2.error, TypeError, ValueError):
        return None


def search(pattern: Pattern, text: str) -> bool:
    """True if some part of ``text`` matches (Python's ``re.search`` semantics)."""
    return pattern.search(text) is not None
