-- Record delivery results of one partition's actions and acknowledge their queue entries.
--
-- Only an action still ACCEPTED is updated: a queue entry reclaimed from a worker that
-- was merely slow may complete twice, and the second completion must not undo the first.
-- The entry itself is always acknowledged and deleted.
--
-- KEYS[1] queue stream   KEYS[2] retry zset   KEYS[3] failed zset   KEYS[i] action records
--
-- ARGV[1] now (ms)   ARGV[2] retention of finished records (ms)   ARGV[3] n
-- then n groups of STRIDE values:
--   1 record KEYS index   2 stream entry id ('' if none)   3 idempotency key
--   4 result: delivered | skipped | retry | failed | drop
--   5 HTTP status of the attempt   6 reason   7 retry due time (ms)
--   8 failed-zset member (connector NUL key)   9 counts as an attempt (0/1)
--
-- Returns the number of records updated.

local ACCEPTED, DELIVERED, FAILED, SKIPPED = '1', 3, 4, 5
local STRIDE = 9
local now = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local n = tonumber(ARGV[3])

local function arg(i, field)
  return ARGV[3 + (i - 1) * STRIDE + field]
end

local updated = 0
for i = 1, n do
  local entry = arg(i, 2)
  if entry ~= '' then
    redis.call('XACK', KEYS[1], 'dispatchers', entry)
    redis.call('XDEL', KEYS[1], entry)
  end
  local record = KEYS[tonumber(arg(i, 1))]
  local result = arg(i, 4)
  if result ~= 'drop' and redis.call('HGET', record, 'state') == ACCEPTED then
    updated = updated + 1
    if arg(i, 9) == '1' then
      redis.call('HINCRBY', record, 'attempts', 1)
    end
    redis.call('HSET', record, 'last_http_status', arg(i, 5), 'reason', arg(i, 6),
      'updated_at', now)
    if result == 'delivered' or result == 'skipped' then
      redis.call('HSET', record, 'state', result == 'delivered' and DELIVERED or SKIPPED)
      redis.call('PEXPIRE', record, retention)
    elseif result == 'retry' then
      redis.call('ZADD', KEYS[2], tonumber(arg(i, 7)), arg(i, 3))
    elseif result == 'failed' then
      redis.call('HSET', record, 'state', FAILED)
      redis.call('ZADD', KEYS[3], now, arg(i, 8))
    end
  end
end
return updated
