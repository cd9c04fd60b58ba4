// SPDX-License-Identifier: MIT
// SHA-1 and SHA-256 (FIPS 180-4), both incremental, in one shape: a block buffer that does the
// Merkle-Damgard padding, and a compression function per algorithm.
//
// SHA-1 only names Lua scripts the way Redis does (EVALSHA takes the hex SHA-1 of the script
// text); nothing security-related. SHA-256 turns a session token into the key it is stored
// under, so Redis never holds a usable token. Small, dependency-free implementations keep redkit
// header-only with nothing to link besides hiredis; both are checked against the NIST example
// vectors (tests/unit/hash_test.cpp). Speed is secondary: they hash scripts once and ~44-byte
// tokens.
#pragma once

#include <redkit/detail/text.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

/// The 64-byte block buffer and big-endian length padding shared by SHA-1 and SHA-256.
/// Algo provides `state` (Words 32-bit words, initialised), `compress(state, block)`.
template <class Algo, std::size_t Words>
class block_hash {
public:
    using digest_type = std::array<std::uint8_t, Words * 4>;

    block_hash& update(std::string_view data) noexcept {
        const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
        std::size_t n = data.size();
        length_ += n;
        if (buffered_ > 0) {
            while (n > 0 && buffered_ < 64) {
                buffer_[buffered_++] = *p++;
                --n;
            }
            if (buffered_ < 64) return *this;
            Algo::compress(state_, buffer_.data());
            buffered_ = 0;
        }
        for (; n >= 64; n -= 64, p += 64) Algo::compress(state_, p);
        for (std::size_t i = 0; i < n; ++i) buffer_[buffered_++] = p[i];
        return *this;
    }

    /// Pads, finishes and returns the digest. The object must not be used afterwards.
    digest_type digest() noexcept {
        const std::uint64_t bits = static_cast<std::uint64_t>(length_) * 8u;
        buffer_[buffered_++] = 0x80;
        if (buffered_ > 56) {
            while (buffered_ < 64) buffer_[buffered_++] = 0;
            Algo::compress(state_, buffer_.data());
            buffered_ = 0;
        }
        while (buffered_ < 56) buffer_[buffered_++] = 0;
        for (int i = 7; i >= 0; --i) buffer_[buffered_++] = static_cast<std::uint8_t>(bits >> (8 * i));
        Algo::compress(state_, buffer_.data());
        digest_type out{};
        for (std::size_t i = 0; i < Words; ++i) {
            out[4 * i] = static_cast<std::uint8_t>(state_[i] >> 24);
            out[4 * i + 1] = static_cast<std::uint8_t>(state_[i] >> 16);
            out[4 * i + 2] = static_cast<std::uint8_t>(state_[i] >> 8);
            out[4 * i + 3] = static_cast<std::uint8_t>(state_[i]);
        }
        return out;
    }

    /// The digest of `data` as lower-case hex.
    static std::string hex(std::string_view data) {
        const digest_type d = Algo().update(data).digest();
        return to_hex(d.data(), d.size());
    }

protected:
    explicit block_hash(const std::array<std::uint32_t, Words>& initial) noexcept : state_(initial) {}

    static std::uint32_t load_be(const std::uint8_t* p) noexcept {
        return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
               std::uint32_t{p[3]};
    }

private:
    std::array<std::uint32_t, Words> state_;
    std::array<std::uint8_t, 64> buffer_{};
    std::size_t buffered_ = 0;
    std::size_t length_ = 0;
};

class sha1 : public block_hash<sha1, 5> {
public:
    sha1() noexcept : block_hash({0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u}) {}

    static void compress(std::array<std::uint32_t, 5>& h, const std::uint8_t* p) noexcept {
        const auto rotl = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
        std::uint32_t w[80];
        for (std::size_t i = 0; i < 16; ++i) w[i] = load_be(p + 4 * i);
        for (std::size_t i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (std::size_t i = 0; i < 80; ++i) {
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
    }
};

class sha256 : public block_hash<sha256, 8> {
public:
    sha256() noexcept
        : block_hash({0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu,
                      0x5be0cd19u}) {}

    static void compress(std::array<std::uint32_t, 8>& h, const std::uint8_t* p) noexcept {
        static constexpr std::uint32_t k[64] = {
            0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
            0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
            0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
            0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
            0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
            0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
            0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
            0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
        };
        const auto rotr = [](std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
        std::uint32_t w[64];
        for (std::size_t i = 0; i < 16; ++i) w[i] = load_be(p + 4 * i);
        for (std::size_t i = 16; i < 64; ++i) {
            const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (std::size_t i = 0; i < 64; ++i) {
            const std::uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            const std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
        h[5] += f;
        h[6] += g;
        h[7] += hh;
    }
};

/// The hex SHA-1 of data (40 digits), as Redis names scripts.
inline std::string sha1_hex(std::string_view data) { return sha1::hex(data); }

/// The SHA-256 digest of data.
inline sha256::digest_type sha256_digest(std::string_view data) noexcept { return sha256().update(data).digest(); }

/// The SHA-256 digest of data as 64 lower-case hex digits.
inline std::string sha256_hex(std::string_view data) { return sha256::hex(data); }

/// Redis Cluster key slots: CRC16 of the key (or of its hash tag) modulo 16384.
inline constexpr int slot_count = 16384;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster hashes keys.
struct crc16_table {
    std::array<std::uint16_t, 256> t{};
    constexpr crc16_table() {
        for (int i = 0; i < 256; ++i) {
            std::uint16_t crc = static_cast<std::uint16_t>(i << 8);
            for (int b = 0; b < 8; ++b) {
                crc = static_cast<std::uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
            }
            t[static_cast<std::size_t>(i)] = crc;
        }
    }
};
inline constexpr crc16_table crc16_lookup{};

inline std::uint16_t crc16(std::string_view data) noexcept {
    std::uint16_t crc = 0;
    for (const char c : data) {
        const auto byte = static_cast<unsigned char>(c);
        crc = static_cast<std::uint16_t>((crc << 8) ^ crc16_lookup.t[((crc >> 8) ^ byte) & 0xff]);
    }
    return crc;
}

/// The part of a key Redis hashes: the text between the first '{' and the next '}' when that is
/// not empty, else the whole key.
inline std::string_view hashed_part(std::string_view key) noexcept {
    const auto open = key.find('{');
    if (open == std::string_view::npos) return key;
    const auto close = key.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1) return key;
    return key.substr(open + 1, close - open - 1);
}

inline int slot_of(std::string_view key) noexcept { return crc16(hashed_part(key)) & (slot_count - 1); }

}  // namespace detail
}  // namespace v0
}  // namespace redkit
