// SPDX-License-Identifier: MIT
// Small text helpers shared by URL parsing and key escaping.
#pragma once

namespace redkit {
inline namespace v0 {
namespace detail {

/// The value of one hex digit (either case), or -1.
inline int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
