"""Definitions as code, offline: load a YAML/JSON document, validate it (errors with paths).

The profile service compiles and publishes what this package validates; the ``crowd`` CLI
uses it to check a document without a server (``crowd defs validate FILE``).
"""
