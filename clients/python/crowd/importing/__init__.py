"""File import without the CLI: read CSV or JSON lines rows, map them to ``ImportRecord``
messages by a column mapping, and remember what the server acknowledged (checkpoint)."""
