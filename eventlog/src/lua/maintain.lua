-- Trims one event stream below what every consumer group still needs, and measures one
-- group's lag. One script, so no group can appear or move between measuring and
-- trimming.
--
-- KEYS[1]  the event stream
-- ARGV[1]  the measured group
-- ARGV[2]  '1' to trim, '0' to only measure
-- Returns {length, pending, undelivered, oldest_ms, now_ms, trimmed}: `pending` and
-- `undelivered` are that group's, `oldest_ms` is the id time of the oldest entry it has
-- not archived (-1 when none), `now_ms` is Redis TIME.
local stream, group, trim = KEYS[1], ARGV[1], ARGV[2] == '1'
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', stream) == 0 then
  return {0, 0, 0, -1, now_ms, 0}
end

local function field(list, name)
  for i = 1, #list, 2 do
    if list[i] == name then return list[i + 1] end
  end
end
-- Ids as {ms, seq} numbers for comparing; ms has 13 digits, well inside a double.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(seq)}
end
local function less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

-- The safe trim point is the minimum over groups of what each still needs: its oldest pending
-- entry, or, with nothing pending, the entry right after its last-delivered id.
local safe = nil
local pending, undelivered, oldest = 0, 0, -1
for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local name = field(info, 'name')
  local npending = field(info, 'pending')
  local last_text = field(info, 'last-delivered-id')
  local last = parse(last_text)
  local need
  if npending > 0 then
    need = parse(redis.call('XPENDING', stream, name)[2])
  else
    need = {last[1], last[2] + 1}
  end
  if safe == nil or less(need, safe) then safe = need end
  if name == group then
    pending = npending
    local first = redis.call('XRANGE', stream, '(' .. last_text, '+', 'COUNT', 1)
    local lag = field(info, 'lag')
    if type(lag) == 'number' then
      undelivered = lag
    elseif #first > 0 then
      -- Redis cannot tell the lag (e.g. after XDEL): the stream length is an upper bound.
      undelivered = redis.call('XLEN', stream)
    end
    if npending > 0 then
      oldest = need[1]
    elseif #first > 0 then
      oldest = parse(first[1][1])[1]
    end
  end
end

local trimmed = 0
if trim and safe ~= nil then
  trimmed = redis.call('XTRIM', stream, 'MINID', string.format('%d-%d', safe[1], safe[2]))
end
return {redis.call('XLEN', stream), pending, undelivered, oldest, now_ms, trimmed}
