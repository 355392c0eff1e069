-- Take one due delayed action out of the delayed set and, if it still applies, into the outbox.
--
-- Removing the member is the claim: of several sweepers only the one whose ZREM removes it
-- moves the action, so it reaches the outbox at most once (and exactly once while the
-- visitor still qualifies).
--
-- KEYS[1] the partition's delayed sorted set
-- KEYS[2] the partition's outbox stream
-- KEYS[3] the profile's trace stream
-- ARGV[1] the delayed member
-- ARGV[2] idempotency key ("" = the action no longer applies: drop it)
-- ARGV[3] serialised action
-- ARGV[4] trace entry JSON ("" = none)
-- ARGV[5] trace MAXLEN (approximate)
-- ARGV[6] trace TTL in ms
-- ARGV[7] now in ms: a member whose due time moved past it since the sweeper read it (a
--         later visit end rescheduled the run) is left for its new time
--
-- Returns 1 when this call claimed the member, 0 when another sweeper did or it was moved.

local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[7]) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('XADD', KEYS[2], '*', 'k', ARGV[2], 'a', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
return 1
