// SPDX-License-Identifier: MIT
// The Lua behind redkit::cache, in detail::cache_lua: one script, the compare-and-delete that
// releases the cross-process recompute lock.
#pragma once

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace cache_lua {

/// Releases the cross-process recompute lock only if this caller still holds it (compare and
/// delete), so a caller whose lock expired mid-load never deletes the lock of the next holder.
/// KEYS[1] the lock key; ARGV[1] the caller's random token.
/// Returns 1 when the lock held the token and was deleted, 0 otherwise (expired, or another
/// holder's).
inline constexpr std::string_view unlock = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

}  // namespace cache_lua
}  // namespace detail
}  // namespace v0
}  // namespace redkit
