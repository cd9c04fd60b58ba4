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

#include <redkit/config.hpp>

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

/// Appends the metadata trailer to encoded value bytes.
REDKIT_DECL void append_cache_trailer(std::string& out, const cache_meta& m);

/// Splits stored bytes into the value bytes (returned) and the metadata, when a valid trailer is
/// present (has_meta). Bytes without a trailer are returned whole.
REDKIT_DECL std::string_view split_cache_entry(std::string_view stored, cache_meta& meta, bool& has_meta) noexcept;

/// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): recompute before the logical expiry when
/// now - delta * beta * ln(draw) >= expiry. `draw` is uniform in (0, 1]; it is clamped to
/// [cache_min_draw, 1] (a draw of 0 would mean "infinitely early"). beta <= 0 or delta == 0 never
/// refresh early.
REDKIT_DECL bool xfetch_should_refresh(long long now_ms, const cache_meta& m, double beta, double draw) noexcept;

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/cache/detail/impl/entry.ipp>
#endif
