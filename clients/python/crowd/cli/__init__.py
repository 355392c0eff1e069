"""The ``crowd`` command line (``crowd --help``); ``main`` is the console script."""

from crowd.cli.main import app, main

__all__ = ["app", "main"]
