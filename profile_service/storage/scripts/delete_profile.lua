-- Delete a profile and its per-partition traces: state, dedup ids, trace history, visit entry
-- and audience memberships, and queue the deletion's connector actions (Braze Delete User) in
-- the partition's outbox, atomically. Does not fire "left audience" actions (privacy deletion).
--
-- KEYS[1] profile hash   KEYS[2] dedup sorted set   KEYS[3] trace stream
-- KEYS[4] the partition's visits_due sorted set   KEYS[5] the partition's outbox stream
-- KEYS[6 ..] audience sets of the partition
-- ARGV[1] profile id
-- ARGV[2 ..] outbox (idempotency key, action bytes) pairs, queued only by the call that
--            deleted the profile (a repeated or concurrent deletion queues nothing)
--
-- Returns 1 if the profile existed, 0 otherwise (the other keys are cleaned either way).

local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
for i = 6, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[1])
end
if existed == 1 then
  for i = 2, #ARGV - 1, 2 do
    redis.call('XADD', KEYS[5], '*', 'k', ARGV[i], 'a', ARGV[i + 1])
  end
end
return existed
