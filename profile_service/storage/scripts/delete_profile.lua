-- Delete a profile and its per-partition traces: state, dedup ids, trace history, visit entry
-- and audience memberships. Does not fire "left audience" actions (privacy deletion).
--
-- KEYS[1] profile hash   KEYS[2] dedup sorted set   KEYS[3] trace stream
-- KEYS[4] the partition's visits_due sorted set
-- KEYS[5 ..] audience sets of the partition
-- ARGV[1] profile id
--
-- Returns 1 if the profile existed, 0 otherwise (the other keys are cleaned either way).

local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
for i = 5, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[1])
end
return existed
