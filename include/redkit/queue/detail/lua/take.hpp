// SPDX-License-Identifier: MIT
// The queue's Lua for a job's run: the worker's take (move: records the outcomes of the jobs it
// ran and leases the next ones, in one round trip), lease renewal, the stalled-job check, and the
// progress an active job reports.
// queue/detail/model.hpp describes the keys and fields they use.
#pragma once

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace queue_lua {

// move: records the outcomes a worker sends, then leases up to `want` jobs. One round trip.
// ARGV[2] token for the leases taken by this call, ARGV[3] lease ms, ARGV[4] want, ARGV[5] '1'
// when the caller popped the marker (a full take sets it again, waking the next idle worker),
// ARGV[6] number of outcomes, then per outcome 11 fields: id, lease, kind ('c' completed, 'k'
// completed, a flow's child: its parent hears, 'f' failed attempt, 'u' failed for good, 'r' rate
// limited downstream: back in line without an attempt, and the queue starts nothing for the
// retry delay), payload (return value JSON, or reason),
// trace entry, retry delay ms (used when attempts remain, or for 'r'), attempts made (this one
// included), keep count and keep age ms of the set it goes to ('' = no limit; the job's
// remove_on_complete / remove_on_fail), processed ms (when the lease was taken), '1' when the job
// has a deduplication key (a completion kept without a retention frees it here; '': no key, no look).
// Returns {codes, jobs, now, next_delay, limited}: codes per outcome (0 lease lost, 1 completed,
// 2 retry delayed, 3 retry now, 4 failed, 5 back in line, rate limited); jobs = {id1, hgetall1,
// id2, hgetall2, ...}, each leased as "<now>|<token>"; next_delay = ms until the earliest
// delayed job, or until the rate limit lets a job start, when nothing was left to take (-1:
// none, or paused); limited = 1 when the rate limit stopped the take short of jobs waiting.
inline constexpr std::string_view move = R"lua(
-- the hot path: now also as its decimal text (sec .. 3 digits of ms), so the times given to
-- redis.call and the lease need no float formatting
local t = redis.call('TIME')
local now_s = t[1] .. string.sub(string.rep('0', 6 - #t[2]) .. t[2], 1, 3)
local now = tonumber(now_s)
local token, lease_ms, want, n = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
local rearm = ARGV[5] == '1'
local codes = {}
local woke = false
local meta = redis.call('HMGET', K_META, 'paused', 'lmax', 'ldur', 'lunt', 'evmax', 'gon')
local evmax = meta[5]
local gon = meta[6]  -- a job with a group was ever added: leases and takes mind the groups
local K_EVENTS
if evmax then K_EVENTS = queue_key('events') end

local function fail(k, id, lease, kind, reason, trace, delay, made, keep_n, keep_age, pt)
  local f = redis.call('HMGET', k, 'att', 'prio', 'tr', 'par')
  local tr = {}
  if f[3] then tr = cjson.decode(f[3]) end
  tr[#tr + 1] = trace
  while #tr > 10 do table.remove(tr, 1) end
  redis.call('HSET', k, 'made', made, 'fr', reason, 'tr', cjson.encode(tr), 'tok', lease, 'pt', pt)
  if kind == 'f' and made < (tonumber(f[1]) or 1) then
    if delay > 0 then
      redis.call('ZADD', K_DELAYED, now + delay, id)
      redis.call('HSET', k, 'st', 'd')
      return 2
    end
    redis.call('HSET', k, 'st', enqueue(id, f[2]))
    woke = true
    return 3
  end
  redis.call('HSET', k, 'st', 'f', 'ft', now)
  if f[4] then flow_done(k, false, reason, now) end
  retain(K_FAILED, id, keep_n, keep_age, now)
  return 4
end

if n > 0 then
  -- end the leases still held: a single one by ZREM alone, several by ZMSCORE then ZREM
  local held = {}
  if n == 1 then
    held[1] = redis.call('ZREM', K_ACTIVE, ARGV[7] .. ':' .. ARGV[8]) == 1
  else
    local m, ending = {}, {}
    for i = 0, n - 1 do m[i + 1] = ARGV[7 + i * 11] .. ':' .. ARGV[8 + i * 11] end
    local scores = redis.call('ZMSCORE', K_ACTIVE, unpack(m))
    for i = 1, n do
      held[i] = scores[i] ~= false
      if held[i] then ending[#ending + 1] = m[i] end
    end
    if #ending > 0 then redis.call('ZREM', K_ACTIVE, unpack(ending)) end
  end
  local kept = {}
  for i = 0, n - 1 do
    local b = 7 + i * 11
    local id, lease, kind = ARGV[b], ARGV[b + 1], ARGV[b + 2]
    local keep_n, keep_age = ARGV[b + 7], ARGV[b + 8]
    local k = JOB .. id
    local code
    if not held[i + 1] then
      -- not (or no longer) ours; a resend after a lost reply finds its own outcome recorded
      local f = redis.call('HMGET', k, 'tok', 'st')
      code = 0
      if f[1] == lease then
        if f[2] == 'c' then code = 1 elseif f[2] == 'd' then code = 2
        elseif (f[2] == 'w' or f[2] == 'p' or f[2] == 'g') and kind == 'r' then code = 5
        elseif f[2] == 'w' or f[2] == 'p' or f[2] == 'g' then code = 3 else code = 4 end
      end
    else
      local pt = ARGV[b + 9]
      if gon then
        local g = redis.call('HGET', k, 'grp')
        if g and group_ended(g, now) then woke = true end
      end
      if kind == 'c' or kind == 'k' then
        redis.call('HSET', k, 'st', 'c', 'made', ARGV[b + 6], 'ft', now_s, 'rv', ARGV[b + 3], 'tok', lease, 'pt', pt)
        if kind == 'k' then flow_done(k, true, ARGV[b + 3], now) end
        if keep_n == '' and keep_age == '' then
          if ARGV[b + 10] == '1' then release_dedup(k, id) end  -- retain() does it otherwise
          kept[#kept + 1] = now_s
          kept[#kept + 1] = id
        else
          retain(K_COMPLETED, id, keep_n, keep_age, now)
        end
        code = 1
      elseif kind == 'r' then
        -- not an attempt: next in line, and no job of the queue starts before now + delay
        local f = redis.call('HMGET', k, 'prio', 'grp')
        local st = 'w'
        if f[2] then
          group_push(f[2], id, true)
          st = 'g'
        elseif (tonumber(f[1]) or 0) > 0 then
          st = enqueue(id, f[1])
        else
          redis.call('RPUSH', K_WAIT, id)
        end
        redis.call('HSET', k, 'st', st, 'tok', lease)
        local hold = now + tonumber(ARGV[b + 5])
        if hold > (tonumber(meta[4]) or 0) then
          redis.call('HSET', K_META, 'lunt', hold)
          meta[4] = hold
        end
        code = 5
      else
        code = fail(k, id, lease, kind, ARGV[b + 3], ARGV[b + 4], tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6]),
                    keep_n, keep_age, pt)
      end
    end
    codes[#codes + 1] = code
    if evmax and code > 0 and code < 5 then
      local ev = 'retried'
      if code == 1 then ev = 'completed' elseif code == 4 then ev = 'failed' end
      redis.call('XADD', K_EVENTS, 'MAXLEN', '~', evmax, '*', 'ev', ev, 'id', id, 'x', ARGV[b + 3])
    end
  end
  if #kept > 0 then redis.call('ZADD', K_COMPLETED, unpack(kept)) end
end

local jobs = {}
local next_delay = -1
if meta[1] then
  redis.call('ZREM', K_MARKER, '0')
  return {codes, jobs, now, next_delay, 0}
end

local full = false
local limited = false
local free_at = nil
local K_LIMIT
if want > 0 then
  -- due delayed jobs join the line first
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now_s, 'LIMIT', '0', '1000')
  if #due > 0 then
    for i = 1, #due do
      local k = JOB .. due[i]
      redis.call('HSET', k, 'st', enqueue(due[i], redis.call('HGET', k, 'prio')))
    end
    redis.call('ZREM', K_DELAYED, unpack(due))
  end
  -- the rate limits: a downstream hold (lunt), and at most lmax starts in any ldur ms
  local cap = want
  local hold, lmax, ldur = tonumber(meta[4]), tonumber(meta[2]), tonumber(meta[3])
  if hold and hold > now then
    cap = 0
    free_at = hold
  elseif lmax then
    K_LIMIT = queue_key('limiter')
    redis.call('ZREMRANGEBYSCORE', K_LIMIT, '-inf', now - ldur)
    cap = math.max(0, math.min(cap, lmax - redis.call('ZCARD', K_LIMIT)))
  end
  local ids = {}
  local from_group = {}  -- id -> its group, for the jobs taken from groups
  if cap > 0 then ids = redis.call('RPOP', K_WAIT, cap) or {} end
  if #ids < cap then
    local p = redis.call('ZPOPMIN', K_PRIO, cap - #ids)
    for i = 1, #p, 2 do ids[#ids + 1] = p[i] end
  end
  if gon and #ids < cap then
    -- then the groups, one job per turn: the group at the head of the rotation gives its next
    -- job and goes to the back, or out while it may not start another (group_settle)
    local m = group_settings()
    if m[2] then
      local held = redis.call('ZRANGEBYSCORE', queue_key('gheld'), '-inf', now_s)
      for i = 1, #held do
        redis.call('ZREM', queue_key('gheld'), held[i])
        group_settle(held[i], now)
      end
    end
    local rot = queue_key('groups')
    local gact = queue_key('gactive')
    local turn = nil  -- the rotation's turn counter, kept here while this loop hands out turns
    local taken = 0
    while #ids < cap do
      local top = redis.call('ZPOPMIN', rot)
      if #top == 0 then break end
      local g = top[1]
      local line = group_list(g)
      local id = redis.call('RPOP', line)
      local back = false
      if id then
        ids[#ids + 1] = id
        from_group[id] = g
        taken = taken + 1
        local act = redis.call('HINCRBY', gact, g, 1)
        local limit = group_limit(g)
        -- the common case, a group free to go on without a rate limit: straight to the back
        back = not m[2] and (not limit or act < limit) and redis.call('LLEN', line) > 0
        if m[2] then
          -- the group's starts within its window; the key goes once the window passed
          local lk = group_limiter(g)
          redis.call('ZADD', lk, now_s, token .. ':' .. #ids)
          redis.call('PEXPIRE', lk, m[3])
        end
      end
      if back then
        turn = (turn or tonumber(redis.call('HGET', K_META, 'gturn')) or 0) + 1
        redis.call('ZADD', rot, turn, g)
      else
        if turn then redis.call('HSET', K_META, 'gturn', turn) end
        turn = nil
        group_settle(g, now)
      end
    end
    if turn then redis.call('HSET', K_META, 'gturn', turn) end
    if taken > 0 then redis.call('HINCRBY', K_META, 'gw', -taken) end
  end
  full = #ids == want
  if lmax and #ids > 0 then
    local starts = {}
    for i = 1, #ids do
      starts[#starts + 1] = now_s
      starts[#starts + 1] = token .. ':' .. i
    end
    redis.call('ZADD', K_LIMIT, unpack(starts))
  end
  if cap < want and (redis.call('LLEN', K_WAIT) > 0 or redis.call('ZCARD', K_PRIO) > 0 or
                     (gon and redis.call('ZCARD', queue_key('groups')) > 0)) then
    limited = true
    if not free_at then
      local oldest = redis.call('ZRANGE', K_LIMIT, 0, 0, 'WITHSCORES')
      free_at = now + 1
      if oldest[2] then free_at = tonumber(oldest[2]) + ldur end
    end
  end
  local deadline = tostring(now + lease_ms)  -- exact: below 10^14, formatted once for all jobs
  local lease = ':' .. now_s .. '|' .. token
  local z = {}
  for i = 1, #ids do
    local id = ids[i]
    local h = redis.call('HGETALL', JOB .. id)
    if #h > 0 then
      jobs[#jobs + 1] = id
      jobs[#jobs + 1] = h
      z[#z + 1] = deadline
      z[#z + 1] = id .. lease
    elseif from_group[id] and group_ended(from_group[id], now) then
      woke = true  -- its hash was deleted behind the queue's back: no lease, and its group goes on
    end
  end
  if #z > 0 then redis.call('ZADD', K_ACTIVE, unpack(z)) end
  if evmax then
    for i = 1, #jobs, 2 do
      redis.call('XADD', K_EVENTS, 'MAXLEN', '~', evmax, '*', 'ev', 'active', 'id', jobs[i], 'x', '')
    end
  end
end

-- the marker: set while jobs may be left. A full take may leave some, so a caller that popped
-- the marker sets it again for the next idle worker (a full take that leaves none costs that
-- worker one look in vain, cheaper than counting every time); a take that was not woken leaves
-- the marker as it is, and one that found the line empty clears it.
-- A take the rate limit cut short clears the marker too: nobody may start a job before
-- free_at, which the caller learns as next_delay (other workers learn it on their next look).
if limited then
  redis.call('ZREM', K_MARKER, '0')
  next_delay = math.max(1, free_at - now)
  local d = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if d[2] then next_delay = math.max(1, math.min(next_delay, tonumber(d[2]) - now)) end
elseif woke or (full and rearm) or (want == 0 and (redis.call('LLEN', K_WAIT) > 0 or redis.call('ZCARD', K_PRIO) > 0 or
                                                    (gon and redis.call('ZCARD', queue_key('groups')) > 0))) then
  wake()
elseif not full then
  redis.call('ZREM', K_MARKER, '0')
  local d = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if d[2] then next_delay = math.max(0, tonumber(d[2]) - now) end
  if gon then
    -- a group held by its rate limit may start a job again then
    local h = redis.call('ZRANGE', queue_key('gheld'), 0, 0, 'WITHSCORES')
    if h[2] then
      local wait = math.max(0, tonumber(h[2]) - now)
      if next_delay < 0 or wait < next_delay then next_delay = wait end
    end
  end
end
local lim = 0
if limited then lim = 1 end
return {codes, jobs, now, next_delay, lim}
)lua";

// renew: extends leases. ARGV[2] lease ms, then pairs id, lease. Per pair: 0 (lost), 1 (renewed),
// or, renewed with a cancel requested for that lease (queue::cancel), the request "<r>|<reason>".
inline constexpr std::string_view renew = R"lua(
local deadline = now_ms() + tonumber(ARGV[2])
local m = {}
for i = 3, #ARGV - 1, 2 do m[#m + 1] = ARGV[i] .. ':' .. ARGV[i + 1] end
if #m == 0 then return {} end
local scores = redis.call('ZMSCORE', K_ACTIVE, unpack(m))
local out, z = {}, {}
for i = 1, #m do
  if scores[i] then
    z[#z + 1] = deadline
    z[#z + 1] = m[i]
    out[i] = cancel_request(ARGV[1 + i * 2], ARGV[2 + i * 2]) or 1
  else
    out[i] = 0
  end
end
if #z > 0 then redis.call('ZADD', K_ACTIVE, 'XX', unpack(z)) end
return out
)lua";

// cancel: asks the worker running job ARGV[2] to cancel it: stores "<lease>|<ARGV[3]>|<ARGV[4]>"
// (ARGV[3] '1': retry the attempt; ARGV[4] the reason) in its cx field for the lease it runs
// under. Returns 1 (requested), 2 (the job is not running), 0 (no such job).
inline constexpr std::string_view cancel = R"lua(
local id = ARGV[2]
local k = JOB .. id
if redis.call('EXISTS', k) == 0 then return 0 end
local lease = lease_of(id)
if not lease then return 2 end
redis.call('HSET', k, 'cx', lease .. '|' .. ARGV[3] .. '|' .. ARGV[4])
emit('cancelling', id, ARGV[4])
return 1
)lua";

// stalled: moves jobs whose lease expired back in line, or to failed after more than ARGV[3]
// stalls; their leases are void. ARGV[2] = check interval ms (0: check now, regardless of other
// checkers), ARGV[4] = most jobs handled per call. Returns {recovered ids, failed ids}, or {}
// when another checker ran within the interval.
inline constexpr std::string_view stalled = R"lua(
local interval, max_stalls, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if interval > 0 and not redis.call('SET', K_STALL, '1', 'PX', interval, 'NX') then return {} end
local now = now_ms()
local leases = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', now, 'LIMIT', 0, limit)
if #leases == 0 then return {{}, {}} end
redis.call('ZREM', K_ACTIVE, unpack(leases))
local recovered, failed = {}, {}
local freed = false  -- a group below its concurrency again
local function fail(k, id, reason)
  redis.call('HSET', k, 'st', 'f', 'ft', now, 'fr', reason)
  flow_done(k, false, reason, now)
  local f = redis.call('HMGET', k, 'rfn', 'rfa')
  retain(K_FAILED, id, f[1], f[2], now)
  failed[#failed + 1] = id
  emit('failed', id, reason)
end
for i = 1, #leases do
  local id = id_of(leases[i])
  local k = JOB .. id
  if redis.call('EXISTS', k) == 1 then
    local g = redis.call('HGET', k, 'grp')
    if g and group_ended(g, now) then freed = true end
    local stalls = redis.call('HINCRBY', k, 'stl', 1)
    -- a cancelled attempt whose worker went away runs again only if the cancel asked so
    local cx = cancel_request(id, string.sub(leases[i], #id + 2))
    if cx and string.sub(cx, 1, 1) == '0' then
      fail(k, id, 'cancelled: ' .. string.sub(cx, 3))
    elseif stalls > max_stalls then
      fail(k, id, 'job stalled more than ' .. max_stalls .. ' time(s): its lease expired while active')
    else
      redis.call('HSET', k, 'st', enqueue(id, redis.call('HGET', k, 'prio')))
      recovered[#recovered + 1] = id
      emit('stalled', id)
    end
  end
end
redis.call('HINCRBY', K_META, 'stalled', #recovered + #failed)
if (#recovered > 0 or freed) and not is_paused() then wake() end
return {recovered, failed}
)lua";

// progress: ARGV[2] id, ARGV[3] lease, ARGV[4] progress JSON. Returns 1, or 0 when the lease is lost.
inline constexpr std::string_view progress = R"lua(
if not redis.call('ZSCORE', K_ACTIVE, ARGV[2] .. ':' .. ARGV[3]) then return 0 end
redis.call('HSET', JOB .. ARGV[2], 'prog', ARGV[4])
emit('progress', ARGV[2], ARGV[4])
return 1
)lua";

}  // namespace queue_lua
}  // namespace detail
}  // namespace v0
}  // namespace redkit
