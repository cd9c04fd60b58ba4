// SPDX-License-Identifier: MIT
// The Lua behind redkit::session_store, in detail::session_lua: a prelude of helpers and one
// script per operation (create, read, update, rotate, revoke, revoke_by_id, revoke_all, list);
// see session.hpp for the key layout. Every script reads the clock with
// redis.call('TIME') (integer milliseconds) and returns strings, never Lua numbers, so no value
// is truncated or printed in exponent form on the way back.
//
// A session is a hash at <prefix>:session:{B}:<sha256(token) hex> with the fields
//   user, id (public session id), data (JSON), version, created, seen (last seen),
//   absolute (absolute deadline), idle (idle timeout), all times in ms since the epoch on the
//   server clock, and index (the name of the user's index key, <prefix>:user:<id>:{B}:sessions).
// Its PEXPIREAT is always min(seen + idle, absolute); its member in the index (the token hash) is
// scored with that same expiry, so the index is exact and pruned by score alone.
//
// Keys: the scripts that take a session key reach the user's index through the session's stored
// index field, after checking that the name lies in the same {B} tag; the scripts that take the
// index reach the sessions by <session key prefix>{B}:<member>. Those keys are not in KEYS, but
// they share the declared key's hash tag, hence its cluster slot (Redis Cluster only rejects
// undeclared keys of another slot).
#pragma once

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace session_lua {

/// Helpers prepended to every session script.
inline constexpr std::string_view prelude = R"lua(
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(n) return string.format('%.0f', n) end

-- The session hash at key: the session table; nil when the key does not exist; false and a
-- reason when the key holds something this store did not write.
local function load_session(key)
  local f = redis.pcall('HMGET', key, 'user', 'id', 'data', 'version', 'created', 'seen', 'absolute', 'idle', 'index')
  if f.err then return false, 'not a hash' end
  local any = false
  for i = 1, 9 do if f[i] then any = true end end
  if not any then
    if redis.call('EXISTS', key) == 1 then return false, 'no session fields' end
    return nil
  end
  local s = {user = f[1], id = f[2], data = f[3], version = tonumber(f[4]), created = tonumber(f[5]),
             seen = tonumber(f[6]), absolute = tonumber(f[7]), idle = tonumber(f[8]), index = f[9]}
  if not (s.user and s.id and s.data and s.version and s.created and s.seen and s.absolute and s.idle and s.index) then
    return false, 'missing or non-numeric fields'
  end
  return s
end

-- A session found by token: its index key must be <prefix><escaped user id><suffix>, where the
-- suffix holds the token's bucket tag, so the scripts never write outside the token's slot.
local function load_checked(key, ixp, ixs)
  local s, why = load_session(key)
  if not s then return s, why end
  local x = s.index
  if #x <= #ixp + #ixs or string.sub(x, 1, #ixp) ~= ixp or string.sub(x, -#ixs) ~= ixs then
    return false, 'index key outside the token bucket'
  end
  return s
end

local function expiry(s) return math.min(s.seen + s.idle, s.absolute) end

local function failed(r) return type(r) == 'table' and r.err ~= nil end

local function kill(key, s, member)
  redis.call('DEL', key)
  redis.pcall('ZREM', s.index, member)  -- a broken index must not keep a session alive
end

-- Marks activity: last seen = now, TTL = min(idle, absolute remaining) on the session and as its
-- index score; the index lives at least until this session's absolute deadline. The index is
-- written first, so a broken index (not a sorted set) fails before anything changed: false.
local function slide(key, s, member, now)
  local exp = math.min(now + s.idle, s.absolute)
  if failed(redis.pcall('ZADD', s.index, int(exp), member)) then return false end
  s.seen = now
  redis.call('HSET', key, 'seen', int(now))
  redis.call('PEXPIREAT', key, int(exp))
  if redis.call('PTTL', s.index) < s.absolute - now then redis.call('PEXPIREAT', s.index, int(s.absolute)) end
  return true
end

local broken_index = {'!', 'the index is not a sorted set'}

local function fields(s)
  return {s.user, s.id, s.data, int(s.version), int(s.created), int(s.seen), int(expiry(s)), int(s.absolute)}
end

local function reply(status, now, s)
  return {status, int(now), unpack(fields(s))}
end
)lua";

/// create. KEYS[1] the new session key, KEYS[2] the user's index.
/// ARGV[1] index member (token hash), ARGV[2] user id, ARGV[3] session id, ARGV[4] data (JSON),
/// ARGV[5] idle timeout ms, ARGV[6] absolute timeout ms.
/// Returns {'taken'} when the session key exists (a token collision; nothing written), else
/// {'ok', now, expires, absolute}. Prunes expired members of the index first, so an index of
/// another type fails the script (WRONGTYPE) before anything is written.
inline constexpr std::string_view create = R"lua(
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', int(now))
if redis.call('EXISTS', KEYS[1]) == 1 then return {'taken'} end
local idle, absolute = tonumber(ARGV[5]), now + tonumber(ARGV[6])
local exp = math.min(now + idle, absolute)
redis.call('ZADD', KEYS[2], int(exp), ARGV[1])
redis.call('HSET', KEYS[1], 'user', ARGV[2], 'id', ARGV[3], 'data', ARGV[4], 'version', '1',
           'created', int(now), 'seen', int(now), 'absolute', int(absolute), 'idle', int(idle), 'index', KEYS[2])
redis.call('PEXPIREAT', KEYS[1], int(exp))
if redis.call('PTTL', KEYS[2]) < absolute - now then redis.call('PEXPIREAT', KEYS[2], int(absolute)) end
return {'ok', int(now), int(exp), int(absolute)}
)lua";

