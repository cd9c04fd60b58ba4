// SPDX-License-Identifier: MIT
// The bytes redkit::cache stores at a key, and the XFetch rule.
//
// A cached value is stored as its codec bytes (compact JSON by default) followed by a fixed-size
// trailer of JSON whitespace that carries the XFetch metadata:
//
//     {"id":42,"name":"chair"}<50 bytes drawn from ' ', '\t', '\n', '\r'>
//
// JSON (RFC 8259: JSON-text = ws value ws) allows whitespace after the value, so every conforming
// parser -- JSON.parse in Node, json.loads in Python, encoding/json in Go, nlohmann -- reads these
// bytes as exactly the value: the stored bytes stay plain JSON for other services, the hit path
// stays one GET, and no companion key is needed (a companion key would live in another Redis
// Cluster slot, and hash tags cannot be imposed on user keys, so reading both would be a CROSSSLOT
// MGET or a second command).
//
// Trailer layout, 2 bits per byte (' '=0, '\t'=1, '\n'=2, '\r'=3), most significant first:
//     8 symbols  magic 0xC7A5 (format version 1)
//    22 symbols  logical expiry, Unix epoch milliseconds (44 bits)
//    20 symbols  delta: how long the last recompute took, microseconds (40 bits, ~12.7 days)
// Bytes without a valid trailer (written by another service, or by a cache with
// store_metadata = false) are a value without metadata: fresh until Redis expires them.
//
// Cached absence (negative caching) is the marker "!redkit:absent": no JSON text starts with '!',
// so it can never be mistaken for a real value.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

/// The marker stored for a cached "absent" (a loader that returned std::nullopt).
inline constexpr std::string_view cache_absent_marker = "!redkit:absent";

/// XFetch metadata of one stored value.
struct cache_meta {
    long long expiry_ms = 0;  ///< logical expiry, Unix epoch milliseconds
    long long delta_us = 0;   ///< duration of the recompute that produced the value
};

inline constexpr std::size_t cache_trailer_size = 50;
inline constexpr std::uint64_t cache_trailer_magic = 0xC7A5;
inline constexpr long long cache_max_expiry_ms = (1LL << 44) - 1;
inline constexpr long long cache_max_delta_us = (1LL << 40) - 1;

/// The smallest random draw XFetch uses: -ln(1e-9) ~ 20.7, so an entry is never recomputed more
/// than 20.7 * delta * beta before its logical expiry.
inline constexpr double cache_min_draw = 1e-9;

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

/// Appends the metadata trailer to encoded value bytes.
inline void append_cache_trailer(std::string& out, const cache_meta& m) {
    out.reserve(out.size() + cache_trailer_size);
    cache_put_symbols(out, cache_trailer_magic, 8);
    cache_put_symbols(out, static_cast<std::uint64_t>(cache_clamp(m.expiry_ms, cache_max_expiry_ms)), 22);
    cache_put_symbols(out, static_cast<std::uint64_t>(cache_clamp(m.delta_us, cache_max_delta_us)), 20);
}

/// Splits stored bytes into the value bytes (returned) and the metadata, when a valid trailer is
/// present (has_meta). Bytes without a trailer are returned whole.
inline std::string_view split_cache_entry(std::string_view stored, cache_meta& meta, bool& has_meta) noexcept {
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

/// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): recompute before the logical expiry when
/// now - delta * beta * ln(draw) >= expiry. `draw` is uniform in (0, 1]; it is clamped to
/// [cache_min_draw, 1] (a draw of 0 would mean "infinitely early"). beta <= 0 or delta == 0 never
/// refresh early.
inline bool xfetch_should_refresh(long long now_ms, const cache_meta& m, double beta, double draw) noexcept {
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
