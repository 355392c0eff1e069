-- Read what applying events to one visitor id needs, in one command: the read pipeline of
-- a batch then sends one command per visitor instead of four (GET, HMGET, EXISTS, ZMSCORE),
-- which is most of the client-side cost of that round trip.
--
-- KEYS[1]  the visitor id's alias key
-- KEYS[2]  the visitor id's own profile hash {s = state bytes, v = version token}
-- KEYS[3]  the visitor id's own dedup sorted set
-- KEYS[4]  the visitor id's own tracing marker (a StreamTrace follows it)
-- ARGV     the event ids to look up in KEYS[3] (may be none)
--
-- Returns {alias target, state bytes, version token, 1 if followed else 0, score of ARGV[1],
-- score of ARGV[2], ...} with nil for whatever is absent.

local profile = redis.call('HMGET', KEYS[2], 's', 'v')
local out = {redis.call('GET', KEYS[1]), profile[1], profile[2], redis.call('EXISTS', KEYS[4])}
if #ARGV > 0 then
  local scores = redis.call('ZMSCORE', KEYS[3], unpack(ARGV))
  for i = 1, #scores do
    out[4 + i] = scores[i]
  end
end
return out
