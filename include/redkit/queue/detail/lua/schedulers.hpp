// SPDX-License-Identifier: MIT
// The queue's Lua for job schedulers: upsert, next (a tick's job started: make the next tick's
// job), remove, list, and stuck (schedulers that no worker will move on).
// queue/detail/model.hpp describes the keys and fields they use.
#pragma once

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace queue_lua {

// scheduler_upsert: ARGV[2] scheduler id (stored form), ARGV[3] spec JSON, ARGV[4] anchor ms,
// ARGV[5] first tick ms, then the 12 template fields (TEMPLATE order, '' = absent). With the
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

}  // namespace queue_lua
}  // namespace detail
}  // namespace v0
}  // namespace redkit
