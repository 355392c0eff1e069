-- Bring a profile's visits_due entry in line with the profile, if the profile is unchanged.
--
-- Used by the sweeper when a due entry does not match the stored profile (the profile
-- expired, was deleted, or has no open visit). The version check keeps it from undoing a
-- concurrent commit that just opened or extended a visit.
--
-- KEYS[1] profile hash    KEYS[2] the partition's visits_due sorted set
-- ARGV[1] expected version token ("" = the profile must not exist)
-- ARGV[2] profile id
-- ARGV[3] visit due time in ms ("" = remove the entry)
--
-- Returns 1 when applied, 0 when the profile changed meanwhile.

local current = redis.call('HGET', KEYS[1], 'v')
if current == false then current = '' end
if current ~= ARGV[1] then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
return 1
