-- Delete an identity-index entry only if it still names the given profile.
--
-- KEYS[1] identity-index string   ARGV[1] profile id
-- Returns 1 if deleted, 0 otherwise.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
