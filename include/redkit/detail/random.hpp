// SPDX-License-Identifier: MIT
// The one source of random tokens: bytes from the operating system's CSPRNG, as hex or as
// URL-safe base64 (RFC 4648 section 5, no padding). Session tokens and ids, the cache's lock
// tokens and worker ids all come from here; fork() cannot make two processes share a token.
//
// The CSPRNG is getrandom(2) on Linux (blocking only until the kernel pool is first initialised),
// falling back to reading /dev/urandom when the system call is missing (ENOSYS, old kernels,
// seccomp filters). There is deliberately no fallback to a user-space generator: if neither source
// works, random_bytes throws std::system_error rather than hand out a guessable token.
#pragma once

#include <redkit/detail/text.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__) && defined(__has_include)
#if __has_include(<sys/random.h>)
#include <sys/random.h>
#define REDKIT_HAS_GETRANDOM 1
#endif
#endif

namespace redkit {
inline namespace v0 {
namespace detail {

inline constexpr char base64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The 6-bit value of a base64url character, or -1.
constexpr int base64url_value(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/// Fills [out, out + n) from /dev/urandom (the fallback of random_bytes). Throws std::system_error.
inline void read_urandom(unsigned char* p, std::size_t n) {
    const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "redkit: cannot open /dev/urandom");
    std::size_t done = 0;
    while (done < n) {
        const ssize_t r = ::read(fd, p + done, n - done);
        if (r > 0) {
            done += static_cast<std::size_t>(r);
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            const int e = r < 0 ? errno : EIO;
            ::close(fd);
            throw std::system_error(e, std::generic_category(), "redkit: cannot read /dev/urandom");
        }
    }
    ::close(fd);
}

/// Fills [out, out + n) from the OS CSPRNG. Throws std::system_error when no source works.
inline void random_bytes(void* out, std::size_t n) {
    auto* p = static_cast<unsigned char*>(out);
    std::size_t done = 0;
#ifdef REDKIT_HAS_GETRANDOM
    while (done < n) {
        const ssize_t r = ::getrandom(p + done, n - done, 0);
        if (r > 0) {
            done += static_cast<std::size_t>(r);
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            break;  // ENOSYS (or EPERM under a seccomp filter): fall back to /dev/urandom
        }
    }
#endif
    if (done < n) read_urandom(p + done, n - done);
}

/// `bytes` random bytes from the OS CSPRNG as 2 * bytes lower-case hex digits.
inline std::string random_hex(std::size_t bytes) {
    unsigned char buf[64];
    std::string out;
    while (bytes > 0) {
        const std::size_t n = bytes < sizeof buf ? bytes : sizeof buf;
        random_bytes(buf, n);
        out += to_hex(buf, n);
        bytes -= n;
    }
    return out;
}

/// URL-safe base64 without padding.
inline std::string base64url_encode(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::string out;
    out.reserve((n * 4 + 2) / 3);
    std::uint32_t acc = 0;
    int bits = 0;
    for (std::size_t i = 0; i < n; ++i) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += base64url_alphabet[(acc >> bits) & 0x3F];
        }
    }
    if (bits > 0) out += base64url_alphabet[(acc << (6 - bits)) & 0x3F];
    return out;
}

/// Decodes URL-safe base64 without padding; nullopt for a character outside the alphabet, an
/// impossible length (4k+1) or non-zero trailing bits (each byte string has one encoding).
inline std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        const int v = base64url_value(c);
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    if ((acc & ((1u << bits) - 1u)) != 0) return std::nullopt;
    return out;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
