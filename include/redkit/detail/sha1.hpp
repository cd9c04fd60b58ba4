// SPDX-License-Identifier: MIT
// SHA-1 (FIPS 180-4), only to name Lua scripts the way Redis does (EVALSHA takes the hex SHA-1 of
// the script text). Not used for anything security-related.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

inline std::string sha1_hex(std::string_view data) {
    std::uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    const auto rotl = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };

    const auto block = [&](const unsigned char* p) {
        std::uint32_t w[80];
        for (int i = 0; i < 16; ++i) {
            w[i] = (std::uint32_t(p[4 * i]) << 24) | (std::uint32_t(p[4 * i + 1]) << 16) |
                   (std::uint32_t(p[4 * i + 2]) << 8) | std::uint32_t(p[4 * i + 3]);
        }
        for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; ++i) {
            std::uint32_t f, k;
            if (i < 20) {
                f = (b & c) | (~b & d);
                k = 0x5A827999u;
            } else if (i < 40) {
                f = b ^ c ^ d;
                k = 0x6ED9EBA1u;
            } else if (i < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8F1BBCDCu;
            } else {
                f = b ^ c ^ d;
                k = 0xCA62C1D6u;
            }
            const std::uint32_t t = rotl(a, 5) + f + e + k + w[i];
            e = d;
            d = c;
            c = rotl(b, 30);
            b = a;
            a = t;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
    };

    const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t n = data.size();
    std::size_t off = 0;
    for (; n - off >= 64; off += 64) block(bytes + off);

    unsigned char tail[128] = {};
    const std::size_t rest = n - off;
    for (std::size_t i = 0; i < rest; ++i) tail[i] = bytes[off + i];
    tail[rest] = 0x80;
    const std::size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
    const std::uint64_t bits = static_cast<std::uint64_t>(n) * 8u;
    for (int i = 0; i < 8; ++i) tail[tail_len - 1 - static_cast<std::size_t>(i)] = static_cast<unsigned char>(bits >> (8 * i));
    block(tail);
    if (tail_len == 128) block(tail + 64);

    static constexpr char hex[] = "0123456789abcdef";
    std::string out(40, '0');
    for (int i = 0; i < 5; ++i) {
        for (int j = 0; j < 8; ++j) out[static_cast<std::size_t>(i * 8 + j)] = hex[(h[i] >> (28 - 4 * j)) & 0xF];
    }
    return out;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
