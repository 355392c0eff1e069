"""``python -m braze_sandbox``: run the sandbox stand-alone."""

from __future__ import annotations

import sys

from braze_sandbox.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
