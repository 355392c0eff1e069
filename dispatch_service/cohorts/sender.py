"""Sending one cohort's pending changes to Braze, one round at a time.

A round (:meth:`CohortSender.run_round`):

1. if the wanted name differs from the one Braze last accepted (a new cohort, or a rename),
   POST ``/partners/{partner}/cohorts`` first;
2. read a snapshot of the pending hash (up to ``round_ids`` identifiers; each identifier
   appears once with its last change, so adding and removing one user in a batch sends only
   the last);
3. pack it into requests of at most 1,000 ids (:mod:`.planner`) and send them, up to
   ``max_concurrent_requests`` at once;
4. settle: a field is deleted from the pending hash only if it still holds the value that
   was sent (a newer change stays for the next round); changes Braze refused for good go to
   the dead-letter stream with Braze's reason, in the same script call.

Transient failures (408, 423, 429, 5xx, network) end the round with a RETRY result; the
worker waits (the wait Braze named, else backoff) and runs the cohort again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from dispatch_service.braze.connector import BrazeConnector
from dispatch_service.braze.results import Outcome
from dispatch_service.cohorts.client import COHORTS_PATH, MEMBERS_PATH, CohortClient, CohortResult
from dispatch_service.cohorts.planner import (
    MAX_IDS_PER_REQUEST,
    MembersRequest,
    plan_member_requests,
)
from dispatch_service.cohorts.store import text_map
from service_common.keys import CohortKeys, cohort_partition
from service_common.redis_toolkit.scripts import LuaScript, ScriptArg, execute_with_scripts

__all__ = ["CohortSender", "RoundResult", "RunState"]

# KEYS[1] pending hash, KEYS[2] dead-letter stream.
# ARGV[1] n = number of dead-letter field/value arguments (0: no dead letter),
# ARGV[2 .. 1+n] the dead letter's fields, then field/value pairs that were sent.
# Deletes each sent field that still holds the sent value; returns how many it deleted.
_SETTLE = LuaScript("""
local n = tonumber(ARGV[1])
if n > 0 then redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2, 1 + n)) end
local removed = 0
for i = 2 + n, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
""")

#: Identifiers read per HSCAN call.
_SCAN_COUNT = 1000


@dataclass(frozen=True)
class RoundResult:
    """What one round did."""

    done: bool
    """Nothing was pending: the cohort is in sync."""
    retry: CohortResult | None = None
    """A transient failure ended the round; run the cohort again after a wait."""
    requests: int = 0
    """Requests sent to Braze in this round (name request included)."""


@dataclass
class RunState:
    """What a worker remembers between the rounds of one run over a cohort."""

    cohort_id: str
    attempt: int = 1
    """Attempt number of the next round (1 after a round without transient failure)."""
    name_refused: bool = False
    """Braze refused the name for good in this run: not asked again until the next run."""


@dataclass(frozen=True)
class _Settlement:
    request: MembersRequest
    result: CohortResult


def _now_ms() -> int:
    return int(time.time() * 1000)


class CohortSender:
    """Sends the pending changes of one connector's cohorts.

    Args:
        connector: A connector with partner credentials.
        client: Its :class:`CohortClient`.
        redis: Client with ``decode_responses=False``.
        partitions: The dispatch partition count.
        round_ids: Most identifiers read (and sent) per round.
    """

    def __init__(
        self,
        connector: BrazeConnector,
        client: CohortClient,
        redis: aioredis.Redis,
        partitions: int,
        *,
        round_ids: int = 10 * MAX_IDS_PER_REQUEST,
    ) -> None:
        if round_ids < MAX_IDS_PER_REQUEST:
            raise ValueError(f"round_ids must be at least {MAX_IDS_PER_REQUEST}")
        self.connector = connector
        self._client = client
        self._redis = redis
        self._partitions = partitions
        self._round_ids = round_ids
        self._concurrency = asyncio.Semaphore(connector.max_concurrent_requests)

    def _keys(self, cohort_id: str) -> CohortKeys:
        return CohortKeys(cohort_partition(self.connector.id, cohort_id, self._partitions))

    async def run_round(self, state: RunState) -> RoundResult:
        """Send the name if needed and one snapshot of pending changes; settle the results."""
        cohort_id = state.cohort_id
        keys = self._keys(cohort_id)
        meta_key = keys.meta(self.connector.id, cohort_id)
        meta = text_map(await self._redis.hgetall(meta_key))
        traceparent = meta.get("traceparent", "")
        sent = 0
        name = meta.get("name", "")
        if name and name != meta.get("exported_name") and not state.name_refused:
            sent += 1
            named = await self._send_name(state, name, meta.get("created_at", ""), traceparent)
            if named.outcome is Outcome.RETRY:
                return RoundResult(done=False, retry=named, requests=sent)
            if named.outcome is Outcome.DELIVERED:
                await self._redis.hset(meta_key, "exported_name", name)
            else:
                state.name_refused = True
        pending_key = keys.pending(self.connector.id, cohort_id)
        snapshot, complete = await self._scan(pending_key)
        requests = plan_member_requests(snapshot, complete=complete)
        if not requests:
            return RoundResult(done=True, requests=sent)
        results = await asyncio.gather(
            *(self._send_members(state, request, traceparent) for request in requests)
        )
        settlements = [_Settlement(q, r) for q, r in zip(requests, results, strict=True)]
        await self._settle(cohort_id, settlements)
        retries = [r for r in results if r.outcome is Outcome.RETRY]
        if retries:
            # The longest wait Braze named wins: waiting less would only earn another 429.
            waits = [r.retry_after_s for r in retries if r.retry_after_s is not None]
            first = retries[0]
            retry = CohortResult(
                first.outcome, first.http_status, first.reason, max(waits, default=None)
            )
            return RoundResult(done=False, retry=retry, requests=sent + len(requests))
        return RoundResult(done=False, requests=sent + len(requests))

    async def _send_name(
        self, state: RunState, name: str, created_at: str, traceparent: str
    ) -> CohortResult:
        body = {"cohort_id": state.cohort_id, "name": name, "created_at": created_at}
        result = await self._client.post(
            COHORTS_PATH,
            body,
            cohort_id=state.cohort_id,
            ids=0,
            attempt=state.attempt,
            traceparent=traceparent,
        )
        if result.outcome is Outcome.FAILED:
            keys = self._keys(state.cohort_id)
            record = self._record("name", state.cohort_id, result, 0, body)
            await _SETTLE.run(
                self._redis,
                [keys.pending(self.connector.id, state.cohort_id), keys.failed],
                [len(record), *record],
            )
        return result

    async def _send_members(
        self, state: RunState, request: MembersRequest, traceparent: str
    ) -> CohortResult:
        body = {"cohort_id": state.cohort_id, "cohort_changes": request.cohort_changes()}
        async with self._concurrency:
            return await self._client.post(
                MEMBERS_PATH,
                body,
                cohort_id=state.cohort_id,
                ids=request.size,
                attempt=state.attempt,
                traceparent=traceparent,
            )

    async def _scan(self, key: str) -> tuple[dict[str, str], bool]:
        """Up to ``round_ids`` pending changes, and whether that is all of them."""
        found: dict[str, str] = {}
        cursor = 0
        while True:
            cursor, chunk = await self._redis.hscan(key, cursor, count=_SCAN_COUNT)
            found.update(text_map(cast(dict[bytes, bytes], chunk)))
            if cursor == 0:
                return found, True
            if len(found) >= self._round_ids:
                return found, False

    def _record(
        self, kind: str, cohort_id: str, result: CohortResult, ids: int, body: Mapping[str, Any]
    ) -> list[ScriptArg]:
        """Dead-letter stream fields (see ``CohortKeys.failed``); ``body`` has no credentials."""
        fields: dict[str, ScriptArg] = {
            "c": self.connector.id,
            "i": cohort_id,
            "k": kind,
            "s": result.http_status,
            "r": self._client.scrub(result.reason),
            "t": _now_ms(),
            "n": ids,
            "b": json.dumps(body, ensure_ascii=False),
        }
        return [item for pair in fields.items() for item in pair]

    async def _settle(self, cohort_id: str, settlements: Sequence[_Settlement]) -> None:
        """Delete what Braze took or refused for good (one round trip); dead-letter refusals."""
        keys = self._keys(cohort_id)
        script_keys = [keys.pending(self.connector.id, cohort_id), keys.failed]
        calls: list[list[ScriptArg]] = []
        for item in settlements:
            if item.result.outcome is Outcome.RETRY:
                continue
            record: list[ScriptArg] = []
            if item.result.outcome is Outcome.FAILED:
                body = {"cohort_id": cohort_id, "cohort_changes": item.request.cohort_changes()}
                record = self._record("members", cohort_id, item.result, item.request.size, body)
            pairs = [part for pair in item.request.sent.items() for part in pair]
            calls.append([len(record), *record, *pairs])
        if not calls:
            return

        def fill(pipe: Pipeline) -> None:
            for args in calls:
                _SETTLE.queue(pipe, script_keys, args)

        await execute_with_scripts(self._redis, fill)

    async def dead_letter_pending(self, cohort_id: str, reason: str, http_status: int = 0) -> int:
        """Move every pending change of a cohort to the dead letters (giving up on it).

        Returns the number of changes moved.
        """
        keys = self._keys(cohort_id)
        pending_key = keys.pending(self.connector.id, cohort_id)
        result = CohortResult(Outcome.FAILED, http_status, reason)
        moved = 0
        # Bounded: intake may keep adding to the cohort while we give up on it.
        rounds = 2 + int(await self._redis.hlen(pending_key)) // MAX_IDS_PER_REQUEST
        for _ in range(rounds):
            snapshot, _complete = await self._scan(pending_key)
            requests = plan_member_requests(snapshot, complete=True)
            if not requests:
                break
            await self._settle(cohort_id, [_Settlement(q, result) for q in requests])
            moved += sum(q.size for q in requests)
        return moved
