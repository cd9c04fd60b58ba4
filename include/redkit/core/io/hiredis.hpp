// SPDX-License-Identifier: MIT
// The hiredis layer: with tls.hpp (hiredis_ssl, OpenSSL) and impl/raw.ipp (the reply tree), the
// only code that includes hiredis or names a hiredis symbol. Everything version-specific lives
// here: hiredis 0.14.x (Debian 12, Ubuntu 22.04) and 1.x (Debian 13, Ubuntu 24.04, vcpkg, conan).
// Above it, the transport (transport.hpp) drives contexts through these functions, and the reply
// view (reply.hpp) reads reply trees through raw.hpp.
#pragma once

#include <redkit/core/io/raw.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/error.hpp>
#include <redkit/reply_type.hpp>

#include <hiredis/hiredis.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>

#include <sys/time.h>

#if !defined(HIREDIS_MAJOR)
#error "redkit: <hiredis/hiredis.h> does not define HIREDIS_MAJOR; hiredis 0.14 or newer is required"
#endif

#if HIREDIS_MAJOR >= 1
#define REDKIT_HIREDIS_1X 1
#else
#define REDKIT_HIREDIS_1X 0
#endif

namespace redkit {
inline namespace v0 {
namespace detail {

// ---- contexts (blocking, driven by detail::transport) ----

struct context_deleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

inline timeval to_timeval(std::chrono::milliseconds ms) noexcept {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
    return tv;
}

/// Opens a blocking context (TCP or unix socket) with a connect timeout. Returns the context, or
/// nullptr with `why` set.
inline context_ptr open_context(const std::string& host, int port, const std::string& unix_socket,
                                std::chrono::milliseconds connect_timeout, std::string& why) {
    const timeval tv = to_timeval(connect_timeout);
    context_ptr c(unix_socket.empty() ? redisConnectWithTimeout(host.c_str(), port, tv)
                                      : redisConnectUnixWithTimeout(unix_socket.c_str(), tv));
    if (!c) {
        why = "cannot allocate a hiredis context";
        return nullptr;
    }
    if (c->err != 0) {
        why = c->errstr;
        return nullptr;
    }
    return c;
}

/// Sets the socket's send and receive timeout; 0 means no timeout.
inline bool set_context_timeout(redisContext* c, std::chrono::milliseconds timeout) noexcept {
    return redisSetTimeout(c, to_timeval(timeout)) == REDIS_OK;
}

inline int context_fd(const redisContext* c) noexcept { return c->fd; }
inline const char* context_error_text(const redisContext* c) noexcept { return c->errstr; }

/// Whether bytes already read from the socket wait in the reader, not parsed yet.
inline bool context_has_unparsed_bytes(const redisContext* c) noexcept {
    return c->reader && c->reader->pos < c->reader->len;
}

/// Buffers one command (formatted by hiredis). Throws std::bad_alloc when hiredis cannot.
inline void context_append(redisContext* c, const argv& a) {
    if (redisAppendCommandArgv(c, static_cast<int>(a.size()), const_cast<const char**>(a.data()), a.lengths()) !=
        REDIS_OK) {
        throw std::bad_alloc();
    }
}

/// Buffers bytes that already are RESP (pipelines encode their commands themselves).
inline void context_append_formatted(redisContext* c, std::string_view resp) {
    if (redisAppendFormattedCommand(c, resp.data(), resp.size()) != REDIS_OK) throw std::bad_alloc();
}

/// One write of the output buffer; false on failure (errno and the context tell why).
inline bool context_write(redisContext* c, bool& done) noexcept {
    int finished = 0;
    const bool ok = redisBufferWrite(c, &finished) == REDIS_OK;
    done = finished != 0;
    return ok;
}

/// The next reply, reading (blocking, up to the socket timeout) as needed. False on failure.
inline bool context_read_reply(redisContext* c, reply_ptr& out) noexcept {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK) return false;
    out.reset(static_cast<raw_node*>(raw));
    return true;
}

/// One read of whatever the socket has into the reader. False on failure (EOF, reset).
inline bool context_read_available(redisContext* c) noexcept { return redisBufferRead(c) == REDIS_OK; }

/// A complete reply already in the reader, without I/O: true with `out` set, true with `out`
/// empty when none is complete yet, false on a protocol error.
inline bool context_take_buffered(redisContext* c, reply_ptr& out) noexcept {
    void* raw = nullptr;
    if (redisGetReplyFromReader(c, &raw) != REDIS_OK) return false;
    out.reset(static_cast<raw_node*>(raw));
    return true;
}

inline bool looks_like_timeout(const char* text) noexcept {
    return std::strstr(text, "temporarily unavailable") != nullptr || std::strstr(text, "timed out") != nullptr ||
           std::strstr(text, "timeout") != nullptr;
}

/// Maps a failed context to a redkit condition. 0.14 reports a read timeout as REDIS_ERR_IO with
/// errno EAGAIN ("Resource temporarily unavailable"); 1.x has REDIS_ERR_TIMEOUT. Both become
/// errc::timeout. A reset or broken pipe is a closed connection, like EOF.
inline errc classify(const redisContext* c, int saved_errno) noexcept {
    switch (c->err) {
#ifdef REDIS_ERR_TIMEOUT
        case REDIS_ERR_TIMEOUT: return errc::timeout;
#endif
        case REDIS_ERR_EOF: return errc::connection_closed;
        case REDIS_ERR_PROTOCOL: return errc::protocol_error;
        case REDIS_ERR_IO:
            if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT ||
                looks_like_timeout(c->errstr)) {
                return errc::timeout;
            }
            if (saved_errno == EPIPE || saved_errno == ECONNRESET || saved_errno == ECONNABORTED ||
                std::strstr(c->errstr, "reset") != nullptr || std::strstr(c->errstr, "Broken pipe") != nullptr) {
                return errc::connection_closed;
            }
            return errc::io_error;
        default: return errc::io_error;
    }
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
