// SPDX-License-Identifier: MIT
// The queue's Lua that adds jobs: add (jobs of one queue) and add_flow (a tree of jobs over one or
// more queues, parents waiting for their children).
// queue/detail/model.hpp describes the keys and fields they use.
#pragma once

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace queue_lua {

// add: adds jobs. ARGV[2] = number of jobs, then per job 19 fields (empty = default): the 14 add
// fields (custom id, name, data, delay ms, priority, attempts, backoff kind, backoff ms, jitter per
// mille, keep completed count, keep completed age ms, keep failed count, keep failed age ms,
// timeout ms), then the deduplication key (stored form; '' = none), its TTL ms ('' = none: simple
// mode), the debounce flags ('e' extend, 'r' replace, both, or '') and the group (stored form;
// '' = none: a job with a group and no delay goes in its group's line, model.hpp), and the trace
// context of the caller (stored as tc; '' = none).
// A job whose deduplication key is held (model.hpp: <base>:dedup:<key>) is not added: the add
// maps to the holder, and with debounce flags, while the holder is still delayed, replaces its
// data ('r') and/or sets its due time to now + this add's delay and the key's TTL to this add's
// ('e'). Otherwise an existing custom id is left alone. A job that is added takes its key (with
// the TTL when one is given). Returns {id1, code1, id2, code2...}, code 1 created, 0 the custom
// id exists, 2 deduplicated (nothing changed), 3 debounced (the holder changed).
inline constexpr std::string_view add = R"lua(
local S = 19
local n = tonumber(ARGV[2])
local now = now_ms()
-- generated ids in one INCRBY for the jobs certain to be added; a job with a deduplication key
-- may not be, so it takes its id when it is
local auto = 0
for i = 0, n - 1 do
  if ARGV[3 + i * S] == '' and ARGV[3 + i * S + 14] == '' then auto = auto + 1 end
end
local next_id = 0
if auto > 0 then next_id = redis.call('INCRBY', K_ID, auto) - auto + 1 end
local out = {}
local line = {}
local grouped, group_order, any_group = {}, {}, false
local ready = false
local earliest = nil
local earliest_known = false
-- puts job id in the delayed set, due at `due`; a new earliest due time wakes a worker so it
-- learns the shorter wait
local function delay_until(id, due)
  if not earliest_known then
    local d = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
    if d[2] then earliest = tonumber(d[2]) end
    earliest_known = true
  end
  redis.call('ZADD', K_DELAYED, due, id)
  if earliest == nil or due < earliest then
    earliest = due
    ready = true
  end
end
for i = 0, n - 1 do
  local b = 3 + i * S
  local id = ARGV[b]
  local de, ttl, flags = ARGV[b + 14], tonumber(ARGV[b + 15]) or 0, ARGV[b + 16]
  local code = 1
  local holder = false
  if de ~= '' then
    holder = redis.call('GET', dedup_key(de))
    -- a key without a TTL whose job is gone by other means than the queue's scripts is stale
    if holder and redis.call('EXISTS', JOB .. holder) == 0 and redis.call('PTTL', dedup_key(de)) == -1 then
      holder = false
    end
  end
  if holder then
    id = holder
    code = 2
    local k = JOB .. id
    if flags ~= '' and redis.call('HGET', k, 'st') == 'd' and redis.call('ZSCORE', K_DELAYED, id) then
      code = 3
      if string.find(flags, 'r', 1, true) then redis.call('HSET', k, 'data', ARGV[b + 2]) end
      if string.find(flags, 'e', 1, true) then
        local delay = tonumber(ARGV[b + 3])
        redis.call('HSET', k, 'delay', delay)
        delay_until(id, now + delay)
        redis.call('PEXPIRE', dedup_key(de), ttl)
      end
    end
  elseif id == '' then
    if de == '' then
      id = string.format('%d', next_id)
      next_id = next_id + 1
    else
      id = string.format('%d', redis.call('INCR', K_ID))
    end
  elseif redis.call('EXISTS', JOB .. id) == 1 then
    code = 0
  end
  if code == 1 then
    local h = new_job_fields(b, now)
    if de ~= '' then
      h[#h + 1] = 'de'
      h[#h + 1] = de
      if ttl > 0 then
        redis.call('SET', dedup_key(de), id, 'PX', ttl)
      else
        redis.call('SET', dedup_key(de), id)
      end
    end
    local delay = tonumber(ARGV[b + 3]) or 0
    local prio = tonumber(ARGV[b + 4]) or 0
    local k = JOB .. id
    local g = ARGV[b + 17]
    if g ~= '' then
      h[#h + 1] = 'grp'
      h[#h + 1] = g
      any_group = true
    end
    if ARGV[b + 18] ~= '' then
      h[#h + 1] = 'tc'
      h[#h + 1] = ARGV[b + 18]
    end
    if delay > 0 then
      h[#h + 1] = 'st'
      h[#h + 1] = 'd'
      redis.call('HSET', k, unpack(h))
      delay_until(id, now + delay)
    elseif g ~= '' then
      h[#h + 1] = 'st'
      h[#h + 1] = 'g'
      redis.call('HSET', k, unpack(h))
      if not grouped[g] then
        grouped[g] = {}
        group_order[#group_order + 1] = g
      end
      local q = grouped[g]
      q[#q + 1] = id
      ready = true
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
  out[#out + 1] = code
  if code == 1 then
    emit('added', id, ARGV[b + 1])
  elseif code == 2 then
    emit('deduplicated', id, ARGV[b + 1])
  elseif code == 3 then
    emit('debounced', id, ARGV[b + 1])
  end
end
if #line > 0 then redis.call('LPUSH', K_WAIT, unpack(line)) end
-- a queue that ever had a job with a group: its takes and lease ends mind the groups from now on
if any_group then redis.call('HSET', K_META, 'gon', 1) end
if #group_order > 0 then
  -- each group's new jobs in one LPUSH (a call holds at most 1000 jobs), then its place in turn
  local total = 0
  for i = 1, #group_order do
    local g = group_order[i]
    redis.call('LPUSH', group_list(g), unpack(grouped[g]))
    total = total + #grouped[g]
    redis.call('ZADD', queue_key('gall'), 0, g)
    group_settle(g, now)
  end
  redis.call('HINCRBY', K_META, 'gw', total)
end
if ready and not is_paused() then wake() end
return out
)lua";

// add_flow: adds a tree of jobs, parents before their children, all or nothing. ARGV[2] = number
// of jobs, then per job 19 fields: its queue's key base, its parent's index in this list (1-based;
// 0 for the root), 'i' when its final failure is ignored by the parent (else 'f'), its queue's
// name, its number of children, then the 14 add fields. A parent waits (st x, in its queue's
// waiting-children) until its children finished; a job without children goes in line. Returns
// the ids in input order, or an error naming a custom id that exists already (nothing written).
inline constexpr std::string_view add_flow = R"lua(
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local b = 3 + i * 19
  if ARGV[b + 5] ~= '' and redis.call('EXISTS', ARGV[b] .. 'job:' .. ARGV[b + 5]) == 1 then
    return redis.error_reply('ERR job ' .. ARGV[b + 5] .. ' of queue ' .. ARGV[b + 3] .. ' exists already')
  end
end
local now = now_ms()
local ids = {}
for i = 0, n - 1 do
  local b = 3 + i * 19
  local base, parent, kids, f = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 4]), b + 5
  local id = ARGV[f]
  if id == '' then id = string.format('%d', redis.call('INCRBY', base .. 'id', 1)) end
  ids[i + 1] = id
  local h = new_job_fields(f, now)
  if parent > 0 then
    local pb = 3 + (parent - 1) * 19
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

}  // namespace queue_lua
}  // namespace detail
}  // namespace v0
}  // namespace redkit
