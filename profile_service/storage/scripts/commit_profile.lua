-- Compare-and-set one profile together with everything that changes with it, atomically.
--
-- KEYS[1]  profile hash {s = state bytes, v = version token}
-- KEYS[2]  the profile's dedup sorted set
-- KEYS[3]  the partition's visits_due sorted set
-- KEYS[4]  the partition's outbox stream
-- KEYS[5]  the partition's delayed-actions sorted set
-- KEYS[6]  the profile's trace stream
-- KEYS[7 .. 6+n_join]            audience sets the profile joins
-- KEYS[7+n_join .. 6+n_join+n_leave]  audience sets the profile leaves
--
-- ARGV[1]  expected version token ("" = the profile must not exist)
-- ARGV[2]  new version token
-- ARGV[3]  unused ("": the state bytes come last, see below)
-- ARGV[4]  retention in ms (PEXPIRE of the profile)
-- ARGV[5]  profile id (member of visits_due and of the audience sets)
-- ARGV[6]  visit due time in ms ("" = no open visit: remove from visits_due)
-- ARGV[7]  now in ms (dedup score)
-- ARGV[8]  dedup window in ms
-- ARGV[9]  dedup: most event ids kept
-- ARGV[10] trace MAXLEN (approximate)
-- ARGV[11] trace TTL in ms
-- ARGV[12] n_join   ARGV[13] n_leave
-- ARGV[14] n_dedup  ARGV[15] n_outbox  ARGV[16] n_delayed  ARGV[17] n_trace (0 or 1)
-- ARGV[18 ..] n_dedup event ids, then n_outbox (idempotency key, action bytes) pairs,
--             then n_delayed (due ms, member) pairs, then n_trace (field, JSON) pairs: the
--             trace stream entry ("e" = one record, "b" = an array of them; trace_log.py),
--             and last the new state bytes (ARGV[#ARGV]). The state is the largest
--             argument and redis-py copies what it has packed of a command once per further
--             argument, so it goes last.
--
-- Every write is one command per key: a commit is the hot path of ingest, and Redis counts
-- (and spends time on) each command a script runs.
--
-- Returns 1 when written, 0 when the stored version differs (nothing is written).

local current = redis.call('HGET', KEYS[1], 'v')
if current == false then current = '' end
if current ~= ARGV[1] then
  return 0
end

local profile_id = ARGV[5]
redis.call('HSET', KEYS[1], 's', ARGV[#ARGV], 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])

if ARGV[6] == '' then
  redis.call('ZREM', KEYS[3], profile_id)
else
  redis.call('ZADD', KEYS[3], ARGV[6], profile_id)
end

local n_join = tonumber(ARGV[12])
local n_leave = tonumber(ARGV[13])
for i = 1, n_join do
  redis.call('SADD', KEYS[6 + i], profile_id)
end
for i = 1, n_leave do
  redis.call('SREM', KEYS[6 + n_join + i], profile_id)
end

local n_dedup = tonumber(ARGV[14])
local n_outbox = tonumber(ARGV[15])
local n_delayed = tonumber(ARGV[16])
local n_trace = tonumber(ARGV[17])
local at = 18

if n_dedup > 0 then
  local now = tonumber(ARGV[7])
  local window = tonumber(ARGV[8])
  -- One ZADD per 1000 event ids rather than one per id (unpack must stay far below
  -- Lua's C stack limit of 8000 values).
  for first = 0, n_dedup - 1, 1000 do
    local pairs = {}
    for i = first, math.min(first + 999, n_dedup - 1) do
      pairs[#pairs + 1] = ARGV[7]
      pairs[#pairs + 1] = ARGV[at + i]
    end
    redis.call('ZADD', KEYS[2], unpack(pairs))
  end
  -- string.format('%d') keeps a 13-digit millisecond time out of scientific notation.
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', now - window))
  local keep = tonumber(ARGV[9])
  if redis.call('ZCARD', KEYS[2]) > keep then
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(keep + 1))
  end
  redis.call('PEXPIRE', KEYS[2], window)
end
at = at + n_dedup

for i = 0, n_outbox - 1 do
  redis.call('XADD', KEYS[4], '*', 'k', ARGV[at + 2 * i], 'a', ARGV[at + 2 * i + 1])
end
at = at + 2 * n_outbox

for i = 0, n_delayed - 1 do
  redis.call('ZADD', KEYS[5], ARGV[at + 2 * i], ARGV[at + 2 * i + 1])
end
at = at + 2 * n_delayed

if n_trace > 0 then
  for i = 0, n_trace - 1 do
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[10], '*', ARGV[at + 2 * i], ARGV[at + 2 * i + 1])
  end
  redis.call('PEXPIRE', KEYS[6], ARGV[11])
end

return 1
