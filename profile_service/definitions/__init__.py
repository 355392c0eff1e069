"""Definitions as code: loading, validation, compilation and versioned publishing."""