/// read: get (slides), peek (does not), touch (slides, returns no data).
/// KEYS[1] session key. ARGV[1] index key prefix, ARGV[2] index key suffix, ARGV[3] index member
/// (token hash), ARGV[4] 'get' | 'peek' | 'touch'.
/// Returns nil when there is no live session (an expired one is deleted on the spot), {'!', reason}
/// when the key holds no valid session or (get, touch) its index is not a sorted set, else {'ok', now, user, id, data,
/// version, created, seen, expires, absolute} (data empty for touch).
inline constexpr std::string_view read = R"lua(
local now = now_ms()
local s, why = load_checked(KEYS[1], ARGV[1], ARGV[2])
if s == nil then return false end
if not s then return {'!', why} end
if now >= expiry(s) then kill(KEYS[1], s, ARGV[3]) return false end
if ARGV[4] ~= 'peek' and not slide(KEYS[1], s, ARGV[3], now) then return broken_index end
if ARGV[4] == 'touch' then s.data = '' end
return reply('ok', now, s)
)lua";

/// update: compare-and-set of the data on the session's version.
/// KEYS[1] session key. ARGV[1..3] as for read, ARGV[4] expected version, ARGV[5] new data (JSON).
/// Returns nil (no live session), {'!', reason} (corrupt session or index; nothing written),
/// {'conflict', ...as read} when the
/// version differs (nothing written; the current session with its data), or {'ok', ...as read}
/// with the data field empty after writing data, version + 1 and sliding like read.
inline constexpr std::string_view update = R"lua(
local now = now_ms()
local s, why = load_checked(KEYS[1], ARGV[1], ARGV[2])
if s == nil then return false end
if not s then return {'!', why} end
if now >= expiry(s) then kill(KEYS[1], s, ARGV[3]) return false end
if s.version ~= tonumber(ARGV[4]) then return reply('conflict', now, s) end
if not slide(KEYS[1], s, ARGV[3], now) then return broken_index end
s.version = s.version + 1
redis.call('HSET', KEYS[1], 'data', ARGV[5], 'version', int(s.version))
s.data = ''
return reply('ok', now, s)
)lua";

/// rotate: moves the session to a new token's key; the old key is gone in the same step.
/// KEYS[1] current session key, KEYS[2] new session key (same bucket tag).
/// ARGV[1..3] as for read, ARGV[4] the new index member (new token hash).
/// Returns nil (no live session), {'!', reason} (corrupt session or index; nothing changed),
/// {'taken'} (the new key exists; nothing changed) or {'ok'}. Timeouts, data, version and session id are kept (RENAME
/// keeps the TTL).
inline constexpr std::string_view rotate = R"lua(
local now = now_ms()
local s, why = load_checked(KEYS[1], ARGV[1], ARGV[2])
if s == nil then return false end
if not s then return {'!', why} end
if now >= expiry(s) then kill(KEYS[1], s, ARGV[3]) return false end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'taken'} end
if failed(redis.pcall('ZREM', s.index, ARGV[3])) then return broken_index end
redis.call('ZADD', s.index, int(expiry(s)), ARGV[4])
redis.call('RENAME', KEYS[1], KEYS[2])
return {'ok'}
)lua";

/// revoke one session by token. KEYS[1] session key. ARGV[1..3] as for read.
/// Returns nil when there was no live session, {'ok'} when one was deleted (with its index
/// member), {'!', reason} when the key held no valid session (it is deleted all the same).
inline constexpr std::string_view revoke = R"lua(
local now = now_ms()
local s, why = load_checked(KEYS[1], ARGV[1], ARGV[2])
if s == nil then return false end
if not s then redis.call('DEL', KEYS[1]) return {'!', why} end
local live = now < expiry(s)
kill(KEYS[1], s, ARGV[3])
if live then return {'ok'} end
return false
)lua";

/// revoke one session of a user by its public id. KEYS[1] the user's index.
/// ARGV[1] session key prefix ('<prefix>:session:{B}:'), ARGV[2] session id.
/// Returns 1 when a live session with that id was deleted, else 0. Prunes expired members.
inline constexpr std::string_view revoke_by_id = R"lua(
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local id = redis.pcall('HGET', ARGV[1] .. m, 'id')
  if id == ARGV[2] then
    redis.call('DEL', ARGV[1] .. m)
    redis.call('ZREM', KEYS[1], m)
    return 1
  end
end
return 0
)lua";

/// revoke every session of a user. KEYS[1] the user's index. ARGV[1] session key prefix.
/// Deletes every session in the index and the index itself. Returns how many live sessions
/// were deleted.
inline constexpr std::string_view revoke_all = R"lua(
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('DEL', ARGV[1] .. m)
end
redis.call('DEL', KEYS[1])
return n
)lua";

/// list a user's live sessions. KEYS[1] the user's index. ARGV[1] session key prefix.
/// Prunes expired members (and members whose session key is gone), then returns
/// {now, then per session: status, user, id, data, version, created, seen, expires, absolute}
/// where status is 'ok', or '!' for a key that holds no valid session (user is then the index
/// member, data the reason, the other fields empty). Does not slide any session.
inline constexpr std::string_view list = R"lua(
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
local out = {int(now)}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local s, why = load_session(ARGV[1] .. m)
  local row = nil
  if s == nil then
    redis.call('ZREM', KEYS[1], m)
  elseif not s or s.index ~= KEYS[1] then
    row = {'!', m, '', why or 'stored index key does not match', '', '', '', '', ''}
  elseif now < expiry(s) then
    row = fields(s)
    table.insert(row, 1, 'ok')
  end
  if row then for _, v in ipairs(row) do out[#out + 1] = v end end
end
return out
)lua";

}  // namespace session_lua
}  // namespace detail
}  // namespace v0
}  // namespace redkit
