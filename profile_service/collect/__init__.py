"""Collect-compatible HTTP ingest: Tealium Collect requests mapped onto crowd events.

`mapping` turns request parameters into ``Event`` messages, `limits` holds the per-source
token buckets, `http` is the aiohttp application and `server` starts it beside gRPC.
"""

from profile_service.collect.server import CollectServer

__all__ = ["CollectServer"]
