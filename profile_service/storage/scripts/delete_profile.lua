-- Delete a profile and its per-partition traces: state, dedup, trace history, visit entry and
-- audience memberships. Does not fire "left audience" actions (privacy deletion).
--
-- KEYS[1] profile hash   KEYS[2] dedup sorted set   KEYS[3] trace stream
-- KEYS[4] the partition's visits_due sorted set
-- KEYS[5 ..] audience sets of the partition
-- ARGV[1] profile id
-- ARGV[2] trace entry JSON announcing the deletion to live followers ("" = none)
-- ARGV[3] trace TTL in ms
--
-- Returns 1 if the profile existed, 0 otherwise (the other keys are cleaned either way).

local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
for i = 5, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[1])
end
if ARGV[2] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'e', ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return existed
