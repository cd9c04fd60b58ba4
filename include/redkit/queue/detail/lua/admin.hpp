// SPDX-License-Identifier: MIT
// The queue's Lua that changes a queue as a whole or moves jobs by hand: pause, retry, remove,
// drain, obliterate, clean, events (the event stream on or off) and limit (the rate limit).
// queue/detail/model.hpp describes the keys and fields they use.
#pragma once

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace queue_lua {

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
elseif st == 'g' then
  local g = redis.call('HGET', k, 'grp')
  found = redis.call('LREM', group_list(g), 1, id)
  if found > 0 then group_unlisted(g, 1) end
elseif st == 'c' then redis.call('ZREM', K_COMPLETED, id)
elseif st == 'f' then redis.call('ZREM', K_FAILED, id) end
if found == 0 then return -1 end
if st == 'x' then redis.call('ZREM', BASE .. 'waiting-children', id) end
-- a flow's child that had not finished: its parent no longer waits for it
flow_done(k, false, 'removed', now_ms(), true)
release_dedup(k, id)
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
if removed < limit and redis.call('HEXISTS', K_META, 'gon') == 1 then
  each_group(function(g)
    local got = redis.call('RPOP', group_list(g), limit - removed)
    if got then
      drop(nil, got)
      removed = removed + #got
      group_unlisted(g, #got)
    end
    return removed < limit
  end)
end
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
local GALL = queue_key('gall')
if removed < limit then
  -- the groups' lines, each group's keys once it is empty
  each_group(function(g)
    local got = redis.call('RPOP', group_list(g), limit - removed)
    if got then
      drop(nil, got)
      removed = removed + #got
    end
    if redis.call('LLEN', group_list(g)) == 0 then
      redis.call('DEL', group_list(g), group_limiter(g))
      redis.call('ZREM', GALL, g)
    end
    return removed < limit
  end)
end
if removed < limit then
  local sids = redis.call('ZRANGE', K_SCHED, 0, -1)
  for i = 1, #sids do redis.call('DEL', SCHED .. sids[i]) end
  redis.call('DEL', K_WAIT, K_PRIO, K_DELAYED, K_ACTIVE, K_COMPLETED, K_FAILED, K_META, K_MARKER, K_ID, K_STALL,
             K_LIMIT, K_SCHED, K_EVENTS, K_KIDS, queue_key('groups'), queue_key('gheld'), GALL,
             queue_key('gactive'), queue_key('gpaused'), queue_key('gcap'), queue_key('workers'))
  return {removed, 1}
end
return {removed, 0}
)lua";

// workers: the queue's live workers (model.hpp: <base>:workers, worker id -> until when it counts).
// ARGV[2] a worker id ('' = none: only count), ARGV[3] how long it counts from now, ms ('' = it
// leaves). Forgets the workers whose time is up. Returns how many count now.
inline constexpr std::string_view workers = R"lua(
local K = queue_key('workers')
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', K, '-inf', now)
if ARGV[2] ~= '' then
  if ARGV[3] == '' then
    redis.call('ZREM', K, ARGV[2])
  else
    local ttl = tonumber(ARGV[3])
    redis.call('ZADD', K, now + ttl, ARGV[2])
    if redis.call('PTTL', K) < ttl then redis.call('PEXPIRE', K, ttl) end
  end
end
return redis.call('ZCARD', K)
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

// group: a group's settings. ARGV[2] what: 'p' pause group ARGV[3], 'r' resume it, 'c' set the
// concurrency of group ARGV[3] ('' = the default of every group) to ARGV[4] ('' = none), 'l' set
// the rate limit of every group to ARGV[4] jobs started per ARGV[5] ms ('' = none). Returns 1.
inline constexpr std::string_view group = R"lua(
local what, g = ARGV[2], ARGV[3]
local now = now_ms()
if g ~= '' then
  -- one group: pause, resume, or its own concurrency (set, or '' back to the default)
  if what == 'r' then
    redis.call('HDEL', queue_key('gpaused'), g)
  elseif what == 'c' and ARGV[4] == '' then
    redis.call('HDEL', queue_key('gcap'), g)
  else
    if what == 'p' then
      redis.call('HSET', queue_key('gpaused'), g, 1)
    else
      redis.call('HSET', queue_key('gcap'), g, ARGV[4])
    end
    redis.call('ZADD', queue_key('gall'), 0, g)
  end
  if group_settle(g, now) and not is_paused() then wake() end
  return 1
end
if ARGV[4] == '' and what == 'c' then
  redis.call('HDEL', K_META, 'gcap')
elseif ARGV[4] == '' then
  redis.call('HDEL', K_META, 'glmax', 'gldur')
  redis.call('DEL', queue_key('gheld'))
elseif what == 'c' then
  redis.call('HSET', K_META, 'gcap', ARGV[4])
else
  redis.call('HSET', K_META, 'glmax', ARGV[4], 'gldur', ARGV[5])
end
-- every group stands anew: O(groups)
local any = false
each_group(function(name)
  if group_settle(name, now) then any = true end
  return true
end)
if any and not is_paused() then wake() end
return 1
)lua";

}  // namespace queue_lua
}  // namespace detail
}  // namespace v0
}  // namespace redkit
