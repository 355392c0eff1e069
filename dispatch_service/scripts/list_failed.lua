-- One page of one partition's dead letters, newest first, after a cursor.
--
-- Dead letters are ordered across partitions by (failure time desc, partition asc,
-- member desc); the caller passes the mode that places this partition relative to the
-- cursor's partition:
--   first   no cursor: from the newest
--   lt      a partition before the cursor's: strictly older than the cursor's time
--   le      a partition after the cursor's: as old as the cursor's time or older
--   member  the cursor's partition: older, or as old with a smaller member
--
-- KEYS[1] failed zset
-- ARGV[1] mode   ARGV[2] cursor time (ms)   ARGV[3] cursor member   ARGV[4] limit
-- ARGV[5] member prefix to keep ('' keeps all; 'connector NUL' keeps one connector's)
--
-- Returns a flat list member, score, ... of at most limit entries.

local key, mode, cursor, cursor_member = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local limit, prefix = tonumber(ARGV[4]), ARGV[5]
local CHUNK = 500
local out = {}

-- Byte-wise comparison, as Redis orders members (Lua's '<' follows the locale).
local function bytes_less(a, b)
  local la, lb = #a, #b
  for j = 1, math.min(la, lb) do
    local x, y = string.byte(a, j), string.byte(b, j)
    if x ~= y then return x < y end
  end
  return la < lb
end

local function keep(member, score)
  if prefix == '' or string.sub(member, 1, #prefix) == prefix then
    table.insert(out, member)
    table.insert(out, score)
  end
  return #out >= 2 * limit
end

if mode == 'member' then
  local ties = redis.call('ZRANGE', key, cursor, cursor, 'BYSCORE')
  for j = #ties, 1, -1 do
    if bytes_less(ties[j], cursor_member) and keep(ties[j], cursor) then return out end
  end
end

local top = '+inf'
if mode == 'le' then top = cursor elseif mode ~= 'first' then top = '(' .. cursor end
local offset = 0
while true do
  local page = redis.call('ZRANGE', key, top, '-inf', 'BYSCORE', 'REV', 'LIMIT', offset, CHUNK,
    'WITHSCORES')
  for j = 1, #page, 2 do
    if keep(page[j], page[j + 1]) then return out end
  end
  if #page < 2 * CHUNK then return out end
  offset = offset + CHUNK
end
