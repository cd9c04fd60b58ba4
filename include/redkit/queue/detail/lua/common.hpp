// SPDX-License-Identifier: MIT
// The queue's Lua, shared part: the helpers that queue scripts begin with. queue_script<>,
// extras_script<> and move_script() (queue/detail/lua.hpp) put them in front of a script's body:
// the prelude (every script: KEYS names, the clock, waking workers, putting jobs in line,
// retention), the extras (the keys outside KEYS for the rate limit, schedulers and events, and
// the helpers that make jobs) and the flow helpers (a flow's child that finishes tells its parent).
// queue/detail/model.hpp describes the keys and fields they use.
#pragma once

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

-- The key that deduplication key `de` (stored form; job field de) is held by.
local function dedup_key(de)
  return queue_key('dedup:') .. de
end

-- Job `id` (hash at k) finished, or its hash is about to go: frees its deduplication key when the
-- key has no TTL (simple mode) and still names this job. A key with a TTL (throttle, debounce)
-- runs out on its own.
local function release_dedup(k, id)
  local de = redis.call('HGET', k, 'de')
  if not de then return end
  local dk = dedup_key(de)
  if redis.call('GET', dk) == id and redis.call('PTTL', dk) == -1 then redis.call('DEL', dk) end
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

-- Groups (job_options::group; model.hpp): a grouped job waits in its group's list, and the
-- groups that may start a job now take turns in the rotation zset <base>:groups (score = turn:
-- a group that had its turn goes to the back).
local function group_list(g)
  return queue_key('group:') .. g
end

-- Group g's starts within the per-group rate limit's window (zset, as <base>:limiter).
local function group_limiter(g)
  return group_list(g) .. ':limiter'
end

-- The settings every group shares (meta gcap, glmax, gldur), read once per script (no script
-- changes them before its first group_settle), and whether any group has its own limit.
local GSET, OWN_CAPS = nil, nil
local function group_settings()
  if not GSET then
    GSET = redis.call('HMGET', K_META, 'gcap', 'glmax', 'gldur')
    OWN_CAPS = redis.call('EXISTS', queue_key('gcap')) == 1
  end
  return GSET
end

-- Group g's concurrency limit (its own, else every group's), or nil.
local function group_limit(g)
  local m = group_settings()
  if OWN_CAPS then
    local own = redis.call('HGET', queue_key('gcap'), g)
    if own then return tonumber(own) end
  end
  return tonumber(m[1])
end

-- Puts group g in the rotation, or takes it out, as it now stands: in only while it has jobs in
-- line, is not paused, is below its concurrency limit and within its rate limit (meta glmax per
-- gldur ms; a group at it waits in <base>:gheld, score = when it may start one again). A group
-- in the rotation keeps its place; one put back goes to the back. Returns true when it is in.
local function group_settle(g, now)
  local rot, held = queue_key('groups'), queue_key('gheld')
  local act = tonumber(redis.call('HGET', queue_key('gactive'), g)) or 0
  local paused = redis.call('HEXISTS', queue_key('gpaused'), g) == 1
  if redis.call('LLEN', group_list(g)) == 0 then
    redis.call('ZREM', rot, g)
    redis.call('ZREM', held, g)
    -- nothing left to say about it: out of the list of groups too
    if act == 0 and not paused and redis.call('HEXISTS', queue_key('gcap'), g) == 0 then
      redis.call('ZREM', queue_key('gall'), g)
    end
    return false
  end
  local m = group_settings()
  local limit = group_limit(g)
  local out = paused or (limit ~= nil and act >= limit)
  if not out and redis.call('ZSCORE', held, g) then out = true end
  if not out and m[2] then
    local lk, dur = group_limiter(g), tonumber(m[3])
    redis.call('ZREMRANGEBYSCORE', lk, '-inf', now - dur)
    if redis.call('ZCARD', lk) >= tonumber(m[2]) then
      local oldest = redis.call('ZRANGE', lk, 0, 0, 'WITHSCORES')
      redis.call('ZADD', held, tonumber(oldest[2]) + dur, g)
      out = true
    end
  end
  if out then
    redis.call('ZREM', rot, g)
    return false
  end
  if not redis.call('ZSCORE', rot, g) then redis.call('ZADD', rot, redis.call('HINCRBY', K_META, 'gturn', 1), g) end
  return true
end

-- Puts job id in group g's line (at the front: next in the group), and the group in the list of
-- groups (<base>:gall, for listing) and the rotation.
local function group_push(g, id, front)
  if front then redis.call('RPUSH', group_list(g), id) else redis.call('LPUSH', group_list(g), id) end
  redis.call('HINCRBY', K_META, 'gw', 1)
  redis.call('ZADD', queue_key('gall'), 0, g)
  group_settle(g, now_ms())
