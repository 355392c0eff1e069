-- Record a new baseline (and maybe a new backfill job), if no other replica did meanwhile.
--
-- KEYS[1] the backfill job hash
-- ARGV[1] the baseline_version read before ("" = none)
-- ARGV[2..] field, value pairs to set
--
-- Returns 1 when applied, 0 when the record changed meanwhile.

local current = redis.call('HGET', KEYS[1], 'baseline_version')
if current == false then current = '' end
if current ~= ARGV[1] then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
