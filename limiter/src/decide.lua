-- smsgate's decision: check every rolling window of every rule for a request and record it
-- as an event, atomically, for each request of a batch in turn. Redis TIME is the only clock.
--
-- The policy is part of the script, not of its arguments: Rust writes RULES above this text,
-- so a policy is its own script (SHA) and a decision parses no rule. A script keeps nothing
-- between calls, so each call builds RULES anew and every closure, upvalue and table the script
-- makes: RULES is one flat array (a table per rule and window cost the seed's call 10,000
-- instructions where this costs 2,000) and the decision uses no helper it could inline.
-- RULES[1] is the number of rules, RULES[2] how long an accepted body waits for the dispatcher
-- (ms, text), RULES[3] the struct format of the reply's windows, RULES[4] where its scratch
-- slots begin; then per rule: enforced (true) or shadow (false), its longest window µs, its
-- quota's TTL ms as text, its number of windows, then per window: limit, length µs, its name as
-- events show it, and that name as a MessagePack string; last, three scratch slots per window
-- (a table of their own would cost every call its allocation and growth).
--
-- One call decides one request (KEYS and ARGV as below) or a batch (gateways send the requests
-- that arrived while their previous calls were under way, so one round trip carries many):
-- then ARGV[1] is how many requests, and per request come the number of its keys and its
-- ARGUMENTS arguments; KEYS holds each request's keys in turn. The whole batch is one atomic
-- step, each request decided as if it came alone. Per request:
--
-- KEYS[1]      the event stream of the request's partition
-- KEYS[2..n+1] one quota per rule: a sorted set of the requests the rule counted (score =
--              µs; member: the byte 255, the µs as a big-endian double, the event id); absent
--              when the request is blocked
-- next         the Idempotency-Key record, when the request has a fingerprint
-- KEYS[#KEYS]  (always last) where an accepted body waits for the dispatcher
-- Each argument costs a call about 1,700 instructions in Redis (parsed, then pushed into
-- ARGV), so the small ones travel together:
-- ARGV[1]  the pending event: the entries of a MessagePack map without the map's header. The
--          script appends the decision's entries and writes the header, so it never decodes or
--          re-encodes what ingest wrote
-- ARGV[2]  the event id (in the quota member if accepted)
-- ARGV[3]  one letter per rule: 'y' when the rule applies, 'n' when the request lacks a
--          dimension of the rule's key (its quota is neither read nor counted); then 'a' when
--          the client is allow-listed (no rule refuses it), else '-'; then one byte: how many
--          map entries ARGV[1] holds
-- ARGV[4]  the map entries `message` and `stored` as a refused request keeps them (never more
--          than a redacted preview), MessagePack
-- ARGV[5]  the same entries as an accepted request keeps them
-- ARGV[6]  the full body when the event does not carry it ('' when it does, or when blocked)
-- ARGV[7]  '' for a request neither blocked nor under an Idempotency-Key; else the reason it
--          is blocked ('' when it is decided; a blocked request reads and writes no quota), a
--          newline, and its fingerprint under its Idempotency-Key ('' without one)
--
-- Returns the request's reply, or for a batch one reply per request, in order: one string,
-- where a table costs Redis several hundred instructions per element to reply:
--   a byte, 1 when replayed (else 0); then as big-endian i64: outcome (1 accepted, 0 rejected,
--   2 blocked), now µs, retry_after s, and unless blocked, per rule and window: remaining,
--   reset_after s, retry_after s (0 unless violated; negated for a shadow rule's window that
--   would have refused); then the stream id, a newline, the event id, a newline, and the
--   blocked reason or ''.
-- A key reused with another body answers {-1}.
-- A repeat under a known Idempotency-Key returns the first reply (replayed = 1) and records
-- nothing.

local ARGUMENTS = 7

-- When `member` of `quota` was counted, µs. A member begins with the byte 255 and that time as
-- a big-endian double, then the event id, so reading a quota needs no scores (Redis 7.0 prints
-- each with '%.17g' and Lua parses it back: that was the dearest step of a rejection). A member
-- written before members were timed (or by the cluster's reserve.lua) is a bare event id, text,
-- which never begins with that byte: it asks its score.
local function time_of(quota, member)
  local tag, time = struct.unpack('>Bd', member)
  if tag == 255 then return time end
  return tonumber(redis.call('ZSCORE', quota, member))
end

-- One request's decision. Its keys are KEYS[k + 1 .. last] and its arguments ARGV[a + 1 ..
-- a + ARGUMENTS]: KEYS[k + n] and ARGV[a + n] are its KEYS[n] and ARGV[n] above.
local function decide(k, last, a)
  local rules = RULES[1]
  local reason, fingerprint = ARGV[a + 7], ''
  if reason ~= '' then
    local cut = string.find(reason, '\n', 1, true)
    reason, fingerprint = string.sub(reason, 1, cut - 1), string.sub(reason, cut + 1)
  end
  local blocked = reason ~= ''
  local idem = nil
  if fingerprint ~= '' then
    idem = KEYS[k + (blocked and 2 or rules + 2)]
    local first = first_answer(idem, fingerprint)
    if first then return first end
  end

  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  -- Per window three slots (RULES' last): while deciding, its count, the time of its oldest
  -- counted request (false when none) and its retry_after; then what the reply says of it.
  local slots, n = RULES, RULES[4] - 1
  local flags = ARGV[a + 3]
  local allowed = string.byte(flags, rules + 1) == 97 -- 'a'
  -- The rules with room for the request, and those whose quota counting it must trim first:
  -- rule r is the bit 2^(r - 1) (numbers, where a table would cost the call an allocation).
  local rooms, stales = 0, 0
  -- The violated windows' names as MessagePack strings, one after the other, and how many.
  local violated, violations = '', 0
  -- The same of the shadow windows that would have refused.
  local shadow, shadows = '', 0
  local retry_us = 0
  local outcome = 2
  if not blocked then
    local at = 5
    for r = 1, rules do
      local quota = KEYS[k + r + 1]
      local enforced = RULES[at] and not allowed
      -- A rule that does not apply sees an empty quota and counts nothing.
      local skip = string.byte(flags, r) == 110 -- 'n'
      local room = not skip
      -- A small quota (up to 8 members) is read whole, in one call that reads up to 9: a ninth
      -- means a large quota, counted per window (ZCOUNT) and read only where a reply needs a
      -- time. Only an accepted request trims a quota (below), so members older than the
      -- longest window may still be here; no window counts them. Every number the script
      -- passes to Redis is text: Redis would print a Lua number with '%.17g'.
      local times, small = nil, true
      if not skip then
        times = redis.call('ZRANGE', quota, '0', '8')
        small = #times <= 8
        if small then
          -- time_of, inlined: this loop runs for every member of every quota read whole.
          for j = 1, #times do
            local tag, time = struct.unpack('>Bd', times[j])
            if tag ~= 255 then time = tonumber(redis.call('ZSCORE', quota, times[j])) end
            times[j] = time
          end
        end
      end
      -- Whether counting must trim: a quota read whole trims only when its oldest member is past
      -- the longest window (an empty one, a new client's, never).
      local stale = not small
        or (times ~= nil and times[1] ~= nil and times[1] <= now - RULES[at + 1])
      local windows = RULES[at + 3]
      at = at + 4
      for _ = 1, windows do
        local limit, d = RULES[at], RULES[at + 1]
        local count, oldest, retry, lower, first, head = 0, false, 0, nil, nil, nil
        if skip then
          count = 0
        elseif small then
          -- A request at t counts in a window of length d while t > now - d.
          first = #times + 1
          for j = 1, #times do
            if times[j] > now - d then first = j break end
          end
          count, oldest = #times - first + 1, times[first] or false
        else
          lower = string.format('(%d', now - d)
          count = redis.call('ZCOUNT', quota, lower, '+inf')
          if count > 0 then
            -- The oldest in the window, and when full the one that must leave (below): one
            -- read of the oldest up to it, unless a policy lowered since left many more.
            local upto = count - limit + 1
            if upto < 1 or upto > 16 then upto = 1 end
            head = redis.call('ZRANGE', quota, lower, '+inf', 'BYSCORE', 'LIMIT', '0',
              string.format('%d', upto))
            oldest = time_of(quota, head[1])
          end
        end
        if count >= limit then
          room = false
          -- The (count - limit + 1)-th oldest request in the window must leave before one more
          -- fits.
          local leaving
          if small then leaving = times[first + count - limit]
          elseif #head == count - limit + 1 then leaving = time_of(quota, head[#head])
          else
            leaving = time_of(quota, redis.call('ZRANGE', quota, lower, '+inf', 'BYSCORE',
              'LIMIT', string.format('%d', count - limit), '1')[1])
          end
          local wait = leaving + d - now
          if enforced then
            retry = math.ceil(wait / 1000000)
            if wait > retry_us then retry_us = wait end
            violated, violations = violated .. RULES[at + 3], violations + 1
          else
            -- A shadow window reports its would-be wait negated: it refuses nothing.
            retry = -math.ceil(wait / 1000000)
            shadow, shadows = shadow .. RULES[at + 3], shadows + 1
          end
        end
        slots[n + 1], slots[n + 2], slots[n + 3] = count, oldest, retry
        n, at = n + 3, at + 4
      end
      if room then
        rooms = rooms + 2 ^ (r - 1)
        if stale then stales = stales + 2 ^ (r - 1) end
      end
    end
    outcome = (violations == 0) and 1 or 0
  end

  local retry_after = 0
  if outcome == 1 then
    -- Every rule with room counts the request, shadow rules too: they count as if enforced.
    local score = string.format('%d', now)
    local member = struct.pack('>Bd', 255, now) .. ARGV[a + 2]
    local at = 5
    for r = 1, rules do
      local bit, quota = 2 ^ (r - 1), KEYS[k + r + 1]
      if rooms % (2 * bit) >= bit then
        if stales % (2 * bit) >= bit then
          redis.call('ZREMRANGEBYSCORE', quota, '-inf', string.format('%d', now - RULES[at + 1]))
        end
        redis.call('ZADD', quota, score, member)
        redis.call('PEXPIRE', quota, RULES[at + 2])
      end
      at = at + 4 + 4 * RULES[at + 3]
    end
    -- The body the dispatcher needs travels apart from the event, in the same slot, and only
    -- for a request that will be delivered.
    if ARGV[a + 6] ~= '' then
      redis.call('SET', KEYS[last], ARGV[a + 6], 'PX', RULES[2])
    end
  elseif outcome == 0 then
    retry_after = math.ceil(retry_us / 1000000)
  end
  -- The event: ingest's entries, the decision's, and the body in the form the outcome keeps
  -- (entries ingest encoded). The decision's entries are written here as cmsgpack would write
  -- them (at_us a uint64), at a fraction of its cost; window names come encoded in RULES.
  local entries, shadowed = string.byte(flags, rules + 2) + 6, ''
  if shadows > 0 then
    shadowed = '\175shadow_violated' .. (shadows < 16 and string.char(0x90 + shadows)
      or struct.pack('>BI2', 0xdc, shadows)) .. shadow
    entries = entries + 1
  end
  local decided, kept
  if outcome == 1 then
    decided, kept = '\167outcome\168accepted\168violated\144\171retry_after\0', ARGV[a + 5]
  else
    -- MessagePack: fixarray up to 15 names (else array16); Retry-After a fixint, else uint32.
    local names = violations < 16 and string.char(0x90 + violations)
      or struct.pack('>BI2', 0xdc, violations)
    local retry = retry_after < 128 and string.char(retry_after)
      or struct.pack('>BI4', 0xce, retry_after)
    decided = ((outcome == 0) and '\167outcome\168rejected\168violated'
      or '\167outcome\167blocked\168violated') .. names .. violated .. '\171retry_after' .. retry
    kept = ARGV[a + 4]
  end
  -- The map's header: fixmap up to 15 entries, else map16.
  local header = entries < 16 and string.char(0x80 + entries)
    or struct.pack('>BI2', 0xde, entries)
  local event = header .. ARGV[a + 1] .. '\165at_us'
    .. struct.pack('>BI8', 0xcf, now) .. decided .. kept .. shadowed
  local stream_id = redis.call('XADD', KEYS[k + 1], '*', 'e', event)

  local windows = ''
  if outcome ~= 2 then
    n = RULES[4] - 1
    local at = 5
    for r = 1, rules do
      local bit = 2 ^ (r - 1)
      local counted = outcome == 1 and rooms % (2 * bit) >= bit
      local count = RULES[at + 3]
      at = at + 4
      for _ = 1, count do
        local limit, d = RULES[at], RULES[at + 1]
        local used, oldest = slots[n + 1], slots[n + 2]
        if counted then
          used = used + 1
          oldest = oldest or now
        end
        local reset_after = 0
        if oldest then reset_after = math.ceil((oldest + d - now) / 1000000) end
        local remaining = limit - used
        if remaining < 0 then remaining = 0 end
        slots[n + 1], slots[n + 2] = remaining, reset_after
        n, at = n + 3, at + 4
      end
    end
    windows = struct.pack(RULES[3], unpack(slots, RULES[4], n))
  end
  local reply = struct.pack('>Bi8i8i8', 0, outcome, now, retry_after) .. windows .. stream_id
    .. '\n' .. ARGV[a + 2] .. '\n' .. reason
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
