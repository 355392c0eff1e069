-- Compare-and-set one profile together with everything that changes with it, atomically.
--
-- KEYS[1]  profile hash {s = state bytes, v = version token, d = recent event ids,
--          x = expiry deadline in ms (when the TTL was last set), f = survivor once frozen}
-- KEYS[2]  the partition's visits_due sorted set
-- KEYS[3]  the partition's outbox stream
-- KEYS[4]  the partition's delayed-actions sorted set
-- KEYS[5]  the profile's trace stream
-- KEYS[6]  the profile's tracing marker (present while a StreamTrace follows it)
-- KEYS[7 .. 6+j]        audience sets the profile joins
-- KEYS[7+j .. 6+j+l]    audience sets the profile leaves
--
-- ARGV[1]  a JSON object of the text parameters (numbers that go to Redis as text, so
--          that Lua's number formatting never touches a 13-digit time):
--            e  expected version token ("" = the profile must not exist)
--            n  new version token
--            r  retention in ms (PEXPIRE of the profile), "" = keep the TTL (the caller saw
--               a deadline x recent enough: commit.py, _ttl_refresh_due)
--            g  the new deadline x, when r ~= ""
--            p  profile id (member of visits_due and of the audience sets)
--            d  visit due time in ms ("" = no open visit: remove from visits_due)
--            m  trace MAXLEN: the byte cap over this entry's size (exact: an approximate
--               trim only drops whole nodes of 100 entries, far above a cap of a few KB)
--            x  trace TTL in ms
--            s  1: write the trace entry; 0: only if KEYS[6] exists (see trace_history.py)
--            j  n_join, l  n_leave (numbers: how many audience keys of each kind)
--            u  1: ARGV[#ARGV - 1] is the new field d (recent event ids, merged and trimmed
--               by the caller from what it read: recent_ids.py); 0: d stays as it is
--            y  delayed actions: array of [due ms, member] (a member is one action of one
--               profile, so ZADD moves a pending run to its new due time)
--            z  optional: delayed members to cancel (the visitor left their audience)
--            o  n_outbox (number)
--            f  trace field: "e" (one record) or "b" (an array of them), "" = no trace
-- ARGV[2 .. 1+2*o]  outbox (idempotency key, action bytes) pairs
-- then, if f ~= "", the trace stream entry's value (JSON; see trace_log.py)
-- then, if u == 1, the field d
-- ARGV[#ARGV]       the new state bytes
--
-- Everything small travels in ARGV[1] because redis-py packs each argument in Python (the
-- cost per argument exceeded the rest of a commit); the large values stay separate
-- arguments, the state last (redis-py copies what it has packed once per further argument).
-- Each key gets one command per kind of write: Redis counts (and spends time on) every one.
--
-- Returns 1 when written, 0 when the stored version differs or the profile is frozen by a
-- stitch (nothing is written).

local h = cjson.decode(ARGV[1])

local current = redis.call('HMGET', KEYS[1], 'v', 'f')
if current[2] then
  return 0  -- frozen by a stitch: the retry follows its alias to the survivor
end
if current[1] == false then current[1] = '' end
if current[1] ~= h.e then
  return 0
end

local profile_id = h.p
local fields = {'s', ARGV[#ARGV], 'v', h.n}
if h.u == 1 then
  fields[5], fields[6] = 'd', ARGV[#ARGV - 1]
end
if h.r ~= '' then
  fields[#fields + 1], fields[#fields + 2] = 'x', h.g
end
redis.call('HSET', KEYS[1], unpack(fields))
if h.r ~= '' then
  redis.call('PEXPIRE', KEYS[1], h.r)
end

if h.d == '' then
  redis.call('ZREM', KEYS[2], profile_id)
else
  redis.call('ZADD', KEYS[2], h.d, profile_id)
end

for i = 1, h.j do
  redis.call('SADD', KEYS[6 + i], profile_id)
end
for i = 1, h.l do
  redis.call('SREM', KEYS[6 + h.j + i], profile_id)
end

for i = 0, h.o - 1 do
  redis.call('XADD', KEYS[3], '*', 'k', ARGV[2 + 2 * i], 'a', ARGV[3 + 2 * i])
end

for _, due in ipairs(h.y) do
  redis.call('ZADD', KEYS[4], due[1], due[2])
end
if h.z then
  redis.call('ZREM', KEYS[4], unpack(h.z))
end

if h.f ~= '' and (h.s == 1 or redis.call('EXISTS', KEYS[6]) == 1) then
  redis.call('XADD', KEYS[5], 'MAXLEN', h.m, '*', h.f, ARGV[2 + 2 * h.o])
  redis.call('PEXPIRE', KEYS[5], h.x)
end

return 1
