// SPDX-License-Identifier: MIT
// redkit::connection: one RAII connection to Redis over a blocking hiredis context.
//
// Not thread-safe: one thread at a time. The pooled redkit::client is built from these; use a
// connection directly when something must own a socket for itself (a subscriber, a blocking
// worker, a long WATCH/MULTI conversation).
//
// Opening a connection replays its whole setup in one round trip: AUTH (user and password, or
// password alone), SELECT db, CLIENT SETNAME. After any transport failure (timeout, EOF, reset,
// protocol error) the connection is broken for good: hiredis's context may be desynchronised (a
// late reply would be read as the answer to the next command), so it is never reused.
#pragma once

#include <redkit/detail/argv.hpp>
#include <redkit/detail/hiredis.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>
#include <redkit/reply.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

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
}  // namespace detail

class connection {
public:
    /// Connects and replays the setup. Throws error(connect_failed) when the server cannot be
    /// reached, server_error when AUTH/SELECT is refused (e.g. WRONGPASS).
    explicit connection(const client_options& options)
        : connection(std::make_shared<const client_options>(options)) {}

    explicit connection(std::shared_ptr<const client_options> options);

    connection(connection&&) noexcept = default;
    connection& operator=(connection&&) noexcept = default;
    ~connection() = default;

    /// Sends one command and returns its reply converted to T (see reply.hpp). Throws error on a
    /// transport failure (the connection is broken afterwards), server_error on an error reply.
    template <class T = reply, class... Args>
    T command(const Args&... args);

    /// True once a transport failure happened; a broken connection must be thrown away.
    bool broken() const noexcept { return broken_; }

    /// Changes the read/write timeout (0 = none), e.g. around a blocking command.
    void set_timeout(std::chrono::milliseconds timeout);

    /// The socket, for poll()-based waiting.
    int fd() const noexcept { return detail::context_fd(ctx_.get()); }

    /// The underlying redisContext*, as an escape hatch. Using it may desynchronise redkit.
    void* native_handle() noexcept { return ctx_.get(); }

    const client_options& options() const noexcept { return *options_; }

    /// "host:port" or the socket path, for messages.
    std::string endpoint() const;

    // ---- lower level, used by client and pipeline ----

    /// Buffers one command (nothing is sent until flush()).
    void append(const detail::argv& args);
    /// Writes everything buffered. On failure the connection is broken.
    detail::io_status flush();
    /// Reads one reply (blocking up to the timeout). On failure the connection is broken.
    detail::io_status read(detail::reply_ptr& out);
    /// read(), but first polls the socket for up to `spin` without sleeping: for a reply due
    /// within microseconds, it saves the wake-up of a sleeping thread at the price of the CPU
    /// spent polling.
    detail::io_status read(detail::reply_ptr& out, std::chrono::microseconds spin);
    /// append + flush + read.
    detail::io_status roundtrip(const detail::argv& args, detail::reply_ptr& out);

    /// Reads whatever the socket has (one read; call it when poll() says the fd is readable).
    /// On failure (EOF, reset) the connection is broken.
    detail::io_status read_available();
    /// Takes one complete reply already read into the buffer, without any I/O. Returns false
    /// when none is complete yet; a protocol error breaks the connection and sets `st`.
    bool next_buffered(detail::reply_ptr& out, detail::io_status& st);

    /// Whether an idle connection still looks healthy (no EOF, no stray bytes waiting).
    bool idle_check() noexcept;

    std::chrono::steady_clock::time_point last_used() const noexcept { return last_used_; }
    void mark_used() noexcept { last_used_ = std::chrono::steady_clock::now(); }

    /// SHA1s of scripts known to be loaded through this connection (pipelines preload the rest).
    std::unordered_set<std::string>& loaded_scripts() noexcept { return loaded_scripts_; }

private:
    detail::io_status fail(int saved_errno, bool maybe_sent);
    void replay_setup();

    std::shared_ptr<const client_options> options_;
    detail::context_ptr ctx_;
    bool broken_ = false;
    std::chrono::milliseconds timeout_{0};
    std::chrono::steady_clock::time_point last_used_{};
    std::unordered_set<std::string> loaded_scripts_;
};

/// Builds the exception for a failed transport operation, naming the command and its key.
inline error transport_error(const detail::io_status& st, std::string_view command, std::string_view key) {
    return error(st.code, detail::origin{command, key}.prefix() + st.text);
}

// ---- implementation ----

inline connection::connection(std::shared_ptr<const client_options> options) : options_(std::move(options)) {
    if (options_->ignore_sigpipe) detail::ignore_sigpipe_if_default();
    std::string why;
    ctx_ = detail::open_context(options_->host, options_->port, options_->unix_socket, options_->connect_timeout, why);
    if (!ctx_) {
        throw error(errc::connect_failed, "redkit: connect " + endpoint() + ": " + why);
    }
    set_timeout(options_->command_timeout);
    replay_setup();
    mark_used();
}

inline std::string connection::endpoint() const {
    if (!options_->unix_socket.empty()) return options_->unix_socket;
    return options_->host + ":" + std::to_string(options_->port);
}

inline void connection::set_timeout(std::chrono::milliseconds timeout) {
    if (timeout == timeout_) return;
    if (!detail::set_timeout(ctx_.get(), timeout)) {
        broken_ = true;
        throw error(errc::io_error, "redkit: connection " + endpoint() + ": cannot set socket timeout");
    }
    timeout_ = timeout;
}

