-- Read what applying events to visitor ids of one partition needs, in one command: the read
-- pipeline of a batch then sends one command per partition instead of several per visitor,
-- which is most of the client-side cost of that round trip.
--
-- Per visitor id i (k = 4 * (i - 1)):
--   KEYS[k+1]  its alias key
--   KEYS[k+2]  its own profile hash {s = state bytes, v = version token,
--              d = recent event ids and expiry deadline (recent_ids.py)}
--   KEYS[k+3]  its own dedup sorted set (only where the hash has no field d)
--   KEYS[k+4]  its own tracing marker (a StreamTrace follows it)
--   ARGV[i]    '1' if the batch has event ids for it, else '0'
--
-- Returns, per visitor id, {alias target, state bytes, version token, 1 if followed else 0,
-- field d, [ZRANGE WITHSCORES of the sorted set]} with false for whatever is
-- absent. The sorted set is read only when it can matter: event ids to check, no field d,
-- and a profile written before the field existed or an alias (a stitched-away profile leaves
-- its ids there).

local out = {}
for i = 1, #ARGV do
  local k = 4 * (i - 1)
  local profile = redis.call('HMGET', KEYS[k + 2], 's', 'v', 'd')
  local alias = redis.call('GET', KEYS[k + 1])
  local one = {alias, profile[1], profile[2], redis.call('EXISTS', KEYS[k + 4]), profile[3]}
  if ARGV[i] == '1' and not profile[3] and (profile[1] or alias) then
    one[6] = redis.call('ZRANGE', KEYS[k + 3], 0, -1, 'WITHSCORES')
  end
  out[i] = one
end
return out
