// SPDX-License-Identifier: MIT
// The queue's Lua that reads a queue or a job for its user and the tools (get, counts, list,
// logs, metrics, limit_info), and log, which appends a line to a job's log.
// queue/detail/model.hpp describes the keys and fields they use.
#pragma once

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace queue_lua {

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
// children, in groups' lines}; while paused, the wait list counts as paused.
inline constexpr std::string_view counts = R"lua(
local w = redis.call('LLEN', K_WAIT)
local paused = 0
if is_paused() then
  paused = w
  w = 0
end
return {w, redis.call('ZCARD', K_ACTIVE), redis.call('ZCARD', K_DELAYED), redis.call('ZCARD', K_PRIO),
        redis.call('ZCARD', K_COMPLETED), redis.call('ZCARD', K_FAILED), paused,
        redis.call('ZCARD', queue_key('waiting-children')), tonumber(redis.call('HGET', K_META, 'gw')) or 0}
)lua";

// list: a page of jobs in one state. ARGV[2] state letter (w waiting or paused, p, d, a, c, f, x;
// g: the line of group ARGV[6]),
// ARGV[3] offset, ARGV[4] count, ARGV[5] '1' newest first. Returns {total in that state, {id,
// fields, lease (active) or due ms (delayed: its score) or false, ...}}. Oldest first is the
// order the queue handles them: next to run (waiting, prioritized), soonest due (delayed),
// soonest lease deadline (active), first finished.
inline constexpr std::string_view list = R"lua(
local st, off, n, newest = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local ids, total = {}, 0
if st == 'w' or st == 'g' then
  local line = K_WAIT
  if st == 'g' then line = group_list(ARGV[6]) end
  total = redis.call('LLEN', line)
  -- LPUSH in, RPOP out: the newest is at the head
  if newest then
    ids = redis.call('LRANGE', line, off, off + n - 1)
  else
    local r = redis.call('LRANGE', line, -(off + n), -(off + 1))
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

// groups: ARGV[2] a group's name (stored form), or '' for a page of the list of groups (by name)
// from offset ARGV[3], ARGV[4] of them. Returns {total groups listed, default concurrency or
// false, rate limit max or false, its window ms or false, {name, jobs in line, active, '1' paused
// or '', own concurrency or false, ms it is held by the rate limit until or false, ...}}.
inline constexpr std::string_view groups = R"lua(
local gall = queue_key('gall')
local names
if ARGV[2] ~= '' then
  names = {}
  if redis.call('ZSCORE', gall, ARGV[2]) then names[1] = ARGV[2] end
else
  names = redis.call('ZRANGE', gall, tonumber(ARGV[3]), tonumber(ARGV[3]) + tonumber(ARGV[4]) - 1)
end
local out = {}
for i = 1, #names do
  local g = names[i]
  out[#out + 1] = g
  out[#out + 1] = redis.call('LLEN', group_list(g))
  out[#out + 1] = tonumber(redis.call('HGET', queue_key('gactive'), g)) or 0
  out[#out + 1] = redis.call('HEXISTS', queue_key('gpaused'), g) == 1 and '1' or ''
  out[#out + 1] = redis.call('HGET', queue_key('gcap'), g)
  out[#out + 1] = redis.call('ZSCORE', queue_key('gheld'), g)
end
local m = redis.call('HMGET', K_META, 'gcap', 'glmax', 'gldur')
return {redis.call('ZCARD', gall), m[1], m[2], m[3], out}
)lua";

}  // namespace queue_lua
}  // namespace detail
}  // namespace v0
}  // namespace redkit
