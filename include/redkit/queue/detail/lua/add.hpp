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

// add: adds jobs. ARGV[2] = number of jobs, then per job 14 fields (empty = default): custom id,
// name, data, delay ms, priority, attempts, backoff kind, backoff ms, jitter per mille, keep
// completed count, keep completed age ms, keep failed count, keep failed age ms, timeout ms.
// An existing custom id is left alone (deduplication). Returns {id1, created1, id2, created2...}.
inline constexpr std::string_view add = R"lua(
local n = tonumber(ARGV[2])
local now = now_ms()
local auto = 0
for i = 0, n - 1 do
  if ARGV[3 + i * 14] == '' then auto = auto + 1 end
end
local next_id = 0
if auto > 0 then next_id = redis.call('INCRBY', K_ID, auto) - auto + 1 end
local out = {}
local line = {}
local ready = false
local earliest = nil
local earliest_known = false
for i = 0, n - 1 do
  local b = 3 + i * 14
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
