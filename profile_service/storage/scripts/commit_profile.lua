-- Compare-and-set the profiles of one partition, each together with everything that changes
-- with it: one call per partition and batch (every key carries the partition's tag), each
-- profile atomic and checked on its own (a conflicting one is skipped, the others commit).
--
-- KEYS[1]  the partition's visits_due sorted set
-- KEYS[2]  the partition's outbox stream
-- KEYS[3]  the partition's delayed-actions sorted set
-- then per profile, in ARGV's order (k = where its keys start):
--   KEYS[k]    profile hash {s = state bytes, v = version token, d = recent event ids and
--              the expiry deadline, f = survivor once frozen}
--   KEYS[k+1]  the profile's trace stream
--   KEYS[k+2]  the profile's tracing marker (present while a StreamTrace follows it)
--   KEYS[k+3 .. k+2+j]        audience sets the profile joins
--   KEYS[k+3+j .. k+2+j+l]    audience sets the profile leaves
--
-- ARGV, per profile (a = where its arguments start):
--   ARGV[a]  a JSON object of the text parameters (numbers that go to Redis as text, so
--            that Lua's number formatting never touches a 13-digit time):
--            e  expected version token ("" = the profile must not exist)
--            n  new version token
--            r  retention in ms (PEXPIRE of the profile), "" = keep the TTL (the caller saw
--               a deadline in d recent enough: commit.py, _ttl_refresh_due)
--            p  profile id (member of visits_due and of the audience sets)
--            d  visit due time in ms ("" = no open visit: remove from visits_due)
--            m  trace MAXLEN: the byte cap over this entry's size (exact: an approximate
--               trim only drops whole nodes of 100 entries, far above a cap of a few KB)
--            x  trace TTL in ms
--            s  1: write the trace entry; 0: only if the tracing marker exists
--               (see trace_history.py)
--            j  n_join, l  n_leave (numbers: how many audience keys of each kind)
--            u  1: the field d precedes the state; 0: d stays as it is (the field holds
--               the recent event ids, merged and trimmed by the caller, and the deadline:
--               recent_ids.py)
--            y  delayed actions: array of [due ms, member] (a member is one action of one
--               profile, so ZADD moves a pending run to its new due time)
--            z  optional: delayed members to cancel (the visitor left their audience)
--            o  n_outbox (number)
--            f  trace field: "e" (one record) or "b" (an array of them), "" = no trace
--   then o outbox (idempotency key, action bytes) pairs
--   then, if f ~= "", the trace stream entry's value (JSON; see trace_log.py)
--   then, if u == 1, the field d
--   then the new state bytes
--
-- Everything small travels in the JSON argument because redis-py packs each argument in
-- Python (the cost per argument exceeded the rest of a commit); the large values stay
-- separate arguments. Each key gets one command per kind of write: Redis counts (and spends
-- time on) every one.
--
-- Returns one number per profile: 1 when written, 0 when the stored version differs or the
-- profile is frozen by a stitch (nothing of that profile is written).

local function commit(h, k, a, last)
  local current = redis.call('HMGET', KEYS[k], 'v', 'f')
  if current[2] then
    return 0  -- frozen by a stitch: the retry follows its alias to the survivor
  end
  if current[1] == false then current[1] = '' end
  if current[1] ~= h.e then
    return 0
  end

  local profile_id = h.p
  local fields = {'s', ARGV[last], 'v', h.n}
  if h.u == 1 then
    fields[5], fields[6] = 'd', ARGV[last - 1]
  end
  redis.call('HSET', KEYS[k], unpack(fields))
  if h.r ~= '' then
    redis.call('PEXPIRE', KEYS[k], h.r)
  end

  if h.d == '' then
    redis.call('ZREM', KEYS[1], profile_id)
  else
    redis.call('ZADD', KEYS[1], h.d, profile_id)
  end

  for i = 1, h.j do
    redis.call('SADD', KEYS[k + 2 + i], profile_id)
  end
  for i = 1, h.l do
    redis.call('SREM', KEYS[k + 2 + h.j + i], profile_id)
  end

  for i = 0, h.o - 1 do
    redis.call('XADD', KEYS[2], '*', 'k', ARGV[a + 1 + 2 * i], 'a', ARGV[a + 2 + 2 * i])
  end

  for _, due in ipairs(h.y) do
    redis.call('ZADD', KEYS[3], due[1], due[2])
  end
  if h.z then
    redis.call('ZREM', KEYS[3], unpack(h.z))
  end

  if h.f ~= '' and (h.s == 1 or redis.call('EXISTS', KEYS[k + 2]) == 1) then
    redis.call('XADD', KEYS[k + 1], 'MAXLEN', h.m, '*', h.f, ARGV[a + 1 + 2 * h.o])
    redis.call('PEXPIRE', KEYS[k + 1], h.x)
  end
  return 1
end

local results = {}
local k, a = 4, 1
while a <= #ARGV do
  local h = cjson.decode(ARGV[a])
  local last = a + 2 * h.o + (h.f ~= '' and 1 or 0) + h.u + 1
  results[#results + 1] = commit(h, k, a, last)
  k = k + 3 + h.j + h.l
  a = last + 1
end
return results
