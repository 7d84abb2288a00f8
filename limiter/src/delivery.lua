-- smsgate's delivery record: one message's state, its history and its status events, changed
-- atomically so GET /api/sms/{id}, the stream and the client's callbacks never disagree.
-- Every key shares the message's partition hash tag.
--
-- KEYS[1]  the event stream of the partition
-- KEYS[2]  the message's state (hash)
-- KEYS[3]  the message's history (list of JSON {status, at, detail})
-- KEYS[4]  the partition's delivery schedule (sorted set: message id, score = due ms)
-- KEYS[5]  the partition's pending client callbacks (hash: callback id -> "first ms\nurl\nbody")
-- KEYS[6]  the partition's client callback schedule (sorted set: callback id, score = due ms)
-- KEYS[7]  where the message's body waited for admission (limiter's decide.lua wrote it)
-- ARGV[1]  the operation: admit | change | claim | callback_claim | callback_done | callback_retry
--
-- admit   ARGV: id, to, from, body, callback, provider, queued_at_us, deadline_us, history json,
--               due ms, keep s, segments, api client ('' for none)
--         Creates the state as `queued` unless it exists, and drops KEYS[7] either way: the
--         body now lives in the state (until sent or final) or was handed over before.
--         Returns 1 when created, 0 when not.
-- change  ARGV: status event (MessagePack), status, attempt, provider, provider_id, history json,
--               due (`` keep, `-` unschedule, else ms), keep s, callback id, callback json, now ms;
--               then as many more such groups of 11, applied in order
--         Returns how many were recorded: one is not when the message is unknown or already
--         final, or when its status repeats one that cannot repeat (only `sending` repeats:
--         one per attempt).
-- claim   ARGV: now ms, lease ms, limit — due message ids, each pushed `lease` ms ahead.
-- callback_claim  ARGV: now ms, lease ms, limit — {id, value, id, value, …}.
-- callback_done   ARGV: callback id.
-- callback_retry  ARGV: callback id, due ms.
-- unschedule      ARGV: message id (its state is gone: nothing left to deliver).

local op = ARGV[1]
local final = {delivered = true, undelivered = true, failed = true, expired = true}

local function claim(schedule, now, lease, limit)
  local ids = redis.call('ZRANGEBYSCORE', schedule, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZADD', schedule, now + lease, id)
  end
  return ids
end

-- One status change whose 11 arguments start at ARGV[a] (see `change` above); 1 if recorded.
local function change(a)
  local stream, state, history, schedule = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
  local status = ARGV[a + 1]
  local current = redis.call('HGET', state, 'status')
  if not current or final[current] then return 0 end
  if current == status and status ~= 'sending' then return 0 end
  local id = redis.call('HGET', state, 'id')
  redis.call('HSET', state, 'status', status)
  if tonumber(ARGV[a + 2]) > 0 then redis.call('HSET', state, 'attempts', ARGV[a + 2]) end
  if ARGV[a + 3] ~= '' then redis.call('HSET', state, 'provider', ARGV[a + 3]) end
  if ARGV[a + 4] ~= '' then redis.call('HSET', state, 'provider_id', ARGV[a + 4]) end
  redis.call('RPUSH', history, ARGV[a + 5])
  redis.call('XADD', stream, '*', 'e', ARGV[a])
  if ARGV[a + 6] == '-' then
    redis.call('ZREM', schedule, id)
  elseif ARGV[a + 6] ~= '' then
    redis.call('ZADD', schedule, ARGV[a + 6], id)
  end
  if final[status] or status == 'sent' then
    -- The body was kept only to hand it over; what the archive keeps is the policy's business.
    redis.call('HDEL', state, 'body')
    redis.call('ZREM', schedule, id)
    redis.call('EXPIRE', state, ARGV[a + 7])
    redis.call('EXPIRE', history, ARGV[a + 7])
  end
  local url = redis.call('HGET', state, 'callback')
  if url and url ~= '' then
    redis.call('HSET', KEYS[5], ARGV[a + 8], ARGV[a + 10] .. '\n' .. url .. '\n' .. ARGV[a + 9])
    redis.call('ZADD', KEYS[6], ARGV[a + 10], ARGV[a + 8])
  end
  return 1
end

if op == 'admit' then
  local state, history, schedule = KEYS[2], KEYS[3], KEYS[4]
  redis.call('DEL', KEYS[7])
  if redis.call('EXISTS', state) == 1 then return 0 end
  redis.call('HSET', state, 'id', ARGV[2], 'to', ARGV[3], 'from', ARGV[4], 'body', ARGV[5],
    'callback', ARGV[6], 'provider', ARGV[7], 'queued_at_us', ARGV[8], 'deadline_us', ARGV[9],
    'status', 'queued', 'attempts', 0, 'provider_id', '', 'segments', ARGV[13] or '0',
    'api_client', ARGV[14] or '')
  redis.call('RPUSH', history, ARGV[10])
  redis.call('ZADD', schedule, ARGV[11], ARGV[2])
  redis.call('EXPIRE', state, ARGV[12])
  redis.call('EXPIRE', history, ARGV[12])
  return 1
elseif op == 'change' then
  -- One change, or several in a row applied at once (sent and delivered of a provider that
  -- delivers on acceptance: a crash between the two would leave the message `sent` forever).
  local recorded = 0
  for a = 2, #ARGV, 11 do
    recorded = recorded + change(a)
  end
  return recorded
elseif op == 'claim' then
  return claim(KEYS[4], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
elseif op == 'callback_claim' then
  local ids = claim(KEYS[6], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
  local out = {}
  for _, id in ipairs(ids) do
    local value = redis.call('HGET', KEYS[5], id)
    if value then
      out[#out + 1] = id
      out[#out + 1] = value
    else
      redis.call('ZREM', KEYS[6], id)
    end
  end
  return out
elseif op == 'callback_done' then
  redis.call('HDEL', KEYS[5], ARGV[2])
  redis.call('ZREM', KEYS[6], ARGV[2])
  return 1
elseif op == 'unschedule' then
  redis.call('ZREM', KEYS[4], ARGV[2])
  return 1
elseif op == 'callback_retry' then
  redis.call('ZADD', KEYS[6], ARGV[3], ARGV[2])
  return 1
end
return redis.error_reply('unknown delivery operation ' .. tostring(op))
