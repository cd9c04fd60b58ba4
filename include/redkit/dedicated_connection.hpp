// SPDX-License-Identifier: MIT
// redkit::dedicated_connection: a connection of a pattern's own that reopens itself, and the one
// rule for how long to wait for the reply of a command that blocks on the server.
//
// The patterns that hold a socket of their own (the stream consumer's XREADGROUP BLOCK, the queue
// events' XREAD BLOCK, the worker's script connection and its BZPOPMIN, the subscriber) all need
// the same two things, written here once:
//   get()                       the open connection; a broken one (or, with Sentinel, one to a
//                               replaced primary) is dropped and a new one opened, on the server
//                               that owns the anchor key's slot on a cluster
//   send_blocking(block, ...)   writes a command that blocks up to `block` on the server, and
//   wait_reply(wake, t, f)      waits for its reply until block + grace() from the send: past that
//                               the connection is closed and error(timeout) thrown
//   blocking(wake, block, ...)  both in one call (woken: the connection is closed, nullopt)
// grace() = max(command_timeout, 1 s): the time a reply may take beyond the server's own block.
// A reply lost or in doubt is never read as the answer to the next command: any failure closes.
#pragma once

#include <redkit/client.hpp>
#include <redkit/config.hpp>
#include <redkit/connection.hpp>
#include <redkit/error.hpp>
#include <redkit/reply.hpp>
#include <redkit/waker.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace redkit {
inline namespace v0 {

/// A connection of its own that reopens itself after a failure, and owns the wait for a command
/// that blocks on the server (BZPOPMIN, XREAD BLOCK...). Made from a client: on a cluster it
/// connects to the primary that owns the anchor key's slot (client::dedicated(key)), else to the
/// client's server. Opens on first use. Movable, not copyable; one thread at a time (a waker may
/// be notified from any thread).
///
/// @code
/// redkit::dedicated_connection conn(redis, "jobs");
/// redkit::waker stop;  // notified by another thread to end the wait at once
/// std::optional<redkit::reply> r = conn.blocking(stop, 5s, "BLPOP", "jobs", 5);
/// @endcode
class dedicated_connection {
public:
    /// Keeps the client (a cheap handle) and the anchor key (empty: the client's home server).
    /// Connects on first use, not here.
    explicit dedicated_connection(client redis, std::string anchor = {})
        : redis_(std::move(redis)), anchor_(std::move(anchor)) {}

    /// How long a reply may take beyond a command's own server-side block: the client's
    /// command_timeout, at least 1 s.
    REDKIT_DECL std::chrono::milliseconds grace() const noexcept;

    /// The open connection: opens it on first use, and again when it broke (or, with Sentinel,
    /// its primary was replaced) while no blocking command was pending. Throws as
    /// client::dedicated() does when the server cannot be reached.
    REDKIT_DECL connection& get();

    /// Whether a connection is open (it may still have broken since its last use).
    bool is_open() const noexcept { return conn_.has_value(); }

    /// Closes the connection (a command blocked on it ends when the server sees the socket close);
    /// the next get() opens a new one.
    REDKIT_DECL void close() noexcept;

    /// Moves the connection to the server of another anchor key (closes it if the key differs).
    REDKIT_DECL void set_anchor(std::string anchor);

    /// Writes a command that blocks on the server for up to `block` (the command's own timeout
    /// argument must say the same) through get(); its reply is read by wait_reply(). Throws error
    /// on a transport failure (closed afterwards).
    template <class Command, class... Args>
    void send_blocking(std::chrono::milliseconds block, const Command& command, const Args&... args);

    /// Whether a command written by send_blocking() still awaits its reply.
    bool pending() const noexcept { return pending_; }

    /// When the pending command's reply is overdue: its block plus grace() after it was written.
    std::chrono::steady_clock::time_point deadline() const noexcept { return deadline_; }

    /// Waits up to `timeout`, and never past deadline(), for the pending command's reply and calls
    /// on_reply(reply_view) with it (the view is valid during the call). Returns woken when `wake`
    /// was raised and timeout when `timeout` ran out first (the reply is still due in both
    /// cases). Past deadline() the connection is closed and error(timeout) thrown; on a
    /// transport failure it is closed and the error rethrown.
    template <class F>
    wait_status wait_reply(waker& wake, std::chrono::milliseconds timeout, F&& on_reply);

    /// send_blocking() and wait for its reply: the reply (an error reply too), or nullopt when
    /// `wake` was raised first (the connection is then closed, which ends the command on the
    /// server). Throws as send_blocking() and wait_reply() do.
    template <class... Args>
    std::optional<reply> blocking(waker& wake, std::chrono::milliseconds block, const Args&... args);

    /// The same for a caller with nothing to wake it: the reply (an error reply too), waiting up
    /// to block + grace(). Throws error(timeout) past that, error on a transport failure (closed
    /// afterwards in both cases).
    template <class Command, class... Args>
    reply blocking(std::chrono::milliseconds block, const Command& command, const Args&... args);

private:
    REDKIT_DECL connection& prepare(std::chrono::milliseconds block);
    [[noreturn]] REDKIT_DECL void overdue();

    client redis_;
    std::string anchor_;
    std::optional<connection> conn_;
    std::chrono::milliseconds socket_timeout_{-1};  // what conn_'s socket timeout was last set to
    std::chrono::steady_clock::time_point deadline_{};
    std::chrono::milliseconds block_{0};  // the pending command's, for messages
    std::string command_;                 // its name, for messages
    bool pending_ = false;
};

// ---- implementation ----

template <class Command, class... Args>
void dedicated_connection::send_blocking(std::chrono::milliseconds block, const Command& command, const Args&... args) {
    connection& c = prepare(block);
    command_ = std::string_view(command);
    try {
        c.send(command, args...);
    } catch (...) {
        close();
        throw;
    }
    pending_ = true;
}

template <class F>
wait_status dedicated_connection::wait_reply(waker& wake, std::chrono::milliseconds timeout, F&& on_reply) {
    static_assert(std::is_invocable_v<F&, reply_view>, "redkit: wait_reply's callback takes a redkit::reply_view");
    if (!pending_) throw error(errc::invalid_state, "redkit: dedicated_connection::wait_reply: no command pending");
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline_) overdue();
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now) + std::chrono::milliseconds(1);
    const bool capped = left <= timeout;
    wait_status w;
    try {
        w = conn_->wait_reply(wake, capped ? left : timeout, [&](reply_view r) {
            pending_ = false;
            on_reply(r);
        });
    } catch (...) {
        close();
        throw;
    }
    // (a wait may end a little early: only a deadline really passed makes the reply overdue)
    if (w == wait_status::timeout && capped && std::chrono::steady_clock::now() >= deadline_) overdue();
    return w;
}

template <class... Args>
std::optional<reply> dedicated_connection::blocking(waker& wake, std::chrono::milliseconds block, const Args&... args) {
    send_blocking(block, args...);
    std::optional<reply> got;
    for (;;) {
        const wait_status w = wait_reply(wake, std::chrono::hours(24), [&](reply_view r) { got.emplace(r); });
        if (w == wait_status::reply) return got;
        if (w == wait_status::woken) {
            close();
            return std::nullopt;
        }
    }
}

template <class Command, class... Args>
reply dedicated_connection::blocking(std::chrono::milliseconds block, const Command& command, const Args&... args) {
    connection& c = prepare(block);
    command_ = std::string_view(command);
    try {
        return c.command<reply>(command, args...);
    } catch (...) {
        close();
        throw;
    }
}

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/dedicated_connection.ipp>
#endif
