-- smsgate's decision: check every rolling window of every rule for a request and record it
-- as an event, atomically, for each request of a batch in turn. Redis TIME is the only clock.
--
-- The policy is part of the script, not of its arguments: Rust writes RULES (per rule: enforced
-- or shadow, windows {name as events show it, limit, d µs}, the longest d, the quota's TTL in ms
-- as text) and BODY_TTL_MS above this text, so a policy is its own script (SHA) and a decision
-- parses no rule.
--
-- One call decides one request (KEYS and ARGV as below) or a batch (gateways send the requests
-- that arrived while their previous calls were under way, so one round trip carries many):
-- then ARGV[1] is how many requests, and per request come the number of its keys and its
-- ARGUMENTS arguments; KEYS holds each request's keys in turn. The whole batch is one atomic
-- step, each request decided as if it came alone. Per request:
--
-- KEYS[1]      the event stream of the request's partition
-- KEYS[2..n+1] one quota per rule: a sorted set of the requests the rule counted
--              (member = event id, score = µs); absent when the request is blocked
-- next         the Idempotency-Key record, when ARGV[5] is not empty
-- KEYS[#KEYS]  (always last) where an accepted body waits for the dispatcher
-- ARGV[1]  the pending event: the entries of a MessagePack map without the map's header
--          (ARGV[8] of them). The script appends the decision's entries and writes the
--          header, so it never decodes or re-encodes what ingest wrote
-- ARGV[2]  the event id (the quota member if accepted)
-- ARGV[3]  '' to decide, else the reason a blocked request is recorded with (no quota is read
--          or written)
-- ARGV[4]  '1' when the client is allow-listed: no rule refuses it
-- ARGV[5]  the request's fingerprint under an Idempotency-Key, or ''
-- ARGV[6]  the map entries `message` and `stored` as a refused request keeps them (never more
--          than a redacted preview), MessagePack
-- ARGV[7]  the full body when the event does not carry it ('' when it does, or when blocked)
-- ARGV[8]  how many map entries ARGV[1] holds
-- ARGV[9]  the same entries as an accepted request keeps them
-- ARGV[10] one letter per rule: 'y' when the rule applies, 'n' when the request lacks a
--          dimension of the rule's key (its quota is neither read nor counted)
--
-- Returns the request's reply, or for a batch one reply per request, in order:
--         {outcome (1 accepted, 0 rejected, 2 blocked, -1 key reused with another body),
--          now µs, retry_after s, stream id, replayed (0|1), event id, blocked reason or '',
--          then per rule and window: remaining, reset_after s, retry_after s (0 unless violated;
--          negated for a shadow rule's window that would have refused)}.
-- A repeat under a known Idempotency-Key returns the first reply (replayed = 1) and records
-- nothing.

local ARGUMENTS = 10

-- Up to this many members a quota is read whole; beyond, counted per window (ZCOUNT).
local SMALL_QUOTA = 8

local function seconds_up(micros)
  return math.ceil(micros / 1000000)
end

-- The i-th score (from 0) of `quota` in the window after `lower` (an exclusive ZRANGE bound).
local function score_at(quota, lower, i)
  local hit = redis.call('ZRANGE', quota, lower, '+inf', 'BYSCORE', 'LIMIT', i, 1, 'WITHSCORES')
  return tonumber(hit[2])
end

-- One request's decision. Its keys are KEYS[k + 1 .. last] and its arguments ARGV[a + 1 ..
-- a + ARGUMENTS]: KEYS[k + n] and ARGV[a + n] are its KEYS[n] and ARGV[n] above.
local function decide(k, last, a)
  local stream = KEYS[k + 1]
  local rules = #RULES
  local blocked = ARGV[a + 3] ~= ''
  local fingerprint = ARGV[a + 5]
  local idem = nil
  if fingerprint ~= '' then
    idem = KEYS[k + (blocked and 2 or rules + 2)]
    local first = first_answer(idem, fingerprint)
    if first then return first end
  end

  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local allowed = ARGV[a + 4] == '1'
  local applies = ARGV[a + 10]
  local violated, shadow = {}, {}
  local retry_us = 0
  local outcome
  if blocked then
    outcome = 2
  else
    for r = 1, rules do
      local rule, quota = RULES[r], KEYS[k + r + 1]
      rule.skip = string.byte(applies, r) == 110 -- 'n'
      rule.enforced = rule.enforce and not allowed
      -- A rule that does not apply sees an empty quota and counts nothing.
      rule.room = not rule.skip
      -- Scores travel as decimal text both ways (Redis prints each with printf, Lua parses): a
      -- small quota is read whole, a large one counted per window, reading only the scores a
      -- reply needs, so its size is asked first (an integer) and an empty one is not read. Only
      -- an accepted request trims a quota (below), so members older than the longest window may
      -- still be here; no window counts them.
      local times, small = {}, true
      if not rule.skip then
        local size = redis.call('ZCARD', quota)
        small = size <= SMALL_QUOTA
        if small and size > 0 then
          local whole = redis.call('ZRANGE', quota, 0, -1, 'WITHSCORES')
          for j = 2, #whole, 2 do
            times[j / 2] = tonumber(whole[j])
          end
        end
      end
      -- Whether counting must trim: a quota read whole trims only when its oldest member is past
      -- the longest window (an empty one, a new client's, never).
      rule.stale = not small or (times[1] ~= nil and times[1] <= now - rule.longest)
      for w = 1, #rule.windows do
        local win = rule.windows[w]
        local count, oldest, lower, k
        if small then
          -- A request at t counts in a window of length d while t > now - d.
          k = #times + 1
          for j = 1, #times do
            if times[j] > now - win.d then k = j break end
          end
          count, oldest = #times - k + 1, times[k]
        else
          lower = '(' .. string.format('%d', now - win.d)
          count = redis.call('ZCOUNT', quota, lower, '+inf')
          if count > 0 then oldest = score_at(quota, lower, 0) end
        end
        win.count, win.oldest, win.retry = count, oldest, 0
        if count >= win.limit then
          rule.room = false
          -- The (count - limit + 1)-th oldest request in the window must leave before one more
          -- fits.
          local leaving
          if small then leaving = times[k + count - win.limit]
          else leaving = score_at(quota, lower, count - win.limit) end
          local wait = leaving + win.d - now
          if rule.enforced then
            win.retry = seconds_up(wait)
            retry_us = math.max(retry_us, wait)
            violated[#violated + 1] = win.name
          else
            -- A shadow window reports its would-be wait negated: it refuses nothing.
            win.retry = -seconds_up(wait)
            shadow[#shadow + 1] = win.name
          end
        end
      end
    end
    outcome = (#violated == 0) and 1 or 0
  end

  local retry_after = 0
  if outcome == 1 then
    -- Every rule with room counts the request, shadow rules too: they count as if enforced.
    local score = string.format('%d', now)
    for r = 1, rules do
      local rule, quota = RULES[r], KEYS[k + r + 1]
      if rule.room then
        if rule.stale then
          redis.call('ZREMRANGEBYSCORE', quota, '-inf', string.format('%d', now - rule.longest))
        end
        redis.call('ZADD', quota, score, ARGV[a + 2])
        redis.call('PEXPIRE', quota, rule.expire_ms)
      end
    end
    -- The body the dispatcher needs travels apart from the event, in the same slot, and only
    -- for a request that will be delivered.
    if ARGV[a + 7] ~= '' then
      redis.call('SET', KEYS[last], ARGV[a + 7], 'PX', BODY_TTL_MS)
    end
  elseif outcome == 0 then
    retry_after = seconds_up(retry_us)
  end
  -- The event: ingest's entries, the decision's, and the body in the form the outcome keeps
  -- (entries ingest encoded). An accepted request's decision entries are constant but at_us.
  local entries, shadowed = tonumber(ARGV[a + 8]) + 6, ''
  if #shadow > 0 then
    shadowed = cmsgpack.pack('shadow_violated', shadow)
    entries = entries + 1
  end
  local decided, kept
  if outcome == 1 then
    decided, kept = '\167outcome\168accepted\168violated\144\171retry_after\0', ARGV[a + 9]
  else
    decided = cmsgpack.pack('outcome', (outcome == 0) and 'rejected' or 'blocked',
      'violated', violated, 'retry_after', retry_after)
    kept = ARGV[a + 6]
  end
  local event = map_header(entries) .. ARGV[a + 1] .. cmsgpack.pack('at_us', now) .. decided
    .. kept .. shadowed
  local id = redis.call('XADD', stream, '*', 'e', event)

  local reply, n = {outcome, now, retry_after, id, 0, ARGV[a + 2], ARGV[a + 3]}, 7
  if outcome ~= 2 then
    for r = 1, rules do
      local rule = RULES[r]
      local counted = outcome == 1 and rule.room
      for w = 1, #rule.windows do
        local win = rule.windows[w]
        local used, oldest = win.count, win.oldest
        if counted then
          used = used + 1
          oldest = oldest or now
        end
        local reset_after = 0
        if oldest then reset_after = seconds_up(oldest + win.d - now) end
        reply[n + 1], reply[n + 2], reply[n + 3] = math.max(win.limit - used, 0), reset_after,
          win.retry
        n = n + 3
      end
    end
  end
  if idem then
    redis.call('SET', idem, cmsgpack.pack({fingerprint, reply}), 'PX', 86400000)
  end
  return reply
end

-- A call of one request answers its reply itself: a batch's wrapping, count and pcall would
-- cost it a tenth more (a failing decision fails the call, which holds nothing else).
if #ARGV == ARGUMENTS then return decide(0, #KEYS, 0) end

-- The batch: each request in turn, at its offsets in KEYS and ARGV. A request whose decision
-- fails (a key of the wrong type, say) answers {-2, the error}; the others are decided all
-- the same.
local replies, key_at, arg_at = {}, 0, 1
for i = 1, tonumber(ARGV[1]) do
  local last = key_at + tonumber(ARGV[arg_at + 1])
  local decided, reply = pcall(decide, key_at, last, arg_at + 1)
  if not decided then
    reply = {-2, type(reply) == 'table' and tostring(reply.err) or tostring(reply)}
  end
  replies[i] = reply
  key_at, arg_at = last, arg_at + 1 + ARGUMENTS
end
return replies
