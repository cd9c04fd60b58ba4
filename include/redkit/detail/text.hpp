// SPDX-License-Identifier: MIT
// Small text helpers: hex digits, percent-decoding (URLs and key parts), command-name lists.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

/// Whether a command name (any case) is one of `list` (upper-case names of at most 16 bytes).
template <std::size_t N>
bool command_in(std::string_view name, const std::string_view (&list)[N]) noexcept {
    if (name.size() > 16) return false;
    char upper[16];
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        upper[i] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    }
    const std::string_view u(upper, name.size());
    for (const std::string_view s : list) {
        if (s == u) return true;
    }
    return false;
}

inline constexpr char hex_lower[] = "0123456789abcdef";
inline constexpr char hex_upper[] = "0123456789ABCDEF";

/// Bytes as lower-case hex digits.
inline std::string to_hex(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::string out(2 * n, '0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = hex_lower[p[i] >> 4];
        out[2 * i + 1] = hex_lower[p[i] & 0xF];
    }
    return out;
}

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
