-- Step 1 of a stitch, in the replaced profile's slot: freeze it into its survivor.
--
-- KEYS[1]  the replaced profile's hash   KEYS[2]  the alias key of its own id
-- KEYS[3]  the partition's pending-stitches sorted set
-- ARGV[1]  survivor id   ARGV[2]  new version token   ARGV[3]  alias TTL in ms
-- ARGV[4]  now in ms (score)   ARGV[5]  the stitch record (pending member, JSON)
--
-- Freezing sets field f (the survivor) and a new version token, so that every in-flight
-- compare-and-set of the replaced profile fails, and its own id's alias, so that the retry
-- (and every later event) goes to the survivor. Field p keeps the stitch record, so that
-- whoever routes an event past the frozen profile can finish the stitch. The first freeze
-- wins: a profile already frozen into another survivor keeps it (everyone then merges
-- into that one).
--
-- Returns {'ok'}, {'frozen', <its survivor>} or {'gone'} (no such profile).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'gone'}
end
local into = redis.call('HGET', KEYS[1], 'f')
if into and into ~= ARGV[1] then
  return {'frozen', into}
end
redis.call('HSET', KEYS[1], 'f', ARGV[1], 'v', ARGV[2], 'p', ARGV[5])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
return {'ok'}
