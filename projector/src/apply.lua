-- smsgate projector: apply a batch of one partition's stream entries to the projections and
-- acknowledge them, in one atomic step. An entry counts only if this call is the one that
-- removes it from the group's pending list (XACK answers 1), so an entry delivered twice, to one
-- consumer after a crash or to two after a claim, is counted exactly once.
--
-- KEYS[1] stream   KEYS[2] seconds hash   KEYS[3] minutes hash   KEYS[4] days hash
-- KEYS[5] recent   KEYS[6] accepted       KEYS[7] violations
-- KEYS[8..] pairs of per-minute top lists (clients, numbers), referenced by index from entries
-- ARGV[1] consumer group, or '' to apply unconditionally without acknowledging (rebuild)
-- ARGV[2] how many recent events to keep, ARGV[3] how many violations to keep
-- ARGV[4..6] buckets kept by the seconds, minutes and days hashes
-- ARGV[7] minutes a per-minute top list lives after its minute ends
-- ARGV[8] number of entries n, then 9 arguments per entry:
--   stream id, kind ('a' accepted, 'r' rejected, 's' delivery status), second, minute, day,
--   index of the entry's top-list pair in KEYS ('0' unless rejected), client key (the status
--   for 's'), lex member (padded id .. encoded event), destination number
-- A status change is counted in the minutes hash as field `<minute>:<status>`; one that carries
-- the provider call's latency (its histogram bucket in the lex member's place) also in field
-- `<minute>:l<bucket>`.
-- Entries that are not events never get here: the engine (eventlog) dead-letters them.
-- Returns {applied, skipped as already applied}.

-- A script error does not undo the writes made before it, so every key's type is checked
-- first: a batch either applies whole or fails having written nothing (and the engine then
-- retries its entries one by one, dead-lettering the one that keeps failing).
for i, key in ipairs(KEYS) do
  local expected = 'zset'
  if i == 1 then expected = 'stream' elseif i <= 4 then expected = 'hash' end
  local actual = redis.call('TYPE', key)['ok']
  if actual ~= 'none' and actual ~= expected then
    return redis.error_reply('WRONGTYPE ' .. key .. ' is a ' .. actual .. ', not a ' .. expected)
  end
end

local stream = KEYS[1]
local group = ARGV[1]
local recent_cap, violations_cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local spans = {[KEYS[2]] = tonumber(ARGV[4]), [KEYS[3]] = tonumber(ARGV[5]), [KEYS[4]] = tonumber(ARGV[6])}
local top_minutes = tonumber(ARGV[7])
local n = tonumber(ARGV[8])

-- Each hash remembers its newest bucket; when a newer one starts, the buckets that fall out of
-- the span are deleted, so the hashes stay bounded without a sweeper.
local newest = {}
local statuses = {'queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'expired'}
local latency_buckets = 14 -- limiter::delivery::LATENCY_BOUNDS_MS.len() + 1 (a unit test pins it)
local function count(hash, bucket, suffix)
  local span = spans[hash]
  local top = newest[hash]
  if top == nil then
    top = tonumber(redis.call('HGET', hash, 'newest') or '') or false
    newest[hash] = top
  end
  if top == false or bucket > top then
    if top ~= false then
      for b = top - span + 1, math.min(top, bucket - span) do
        local fields = {b .. 'a', b .. 'r'}
        for _, status in ipairs(statuses) do
          fields[#fields + 1] = b .. ':' .. status
        end
        for l = 0, latency_buckets - 1 do
          fields[#fields + 1] = b .. ':l' .. l
        end
        redis.call('HDEL', hash, unpack(fields))
      end
    end
    redis.call('HSET', hash, 'newest', bucket)
    newest[hash] = bucket
    top = bucket
  end
  if bucket > top - span then
    redis.call('HINCRBY', hash, bucket .. suffix, 1)
  end
end

local applied, skipped = 0, 0
for i = 0, n - 1 do
  local at = 9 + 9 * i
  local id, kind = ARGV[at], ARGV[at + 1]
  local fresh = true
  if group ~= '' then
    fresh = redis.call('XACK', stream, group, id) == 1
  end
  if not fresh then
    skipped = skipped + 1
  elseif kind == 's' then
    count(KEYS[3], tonumber(ARGV[at + 3]), ':' .. ARGV[at + 6])
    if ARGV[at + 7] ~= '' then
      count(KEYS[3], tonumber(ARGV[at + 3]), ':l' .. ARGV[at + 7])
    end
    applied = applied + 1
  elseif kind == 'a' or kind == 'r' then
    local minute = tonumber(ARGV[at + 3])
    count(KEYS[2], tonumber(ARGV[at + 2]), kind)
    count(KEYS[3], minute, kind)
    count(KEYS[4], tonumber(ARGV[at + 4]), kind)
    local member = ARGV[at + 7]
    redis.call('ZADD', KEYS[5], 0, member)
    if kind == 'a' then
      redis.call('ZADD', KEYS[6], 0, member)
    else
      redis.call('ZADD', KEYS[7], 0, member)
      local top = tonumber(ARGV[at + 5])
      local expires = (minute + 1 + top_minutes) * 60
      redis.call('ZINCRBY', KEYS[top], 1, ARGV[at + 6])
      redis.call('ZINCRBY', KEYS[top + 1], 1, ARGV[at + 8])
      redis.call('EXPIREAT', KEYS[top], expires)
      redis.call('EXPIREAT', KEYS[top + 1], expires)
    end
    applied = applied + 1
  end
end

if applied > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -(recent_cap + 1))
  redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -(recent_cap + 1))
  redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -(violations_cap + 1))
end
return {applied, skipped}