inline void connection::replay_setup() {
    const client_options& o = *options_;
    std::size_t pending = 0;
    std::string_view names[3];
    if (!o.password.empty()) {
        detail::argv a;
        if (o.user.empty()) {
            a.push_all("AUTH", o.password);
        } else {
            a.push_all("AUTH", o.user, o.password);
        }
        append(a);
        names[pending++] = "AUTH";
    }
    if (o.db != 0) {
        detail::argv a;
        a.push_all("SELECT", o.db);
        append(a);
        names[pending++] = "SELECT";
    }
    if (!o.client_name.empty()) {
        detail::argv a;
        a.push_all("CLIENT", "SETNAME", o.client_name);
        append(a);
        names[pending++] = "CLIENT SETNAME";
    }
    if (pending == 0) return;
    // A setup that times out is a timeout (never retried: the server may be stopped, not gone);
    // any other failure here happened before the caller's request was written: connect_failed.
    const auto setup_failed = [&](const detail::io_status& st, std::string_view step) {
        const errc code = st.code == errc::timeout ? errc::timeout : errc::connect_failed;
        return error(code, "redkit: connect " + endpoint() + ": " + std::string(step) + ": " + st.text);
    };
    if (auto st = flush(); !st.ok()) throw setup_failed(st, "setup");
    for (std::size_t i = 0; i < pending; ++i) {
        detail::reply_ptr r;
        if (auto st = read(r); !st.ok()) throw setup_failed(st, names[i]);
        if (r->type == REDIS_REPLY_ERROR) {
            broken_ = true;  // a half set-up connection must not be pooled
            std::string text(r->str, r->len);
            throw server_error(text, "redkit: " + std::string(names[i]) + " " + endpoint() + ": " + text);
        }
    }
}

inline detail::io_status connection::fail(int saved_errno, bool maybe_sent) {
    broken_ = true;
    detail::io_status st;
    st.code = detail::classify(ctx_.get(), saved_errno);
    st.maybe_sent = maybe_sent;
    st.text = st.code == errc::timeout ? std::string("timeout after ") + std::to_string(timeout_.count()) + " ms"
                                       : std::string(redkit::error_category().message(static_cast<int>(st.code))) +
                                             " (" + ctx_->errstr + ")";
    return st;
}

inline void connection::append(const detail::argv& args) {
    detail::require_arguments(args);
    if (redisAppendCommandArgv(ctx_.get(), static_cast<int>(args.size()), const_cast<const char**>(args.data()),
                               args.lengths()) != REDIS_OK) {
        throw std::bad_alloc();
    }
}

inline detail::io_status connection::flush() {
    if (broken_) return {errc::connection_closed, false, "connection already broken"};
    detail::sigpipe_block guard(!options_->ignore_sigpipe);
    int done = 0;
    bool first = true;
    do {
        if (redisBufferWrite(ctx_.get(), &done) == REDIS_ERR) {
            // A write refused outright (EPIPE/ECONNRESET on the first write) proves the server never
            // saw this request: the peer was already gone.
            const int saved = errno;
            const bool refused = first && (saved == EPIPE || saved == ECONNRESET);
            return fail(saved, !refused);
        }
        first = false;
    } while (!done);
    return {};
}

inline detail::io_status connection::read(detail::reply_ptr& out) {
    if (broken_) return {errc::connection_closed, true, "connection already broken"};
    void* raw = nullptr;
    errno = 0;
    if (redisGetReply(ctx_.get(), &raw) != REDIS_OK) {
        return fail(errno, true);
    }
    out.reset(static_cast<redisReply*>(raw));
    return {};
}

inline detail::io_status connection::read(detail::reply_ptr& out, std::chrono::microseconds spin) {
    if (spin.count() > 0 && !broken_) detail::spin_until_readable(ctx_.get(), spin);
    return read(out);
}

inline detail::io_status connection::read_available() {
    if (broken_) return {errc::connection_closed, true, "connection already broken"};
    errno = 0;
    if (redisBufferRead(ctx_.get()) != REDIS_OK) return fail(errno, true);
    return {};
}

inline bool connection::next_buffered(detail::reply_ptr& out, detail::io_status& st) {
    if (broken_) {
        st = {errc::connection_closed, true, "connection already broken"};
        return false;
    }
    void* raw = nullptr;
    if (redisGetReplyFromReader(ctx_.get(), &raw) != REDIS_OK) {
        st = fail(0, true);
        return false;
    }
    if (raw == nullptr) return false;
    out.reset(static_cast<redisReply*>(raw));
    return true;
}

inline detail::io_status connection::roundtrip(const detail::argv& args, detail::reply_ptr& out) {
    append(args);
    if (auto st = flush(); !st.ok()) return st;
    return read(out);
}

inline bool connection::idle_check() noexcept {
    if (broken_) return false;
    if (!detail::idle_connection_is_clean(ctx_.get())) {
        broken_ = true;
        return false;
    }
    return true;
}

template <class T, class... Args>
T connection::command(const Args&... args) {
    detail::argv a;
    a.push_all(args...);
    detail::reply_ptr r;
    if (auto st = roundtrip(a, r); !st.ok()) throw transport_error(st, a.command_name(), a.first_key());
    if constexpr (std::is_void_v<T>) {
        if (r->type == REDIS_REPLY_ERROR) detail::throw_server_error(detail::node(r.get()), {a.command_name(), a.first_key()});
    } else {
        return detail::convert_reply<T>(detail::node(r.get()), {a.command_name(), a.first_key()});
    }
}

}  // namespace v0
}  // namespace redkit
