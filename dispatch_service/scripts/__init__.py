"""The dispatch service's Lua scripts, run by the shared runner of
:mod:`service_common.redis_toolkit.scripts`.

Each ``*.lua`` file beside this module is one script. Scripts receive every key through
``KEYS`` (the shapes live in :mod:`service_common.keys`) and never build key names, so each
call touches one partition's hash slot and runs unchanged on Redis Cluster.
:func:`run_scripts` sends many calls in one pipeline (one round trip however many
partitions a batch touches).
"""

from __future__ import annotations

from functools import cache

from service_common.redis_toolkit.scripts import LuaScript, ScriptArg, ScriptCall, run_scripts

__all__ = ["LuaScript", "ScriptArg", "ScriptCall", "load_script", "run_scripts"]


@cache
def load_script(name: str) -> LuaScript:
    """Return the script ``<name>.lua`` shipped in this package (read once per process)."""
    return LuaScript.from_package(__package__ or "dispatch_service.scripts", f"{name}.lua")
