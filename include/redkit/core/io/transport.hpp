// SPDX-License-Identifier: MIT
// detail::transport: one socket to Redis (TCP or unix) behind a blocking hiredis context. The
// only place where sockets are written, read, polled and where SIGPIPE is handled; the
// connection (connection.hpp) is built on it and nothing else touches a socket. A TLS transport
// slots in here: its wait must also consult the bytes OpenSSL already decrypted, which is why
// patterns never poll a socket themselves.
#pragma once

#include <redkit/core/io/hiredis.hpp>
#include <redkit/core/io/tls.hpp>
#include <redkit/core/io/wait.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>
#include <redkit/reply.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include <poll.h>
#include <pthread.h>

namespace redkit {
inline namespace v0 {
namespace detail {

/// Outcome of a socket operation: ok, or a transport failure with whether the request may have
/// reached the server (maybe_sent == false proves it did not, so a retry cannot double it).
struct io_status {
    errc code{};
    bool maybe_sent = false;
    std::string text;
    bool ok() const noexcept { return code == errc{}; }
};

/// Builds the exception for a failed transport operation, naming the command and its key: the
/// one place a status's text gets its "redkit: <command> <key>: " prefix.
inline error transport_error(const io_status& st, std::string_view command, std::string_view key) {
    return error(st.code, origin{command, key}.prefix() + st.text);
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

/// A blocking context and its state. After any failure it is broken for good: a desynchronised
/// context would read a late reply as the answer to the next command.
class transport {
public:
    /// Not connected: connect() next.
    transport() = default;

    /// Connects (TCP or unix socket, connect_timeout; then the TLS handshake when o.tls.enabled,
    /// within connect_timeout too). Throws error(connect_failed) naming the endpoint (and, for
    /// TLS, the certificate's fault), std::invalid_argument for TLS in a build without it.
    explicit transport(const client_options& o) : transport(o, o.host, o.port) {}

    /// Connects to host:port (Sentinel's answer, say) with the rest of `o`.
    transport(const client_options& o, const std::string& host, int port) {
        if (io_status st = connect(o, host, port); !st.ok()) throw error(st.code, "redkit: " + st.text);
    }

    /// Connects as the constructor does, but a failure to reach the server is returned, not thrown:
    /// connect_failed (or timeout, for a TLS handshake nobody answers) with the text "connect
    /// <endpoint>: <why>" and maybe_sent false. A TLS configuration that cannot be loaded still
    /// throws, as do bad options (std::invalid_argument).
    io_status connect(const client_options& o, const std::string& host, int port) {
        block_sigpipe_ = !o.ignore_sigpipe;
        if (o.tls.enabled && !tls_available) throw std::invalid_argument(no_tls_message("client_options::tls"));
        if (o.tls.enabled && !o.unix_socket.empty()) {
            throw std::invalid_argument("redkit: client_options::tls: TLS over a unix socket is not supported");
        }
        if (o.ignore_sigpipe) ignore_sigpipe_if_default();
        std::string why;
        ctx_ = open_context(host, port, o.unix_socket, o.connect_timeout, why);
        if (!ctx_) return {errc::connect_failed, false, "connect " + endpoint_of(o, host, port) + ": " + why};
#if REDKIT_HAS_TLS
        if (o.tls.enabled) {
            tls_ = tls_context_for(o.tls);
            set_context_timeout(ctx_.get(), o.connect_timeout);  // bounds the handshake
            bool timed_out = false;
            ssl_ = start_tls(ctx_.get(), *tls_, host, o.tls, why, timed_out);
            if (!ssl_) {
                // a handshake nobody answers (a stopped server) is a timeout, like a setup's
                ctx_.reset();
                return {timed_out ? errc::timeout : errc::connect_failed, false,
                        "connect " + endpoint_of(o, host, port) + ": TLS handshake: " + why};
            }
        }
#endif
        return {};
    }

    static std::string endpoint_of(const client_options& o) { return endpoint_of(o, o.host, o.port); }
    static std::string endpoint_of(const client_options& o, const std::string& host, int port) {
        if (!o.unix_socket.empty()) return o.unix_socket;
        return host + ":" + std::to_string(port);
    }

    bool broken() const noexcept { return broken_; }
    /// Marks the transport unusable (its reply stream is in doubt), for `why` (the observer's
    /// close_event; the first reason given stays).
    void poison(close_reason why = close_reason::error) noexcept { break_for(why); }
    /// Why it broke (closed: it did not).
    close_reason broken_by() const noexcept { return broken_ ? reason_ : close_reason::closed; }

    std::chrono::milliseconds timeout() const noexcept { return timeout_; }
    bool set_timeout(std::chrono::milliseconds t) noexcept {
        if (t == timeout_ && timeout_set_) return true;
        if (!set_context_timeout(ctx_.get(), t)) {
            break_for(close_reason::error);
            return false;
        }
        timeout_ = t;
        timeout_set_ = true;
        return true;
    }

    void append(const argv& a) { context_append(ctx_.get(), a); }
    void append_formatted(std::string_view resp) { context_append_formatted(ctx_.get(), resp); }

    /// Writes everything buffered.
    io_status flush() {
        if (broken_) return {errc::connection_closed, false, "connection already broken"};
        sigpipe_block guard(block_sigpipe_);
        bool done = false;
        bool first = true;
        do {
            if (!context_write(ctx_.get(), done)) {
                // A write refused outright (EPIPE/ECONNRESET on the first write) proves the server
                // never saw this request: the peer was already gone.
                const int saved = errno;
                const bool refused = first && (saved == EPIPE || saved == ECONNRESET);
                return fail(saved, !refused);
            }
            first = false;
        } while (!done);
        return {};
    }

    /// Reads one reply, blocking up to the timeout; first polls the socket for up to `spin`
    /// without sleeping (waking a sleeping thread costs tens of microseconds on virtual
    /// machines, more than a loopback reply takes to arrive).
    io_status read(reply_ptr& out, std::chrono::microseconds spin = {}) {
        if (broken_) return {errc::connection_closed, true, "connection already broken"};
        if (spin.count() > 0) spin_until_readable(spin);
        errno = 0;
        if (!context_read_reply(ctx_.get(), out)) return fail(errno, true);
        replied_ = true;
        return {};
    }

    /// Polls the socket without sleeping for up to `spin`, until it is readable (or a reply is
    /// already buffered).
    void spin_until_readable(std::chrono::microseconds spin) const noexcept {
        if (context_has_unparsed_bytes(ctx_.get())) return;
#if REDKIT_HAS_TLS
        if (tls_has_pending(ssl_)) return;
#endif
        pollfd p{};
        p.fd = context_fd(ctx_.get());
        p.events = POLLIN;
        const auto until = std::chrono::steady_clock::now() + spin;
        do {
            if (::poll(&p, 1, 0) != 0) return;  // readable, hung up or failed: read() tells which
        } while (std::chrono::steady_clock::now() < until);
    }

    /// A complete reply already read, without I/O: true with `out` set or left empty (none is
    /// complete yet); false on a failure, described by `st`. No status is built on the way that
    /// succeeds (it runs once per pub/sub message).
    bool take_buffered(reply_ptr& out, io_status& st) {
        if (broken_) {
            st = {errc::connection_closed, true, "connection already broken"};
            return false;
        }
        if (context_take_buffered(ctx_.get(), out)) {
            if (out) replied_ = true;
            return true;
        }
        st = fail(0, true);
        return false;
    }

    /// Waits until more bytes can be read (or the peer hung up), `wake` is raised, or `timeout`
    /// passes. Over TLS it answers "readable" at once while OpenSSL holds decrypted bytes: the
    /// socket shows only what OpenSSL has not read yet.
    wait_result wait_readable(const notifier& wake, std::chrono::milliseconds timeout) const {
#if REDKIT_HAS_TLS
        if (tls_has_pending(ssl_)) return wait_result::readable;
#endif
        return detail::wait_readable(context_fd(ctx_.get()), wake, timeout);
    }

    /// Reads what the socket has (call it after wait_readable said so).
    io_status read_available() {
        if (broken_) return {errc::connection_closed, true, "connection already broken"};
        errno = 0;
        if (!context_read_available(ctx_.get())) return fail(errno, true);
        return {};
    }

    /// Whether an idle connection still looks healthy: anything readable on an idle connection is
    /// EOF (closed by the server) or a stray reply, so the connection must go.
    bool idle_check() noexcept {
        if (broken_) return false;
        pollfd p{};
        p.fd = context_fd(ctx_.get());
        p.events = POLLIN;
        if (::poll(&p, 1, 0) != 0) break_for(close_reason::idle_check);
        return !broken_;
    }

private:
    void break_for(close_reason why) noexcept {
        if (!broken_) reason_ = why;
        broken_ = true;
    }

    io_status fail(int saved_errno, bool maybe_sent) {
        io_status st;
        st.code = classify(ctx_.get(), saved_errno);
        break_for(st.code == errc::timeout             ? close_reason::timeout
                  : st.code == errc::connection_closed ? close_reason::eof
                                                       : close_reason::error);
        st.maybe_sent = maybe_sent;
        st.text = st.code == errc::timeout ? "timeout after " + std::to_string(timeout_.count()) + " ms"
                                           : std::string(redkit::error_category().message(static_cast<int>(st.code))) +
                                                 " (" + context_error_text(ctx_.get()) + ")";
#if REDKIT_HAS_TLS
        if (ssl_ != nullptr && st.code != errc::timeout) {
            // e.g. "tlsv13 alert certificate required": why a server closed a TLS connection
            if (const std::string alert = tls_last_alert(); !alert.empty()) {
                st.text += ", TLS: " + alert;
            } else if (!replied_ && st.code == errc::connection_closed) {
                st.text +=
                    ", TLS: closed before its first reply (does the server require a client certificate? "
                    "tls_options::cert_file)";
            }
        }
#endif
        return st;
    }

    context_ptr ctx_;
#if REDKIT_HAS_TLS
    std::shared_ptr<tls_context> tls_;  // shared by the connections made with the same tls_options
    SSL* ssl_ = nullptr;                // owned by ctx_ (hiredis frees it)
#endif
    bool block_sigpipe_ = false;
    bool broken_ = false;
    close_reason reason_ = close_reason::closed;  // why broken_ (the first reason)
    bool replied_ = false;                        // a reply was read (the setup's, or a command's)
    bool timeout_set_ = false;
    std::chrono::milliseconds timeout_{0};
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
