-- Requeue dead-lettered actions of one partition (RetryFailedActions).
--
-- An action is requeued only if its record is FAILED: it goes back to ACCEPTED with its
-- attempts reset and gets a new queue entry. The member always leaves the failed zset (a
-- member whose record is not FAILED, e.g. expired, is stale).
--
-- KEYS[1] queue stream   KEYS[2] failed zset   KEYS[3..] action records
-- ARGV[1] now (ms)   then for each record: its idempotency key, its failed-zset member
--
-- Returns one 1 (requeued) or 0 (not a failed action) per record.

local FAILED = '4'
local replies = {}
for i = 3, #KEYS do
  local record = KEYS[i]
  local key = ARGV[2 * (i - 3) + 2]
  local member = ARGV[2 * (i - 3) + 3]
  redis.call('ZREM', KEYS[2], member)
  if redis.call('HGET', record, 'state') == FAILED then
    redis.call('HSET', record, 'state', 1, 'reason', '', 'attempts', 0,
      'last_http_status', 0, 'updated_at', ARGV[1], 'retried_at', ARGV[1])
    redis.call('XADD', KEYS[1], '*', 'k', key)
    table.insert(replies, 1)
  else
    table.insert(replies, 0)
  end
end
return replies
