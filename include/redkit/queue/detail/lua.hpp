// SPDX-License-Identifier: MIT
// Lua scripts of redkit::queue and redkit::worker, each an `inline constexpr std::string_view`
// made into a script by queue_script<Body>(). Every state change of a job is one of these
// scripts, so it is atomic.
//
// All scripts take the same KEYS (one hash tag, so one Redis Cluster slot):
//   KEYS[1] wait        list: job ids ready to run without a priority (LPUSH in, RPOP out: FIFO)
//   KEYS[2] prioritized zset: job ids with a priority, score priority * 2^31 + (insertion counter
//                       mod 2^31): at most 2^21 * 2^31 + 2^31 - 1 < 2^53, so every score is an
//                       exact double (Lua numbers and zset scores are doubles)
//   KEYS[3] delayed     zset: job ids waiting for a due time (delay or retry backoff), score = due ms
//   KEYS[4] active      zset: the leases, member "<id>:<lease>", score = lease deadline ms (server
//                       clock); a lease is "<taken ms>|<token>". Ids never hold ':' (escaped), so
//                       the id is the member up to its first ':'
//   KEYS[5] completed   zset: finished job ids kept by retention, score = finish ms
//   KEYS[6] failed      zset: failed job ids kept by retention, score = finish ms
//   KEYS[7] meta        hash: paused (present while paused), pc (priority counter), stalled (total)
//   KEYS[8] marker      zset: member "0" present while jobs may be ready; idle workers BZPOPMIN it
//   KEYS[9] id          string: the job id counter
//   KEYS[10] stalled-check  string with a TTL: at most one stalled-job check per interval
// and ARGV[1] = the job key prefix ("<base>:job:"). Keys built from it, in the same slot as KEYS
// (the tag is in the prefix), kept out of KEYS so the hot scripts do not carry them:
//   <base>:job:<id>        hash: a job
//   <base>:job:<id>:logs   list: the job's log lines (job::log), the newest last, capped
//   <base>:limiter         zset: the jobs started within the rate limit's window (member
//                          "<token>:<n>", score = start ms); absent without a limit
//   <base>:schedulers      zset: scheduler ids, score = the tick (ms) of the job each has pending
//   <base>:scheduler:<id>  hash: a scheduler
//   <base>:events          stream: the queue's events while they are on (meta evmax = its cap):
//                          fields ev (added, active, progress, completed, retried, failed,
//                          stalled, removed, waiting), id (stored job id), x (name, progress,
//                          return value or reason)
//   <base>:waiting-children  zset: flow parents waiting for their children, score = created ms
//   <base>:job:<id>:results  hash: a flow parent's completed children, "<queue>:<id>" -> value
//   <base>:job:<id>:ignored  hash: its children whose failure was ignored, "<queue>:<id>" -> reason
//
// Flows (queue::add_flow) may span queues: a child's hash names its parent by the parent
// queue's key base (par, "<prefix>queue:{name}:") and stored id (pid), so the scripts that
// finish a child reach keys of another queue that are not in KEYS. That is fine on one server;
// on Redis Cluster add_flow refuses a flow whose queues are in different slots.
//
// Meta fields besides those above: evmax (events on, the stream's cap), lmax, ldur (rate limit: at most lmax jobs start
// per ldur ms), lunt (no job starts before this ms: a handler reported a downstream rate limit). A scheduler hash: spec
// (its schedule as JSON, read by C++: the cron/every arithmetic lives there), anchor (ms the ticks of an "every"
// schedule count from), next (tick of its pending job), count (jobs made), and the job template as the job fields name,
// data, prio, att, bo, bd, bj, rcn, rca, rfn, rfa. The job of a tick has the id "repeat:<scheduler id>:<tick>" (escaped
// as stored ids are) and the extra fields sch (scheduler id) and tick.
//
// A job is active while the active zset holds a lease of it. Taking a job writes nothing to its
// hash: st keeps naming the container the job was last put in, so a job whose st is w, p or d
// but which that container no longer holds is active. Job hash fields: name, data, ts (created ms), st
// (w waiting, p prioritized, d delayed, c completed, f failed), att (max attempts, absent = 1),
// made (attempts made), prio, delay, bo/bd/bj (backoff kind, delay ms, jitter per mille),
// rcn/rca and rfn/rfa (retention of completed/failed: keep count, keep age ms; absent = keep all),
// tok (the lease that last finished it), pt (processed ms), ft (finished ms), rv (return value,
// JSON), fr (failed reason), tr (JSON array of failures), prog (progress, JSON), stl (times
// stalled). A flow parent has st x (waiting for children) while kids (its children not yet
// finished) is above 0; a flow child has par and pid (its parent, above), pqn (the parent's
// queue name), pol ('i': its final failure is ignored, else it fails the parent), cref (its
// field in the parent's results: "<queue name>:<id>") and done (set once it told the parent).
//
// Times come from redis.call('TIME') in integer milliseconds. Numbers given to redis.call are
// sent exactly; numbers concatenated into strings stay below 10^14 (Lua prints %.14g).
#pragma once

