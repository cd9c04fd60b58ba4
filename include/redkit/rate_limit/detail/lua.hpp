// SPDX-License-Identifier: MIT
// The Lua behind redkit::rate_limiter, in detail::rate_limit_lua: one script per algorithm
// (fixed_window, sliding_window, token_bucket, gcra), each run as one EVALSHA.
//
// Common contract of the four scripts:
//   KEYS[1]  the identifier's only key (its name carries the identifier as a hash tag)
//   ARGV[1]  the limit (fixed/sliding window), the capacity (token bucket) or the burst (GCRA)
//   ARGV[2]  the window in ms (fixed/sliding window) or the interval in us that adds one unit of
//            quota (token bucket, GCRA)
//   ARGV[3]  the cost of this request (>= 0; the C++ side checks cost <= ARGV[1])
//   ARGV[4]  '1' to peek (read only: nothing is written), '0' to hit
//   returns  {allowed (1|0), limit, remaining, reset_after_ms, retry_after_ms}, all integers:
//            remaining is the quota left after this hit (for a peek: left now, nothing charged);
//            reset_after_ms is the time until the whole quota is available again; retry_after_ms
//            is 0 when allowed, else the time after which the same request would be allowed
//            (>= 1). Durations are rounded up to whole ms, so retrying then always succeeds.
// Time: fixed window relies on the server's key expiry; the others read redis.call('TIME') and
// work in integer ms (sliding window) or us (token bucket, GCRA), never the caller's clock.
// Numbers: Lua numbers are doubles; every value here stays an integer below 2^53 (the C++ side
// bounds limit * window and capacity * interval), and Redis passes numbers to redis.call as
// "%.17g", which prints such integers exactly.
#pragma once

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace rate_limit_lua {

// Fixed window. KEYS[1]: a counter (string) of the cost charged in the current window, expiring
// when the window ends. INCRBY charges every hit, denied ones included (documented choice); the
// window's TTL is set only when PTTL < 0 -- a new key, or one left without a TTL by a crashed
// "INCR then EXPIRE" limiter (healed here) -- and never re-armed, so steady traffic cannot keep a
// window open forever. Peek: GET + PTTL.
inline constexpr std::string_view fixed_window = R"lua(
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local count, ttl, allowed
if ARGV[4] == '1' then
  count = tonumber(redis.call('GET', KEYS[1]) or '0')
  ttl = redis.call('PTTL', KEYS[1])
  if ttl == -1 then ttl = window elseif ttl < 0 then ttl = 0 end
  allowed = count + cost <= limit or cost == 0
else
  count = redis.call('INCRBY', KEYS[1], cost)
  ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
    ttl = window
  end
  allowed = count <= limit
end
local remaining = limit - count
if remaining < 0 then remaining = 0 end
-- a key lives through the millisecond its PTTL reaches 0 (expired means now > expiry), so the
-- quota is back ttl + 1 ms from now
local reset = 0
if ttl > 0 or count > 0 then reset = ttl + 1 end
if allowed then return {1, limit, remaining, reset, 0} end
return {0, limit, remaining, reset, reset}
)lua";

// Sliding window, two-bucket weighted estimate. KEYS[1]: a hash {w = index of the current
// window (server ms / window), c = cost charged in window w, p = cost charged in window w - 1}.
// estimate = c + p * (window - elapsed) / window, rounded up; a hit is allowed when
// estimate + cost <= limit, and only allowed hits are charged. The TTL (two windows from the
// current window's start) only collects dead state: correctness never depends on it.
inline constexpr std::string_view sliding_window = R"lua(
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local index = math.floor(now / window)
local elapsed = now - index * window
local s = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(s[1])
local cur, prev = 0, 0
if w == index then
  cur, prev = tonumber(s[2]) or 0, tonumber(s[3]) or 0
elseif w == index - 1 then
  prev = tonumber(s[2]) or 0
elseif w and w > index then
  -- the server clock stepped back: keep the counts and weigh the previous window fully
  index, elapsed = w, 0
  cur, prev = tonumber(s[2]) or 0, tonumber(s[3]) or 0
