-- Store a definitions version and make it current, if the current version is the expected one.
--
-- KEYS[1] current-version pointer   KEYS[2] history sorted set   KEYS[3] the new version's key
-- ARGV[1] expected current version id ("" = none published yet)
-- ARGV[2] new version id
-- ARGV[3] serialised DefinitionsVersion
-- ARGV[4] publish time in ms
-- ARGV[5] pub/sub channel told about the switch
--
-- Returns {1, new id} when switched, {0, actual current id} when the current version changed.

local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then
  return {0, current}
end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[2])
return {1, ARGV[2]}
