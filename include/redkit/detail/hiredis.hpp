// SPDX-License-Identifier: MIT
// The only header that includes <hiredis/hiredis.h>. Everything version-specific lives here:
// hiredis 0.14.x (Debian 12, Ubuntu 22.04) and 1.x (Debian 13, Ubuntu 24.04, vcpkg, conan).
#pragma once

#include <redkit/error.hpp>

#include <hiredis/hiredis.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <poll.h>
#include <pthread.h>
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

struct context_deleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
};
struct reply_deleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
struct reader_deleter {
    void operator()(redisReader* r) const noexcept { redisReaderFree(r); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;
using reader_ptr = std::unique_ptr<redisReader, reader_deleter>;

inline timeval to_timeval(std::chrono::milliseconds ms) noexcept {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
    return tv;
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

/// Opens a blocking context (TCP or unix socket) with a connect timeout. Returns the context, or
/// nullptr with `why` set.
inline context_ptr open_context(const std::string& host, int port, const std::string& unix_socket,
                                std::chrono::milliseconds connect_timeout, std::string& why) {
    const timeval tv = to_timeval(connect_timeout);
    redisContext* raw = unix_socket.empty() ? redisConnectWithTimeout(host.c_str(), port, tv)
                                            : redisConnectUnixWithTimeout(unix_socket.c_str(), tv);
    context_ptr c(raw);
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
inline bool set_timeout(redisContext* c, std::chrono::milliseconds timeout) noexcept {
    return redisSetTimeout(c, to_timeval(timeout)) == REDIS_OK;
}

inline int context_fd(const redisContext* c) noexcept { return c->fd; }

/// True when an idle connection has nothing to read and no hang-up pending: anything readable on
/// an idle connection is EOF (closed by the server) or a stray reply, so the connection must go.
inline bool idle_connection_is_clean(const redisContext* c) noexcept {
    pollfd p{};
    p.fd = c->fd;
    p.events = POLLIN;
    const int n = ::poll(&p, 1, 0);
    return n == 0;
}

/// Polls the socket without sleeping until it is readable (or hung up) or `spin` has passed;
/// true when a read would not block. Waking a thread that sleeps in read() costs tens of
/// microseconds on virtual machines, more than a loopback reply takes to arrive.
inline bool spin_until_readable(const redisContext* c, std::chrono::microseconds spin) noexcept {
    if (c->reader && c->reader->pos < c->reader->len) return true;  // bytes already read, not parsed
    pollfd p{};
    p.fd = c->fd;
    p.events = POLLIN;
    const auto until = std::chrono::steady_clock::now() + spin;
    do {
        if (::poll(&p, 1, 0) != 0) return true;  // readable, hung up or failed: read() tells which
    } while (std::chrono::steady_clock::now() < until);
    return false;
}

/// SIGPIPE handling. hiredis writes with plain write()/send() without MSG_NOSIGNAL, so a server
/// that closed the socket raises SIGPIPE, whose default action kills the process.
inline void ignore_sigpipe_if_default() noexcept {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction current {};
        if (::sigaction(SIGPIPE, nullptr, &current) == 0 && !(current.sa_flags & SA_SIGINFO) &&
            current.sa_handler == SIG_DFL) {
            struct sigaction ignore {};
            ignore.sa_handler = SIG_IGN;
            sigemptyset(&ignore.sa_mask);
            ::sigaction(SIGPIPE, &ignore, nullptr);
        }
    });
}

/// Blocks SIGPIPE in this thread for a scope and swallows one raised inside it. Used when the
/// application asked redkit to leave the process-wide SIGPIPE disposition alone.
class sigpipe_block {
public:
    explicit sigpipe_block(bool active) noexcept : active_(active) {
        if (!active_) return;
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &pipe_only, &old_);
    }
    ~sigpipe_block() {
        if (!active_) return;
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
            sigset_t pipe_only;
            sigemptyset(&pipe_only);
            sigaddset(&pipe_only, SIGPIPE);
            const timespec zero{0, 0};
            while (sigtimedwait(&pipe_only, nullptr, &zero) == -1 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    sigpipe_block(const sigpipe_block&) = delete;
    sigpipe_block& operator=(const sigpipe_block&) = delete;

private:
    bool active_;
    bool was_pending_ = false;
    sigset_t old_{};
};

/// Parses one complete RESP reply from bytes with hiredis's own reader (for tests and tools).
/// Throws error(protocol_error) on malformed or incomplete input.
inline reply_ptr parse_resp(std::string_view bytes) {
    reader_ptr reader(redisReaderCreate());
    if (!reader) throw std::bad_alloc();
    if (redisReaderFeed(reader.get(), bytes.data(), bytes.size()) != REDIS_OK) {
        throw error(errc::protocol_error, "redkit: resp: cannot feed reader");
    }
    void* out = nullptr;
    if (redisReaderGetReply(reader.get(), &out) != REDIS_OK) {
        throw error(errc::protocol_error, std::string("redkit: resp: ") + reader->errstr);
    }
    if (out == nullptr) throw error(errc::protocol_error, "redkit: resp: incomplete reply");
    return reply_ptr(static_cast<redisReply*>(out));
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