end

-- A lease of group g's ended (its active count drops); returns true when that put the group
-- back in turn. Only a group that reached its limit, or has nothing left, needs a look.
local function group_ended(g, now)
  local gk = queue_key('gactive')
  local act = redis.call('HINCRBY', gk, g, -1)
  if act <= 0 then
    redis.call('HDEL', gk, g)
    if redis.call('LLEN', group_list(g)) == 0 then return group_settle(g, now) end
  end
  local limit = group_limit(g)
  if limit and act == limit - 1 then return group_settle(g, now) end
  return false
end

-- Job id of group g left its group's line by other means than a take (removed, drained).
local function group_unlisted(g, n)
  redis.call('HINCRBY', K_META, 'gw', -n)
  group_settle(g, now_ms())
end

-- Calls fn(g) for each group in the list of groups (by name) while it returns true; fn may take
-- the group it is given out of the list.
local function each_group(fn)
  local from = '-'
  while true do
    local gs = redis.call('ZRANGEBYLEX', queue_key('gall'), from, '+', 'LIMIT', 0, 100)
    for i = 1, #gs do
      if not fn(gs[i]) then return end
    end
    if #gs < 100 then return end
    from = '(' .. gs[#gs]
  end
end

-- The same as enqueue_in in this queue, where a job with a group goes in its group's line
-- (state letter g).
local function enqueue(id, prio)
  local g = redis.call('HGET', JOB .. id, 'grp')
  if g then
    group_push(g, id)
    return 'g'
  end
  return enqueue_in(K_WAIT, K_PRIO, K_META, id, prio)
end

-- The job id of an active-zset member "<id>:<lease>" (any other member is an id already).
local function id_of(member)
  local colon = string.find(member, ':', 1, true)
  if colon then return string.sub(member, 1, colon - 1) end
  return member
end

-- The cancel request (queue::cancel) stored for job id's attempt under `lease`: "<r>|<reason>",
-- or nil (none, or one for another attempt).
local function cancel_request(id, lease)
  local cx = redis.call('HGET', JOB .. id, 'cx')
  if not cx or string.sub(cx, 1, #lease + 1) ~= lease .. '|' then return nil end
  return string.sub(cx, #lease + 2)
end

-- Deletes job hashes and drops their ids from a zset (set may be nil).
local function drop(set, ids)
  if #ids == 0 then return end
  local keys = {}
  for i = 1, #ids do
    local k = JOB .. ids[i]
    release_dedup(k, ids[i])
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
-- no limit). Trims at most 1000 old entries per call. Frees the job's deduplication key.
local function retain(set, id, n, a, now)
  release_dedup(JOB .. id, id)
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

-- The lease running job id is held under (its active-zset member "<id>:<lease>"), or nil.
local function lease_of(id)
  local pattern = (string.gsub(id, '[%*%?%[%]\\]', '\\%0')) .. ':*'
  local cursor = '0'
  repeat
    local r = redis.call('ZSCAN', K_ACTIVE, cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = r[1]
    for i = 1, #r[2], 2 do
      if id_of(r[2][i]) == id then return string.sub(r[2][i], #id + 2) end
    end
  until cursor == '0'
  return nil
end

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
  elseif st == 'w' then gone = redis.call('LREM', K_WAIT, 1, id)
  elseif st == 'g' then
    local g = redis.call('HGET', k, 'grp')
    gone = redis.call('LREM', group_list(g), 1, id)
    if gone > 0 then group_unlisted(g, 1) end
  end
  if gone == 0 then return false end
  release_dedup(k, id)
  redis.call('DEL', k, k .. ':logs')
  emit('removed', id)
  return true
end

-- The hash fields of a new job from the 14 add fields at ARGV[b] (custom id first; see add):
-- name, data, ts, and the options given ('' = not given).
local ADD_OPTIONAL = {[4] = 'delay', [5] = 'prio', [6] = 'att', [7] = 'bo', [8] = 'bd', [9] = 'bj',
                      [10] = 'rcn', [11] = 'rca', [12] = 'rfn', [13] = 'rfa', [14] = 'to'}
local function new_job_fields(b, now)
  local h = {'name', ARGV[b + 1], 'data', ARGV[b + 2], 'ts', now}
  for j = 4, 14 do
    local v = ARGV[b + j - 1]
    if v ~= '' then
      h[#h + 1] = ADD_OPTIONAL[j]
      h[#h + 1] = v
    end
  end
  return h
end

local TEMPLATE = {'name', 'data', 'prio', 'att', 'bo', 'bd', 'bj', 'rcn', 'rca', 'rfn', 'rfa', 'to'}

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

}  // namespace queue_lua
}  // namespace detail
}  // namespace v0
}  // namespace redkit
