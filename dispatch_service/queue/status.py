"""Reading and repairing action records: GetAction, ListFailedActions, RetryFailedActions.

Records live in their visitor's partition, and GetAction knows only the idempotency key, so
a lookup asks every partition in one pipeline (16 small ``HMGET`` by default: one round
trip). If a caller reused one key for two visitors, two records exist; the earliest wins.

Dead letters are listed newest first across all partitions by a k-way merge of the per
partition failed zsets; the page token is an opaque cursor (time, partition, member) of the
last entry returned, so pages stay stable while new failures arrive (they sort before the
cursor) and while earlier ones are retried.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from crowd.dispatch.v1 import action_pb2
from dispatch_service.queue.records import STATUS_FIELDS, ActionRecord
from dispatch_service.scripts import ScriptCall, load_script, run_scripts
from service_common.errors import Violations
from service_common.keys import DispatchKeys, failed_member

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "FailedPage",
    "find_records",
    "list_failed",
    "retry_failed",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_RETRY_KEYS = 1000
_REQUEUE_CHUNK = 500
_TOKEN_VERSION = 1
_FAILED = action_pb2.ACTION_STATE_FAILED

LIST_FAILED = load_script("list_failed")
REQUEUE = load_script("requeue")


async def find_records(
    redis: aioredis.Redis, partitions: int, keys: Sequence[str]
) -> list[list[ActionRecord]]:
    """Every record of each key (usually one, or none), earliest accepted first.

    A partition that cannot answer (on a cluster: its slot is being migrated, or its master
    fails over) does not fail a key found in another partition; a key found nowhere while a
    partition did not answer raises that partition's error (it may be there).
    """
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            for partition in range(partitions):
                pipe.hmget(DispatchKeys(partition).action(key), list(STATUS_FIELDS))
        replies = await pipe.execute(raise_on_error=False)
    found: list[list[ActionRecord]] = []
    for i in range(len(keys)):
        answers = replies[i * partitions : (i + 1) * partitions]
        records = [
            record
            for partition, answer in enumerate(answers)
            if not isinstance(answer, Exception)
            and (record := ActionRecord.from_list(partition, answer))
        ]
        errors = [answer for answer in answers if isinstance(answer, Exception)]
        if errors and not records:
            raise errors[0]
        records.sort(key=lambda r: (r.accepted_at_ms, r.partition))
        found.append(records)
    return found


# --- ListFailedActions -------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    score: int
    partition: int
    member: bytes


@dataclass(frozen=True)
class FailedPage:
    """One page of dead letters and the token of the next ('' on the last page)."""

    actions: list[action_pb2.ActionStatus]
    next_page_token: str


async def list_failed(
    redis: aioredis.Redis, partitions: int, connector_id: str, page_size: int, page_token: str
) -> FailedPage:
    """One page of dead letters, newest first, optionally of one connector only.

    Raises:
        InvalidArgument: ``page_size`` out of range or ``page_token`` not from a previous
            response with the same ``connector_id``.
    """
    v = Violations()
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        v.add("page_size", f"must be 1 to {MAX_PAGE_SIZE:,} (0: {DEFAULT_PAGE_SIZE})")
    cursor = None
    if page_token:
        cursor = _decode_token(page_token, connector_id, partitions)
        if cursor is None:
            v.add("page_token", "is not a token returned for this connector_id")
    v.raise_if_any()
    size = page_size or DEFAULT_PAGE_SIZE
    prefix = failed_member(connector_id, "") if connector_id else ""
    calls = [
        ScriptCall(
            LIST_FAILED,
            [DispatchKeys(p).failed],
            [*_cursor_args(cursor, p), size + 1, prefix],
        )
        for p in range(partitions)
    ]
    replies = await run_scripts(redis, calls)
    entries = [
        _Entry(int(float(reply[j + 1])), partition, bytes(reply[j]))
        for partition, reply in enumerate(replies)
        for j in range(0, len(reply), 2)
    ]
    # Newest first; ties by partition, then member descending (as each zset's REV order).
    entries.sort(key=lambda e: e.member, reverse=True)
    entries.sort(key=lambda e: (-e.score, e.partition))
    page = entries[:size]
    keys = [_member_key(e.member) for e in page]
    async with redis.pipeline(transaction=False) as pipe:
        for entry, key in zip(page, keys, strict=True):
            pipe.hmget(DispatchKeys(entry.partition).action(key), list(STATUS_FIELDS))
        replies = await pipe.execute()
    statuses = [
        record.to_status()
        for entry, reply in zip(page, replies, strict=True)
        if (record := ActionRecord.from_list(entry.partition, reply))
    ]
    token = _encode_token(page[-1], connector_id) if len(entries) > size else ""
    return FailedPage(statuses, token)


def _cursor_args(cursor: _Entry | None, partition: int) -> list[str | bytes | int]:
    if cursor is None:
        return ["first", 0, b""]
    if partition < cursor.partition:
        mode = "lt"
    elif partition == cursor.partition:
        mode = "member"
    else:
        mode = "le"
    return [mode, cursor.score, cursor.member]


def _encode_token(last: _Entry, connector_id: str) -> str:
    body = {
        "v": _TOKEN_VERSION,
        "s": last.score,
        "p": last.partition,
        "m": base64.b64encode(last.member).decode("ascii"),
        "c": connector_id,
    }
    return base64.urlsafe_b64encode(json.dumps(body).encode("utf-8")).decode("ascii")


def _decode_token(token: str, connector_id: str, partitions: int) -> _Entry | None:
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        entry = _Entry(int(body["s"]), int(body["p"]), base64.b64decode(body["m"]))
        valid = body["v"] == _TOKEN_VERSION and body["c"] == connector_id
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return entry if valid and 0 <= entry.partition < partitions else None


def _member_key(member: bytes) -> str:
    return member.split(b"\x00", 1)[-1].decode("utf-8")


# --- RetryFailedActions ------------------------------------------------------------------


async def retry_failed(
    redis: aioredis.Redis,
    partitions: int,
    keys: Sequence[str],
    *,
    retry_all: bool = False,
    connector_id: str = "",
    now_ms: int,
) -> tuple[int, list[str]]:
    """Requeue dead letters; return (how many were requeued, keys that were not failed).

    Either ``keys`` or ``retry_all`` (optionally limited to ``connector_id``).

    Raises:
        InvalidArgument: neither or both of keys and all, or an empty or excess key.
    """
    v = Violations()
    if retry_all and keys:
        v.add("idempotency_keys", "must be empty when all is set")
    elif not retry_all and not keys:
        v.add("idempotency_keys", "name at least one action, or set all")
    if len(keys) > MAX_RETRY_KEYS:
        v.add("idempotency_keys", f"must list at most {MAX_RETRY_KEYS:,} keys")
    for i, key in enumerate(keys):
        if not key:
            v.add(f"idempotency_keys[{i}]", "must not be empty")
    if connector_id and not retry_all:
        v.add("connector_id", "applies only with all")
    v.raise_if_any()
    if retry_all:
        return await _retry_all(redis, partitions, connector_id, now_ms), []
    return await _retry_keys(redis, partitions, list(dict.fromkeys(keys)), now_ms)


async def _retry_keys(
    redis: aioredis.Redis, partitions: int, keys: list[str], now_ms: int
) -> tuple[int, list[str]]:
    records = await find_records(redis, partitions, keys)
    by_partition: dict[int, list[ActionRecord]] = {}
    not_failed: list[str] = []
    for key, found in zip(keys, records, strict=True):
        failed = [r for r in found if r.state == _FAILED]
        if not failed:
            not_failed.append(key)
        for record in failed:
            by_partition.setdefault(record.partition, []).append(record)
    calls = [
        _requeue_call(p, [(r.key, failed_member(r.connector_id, r.key)) for r in chunk], now_ms)
        for p, items in by_partition.items()
        for chunk in _chunks(items, _REQUEUE_CHUNK)
    ]
    replies = await run_scripts(redis, calls)
    # A record found failed may have been retried concurrently; it then counts as neither.
    return sum(int(flag) for reply in replies for flag in reply), not_failed


async def _retry_all(redis: aioredis.Redis, partitions: int, connector_id: str, now_ms: int) -> int:
    prefix = failed_member(connector_id, "").encode("utf-8") if connector_id else b""
    requeued = 0
    for partition in range(partitions):
        failed_key = DispatchKeys(partition).failed
        offset = 0  # members of other connectors stay in the zset: skip past them
        while True:
            reply = await redis.zrange(failed_key, offset, offset + _REQUEUE_CHUNK - 1)
            members = [m for m in reply if isinstance(m, bytes)]
            if not members:
                break
            mine = [m for m in members if m.startswith(prefix)]
            offset += len(members) - len(mine)
            if mine:
                items = [(_member_key(m), m.decode("utf-8")) for m in mine]
                (reply,) = await run_scripts(redis, [_requeue_call(partition, items, now_ms)])
                requeued += sum(int(flag) for flag in reply)
    return requeued


def _requeue_call(partition: int, items: Sequence[tuple[str, str]], now_ms: int) -> ScriptCall:
    """Requeue (key, failed-zset member) pairs of one partition."""
    keys = DispatchKeys(partition)
    return ScriptCall(
        REQUEUE,
        [keys.queue, keys.failed, *(keys.action(key) for key, _ in items)],
        [now_ms, *(value for pair in items for value in pair)],
    )


def _chunks(items: list[ActionRecord], size: int) -> list[list[ActionRecord]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