#include <redkit/script.hpp>

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace queue_lua {

// Shared helpers, prepended to every script.
inline constexpr std::string_view prelude = R"lua(
local K_WAIT, K_PRIO, K_DELAYED, K_ACTIVE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_COMPLETED, K_FAILED, K_META, K_MARKER = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_ID, K_STALL = KEYS[9], KEYS[10]
local JOB = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function is_paused()
  return redis.call('HEXISTS', K_META, 'paused') == 1
end

local function wake()
  redis.call('ZADD', K_MARKER, '0', '0')
end

-- A key of this queue outside KEYS: "<base>" .. suffix, from the job prefix "<base>job:".
local function queue_key(suffix)
  return string.sub(JOB, 1, -5) .. suffix
end

-- Puts a job (already out of any other container) back in the line of the queue whose wait
-- list, prioritized zset and meta hash are given; returns its state letter.
local function enqueue_in(wait, prioritized, meta, id, prio)
  prio = tonumber(prio) or 0
  if prio > 0 then
    local c = redis.call('HINCRBY', meta, 'pc', 1)
    redis.call('ZADD', prioritized, prio * 2147483648 + (c % 2147483648), id)
    return 'p'
  end
  redis.call('LPUSH', wait, id)
  return 'w'
end

-- The same in this queue.
local function enqueue(id, prio)
  return enqueue_in(K_WAIT, K_PRIO, K_META, id, prio)
end

-- The job id of an active-zset member "<id>:<lease>" (any other member is an id already).
local function id_of(member)
  local colon = string.find(member, ':', 1, true)
  if colon then return string.sub(member, 1, colon - 1) end
  return member
end

-- Deletes job hashes and drops their ids from a zset (set may be nil).
local function drop(set, ids)
  if #ids == 0 then return end
  local keys = {}
  for i = 1, #ids do
    local k = JOB .. ids[i]
    keys[#keys + 1] = k
    keys[#keys + 1] = k .. ':logs'
    keys[#keys + 1] = k .. ':results'
    keys[#keys + 1] = k .. ':ignored'
  end
  redis.call('DEL', unpack(keys))
  if set then redis.call('ZREM', set, unpack(ids)) end
end

-- Pops ids from each zset of `sets` in turn (lowest score first) and deletes their job hashes,
-- until `removed` reaches `limit`; returns the new count.
local function pop_and_drop(sets, removed, limit)
  for s = 1, #sets do
    if removed < limit then
      local p = redis.call('ZPOPMIN', sets[s], limit - removed)
      local got = {}
      for i = 1, #p, 2 do got[#got + 1] = id_of(p[i]) end
      drop(nil, got)
      removed = removed + #got
    end
  end
  return removed
end

-- Records a finished job in `set` under a retention (keep count n, keep age ms a; nil or '' =
-- no limit). Trims at most 1000 old entries per call.
local function retain(set, id, n, a, now)
  n = tonumber(n)
  a = tonumber(a)
  if n == 0 then
    local k = JOB .. id
    redis.call('DEL', k, k .. ':logs', k .. ':results', k .. ':ignored')
    return
  end
  redis.call('ZADD', set, now, id)
  if a and a > 0 then
    drop(set, redis.call('ZRANGEBYSCORE', set, '-inf', now - a, 'LIMIT', 0, 1000))
  end
  if n and n > 0 then
    local count = redis.call('ZCARD', set)
    if count > n then drop(set, redis.call('ZRANGE', set, 0, math.min(count - n, 1000) - 1)) end
  end
end
)lua";

// After the prelude in the scripts that touch the rate limit or schedulers: their keys (which
// are not in KEYS) and the scheduler helpers. Kept out of the prelude, which runs with every
// script, the take included.
inline constexpr std::string_view extras = R"lua(
local BASE = queue_key('')
local SCHED, K_SCHED, K_LIMIT = BASE .. 'scheduler:', BASE .. 'schedulers', BASE .. 'limiter'
local K_EVENTS, K_KIDS = BASE .. 'events', BASE .. 'waiting-children'

-- Appends an event to the queue's stream when events are on (queue::set_events).
local EVMAX = nil
local function emit(ev, id, x)
  if EVMAX == nil then EVMAX = redis.call('HGET', K_META, 'evmax') or false end
  if EVMAX then redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EVMAX, '*', 'ev', ev, 'id', id, 'x', x or '') end
end

-- The stored id of the job a scheduler makes for a tick (sid is stored, i.e. escaped, already).
local function tick_id(sid, tick)
  return 'repeat%3A' .. sid .. '%3A' .. tick
end

-- Removes a job that has not started (waiting, prioritized or delayed); true when it did.
local function drop_unstarted(id)
  local k = JOB .. id
  local st = redis.call('HGET', k, 'st')
  local gone = 0
  if st == 'd' then gone = redis.call('ZREM', K_DELAYED, id)
  elseif st == 'p' then gone = redis.call('ZREM', K_PRIO, id)
  elseif st == 'w' then gone = redis.call('LREM', K_WAIT, 1, id) end
  if gone == 0 then return false end
  redis.call('DEL', k, k .. ':logs')
  emit('removed', id)
  return true
end

-- The hash fields of a new job from the 13 add fields at ARGV[b] (custom id first; see add):
-- name, data, ts, and the options given ('' = not given).
local ADD_OPTIONAL = {[4] = 'delay', [5] = 'prio', [6] = 'att', [7] = 'bo', [8] = 'bd', [9] = 'bj',
                      [10] = 'rcn', [11] = 'rca', [12] = 'rfn', [13] = 'rfa'}
local function new_job_fields(b, now)
  local h = {'name', ARGV[b + 1], 'data', ARGV[b + 2], 'ts', now}
  for j = 4, 13 do
    local v = ARGV[b + j - 1]
    if v ~= '' then
      h[#h + 1] = ADD_OPTIONAL[j]
      h[#h + 1] = v
    end
  end
  return h
end

local TEMPLATE = {'name', 'data', 'prio', 'att', 'bo', 'bd', 'bj', 'rcn', 'rca', 'rfn', 'rfa'}

-- Makes scheduler sid's job for `tick` (ms), due then (at once when past), from the template in
-- the scheduler's hash; a job of that id that exists already is left alone.
local function add_tick(sid, tick, now)
  local id = tick_id(sid, tick)
  local k = JOB .. id
  if redis.call('EXISTS', k) == 1 then return id end
  local t = redis.call('HMGET', SCHED .. sid, unpack(TEMPLATE))
  local h = {'ts', now, 'sch', sid, 'tick', tick}
  for i = 1, #TEMPLATE do
    if t[i] and t[i] ~= '' then
      h[#h + 1] = TEMPLATE[i]
      h[#h + 1] = t[i]
    end
  end
  local delay = tick - now
  if delay > 0 then
    h[#h + 1] = 'st'
    h[#h + 1] = 'd'
    local d = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
    redis.call('HSET', k, unpack(h))
    redis.call('ZADD', K_DELAYED, tick, id)
    -- a new earliest due time: wake a worker so it learns the shorter wait
    if (not d[2] or tick < tonumber(d[2])) and not is_paused() then wake() end
  else
    redis.call('HSET', k, unpack(h))
    redis.call('HSET', k, 'st', enqueue(id, t[3]))
    if not is_paused() then wake() end
  end
  emit('added', id, t[1])
  return id
end
)lua";

// After the prelude in the scripts that may finish a flow's child (move, stalled, remove) or
// add a flow: the helpers that reach the queue of the child's parent, by its key base.
inline constexpr std::string_view flow = R"lua(
local function base_emit(base, ev, id, x)
  local m = redis.call('HGET', base .. 'meta', 'evmax')
  if m then redis.call('XADD', base .. 'events', 'MAXLEN', '~', m, '*', 'ev', ev, 'id', id, 'x', x or '') end
end

-- Puts job `id` of the queue at `base` in line (delayed by `delay` ms, or by priority) and wakes
-- that queue's workers unless it is paused; returns the state letter.
local function base_enqueue(base, id, prio, delay, now)
  delay = tonumber(delay) or 0
  local st = 'd'
  if delay > 0 then
    redis.call('ZADD', base .. 'delayed', now + delay, id)
  else
    st = enqueue_in(base .. 'wait', base .. 'prioritized', base .. 'meta', id, prio)
  end
  if redis.call('HEXISTS', base .. 'meta', 'paused') == 0 then redis.call('ZADD', base .. 'marker', '0', '0') end
  return st
end

-- The job at key k finished for good: when it is a flow's child, tells its parent, once. ok:
-- completed (value = its return value), else failed (value = the reason), which fails the
-- parent unless the child's policy ignores it (or `ignore` is true: the child was removed). A
-- parent failed so tells its own parent in turn; a parent whose last child finished goes in
-- line.
local function flow_done(k, ok, value, now, ignore)
  local doomed = {}
  while k do
    local f = redis.call('HMGET', k, 'par', 'pid', 'pol', 'cref', 'done')
    if not f[1] or f[5] then break end
    redis.call('HSET', k, 'done', '1')
    local base, pid = f[1], f[2]
    local pk = base .. 'job:' .. pid
    local p = redis.call('HMGET', pk, 'st', 'prio', 'delay', 'rfn')
    if p[1] ~= 'x' then break end  -- removed, or failed by another child already
    k = nil
    if ok then
      redis.call('HSET', pk .. ':results', f[4], value)
    elseif ignore or f[3] == 'i' then
      redis.call('HSET', pk .. ':ignored', f[4], value)
    else
      local reason = 'child ' .. f[4] .. ' failed: ' .. value
      redis.call('ZREM', base .. 'waiting-children', pid)
      redis.call('HSET', pk, 'st', 'f', 'ft', now, 'fr', reason)
      if p[4] == '0' then  -- remove_on_fail keeps none: deleted once its own parent heard
        doomed[#doomed + 1] = pk
      else
        redis.call('ZADD', base .. 'failed', now, pid)
      end
      base_emit(base, 'failed', pid, reason)
      k, value = pk, reason
    end
    if not k and redis.call('HINCRBY', pk, 'kids', -1) <= 0 then
      redis.call('ZREM', base .. 'waiting-children', pid)
      redis.call('HSET', pk, 'st', base_enqueue(base, pid, p[2], p[3], now))
      base_emit(base, 'waiting', pid)
    end
  end
  for i = 1, #doomed do
    local d = doomed[i]
    redis.call('DEL', d, d .. ':logs', d .. ':results', d .. ':ignored')
  end
end
)lua";

// move: records the outcomes a worker sends, then leases up to `want` jobs. One round trip.
// ARGV[2] token for the leases taken by this call, ARGV[3] lease ms, ARGV[4] want, ARGV[5] '1'
// when the caller popped the marker (a full take sets it again, waking the next idle worker),
// ARGV[6] number of outcomes, then per outcome 10 fields: id, lease, kind ('c' completed, 'k'
// completed, a flow's child: its parent hears, 'f' failed attempt, 'u' failed for good, 'r' rate
// limited downstream: back in line without an attempt, and the queue starts nothing for the
// retry delay), payload (return value JSON, or reason),
// trace entry, retry delay ms (used when attempts remain, or for 'r'), attempts made (this one
// included), keep count and keep age ms of the set it goes to ('' = no limit; the job's
// remove_on_complete / remove_on_fail), processed ms (when the lease was taken).
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
local meta = redis.call('HMGET', K_META, 'paused', 'lmax', 'ldur', 'lunt', 'evmax')
local evmax = meta[5]
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
    for i = 0, n - 1 do m[i + 1] = ARGV[7 + i * 10] .. ':' .. ARGV[8 + i * 10] end
    local scores = redis.call('ZMSCORE', K_ACTIVE, unpack(m))
    for i = 1, n do
      held[i] = scores[i] ~= false
      if held[i] then ending[#ending + 1] = m[i] end
    end
    if #ending > 0 then redis.call('ZREM', K_ACTIVE, unpack(ending)) end
  end
  local kept = {}
  for i = 0, n - 1 do
    local b = 7 + i * 10
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
        elseif (f[2] == 'w' or f[2] == 'p') and kind == 'r' then code = 5
        elseif f[2] == 'w' or f[2] == 'p' then code = 3 else code = 4 end
      end
    else
      local pt = ARGV[b + 9]
      if kind == 'c' or kind == 'k' then
        redis.call('HSET', k, 'st', 'c', 'made', ARGV[b + 6], 'ft', now_s, 'rv', ARGV[b + 3], 'tok', lease, 'pt', pt)
        if kind == 'k' then flow_done(k, true, ARGV[b + 3], now) end
        if keep_n == '' and keep_age == '' then
          kept[#kept + 1] = now_s
          kept[#kept + 1] = id
        else
          retain(K_COMPLETED, id, keep_n, keep_age, now)
        end
        code = 1
      elseif kind == 'r' then
        -- not an attempt: next in line, and no job of the queue starts before now + delay
        local prio = redis.call('HGET', k, 'prio')
        local st = 'w'
        if (tonumber(prio) or 0) > 0 then st = enqueue(id, prio) else redis.call('RPUSH', K_WAIT, id) end
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
  if cap > 0 then ids = redis.call('RPOP', K_WAIT, cap) or {} end
  if #ids < cap then
    local p = redis.call('ZPOPMIN', K_PRIO, cap - #ids)
    for i = 1, #p, 2 do ids[#ids + 1] = p[i] end
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
  if cap < want and (redis.call('LLEN', K_WAIT) > 0 or redis.call('ZCARD', K_PRIO) > 0) then
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
elseif woke or (full and rearm) or (want == 0 and (redis.call('LLEN', K_WAIT) > 0 or redis.call('ZCARD', K_PRIO) > 0)) then
  wake()
elseif not full then
  redis.call('ZREM', K_MARKER, '0')
  local d = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if d[2] then next_delay = math.max(0, tonumber(d[2]) - now) end
end
local lim = 0
if limited then lim = 1 end
return {codes, jobs, now, next_delay, lim}
)lua";

// add: adds jobs. ARGV[2] = number of jobs, then per job 13 fields (empty = default): custom id,
// name, data, delay ms, priority, attempts, backoff kind, backoff ms, jitter per mille, keep
// completed count, keep completed age ms, keep failed count, keep failed age ms.
// An existing custom id is left alone (deduplication). Returns {id1, created1, id2, created2...}.
inline constexpr std::string_view add = R"lua(
local n = tonumber(ARGV[2])
local now = now_ms()
local auto = 0
for i = 0, n - 1 do
  if ARGV[3 + i * 13] == '' then auto = auto + 1 end
end
local next_id = 0
if auto > 0 then next_id = redis.call('INCRBY', K_ID, auto) - auto + 1 end
local out = {}
local line = {}
local ready = false
local earliest = nil
local earliest_known = false
for i = 0, n - 1 do
  local b = 3 + i * 13
  local id = ARGV[b]
  local created = 1
  if id == '' then
    id = string.format('%d', next_id)
    next_id = next_id + 1
  elseif redis.call('EXISTS', JOB .. id) == 1 then
    created = 0
  end
  if created == 1 then
    local h = new_job_fields(b, now)
    local delay = tonumber(ARGV[b + 3]) or 0
    local prio = tonumber(ARGV[b + 4]) or 0
    local k = JOB .. id
    if delay > 0 then
      h[#h + 1] = 'st'
      h[#h + 1] = 'd'
      redis.call('HSET', k, unpack(h))
      if not earliest_known then
        local d = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
        if d[2] then earliest = tonumber(d[2]) end
        earliest_known = true
      end
      redis.call('ZADD', K_DELAYED, now + delay, id)
      -- a new earliest due time: wake a worker so it learns the shorter wait
      if earliest == nil or now + delay < earliest then
        earliest = now + delay
        ready = true
      end
    elseif prio > 0 then
      h[#h + 1] = 'st'
      h[#h + 1] = 'p'
      redis.call('HSET', k, unpack(h))
      enqueue(id, prio)
      ready = true
    else
      h[#h + 1] = 'st'
      h[#h + 1] = 'w'
      redis.call('HSET', k, unpack(h))
      line[#line + 1] = id
      if #line == 1000 then
        redis.call('LPUSH', K_WAIT, unpack(line))
        line = {}
      end
      ready = true
    end
  end
  out[#out + 1] = id
  out[#out + 1] = created
  if created == 1 then emit('added', id, ARGV[b + 1]) end
end
if #line > 0 then redis.call('LPUSH', K_WAIT, unpack(line)) end
if ready and not is_paused() then wake() end
return out
)lua";

// add_flow: adds a tree of jobs, parents before their children, all or nothing. ARGV[2] = number
// of jobs, then per job 18 fields: its queue's key base, its parent's index in this list (1-based;
// 0 for the root), 'i' when its final failure is ignored by the parent (else 'f'), its queue's
// name, its number of children, then the 13 add fields. A parent waits (st x, in its queue's
// waiting-children) until its children finished; a job without children goes in line. Returns
// the ids in input order, or an error naming a custom id that exists already (nothing written).
inline constexpr std::string_view add_flow = R"lua(
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local b = 3 + i * 18
  if ARGV[b + 5] ~= '' and redis.call('EXISTS', ARGV[b] .. 'job:' .. ARGV[b + 5]) == 1 then
    return redis.error_reply('ERR job ' .. ARGV[b + 5] .. ' of queue ' .. ARGV[b + 3] .. ' exists already')
  end
end
local now = now_ms()
local ids = {}
for i = 0, n - 1 do
  local b = 3 + i * 18
  local base, parent, kids, f = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 4]), b + 5
  local id = ARGV[f]
  if id == '' then id = string.format('%d', redis.call('INCRBY', base .. 'id', 1)) end
  ids[i + 1] = id
  local h = new_job_fields(f, now)
  if parent > 0 then
    local pb = 3 + (parent - 1) * 18
    local child = {'par', ARGV[pb], 'pid', ids[parent], 'pqn', ARGV[pb + 3], 'pol', ARGV[b + 2],
                   'cref', ARGV[b + 3] .. ':' .. id}
    for j = 1, #child do h[#h + 1] = child[j] end
  end
  h[#h + 1] = 'st'
  if kids > 0 then
    h[#h + 1] = 'x'
    h[#h + 1] = 'kids'
    h[#h + 1] = kids
    redis.call('ZADD', base .. 'waiting-children', now, id)
  else
    h[#h + 1] = base_enqueue(base, id, ARGV[f + 4], ARGV[f + 3], now)
  end
  redis.call('HSET', base .. 'job:' .. id, unpack(h))
  base_emit(base, 'added', id, ARGV[f + 1])
end
return ids
)lua";

// renew: extends leases. ARGV[2] lease ms, then pairs id, lease. Returns 1 (renewed) or 0 (lost)
// per pair.
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
    out[i] = 1
  else
    out[i] = 0
  end
end
if #z > 0 then redis.call('ZADD', K_ACTIVE, 'XX', unpack(z)) end
return out
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
for i = 1, #leases do
  local id = id_of(leases[i])
  local k = JOB .. id
  if redis.call('EXISTS', k) == 1 then
    local stalls = redis.call('HINCRBY', k, 'stl', 1)
    if stalls > max_stalls then
      local reason = 'job stalled more than ' .. max_stalls .. ' time(s): its lease expired while active'
      redis.call('HSET', k, 'st', 'f', 'ft', now, 'fr', reason)
      flow_done(k, false, reason, now)
      local f = redis.call('HMGET', k, 'rfn', 'rfa')
      retain(K_FAILED, id, f[1], f[2], now)
      failed[#failed + 1] = id
      emit('failed', id, reason)
    else
      redis.call('HSET', k, 'st', enqueue(id, redis.call('HGET', k, 'prio')))
      recovered[#recovered + 1] = id
      emit('stalled', id)
    end
  end
end
redis.call('HINCRBY', K_META, 'stalled', #recovered + #failed)
if #recovered > 0 and not is_paused() then wake() end
return {recovered, failed}
)lua";

// progress: ARGV[2] id, ARGV[3] lease, ARGV[4] progress JSON. Returns 1, or 0 when the lease is lost.
inline constexpr std::string_view progress = R"lua(
if not redis.call('ZSCORE', K_ACTIVE, ARGV[2] .. ':' .. ARGV[3]) then return 0 end
redis.call('HSET', JOB .. ARGV[2], 'prog', ARGV[4])
emit('progress', ARGV[2], ARGV[4])
return 1
)lua";

// get: ARGV[2] id. Returns {fields of the job hash (empty when none), its lease or false, and
// for a delayed job its due ms (its score) or false}. A job at rest in a zset is found there; a
// waiting or active one is looked for among the leases (ZSCAN MATCH "<id>:*", O(active jobs)),
// as finding it in the wait list would be O(waiting).
inline constexpr std::string_view get = R"lua(
local id = ARGV[2]
local h = redis.call('HGETALL', JOB .. id)
local st
for i = 1, #h, 2 do
  if h[i] == 'st' then st = h[i + 1] end
end
if st == nil or st == 'c' or st == 'f' then return {h, false} end
local at_rest = ({p = K_PRIO, d = K_DELAYED, x = queue_key('waiting-children')})[st]
if at_rest then
  local score = redis.call('ZSCORE', at_rest, id)
  if score then return {h, false, st == 'd' and score} end
end
local pattern = string.gsub(id, '[%*%?%[%]\\]', '\\%0') .. ':*'
local cursor = '0'
repeat
  local r = redis.call('ZSCAN', K_ACTIVE, cursor, 'MATCH', pattern, 'COUNT', 1000)
  cursor = r[1]
  if r[2][1] then return {h, string.sub(r[2][1], #id + 2)} end
until cursor == '0'
return {h, false}
)lua";

// counts: returns {waiting, active, delayed, prioritized, completed, failed, paused, waiting for
// children}; while paused, the wait list counts as paused.
inline constexpr std::string_view counts = R"lua(
local w = redis.call('LLEN', K_WAIT)
local paused = 0
if is_paused() then
  paused = w
  w = 0
end
return {w, redis.call('ZCARD', K_ACTIVE), redis.call('ZCARD', K_DELAYED), redis.call('ZCARD', K_PRIO),
        redis.call('ZCARD', K_COMPLETED), redis.call('ZCARD', K_FAILED), paused,
        redis.call('ZCARD', queue_key('waiting-children'))}
)lua";

// pause: ARGV[2] '1' pause, '0' resume. Returns 1.
inline constexpr std::string_view pause = R"lua(
if ARGV[2] == '1' then
  redis.call('HSET', K_META, 'paused', 1)
  redis.call('ZREM', K_MARKER, '0')
else
  redis.call('HDEL', K_META, 'paused')
  wake()
end
return 1
)lua";

// retry: moves failed jobs back in line with a fresh set of attempts. ARGV[2] = one job id, or
// '' for the oldest ARGV[3] failed jobs. Returns how many moved.
inline constexpr std::string_view retry = R"lua(
local ids
if ARGV[2] ~= '' then
  if not redis.call('ZSCORE', K_FAILED, ARGV[2]) then return 0 end
  ids = {ARGV[2]}
else
  ids = redis.call('ZRANGE', K_FAILED, 0, tonumber(ARGV[3]) - 1)
end
if #ids == 0 then return 0 end
for i = 1, #ids do
  local k = JOB .. ids[i]
  redis.call('HDEL', k, 'fr', 'ft', 'made', 'stl', 'tok')
  redis.call('HSET', k, 'st', enqueue(ids[i], redis.call('HGET', k, 'prio')))
  emit('retried', ids[i])
end
redis.call('ZREM', K_FAILED, unpack(ids))
if not is_paused() then wake() end
return #ids
)lua";

// remove: ARGV[2] id. Returns 1 removed, 0 not found, -1 active (leased jobs are not removed).
inline constexpr std::string_view remove = R"lua(
local id = ARGV[2]
local k = JOB .. id
local st = redis.call('HGET', k, 'st')
if not st then return 0 end
-- a job its container no longer holds is active
local found = 1
if st == 'w' then found = redis.call('LREM', K_WAIT, 1, id)
elseif st == 'p' then found = redis.call('ZREM', K_PRIO, id)
elseif st == 'd' then found = redis.call('ZREM', K_DELAYED, id)
elseif st == 'c' then redis.call('ZREM', K_COMPLETED, id)
elseif st == 'f' then redis.call('ZREM', K_FAILED, id) end
if found == 0 then return -1 end
if st == 'x' then redis.call('ZREM', BASE .. 'waiting-children', id) end
-- a flow's child that had not finished: its parent no longer waits for it
flow_done(k, false, 'removed', now_ms(), true)
redis.call('DEL', k, k .. ':logs', k .. ':results', k .. ':ignored')
emit('removed', id)
return 1
)lua";

// drain: removes up to ARGV[3] waiting and prioritized jobs (and delayed ones when ARGV[2] is
// '1'). Returns how many were removed (call again until fewer than ARGV[3]).
inline constexpr std::string_view drain = R"lua(
local limit = tonumber(ARGV[3])
local removed = 0
local ids = redis.call('RPOP', K_WAIT, limit)
if ids then
  drop(nil, ids)
  removed = removed + #ids
end
local sets = {K_PRIO}
if ARGV[2] == '1' then sets[2] = K_DELAYED end
removed = pop_and_drop(sets, removed, limit)
if removed < limit then redis.call('ZREM', K_MARKER, '0') end
return removed
)lua";

// obliterate: deletes the queue. ARGV[2] '1' = even with active jobs, ARGV[3] = most jobs per
// call. Pauses the queue first. Returns {-1, 0} when active jobs exist and force is off, else
// {jobs deleted, done (1 once every key is gone)}.
inline constexpr std::string_view obliterate = R"lua(
local limit = tonumber(ARGV[3])
if ARGV[2] ~= '1' and redis.call('ZCARD', K_ACTIVE) > 0 then return {-1, 0} end
redis.call('HSET', K_META, 'paused', 1)
local removed = 0
local ids = redis.call('RPOP', K_WAIT, limit)
if ids then
  drop(nil, ids)
  removed = #ids
end
local sets = {K_PRIO, K_DELAYED, K_ACTIVE, K_COMPLETED, K_FAILED, K_KIDS}
removed = pop_and_drop(sets, removed, limit)
if removed < limit then
  local sids = redis.call('ZRANGE', K_SCHED, 0, -1)
  for i = 1, #sids do redis.call('DEL', SCHED .. sids[i]) end
  redis.call('DEL', K_WAIT, K_PRIO, K_DELAYED, K_ACTIVE, K_COMPLETED, K_FAILED, K_META, K_MARKER, K_ID, K_STALL,
             K_LIMIT, K_SCHED, K_EVENTS, K_KIDS)
  return {removed, 1}
end
return {removed, 0}
)lua";

// clean: removes finished jobs. ARGV[2] 'c' completed or 'f' failed, ARGV[3] grace ms (only
// jobs finished longer ago), ARGV[4] most jobs per call. Returns how many were removed.
inline constexpr std::string_view clean = R"lua(
local set = K_COMPLETED
if ARGV[2] == 'f' then set = K_FAILED end
local ids = redis.call('ZRANGEBYSCORE', set, '-inf', now_ms() - tonumber(ARGV[3]), 'LIMIT', 0, tonumber(ARGV[4]))
drop(set, ids)
for i = 1, #ids do emit('removed', ids[i]) end
return #ids
)lua";

// events: ARGV[2] the stream's approximate cap (events on), or '' (events off; the stream stays).
// Returns 1.
inline constexpr std::string_view events = R"lua(
if ARGV[2] == '' then
  redis.call('HDEL', K_META, 'evmax')
else
  redis.call('HSET', K_META, 'evmax', ARGV[2])
end
return 1
)lua";

// limit: ARGV[2] max jobs started per ARGV[3] ms ('' both: remove the limit and any downstream
// hold). Returns 1.
inline constexpr std::string_view limit = R"lua(
if ARGV[2] == '' then
  redis.call('HDEL', K_META, 'lmax', 'ldur', 'lunt')
  redis.call('DEL', K_LIMIT)
else
  redis.call('HSET', K_META, 'lmax', ARGV[2], 'ldur', ARGV[3])
end
if not is_paused() then wake() end
return 1
)lua";

// limit_info: returns {lmax or false, ldur or false, ms until a job may start (0: now)}.
inline constexpr std::string_view limit_info = R"lua(
local m = redis.call('HMGET', K_META, 'lmax', 'ldur', 'lunt')
local now = now_ms()
local wait = 0
if m[3] and tonumber(m[3]) > now then wait = tonumber(m[3]) - now end
if m[1] then
  local lmax, ldur = tonumber(m[1]), tonumber(m[2])
  local inside = redis.call('ZRANGEBYSCORE', K_LIMIT, '(' .. (now - ldur), '+inf', 'WITHSCORES')
  if #inside / 2 >= lmax then
    wait = math.max(wait, tonumber(inside[(#inside / 2 - lmax) * 2 + 2]) + ldur - now)
  end
end
return {m[1], m[2], wait}
)lua";

// scheduler_upsert: ARGV[2] scheduler id (stored form), ARGV[3] spec JSON, ARGV[4] anchor ms,
// ARGV[5] first tick ms, then the 11 template fields (TEMPLATE order, '' = absent). With the
// same spec stored already only the template changes (upserts from many processes at start-up
// agree); otherwise the scheduler's pending job, if it has not started, is replaced by the job
// of the first tick. Returns {tick of the pending job, 1 when the schedule was (re)set}.
inline constexpr std::string_view scheduler_upsert = R"lua(
local sid = ARGV[2]
local s = SCHED .. sid
local now = now_ms()
local old = redis.call('HMGET', s, 'spec', 'next')
local t = {}
for i = 1, #TEMPLATE do
  t[#t + 1] = TEMPLATE[i]
  t[#t + 1] = ARGV[5 + i]
end
redis.call('HSET', s, unpack(t))
if old[1] == ARGV[3] and old[2] then return {tonumber(old[2]), 0} end
if old[2] then drop_unstarted(tick_id(sid, old[2])) end
local tick = ARGV[5]
redis.call('HSET', s, 'spec', ARGV[3], 'anchor', ARGV[4], 'next', tick, 'count', 1)
redis.call('ZADD', K_SCHED, tick, sid)
add_tick(sid, tonumber(tick), now)
return {tonumber(tick), 1}
)lua";

// scheduler_next: the job of tick ARGV[3] of scheduler ARGV[2] started: makes the job of tick
// ARGV[4] ('' when the schedule has ended: the scheduler is removed). Only the holder of the
// current tick moves the scheduler on, so each tick gets one job however many workers (or
// retries) call this. Returns 1 moved on, 2 ended, 0 not the current tick (nothing done).
inline constexpr std::string_view scheduler_next = R"lua(
local sid = ARGV[2]
local s = SCHED .. sid
if redis.call('HGET', s, 'next') ~= ARGV[3] then return 0 end
if ARGV[4] == '' then
  redis.call('DEL', s)
  redis.call('ZREM', K_SCHED, sid)
  return 2
end
redis.call('HSET', s, 'next', ARGV[4])
redis.call('HINCRBY', s, 'count', 1)
redis.call('ZADD', K_SCHED, ARGV[4], sid)
add_tick(sid, tonumber(ARGV[4]), now_ms())
return 1
)lua";

// scheduler_remove: ARGV[2] scheduler id. Removes it and its pending job if that has not
// started. Returns 1, or 0 when there was no such scheduler.
inline constexpr std::string_view scheduler_remove = R"lua(
local sid = ARGV[2]
local s = SCHED .. sid
local next = redis.call('HGET', s, 'next')
if not next then return 0 end
drop_unstarted(tick_id(sid, next))
redis.call('DEL', s)
redis.call('ZREM', K_SCHED, sid)
return 1
)lua";

// scheduler_list: ARGV[2] one scheduler id, or '' for up to ARGV[4] of them from offset ARGV[3]
// in the order of their next tick. Returns {id, {spec, next, count, name, anchor}, ...}.
inline constexpr std::string_view scheduler_list = R"lua(
local sids
if ARGV[2] ~= '' then
  sids = {ARGV[2]}
else
  sids = redis.call('ZRANGE', K_SCHED, tonumber(ARGV[3]), tonumber(ARGV[3]) + tonumber(ARGV[4]) - 1)
end
local out = {}
for i = 1, #sids do
  local f = redis.call('HMGET', SCHED .. sids[i], 'spec', 'next', 'count', 'name', 'anchor')
  if f[1] then
    out[#out + 1] = sids[i]
    out[#out + 1] = f
  end
end
return out
)lua";

// scheduler_stuck: schedulers whose tick ARGV[2] ms or more overdue has a job that already
// finished or is gone, so no worker will move them on (a worker failed to, after its retries).
// Returns {now, {id, {spec, next, count, name, anchor}, ...}} for up to 100 of them.
inline constexpr std::string_view scheduler_stuck = R"lua(
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', K_SCHED, '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, 100)
local out = {}
for i = 1, #due do
  local f = redis.call('HMGET', SCHED .. due[i], 'spec', 'next', 'count', 'name', 'anchor')
  if f[1] and f[2] then
    local st = redis.call('HGET', JOB .. tick_id(due[i], f[2]), 'st')
    if not st or st == 'c' or st == 'f' then
      out[#out + 1] = due[i]
      out[#out + 1] = f
    end
  end
end
return {now, out}
)lua";

// list: a page of jobs in one state. ARGV[2] state letter (w waiting or paused, p, d, a, c, f, x),
// ARGV[3] offset, ARGV[4] count, ARGV[5] '1' newest first. Returns {total in that state, {id,
// fields, lease (active) or due ms (delayed: its score) or false, ...}}. Oldest first is the
// order the queue handles them: next to run (waiting, prioritized), soonest due (delayed),
// soonest lease deadline (active), first finished.
inline constexpr std::string_view list = R"lua(
local st, off, n, newest = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local ids, total = {}, 0
if st == 'w' then
  total = redis.call('LLEN', K_WAIT)
  -- LPUSH in, RPOP out: the newest is at the head
  if newest then
    ids = redis.call('LRANGE', K_WAIT, off, off + n - 1)
  else
    local r = redis.call('LRANGE', K_WAIT, -(off + n), -(off + 1))
    for i = #r, 1, -1 do ids[#ids + 1] = r[i] end
  end
else
  local set = ({p = K_PRIO, d = K_DELAYED, a = K_ACTIVE, c = K_COMPLETED, f = K_FAILED,
                x = queue_key('waiting-children')})[st]
  if not set then return redis.error_reply('ERR unknown job state ' .. st) end
  total = redis.call('ZCARD', set)
  if newest then
    ids = redis.call('ZREVRANGE', set, off, off + n - 1)
  else
    ids = redis.call('ZRANGE', set, off, off + n - 1)
  end
end
local out = {}
for i = 1, #ids do
  local id, lease = ids[i], false
  if st == 'a' then
    id = id_of(ids[i])
    lease = string.sub(ids[i], #id + 2)
  elseif st == 'd' then
    lease = redis.call('ZSCORE', K_DELAYED, id)
  end
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', JOB .. id)
  out[#out + 1] = lease
end
return {total, out}
)lua";

// log: ARGV[2] id, ARGV[3] line, ARGV[4] lines to keep, ARGV[5] lease ('' when not leased).
// Returns the number of lines kept, or -1 when the job does not exist, -2 when the lease is lost.
inline constexpr std::string_view log = R"lua(
local id = ARGV[2]
if ARGV[5] ~= '' then
  if not redis.call('ZSCORE', K_ACTIVE, id .. ':' .. ARGV[5]) then return -2 end
elseif redis.call('EXISTS', JOB .. id) == 0 then
  return -1
end
local k = JOB .. id .. ':logs'
local n = redis.call('RPUSH', k, ARGV[3])
local keep = tonumber(ARGV[4])
if n > keep then
  redis.call('LTRIM', k, n - keep, -1)
  n = keep
end
return n
)lua";

// logs: ARGV[2] id, ARGV[3] offset, ARGV[4] count (oldest first). Returns {total, lines}.
inline constexpr std::string_view logs = R"lua(
local k = JOB .. ARGV[2] .. ':logs'
local off = tonumber(ARGV[3])
return {redis.call('LLEN', k), redis.call('LRANGE', k, off, off + tonumber(ARGV[4]) - 1)}
)lua";

// metrics: jobs completed and failed per minute, from the finish times of the completed and
// failed sets (so jobs removed by retention are not counted). ARGV[2] minutes (the current one
// included). Returns {start ms of the oldest minute, c1, f1, c2, f2, ...}, oldest first.
inline constexpr std::string_view metrics = R"lua(
local minutes = tonumber(ARGV[2])
local now = now_ms()
local first = (math.floor(now / 60000) - minutes + 1) * 60000
local out = {first}
for m = 0, minutes - 1 do
  local a = first + m * 60000
  local b = '(' .. (a + 60000)
  out[#out + 1] = redis.call('ZCOUNT', K_COMPLETED, a, b)
  out[#out + 1] = redis.call('ZCOUNT', K_FAILED, a, b)
end
return out
)lua";

}  // namespace queue_lua

/// The queue script whose body is Body, after the shared prelude: built once, on first use.
template <const std::string_view& Body>
const script& queue_script() {
    return static_script<queue_lua::prelude, Body>();
}

/// The same with the extras (rate limit and scheduler keys and helpers) and the flow helpers too.
template <const std::string_view& Body>
const script& extras_script() {
    return static_script<queue_lua::prelude, queue_lua::extras, queue_lua::flow, Body>();
}

/// The worker's take: the prelude, the flow helpers (a flow's child that finishes tells its
/// parent) and move.
inline const script& move_script() { return static_script<queue_lua::prelude, queue_lua::flow, queue_lua::move>(); }

}  // namespace detail
}  // namespace v0
}  // namespace redkit
