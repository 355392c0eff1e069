-- Claim a visitor-ID value's index entry for a profile: the first holder keeps it.
--
-- KEYS[1]  the value's identity index entry
-- ARGV[1]  the claiming profile id   ARGV[2]  retention in ms (PX)
--
-- Returns the owner after the call: ARGV[1] when the entry was free (now claimed) or already
-- ours (its TTL refreshed), else the other profile that holds it (unchanged).

local owner = redis.call('GET', KEYS[1])
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return owner
