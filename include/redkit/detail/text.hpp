// SPDX-License-Identifier: MIT
// Small text helpers shared by URL parsing and key escaping.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

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

/// Decodes %XX escapes into `out`; false (out unspecified) on a truncated or non-hex escape.
inline bool percent_decode_into(std::string_view in, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size()) return false;
        const int hi = hex_value(in[i + 1]);
        const int lo = hex_value(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
