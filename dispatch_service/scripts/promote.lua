-- Move one partition's due retries back onto its queue.
--
-- Atomic, so with several workers promoting at once each retry is queued exactly once.
--
-- KEYS[1] retry zset   KEYS[2] queue stream
-- ARGV[1] now (ms)     ARGV[2] most to move in one call
--
-- Returns the number of actions queued.

local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
for _, key in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'k', key)
  redis.call('ZREM', KEYS[1], key)
end
return #due
