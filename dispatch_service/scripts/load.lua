-- Read the records of one partition's taken queue entries (a read, nothing is written).
--
-- One call per partition instead of one HMGET per entry: a worker takes up to a thousand
-- entries at once, and every pipelined command costs the client more than the read itself.
--
-- KEYS[i] action records (of one partition)
--
-- Returns, for each key in order, its fields state, action, attempts, accepted_at and
-- retried_at (false, i.e. a nil reply, for a missing one): 5 values per key.

local out = {}
for i = 1, #KEYS do
  local fields = redis.call('HMGET', KEYS[i], 'state', 'action', 'attempts', 'accepted_at',
    'retried_at')
  for j = 1, 5 do out[#out + 1] = fields[j] end
end
return out
