"""The storage layer's Lua scripts (files in ``profile_service/storage/scripts``), run by the
shared runner of :mod:`service_common.redis_toolkit.scripts`.

They are loaded at start-up (``load_scripts``); a ``NOSCRIPT`` reply in a pipeline (Redis
restarted, ``SCRIPT FLUSH``) is handled by the caller, which loads them again and retries
the affected work.
"""

from __future__ import annotations

from service_common.redis_toolkit.scripts import LuaScript, is_noscript, load_scripts

__all__ = ["LuaScript", "is_noscript", "load_scripts", "storage_script"]


def storage_script(name: str) -> LuaScript:
    """The script ``scripts/<name>.lua`` of the storage layer."""
    return LuaScript.from_package("profile_service.storage", f"scripts/{name}.lua")
