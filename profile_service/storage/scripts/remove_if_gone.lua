-- Remove a member from an audience set if its profile no longer exists (retention expiry).
--
-- KEYS[1] profile hash   KEYS[2] audience set
-- ARGV[1] profile id
--
-- Returns 1 if removed, 0 if the profile exists (or the member was already gone).

if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
return redis.call('SREM', KEYS[2], ARGV[1])
