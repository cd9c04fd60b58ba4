// SPDX-License-Identifier: MIT
// The hiredis layer: with detail/tls.hpp (hiredis_ssl, OpenSSL), the only header that includes
// hiredis or names a hiredis symbol. Everything version-specific lives here: hiredis 0.14.x (Debian 12, Ubuntu 22.04)
// and 1.x (Debian 13, Ubuntu 24.04, vcpkg, conan). Above it, the transport (detail/transport.hpp) drives contexts and
// the reply view (reply.hpp) reads reply trees, both through these functions.
#pragma once

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

// ---- replies ----

/// One node of a parsed reply tree, as hiredis allocates it.
using raw_node = redisReply;

struct reply_deleter {
    void operator()(raw_node* r) const noexcept { freeReplyObject(r); }
};
/// An owned reply tree (freed with freeReplyObject).
using reply_ptr = std::unique_ptr<raw_node, reply_deleter>;

inline reply_type raw_type(const raw_node* r) noexcept {
    switch (r->type) {
        case REDIS_REPLY_STRING: return reply_type::string;
        case REDIS_REPLY_ARRAY: return reply_type::array;
        case REDIS_REPLY_INTEGER: return reply_type::integer;
        case REDIS_REPLY_NIL: return reply_type::nil;
        case REDIS_REPLY_STATUS: return reply_type::status;
        case REDIS_REPLY_ERROR: return reply_type::error;
#ifdef REDIS_REPLY_MAP
        case REDIS_REPLY_DOUBLE: return reply_type::real;
        case REDIS_REPLY_BOOL: return reply_type::boolean;
        case REDIS_REPLY_MAP: return reply_type::map;
        case REDIS_REPLY_SET: return reply_type::set;
        case REDIS_REPLY_PUSH: return reply_type::push;
        case REDIS_REPLY_BIGNUM: return reply_type::bignum;
        case REDIS_REPLY_VERB: return reply_type::verbatim;
#endif
        default: return reply_type::nil;
    }
}

inline bool raw_is_error(const raw_node* r) noexcept { return r->type == REDIS_REPLY_ERROR; }

inline std::string_view raw_str(const raw_node* r) noexcept {
    return r->str ? std::string_view(r->str, r->len) : std::string_view{};
}

inline long long raw_integer(const raw_node* r) noexcept { return r->integer; }

inline double raw_real(const raw_node* r) noexcept {
#ifdef REDIS_REPLY_MAP
    return r->dval;
#else
    (void)r;
    return 0.0;  // RESP2 has no doubles
#endif
}

/// Elements of an array, set, push or map (a map's keys and values alternate); 0 for others.
inline std::size_t raw_size(const raw_node* r) noexcept { return holds_elements(raw_type(r)) ? r->elements : 0; }

inline const raw_node* raw_at(const raw_node* r, std::size_t i) noexcept { return r->element[i]; }

/// Parses one complete RESP reply from bytes with hiredis's own reader (for tests and tools).
/// Throws error(protocol_error) on malformed or incomplete input.
inline reply_ptr parse_resp(std::string_view bytes) {
    struct reader_deleter {
        void operator()(redisReader* r) const noexcept { redisReaderFree(r); }
    };
    std::unique_ptr<redisReader, reader_deleter> reader(redisReaderCreate());
    if (!reader) throw std::bad_alloc();
    if (redisReaderFeed(reader.get(), bytes.data(), bytes.size()) != REDIS_OK) {
        throw error(errc::protocol_error, "redkit: resp: cannot feed reader");
    }
    void* out = nullptr;
    if (redisReaderGetReply(reader.get(), &out) != REDIS_OK) {
        throw error(errc::protocol_error, std::string("redkit: resp: ") + reader->errstr);
    }
    if (out == nullptr) throw error(errc::protocol_error, "redkit: resp: incomplete reply");
    return reply_ptr(static_cast<raw_node*>(out));
}

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
