// SPDX-License-Identifier: MIT
// Server times (milliseconds since the epoch, as Lua scripts and TIME give them) to and from
// std::chrono::system_clock, for the patterns that report or take wall-clock times.
#pragma once

#include <chrono>

namespace redkit {
inline namespace v0 {
namespace detail {

inline long long to_epoch_ms(std::chrono::system_clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline std::chrono::system_clock::time_point from_epoch_ms(long long ms) noexcept {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::milliseconds(ms)));
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
