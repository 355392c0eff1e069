-- Read what applying events to one visitor id needs, in one command: the read pipeline of
-- a batch then sends one command per visitor instead of several, which is most of the
-- client-side cost of that round trip.
--
-- KEYS[1]  the visitor id's alias key
-- KEYS[2]  the visitor id's own profile hash {s = state bytes, v = version token,
--          d = recent event ids (recent_ids.py), x = expiry deadline in ms}
-- KEYS[3]  the visitor id's own dedup sorted set (only where the hash has no field d)
-- KEYS[4]  the visitor id's own tracing marker (a StreamTrace follows it)
-- ARGV[1]  '1' if the batch has event ids for this visitor id, else '0'
--
-- Returns {alias target, state bytes, version token, 1 if followed else 0, field d, field x,
-- [ZRANGE WITHSCORES of KEYS[3]]} with false for whatever is absent. The sorted set is read
-- only when it can matter: event ids to check, no field d, and a profile written before the
-- field existed or an alias (a stitched-away profile leaves its ids there).

local profile = redis.call('HMGET', KEYS[2], 's', 'v', 'd', 'x')
local alias = redis.call('GET', KEYS[1])
local out = {alias, profile[1], profile[2], redis.call('EXISTS', KEYS[4]), profile[3], profile[4]}
if ARGV[1] == '1' and not profile[3] and (profile[1] or alias) then
  out[7] = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
end
return out
