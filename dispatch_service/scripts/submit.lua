-- Accept the actions of one partition: idempotency, frequency caps, record, queue.
--
-- Atomic per partition (one visitor's actions always share a partition), so two replicas
-- can never both fire capped actions of one visitor, nor accept one key twice.
--
-- KEYS[1]  the partition's queue stream
-- KEYS[i]  action records, cooldown keys and cap keys, referenced by index from the JSON
--
-- ARGV[1] now (ms)   ARGV[2] retention of finished records (ms)
-- ARGV[3] the n actions' fields as one JSON array (one argument: the client encodes each
-- argument on its own, which cost more than the script), each an array of:
--   1 idempotency key        2 record KEYS index       3 cooldown KEYS index (0: none)
--   4 cap KEYS index (0)     5 cooldown group          6 cooldown (ms)
--   7 priority               8 max sends               9 cap window (ms)
--   10 action id             11 connector id           12 visitor id
--   13 traceparent           14 tracestate             15 reason text of a simple-cap suppression
-- ARGV[3 + i] the serialized Action of action i (binary, so not in the JSON)
--
-- Returns n triples {duplicate (0/1), outcome state, reason}.

local ACCEPTED, SUPPRESSED = 1, 2
local now = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local fields = cjson.decode(ARGV[3])
local n = #fields

local function arg(i, field)
  return fields[i][field]
end

local function num(i, field)
  return tonumber(arg(i, field))
end

-- ISO 8601 UTC of a time in ms (Redis Lua has no os.date); days-to-civil after
-- Howard Hinnant's algorithm.
local function iso_time(ms)
  local secs = math.floor(ms / 1000)
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400
  if month <= 2 then year = year + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', year, month, day,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60)
end

local outcome = {}   -- i -> {duplicate, state, reason}

-- 1. Known keys return their first outcome and change nothing.
for i = 1, n do
  local first = redis.call('HMGET', KEYS[num(i, 2)], 'outcome', 'outcome_reason')
  if first[1] then
    outcome[i] = {1, tonumber(first[1]), first[2] or ''}
  end
end

-- 2. Simple caps: sends inside the sliding window (including those this call fired).
local function cap_allows(i)
  local index = num(i, 4)
  if index == 0 then return true end
  return redis.call('ZCOUNT', KEYS[index], '(' .. (now - num(i, 9)), '+inf') < num(i, 8)
end

local function fire(i)
  outcome[i] = {0, ACCEPTED, ''}
  local index = num(i, 4)
  if index > 0 then
    local key = KEYS[index]
    local window = num(i, 9)
    redis.call('ZADD', key, now, arg(i, 1))
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    redis.call('PEXPIRE', key, window)
  end
end

local function suppress(i, reason)
  outcome[i] = {0, SUPPRESSED, reason}
end

-- 3. Cooldown groups: of a group's new actions in this call the highest priority that its
-- simple cap allows fires (equal priority: the earliest), unless the group is cooling down.
local members = {}   -- cooldown key -> indices of this call's new actions, in request order
for i = 1, n do
  local index = num(i, 3)
  if outcome[i] == nil and index > 0 then
    local key = KEYS[index]
    members[key] = members[key] or {}
    table.insert(members[key], i)
  end
end

local function decide_group(key, group_members)
  local group = arg(group_members[1], 5)
  local current = redis.call('GET', key)
  if current then
    local until_ms = tonumber(string.sub(current, 1, string.find(current, ' ', 1, true) - 1))
    if until_ms > now then
      for _, i in ipairs(group_members) do
        suppress(i, 'cooldown group ' .. group .. ' active until ' .. iso_time(until_ms))
      end
      return
    end
  end
  local ranked = {}
  for k, i in ipairs(group_members) do ranked[k] = i end
  table.sort(ranked, function(a, b)
    local pa, pb = num(a, 7), num(b, 7)
    if pa ~= pb then return pa > pb end
    return a < b
  end)
  local winner = nil
  for _, i in ipairs(ranked) do
    if winner then
      if num(i, 7) < num(winner, 7) then
        suppress(i, 'cooldown group ' .. group .. ': lower priority than ' .. arg(winner, 1))
      else
        suppress(i, 'cooldown group ' .. group .. ': same priority as ' .. arg(winner, 1)
          .. ', which came first')
      end
    elseif cap_allows(i) then
      winner = i
      fire(i)
    else
      suppress(i, arg(i, 15))
    end
  end
  if winner then
    local cooldown = num(winner, 6)
    if cooldown > 0 then
      redis.call('SET', key, (now + cooldown) .. ' ' .. arg(winner, 1), 'PX', cooldown)
    end
  end
end

-- 4. Decide in request order (a group as a whole when its first action comes up), then
-- store every new action and queue the accepted ones.
for i = 1, n do
  if outcome[i] == nil then
    local index = num(i, 3)
    if index > 0 then
      decide_group(KEYS[index], members[KEYS[index]])
    elseif cap_allows(i) then
      fire(i)
    else
      suppress(i, arg(i, 15))
    end
  end
end

local replies = {}
for i = 1, n do
  local result = outcome[i]
  if result[1] == 0 then
    local record = KEYS[num(i, 2)]
    redis.call('HSET', record,
      'action', ARGV[3 + i], 'state', result[2], 'reason', result[3],
      'outcome', result[2], 'outcome_reason', result[3],
      'attempts', 0, 'last_http_status', 0, 'accepted_at', now, 'updated_at', now,
      'key', arg(i, 1), 'connector', arg(i, 11), 'visitor', arg(i, 12),
      'action_id', arg(i, 10), 'traceparent', arg(i, 13), 'tracestate', arg(i, 14))
    if result[2] == ACCEPTED then
      redis.call('XADD', KEYS[1], '*', 'k', arg(i, 1))
    else
      redis.call('PEXPIRE', record, retention)
    end
  end
  table.insert(replies, result[1])
  table.insert(replies, result[2])
  table.insert(replies, result[3])
end
return replies
