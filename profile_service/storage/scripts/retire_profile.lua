-- Step 4 of a stitch, in the replaced profile's slot, once the survivor holds the merge:
-- delete the frozen profile, its visit entry and audience memberships (no "left" actions:
-- the person is still in them through the survivor), note the stitch in its trace, and
-- drop the pending record. Its recent event ids (field d) move to its dedup sorted set for
-- the dedup window: events retried with the replaced id are still recognised (the read
-- script looks there for a visitor id that is an alias; see recent_ids.py).
--
-- KEYS[1]  the replaced profile's hash   KEYS[2]  its trace stream
-- KEYS[3]  the partition's visits_due    KEYS[4]  the partition's pending-stitches set
-- KEYS[5]  the replaced profile's dedup sorted set
-- KEYS[6 ..]  audience sets of the partition the profile may be in
-- ARGV[1]  replaced id   ARGV[2]  survivor id   ARGV[3]  the pending member
-- ARGV[4]  trace MAXLEN   ARGV[5]  trace TTL ms   ARGV[6]  the trace entry (JSON, field e)
-- ARGV[7]  the dedup window in ms
--
-- Returns 1 when this call retired the profile, 0 if it was already gone or is frozen into
-- another survivor (nothing changes then).

local held = redis.call('HMGET', KEYS[1], 'f', 'd')
local into, recent = held[1], held[2]
if into and into ~= ARGV[2] then
  return 0
end
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
for i = 6, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[1])
end
if existed == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[6])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
if recent then
  -- One ZADD per 1000 ids (unpack must stay far below Lua's C stack limit of 8000 values);
  -- string.format('%d') keeps a 13-digit millisecond time out of scientific notation.
  -- The field (recent_ids.py): {deadline, {ms, ids}, {ms - previous ms, ids}, ...}.
  local field = cjson.decode(recent)
  local scored, at = {}, 0
  for g = 2, #field do
    at = at + field[g][1]
    local ms = string.format('%d', at)
    for _, event_id in ipairs(field[g][2]) do
      scored[#scored + 1] = ms
      scored[#scored + 1] = event_id
      if #scored == 2000 then
        redis.call('ZADD', KEYS[5], unpack(scored))
        scored = {}
      end
    end
  end
  if #scored > 0 then
    redis.call('ZADD', KEYS[5], unpack(scored))
  end
  if redis.call('EXISTS', KEYS[5]) == 1 then
    redis.call('PEXPIRE', KEYS[5], ARGV[7])
  end
end
redis.call('ZREM', KEYS[4], ARGV[3])
return existed
