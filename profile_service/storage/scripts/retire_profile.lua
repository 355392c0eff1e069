-- Step 3 of a stitch, in the replaced profile's slot, once the survivor holds the merge:
-- delete the frozen profile, its visit entry and audience memberships (no "left" actions:
-- the person is still in them through the survivor), note the stitch in its trace, and
-- drop the pending record. Its dedup ids stay (until their TTL): events retried with the
-- replaced id are still recognised.
--
-- KEYS[1]  the replaced profile's hash   KEYS[2]  its trace stream
-- KEYS[3]  the partition's visits_due    KEYS[4]  the partition's pending-stitches set
-- KEYS[5 ..]  audience sets of the partition the profile may be in
-- ARGV[1]  replaced id   ARGV[2]  survivor id   ARGV[3]  the pending member
-- ARGV[4]  trace MAXLEN   ARGV[5]  trace TTL ms   ARGV[6]  the trace entry (JSON, field e)
--
-- Returns 1 when this call retired the profile, 0 if it was already gone or is frozen into
-- another survivor (nothing changes then).

local into = redis.call('HGET', KEYS[1], 'f')
if into and into ~= ARGV[2] then
  return 0
end
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
for i = 5, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[1])
end
if existed == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[6])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
redis.call('ZREM', KEYS[4], ARGV[3])
return existed
