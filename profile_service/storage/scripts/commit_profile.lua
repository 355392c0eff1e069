-- Compare-and-set one profile together with everything that changes with it, atomically.
--
-- KEYS[1]  profile hash {s = state bytes, v = version token, f = survivor once frozen}
-- KEYS[2]  the profile's dedup sorted set
-- KEYS[3]  the partition's visits_due sorted set
-- KEYS[4]  the partition's outbox stream
-- KEYS[5]  the partition's delayed-actions sorted set
-- KEYS[6]  the profile's trace stream
-- KEYS[7]  the profile's tracing marker (present while a StreamTrace follows it)
-- KEYS[8 .. 7+j]        audience sets the profile joins
-- KEYS[8+j .. 7+j+l]    audience sets the profile leaves
--
-- ARGV[1]  a JSON object of the text parameters (numbers that go to Redis as text, so
--          that Lua's number formatting never touches a 13-digit time):
--            e  expected version token ("" = the profile must not exist)
--            n  new version token
--            r  retention in ms (PEXPIRE of the profile)
--            p  profile id (member of visits_due and of the audience sets)
--            d  visit due time in ms ("" = no open visit: remove from visits_due)
--            t  now in ms (dedup score)     w  dedup window in ms
--            k  dedup: most event ids kept
--            m  trace MAXLEN: the byte cap over this entry's size (exact: an approximate
--               trim only drops whole nodes of 100 entries, far above a cap of a few KB)
--            x  trace TTL in ms
--            s  1: write the trace entry; 0: only if KEYS[7] exists (see trace_history.py)
--            j  n_join, l  n_leave (numbers: how many audience keys of each kind)
--            i  event ids to remember for deduplication (array)
--            y  delayed actions: array of [due ms, member] (a member is one action of one
--               profile, so ZADD moves a pending run to its new due time)
--            z  optional: delayed members to cancel (the visitor left their audience)
--            o  n_outbox (number)
--            f  trace field: "e" (one record) or "b" (an array of them), "" = no trace
-- ARGV[2 .. 1+2*o]  outbox (idempotency key, action bytes) pairs
-- then, if f ~= "", the trace stream entry's value (JSON; see trace_log.py)
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
redis.call('HSET', KEYS[1], 's', ARGV[#ARGV], 'v', h.n)
redis.call('PEXPIRE', KEYS[1], h.r)

if h.d == '' then
  redis.call('ZREM', KEYS[3], profile_id)
else
  redis.call('ZADD', KEYS[3], h.d, profile_id)
end

for i = 1, h.j do
  redis.call('SADD', KEYS[7 + i], profile_id)
end
for i = 1, h.l do
  redis.call('SREM', KEYS[7 + h.j + i], profile_id)
end

local ids = h.i
if #ids > 0 then
  -- One ZADD per 1000 event ids rather than one per id (unpack must stay far below
  -- Lua's C stack limit of 8000 values).
  for first = 1, #ids, 1000 do
    local scored = {}
    for i = first, math.min(first + 999, #ids) do
      scored[#scored + 1] = h.t
      scored[#scored + 1] = ids[i]
    end
    redis.call('ZADD', KEYS[2], unpack(scored))
  end
  -- string.format('%d') keeps a 13-digit millisecond time out of scientific notation.
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf',
    string.format('(%d', tonumber(h.t) - tonumber(h.w)))
  local keep = tonumber(h.k)
  if redis.call('ZCARD', KEYS[2]) > keep then
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(keep + 1))
  end
  redis.call('PEXPIRE', KEYS[2], h.w)
end

for i = 0, h.o - 1 do
  redis.call('XADD', KEYS[4], '*', 'k', ARGV[2 + 2 * i], 'a', ARGV[3 + 2 * i])
end

for _, due in ipairs(h.y) do
  redis.call('ZADD', KEYS[5], due[1], due[2])
end
if h.z then
  redis.call('ZREM', KEYS[5], unpack(h.z))
end

if h.f ~= '' and (h.s == 1 or redis.call('EXISTS', KEYS[7]) == 1) then
  redis.call('XADD', KEYS[6], 'MAXLEN', h.m, '*', h.f, ARGV[2 + 2 * h.o])
  redis.call('PEXPIRE', KEYS[6], h.x)
end

return 1
