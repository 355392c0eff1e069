-- Record delivery results of one partition's actions and acknowledge their queue entries.
--
-- Only an action still ACCEPTED is updated: a queue entry reclaimed from a worker that
-- was merely slow may complete twice, and the second completion must not undo the first.
-- The entry itself is always acknowledged and deleted.
--
-- KEYS[1] queue stream   KEYS[2] retry zset   KEYS[3] failed zset   KEYS[3 + i] record of item i
--
-- ARGV[1] now (ms)   ARGV[2] retention of finished records (ms)
-- ARGV[3] the items as one JSON array (one argument: the client encodes each argument on its
-- own, which cost more than the script), each an array of:
--   1 stream entry id ('' if none)   2 idempotency key
--   3 result: delivered | skipped | retry | failed | drop
--   4 HTTP status of the attempt   5 reason   6 retry due time (ms)
--   7 failed-zset member (connector NUL key)   8 counts as an attempt (0/1)
--
-- Returns the number of records updated.

local ACCEPTED, DELIVERED, FAILED, SKIPPED = '1', 3, 4, 5
local now = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local items = cjson.decode(ARGV[3])

local updated = 0
for i, item in ipairs(items) do
  local entry, key, result, status, reason, due, member, attempted = unpack(item)
  if entry ~= '' then
    redis.call('XACK', KEYS[1], 'dispatchers', entry)
    redis.call('XDEL', KEYS[1], entry)
  end
  local record = KEYS[3 + i]
  if result ~= 'drop' and redis.call('HGET', record, 'state') == ACCEPTED then
    updated = updated + 1
    if attempted == 1 then
      redis.call('HINCRBY', record, 'attempts', 1)
    end
    redis.call('HSET', record, 'last_http_status', status, 'reason', reason, 'updated_at', now)
    if result == 'delivered' or result == 'skipped' then
      redis.call('HSET', record, 'state', result == 'delivered' and DELIVERED or SKIPPED)
      redis.call('PEXPIRE', record, retention)
    elseif result == 'retry' then
      redis.call('ZADD', KEYS[2], due, key)
    elseif result == 'failed' then
      redis.call('HSET', record, 'state', FAILED)
      redis.call('ZADD', KEYS[3], now, member)
    end
  end
end
return updated
