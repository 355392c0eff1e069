"""Printing: figure tables and target checks (PASS / MISS)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One target and how the run did against it."""

    name: str
    measured: str
    target: str
    passed: bool


def section(title: str) -> None:
    """A section heading."""
    print(f"\n=== {title}", flush=True)


def note(text: str) -> None:
    """A progress line."""
    print(f"  · {text}", flush=True)


def table(rows: Sequence[tuple[str, str]], *, title: str = "") -> None:
    """Two aligned columns: label and figure."""
    if title:
        print(f"\n{title}")
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def checks(items: Sequence[Check]) -> None:
    """The targets, one line each, with PASS or MISS."""
    print("\nTargets")
    name_w = max((len(c.name) for c in items), default=0)
    measured_w = max((len(c.measured) for c in items), default=0)
    for c in items:
        verdict = "PASS" if c.passed else "MISS"
        print(f"  [{verdict}] {c.name:<{name_w}}  {c.measured:<{measured_w}}  (target {c.target})")
    print(flush=True)


def fmt_int(value: float) -> str:
    """``12,345``."""
    return f"{value:,.0f}"


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds, ``12.3 ms``."""
    return f"{seconds * 1000:,.1f} ms"
