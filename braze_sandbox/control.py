"""``/_sandbox`` control API: recorded requests, users, cohorts, stats and faults over HTTP.

These routes need no credentials (the sandbox binds to loopback by default), are never rate
limited, never fail by injection and are not recorded.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from braze_sandbox.state import SandboxState
from braze_sandbox.store import Cohort


def _cohort_dict(state: SandboxState, cohort: Cohort) -> dict[str, Any]:
    members = state.store.cohort_members(cohort.partner, cohort.cohort_id)
    return {
        "partner": cohort.partner,
        "cohort_id": cohort.cohort_id,
        "name": cohort.name,
        "created_at": cohort.created_at,
        "members": [
            {"braze_id": u.braze_id, "external_id": u.external_id, "aliases": u.aliases}
            for u in members
        ],
    }


def stats(state: SandboxState) -> dict[str, Any]:
    """Counters: data points, responses per status, traffic per endpoint group."""
    return {
        "requests": state.recorder.total,
        "users": len(state.store),
        "data_points": state.recorder.data_points.to_dict(),
        "status_counts": {str(k): v for k, v in sorted(state.recorder.status_counts.items())},
        "traffic": {
            group: {
                "limit": str(state.limiter.limit_for(group) or "unlimited"),
                "window_seconds": t.window_seconds,
                "total": t.total,
                "rejected": t.rejected,
                "max_in_window": t.max_in_window,
                "max_in_sliding_window": t.max_in_sliding_window,
            }
            for group, t in state.limiter.all_traffic().items()
        },
    }


def add_control_routes(app: web.Application, state: SandboxState) -> None:
    """Register the ``/_sandbox`` routes on ``app``."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def list_requests(request: web.Request) -> web.Response:
        query = request.query
        items = list(state.recorder.requests)
        if "path" in query:
            items = [r for r in items if r.path == query["path"]]
        if "group" in query:
            items = [r for r in items if r.group == query["group"]]
        try:
            since = int(query.get("since", "0"))
            limit = int(query["limit"]) if "limit" in query else None
        except ValueError:
            return web.json_response({"message": "since/limit must be integers"}, status=400)
        items = [r for r in items if r.seq > since]
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return web.json_response(
            {"count": len(items), "requests": [r.to_dict() for r in items]}, dumps=_dumps
        )

    async def clear_requests(_: web.Request) -> web.Response:
        state.recorder.clear()
        state.limiter.reset()
        await state.recorder.notify()
        return web.json_response({"message": "cleared"})

    async def list_users(_: web.Request) -> web.Response:
        users = [u.to_dict() for u in state.store.users]
        return web.json_response({"count": len(users), "users": users}, dumps=_dumps)

    async def get_user(request: web.Request) -> web.Response:
        user = state.store.get(request.match_info["external_id"])
        if user is None:
            return web.json_response({"message": "no such user"}, status=404)
        return web.json_response(user.to_dict(), dumps=_dumps)

    async def get_user_by_alias(request: web.Request) -> web.Response:
        info = request.match_info
        user = state.store.get_by_alias(info["alias_name"], info["alias_label"])
        if user is None:
            return web.json_response({"message": "no such user"}, status=404)
        return web.json_response(user.to_dict(), dumps=_dumps)

    async def list_cohorts(_: web.Request) -> web.Response:
        cohorts = [_cohort_dict(state, c) for c in state.store.cohorts.values()]
        return web.json_response({"cohorts": cohorts})

    async def get_cohort(request: web.Request) -> web.Response:
        key = (request.match_info["partner"], request.match_info["cohort_id"])
        cohort = state.store.cohorts.get(key)
        if cohort is None:
            return web.json_response({"message": "no such cohort"}, status=404)
        return web.json_response(_cohort_dict(state, cohort))

    async def get_stats(_: web.Request) -> web.Response:
        return web.json_response(stats(state))

    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response(state.faults.to_dict())

    async def set_faults(request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            state.faults.apply_json(payload)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return web.json_response({"message": str(exc)}, status=400)
        return web.json_response(state.faults.to_dict())

    async def reset_faults(_: web.Request) -> web.Response:
        state.faults.reset()
        return web.json_response(state.faults.to_dict())

    async def reset_all(_: web.Request) -> web.Response:
        await state.reset()
        return web.json_response({"message": "reset"})

    app.router.add_get("/_sandbox/health", health)
    app.router.add_get("/_sandbox/requests", list_requests)
    app.router.add_delete("/_sandbox/requests", clear_requests)
    app.router.add_get("/_sandbox/users", list_users)
    app.router.add_get("/_sandbox/users/{external_id}", get_user)
    app.router.add_get("/_sandbox/aliases/{alias_label}/{alias_name}", get_user_by_alias)
    app.router.add_get("/_sandbox/cohorts", list_cohorts)
    app.router.add_get("/_sandbox/cohorts/{partner}/{cohort_id}", get_cohort)
    app.router.add_get("/_sandbox/stats", get_stats)
    app.router.add_get("/_sandbox/faults", get_faults)
    app.router.add_post("/_sandbox/faults", set_faults)
    app.router.add_delete("/_sandbox/faults", reset_faults)
    app.router.add_post("/_sandbox/reset", reset_all)


def _dumps(value: Any) -> str:
    # Stored attribute values may include anything JSON produced, so plain json.dumps suffices.
    return json.dumps(value, default=str)
