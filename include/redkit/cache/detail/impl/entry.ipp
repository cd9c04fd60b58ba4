// SPDX-License-Identifier: MIT
// The stored-bytes format's out-of-line definitions (cache/detail/entry.hpp): the trailer's
// symbols, and the XFetch rule.
#pragma once

#include <redkit/cache/detail/entry.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

// The trailer's symbols: 2 bits a byte, most significant first (see entry.hpp).
inline int cache_symbol_value(char c) noexcept {
    switch (c) {
        case ' ': return 0;
        case '\t': return 1;
        case '\n': return 2;
        case '\r': return 3;
        default: return -1;
    }
}

inline void cache_put_symbols(std::string& out, std::uint64_t v, int symbols) {
    static constexpr char alphabet[4] = {' ', '\t', '\n', '\r'};
    for (int i = symbols - 1; i >= 0; --i) out += alphabet[(v >> (2 * i)) & 3U];
}

inline bool cache_get_symbols(std::string_view in, std::size_t& pos, int symbols, std::uint64_t& v) noexcept {
    v = 0;
    for (int i = 0; i < symbols; ++i, ++pos) {
        const int s = cache_symbol_value(in[pos]);
        if (s < 0) return false;
        v = (v << 2) | static_cast<std::uint64_t>(s);
    }
    return true;
}

inline long long cache_clamp(long long v, long long hi) noexcept { return v < 0 ? 0 : (v > hi ? hi : v); }

REDKIT_DECL void append_cache_trailer(std::string& out, const cache_meta& m) {
    out.reserve(out.size() + cache_trailer_size);
    cache_put_symbols(out, cache_trailer_magic, 8);
    cache_put_symbols(out, static_cast<std::uint64_t>(cache_clamp(m.expiry_ms, cache_max_expiry_ms)), 22);
    cache_put_symbols(out, static_cast<std::uint64_t>(cache_clamp(m.delta_us, cache_max_delta_us)), 20);
}

REDKIT_DECL std::string_view split_cache_entry(std::string_view stored, cache_meta& meta, bool& has_meta) noexcept {
    has_meta = false;
    if (stored.size() <= cache_trailer_size) return stored;
    const std::size_t start = stored.size() - cache_trailer_size;
    std::size_t pos = start;
    std::uint64_t magic = 0, expiry = 0, delta = 0;
    if (!cache_get_symbols(stored, pos, 8, magic) || magic != cache_trailer_magic) return stored;
    if (!cache_get_symbols(stored, pos, 22, expiry) || !cache_get_symbols(stored, pos, 20, delta)) return stored;
    meta.expiry_ms = static_cast<long long>(expiry);
    meta.delta_us = static_cast<long long>(delta);
    has_meta = true;
    return stored.substr(0, start);
}

REDKIT_DECL bool xfetch_should_refresh(long long now_ms, const cache_meta& m, double beta, double draw) noexcept {
    if (now_ms >= m.expiry_ms) return true;
    if (!(beta > 0) || m.delta_us <= 0) return false;
    if (!(draw > cache_min_draw)) draw = cache_min_draw;  // also catches NaN
    if (draw > 1) draw = 1;
    const double lead_ms = static_cast<double>(m.delta_us) / 1000.0 * beta * -std::log(draw);
    return static_cast<double>(now_ms) + lead_ms >= static_cast<double>(m.expiry_ms);
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