end
local carried = math.floor((prev * (window - elapsed) + window - 1) / window)
local remaining = limit - cur - carried
local allowed = cost <= remaining
if allowed and ARGV[4] ~= '1' and cost > 0 then
  cur = cur + cost
  remaining = remaining - cost
  redis.call('HSET', KEYS[1], 'w', index, 'c', cur, 'p', prev)
  redis.call('PEXPIRE', KEYS[1], 2 * window - elapsed)
end
if remaining < 0 then remaining = 0 end
local reset = 0
if cur > 0 then reset = 2 * window - elapsed elseif prev > 0 then reset = window - elapsed end
if allowed then return {1, limit, remaining, reset, 0} end
local retry
local room = (limit - cur - cost) * window
if room >= 0 then
  -- still in this window, once the previous window's weight has decayed enough
  retry = (window - elapsed) - math.floor(room / prev)
else
  -- in the next window, once this window's hits (then the previous ones) have decayed enough
  local at = window - math.floor((limit - cost) * window / cur)
  if at < 0 then at = 0 end
  retry = (window - elapsed) + at
end
if retry < 1 then retry = 1 end
return {0, limit, remaining, reset, retry}
)lua";

// Token bucket. KEYS[1]: a hash {tokens = whole tokens left, ts = server us when the last whole
// token was added (or the bucket was last seen full)}. ARGV[2] is the us per token. Tokens are
// added lazily: floor((now - ts) / interval) whole tokens, ts advancing by exactly that many
// intervals so no fraction is lost. Only allowed hits are charged (a denied hit writes nothing).
// The key expires when the bucket would be full again, which is the same as having no key.
inline constexpr std::string_view token_bucket = R"lua(
local capacity = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(s[1]), tonumber(s[2])
if not tokens or not ts then
  tokens, ts = capacity, now
elseif now > ts then
  local added = math.floor((now - ts) / interval)
  tokens, ts = tokens + added, ts + added * interval
end
if tokens >= capacity then tokens, ts = capacity, now end
local allowed = cost <= tokens
if allowed and ARGV[4] ~= '1' and cost > 0 then
  tokens = tokens - cost
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', ts)
  redis.call('PEXPIRE', KEYS[1], math.floor((ts + (capacity - tokens) * interval - now + 999) / 1000))
end
local reset = 0
if tokens < capacity then reset = math.floor((ts + (capacity - tokens) * interval - now + 999) / 1000) end
if allowed then return {1, capacity, tokens, reset, 0} end
local retry = math.floor((ts + (cost - tokens) * interval - now + 999) / 1000)
if retry < 1 then retry = 1 end
return {0, capacity, tokens, reset, retry}
)lua";

// GCRA (generic cell rate algorithm). KEYS[1]: a string holding the theoretical arrival time
// (TAT), server us. ARGV[1] is the burst, ARGV[2] the emission interval T in us. A hit of cost n
// is allowed when now >= max(TAT, now) + n*T - burst*T; then TAT becomes max(TAT, now) + n*T and
// the key expires at that TAT (when the full burst is available again, the same as no key).
// Only allowed hits are charged (a denied hit writes nothing).
inline constexpr std::string_view gcra = R"lua(
local burst = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local tolerance = burst * interval
local new_tat = tat + cost * interval
local allow_at = new_tat - tolerance
if now < allow_at then
  local remaining = math.floor((now - tat + tolerance) / interval)
  if remaining < 0 then remaining = 0 end
  local retry = math.floor((allow_at - now + 999) / 1000)
  return {0, burst, remaining, math.floor((tat - now + 999) / 1000), retry}
end
if ARGV[4] ~= '1' and cost > 0 then
  redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now + 999) / 1000))
  tat = new_tat
end
local remaining = math.floor((now - tat + tolerance) / interval)
if remaining < 0 then remaining = 0 end
return {1, burst, remaining, math.floor((tat - now + 999) / 1000), 0}
)lua";

}  // namespace rate_limit_lua
}  // namespace detail
}  // namespace v0
}  // namespace redkit
