"""The end-to-end stack (Braze sandbox ← dispatch ← profile) of tests/e2e, reused."""

from tests.e2e.conftest import Stack, stack

__all__ = ["Stack", "stack"]
