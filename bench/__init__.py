"""Benchmarks (`make bench`): ingest and dispatch, against the real services and Redis."""
