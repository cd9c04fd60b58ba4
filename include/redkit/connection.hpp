// SPDX-License-Identifier: MIT
// redkit::connection: one RAII connection to Redis, and the one place patterns go through when
// they must hold a socket of their own (a subscriber, a blocking worker, a long WATCH/MULTI
// conversation). The pooled redkit::client is built from these.
//
// What a connection offers:
//   command<T>(args...)      one round trip, the reply converted to T
//   eval<T>(script, keys...) EVALSHA, then EVAL once on NOSCRIPT, on this connection
//   append / flush / send    write commands without waiting for their replies (SUBSCRIBE, BZPOPMIN)
//   wait_reply(waker, t, f)  the next reply, waiting up to t; another thread's waker cuts it short
//   set_read_spin(us)        poll briefly for a reply before sleeping in read() (busy workers)
// Sockets, hiredis and TLS stay below it (core/io/transport.hpp): a pattern that waits through
// wait_reply works unchanged over any transport.
//
// Opening a connection replays its whole setup in one round trip: AUTH (user and password, or
// password alone), SELECT db, CLIENT SETNAME, READONLY (client_options::read_only_replica), CLIENT
// TRACKING (client_options::tracking_redirect).
// After any transport failure (timeout, EOF, reset, protocol error) the connection is broken for
// good: a late reply would be read as the answer to the next command, so it is never reused. Not
// thread-safe: one thread at a time (a waker may be notified from any thread).
#pragma once

#include <redkit/config.hpp>
#include <redkit/core/io/raw.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>
#include <redkit/waker.hpp>

#include <chrono>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>

namespace redkit {
inline namespace v0 {

/// How connection::wait_reply ended.
enum class wait_status {
    reply,    ///< a reply arrived and was handed to the callback
    woken,    ///< the waker was raised (and is lowered again); the reply, if any, is still due
    timeout,  ///< nothing within the time; the reply, if any, is still due
};

namespace detail {
struct connection_access;
struct io_status;
class sentinel_locator;
class transport;
}  // namespace detail

/// One connection to Redis of its own (RAII: the socket closes with it), for a subscriber, a
/// blocking command or a WATCH/MULTI conversation. Movable, not copyable; one thread at a time.
class connection {
public:
    /// Connects and replays the setup. Throws error(connect_failed) when the server cannot be
    /// reached, error(timeout) when the setup's replies do not come within command_timeout,
    /// server_error when AUTH/SELECT is refused (e.g. WRONGPASS).
    explicit connection(const client_options& options) : connection(std::make_shared<const client_options>(options)) {}

    /// As connection(const client_options&), sharing `options` instead of copying them (as a
    /// pool's connections do).
    REDKIT_DECL explicit connection(std::shared_ptr<const client_options> options);

    /// Takes over the socket; the moved-from connection is left without one (broken() is true).
    REDKIT_DECL connection(connection&&) noexcept;
    /// Closes this connection's socket, then takes over the other's (left without one).
    REDKIT_DECL connection& operator=(connection&&) noexcept;
    REDKIT_DECL ~connection();

    /// Sends one command and returns its reply converted to T (see reply.hpp; void accepts any
    /// reply but an error). Throws error on a transport failure (the connection is broken
    /// afterwards), server_error on an error reply, std::invalid_argument for no arguments.
    template <class T = reply, class... Args>
    T command(const Args&... args);

    /// Runs a script: EVALSHA, and on NOSCRIPT (first use on this server, SCRIPT FLUSH, a
    /// failover) EVAL once, on this connection. Converts as command<T>() does.
    template <class T = reply, class Keys = std::initializer_list<std::string_view>, class... Args>
    T eval(const script& s, const Keys& keys, const Args&... args);

    /// Buffers one command; nothing is written until flush(), send() or a round trip.
    /// Throws std::invalid_argument for no arguments.
    template <class... Args>
    void append(const Args&... args) {
        detail::argv a;
        a.push_all(args...);
        append_argv(a);
    }
    /// Writes everything buffered; its replies are read by wait_reply(). Throws error on a
    /// transport failure (the connection is broken afterwards).
    REDKIT_DECL void flush();
    /// append() + flush(): one command written now, its reply read later by wait_reply().
    template <class... Args>
    void send(const Args&... args) {
        append(args...);
        flush();
    }

    /// Waits up to `timeout` for the next reply (of commands written by send() or flush(), or a
    /// pushed pub/sub message) and calls on_reply(reply_view) with it; the view is valid during
    /// the call. A reply already read from the socket is handed over without waiting. Returns
    /// wait_status::woken at once when `wake` is raised from another thread (the wake-up is
    /// consumed), timeout when nothing came in time: in both cases the reply is still due, so
    /// wait again or drop the connection. Throws error on a transport failure (broken afterwards).
    template <class F>
    wait_status wait_reply(waker& wake, std::chrono::milliseconds timeout, F&& on_reply);

    /// Before every blocking read of a reply (command, eval, wait_reply), poll the socket for up to `spin`
    /// without sleeping (0, the default: sleep at once). On virtual machines waking a sleeping
    /// thread costs tens of microseconds, more than a loopback reply takes: polling saves that
    /// wake-up for the CPU it burns.
    void set_read_spin(std::chrono::microseconds spin) noexcept { read_spin_ = spin; }

    /// True once a transport failure happened; a broken connection must be thrown away.
    REDKIT_DECL bool broken() const noexcept;

    /// With Sentinel: whether the sentinels named another primary since this connection was made
    /// (writes go there now; drop this one). Always false without Sentinel.
    REDKIT_DECL bool primary_replaced() const noexcept;

    /// Changes the read/write timeout (0 = none), e.g. around a blocking command.
    REDKIT_DECL void set_timeout(std::chrono::milliseconds timeout);

    /// The options this connection was made with.
    const client_options& options() const noexcept { return *options_; }

    /// "host:port" or the socket path, for messages.
    REDKIT_DECL std::string endpoint() const;

private:
    friend struct detail::connection_access;

    struct unopened {};
    // Everything but the socket: open() connects.
    REDKIT_DECL connection(unopened, std::shared_ptr<const client_options> options);
    // Connects (through the sentinels, with Sentinel) and replays the setup. A server that cannot
    // be reached, or a setup that times out, is returned (its text without "redkit: "); a setup
    // the server refuses (WRONGPASS...) throws server_error.
    REDKIT_DECL detail::io_status open();
    REDKIT_DECL detail::io_status open_unobserved();
    // where it connects: "host:port" (the sentinels' primary, with Sentinel) or the socket path
    REDKIT_DECL std::string address() const;
    REDKIT_DECL detail::io_status replay_setup();
    REDKIT_DECL detail::io_status roundtrip(const detail::argv& a, detail::reply_ptr& out);
    REDKIT_DECL void check_demoted(const detail::reply_ptr& r) noexcept;
    REDKIT_DECL bool stale() const noexcept;
    REDKIT_DECL bool await_failover();
    REDKIT_DECL detail::reply_ptr exchange(const detail::argv& a);
    REDKIT_DECL void append_argv(const detail::argv& a);
    REDKIT_DECL wait_status wait_next(waker& wake, std::chrono::milliseconds timeout, detail::reply_ptr& out);

    std::shared_ptr<const client_options> options_;
    std::shared_ptr<detail::sentinel_locator> locator_;  // with Sentinel: who says where the primary is
    unsigned long long generation_ = 0;                  // the locator's generation when this connected
    std::unique_ptr<detail::transport> transport_;
    std::chrono::microseconds read_spin_{0};
    std::chrono::steady_clock::time_point last_used_{};
    std::unordered_set<std::string> loaded_scripts_;  // SHA1s loaded through this connection
    std::string last_command_, last_key_;             // of the last command appended, for messages
    bool drop_on_moved_ = false;                      // a cluster client's dedicated connection
    std::string host_;                                // with Sentinel: the primary it connected to
    int port_ = 0;
    const std::string* server_ = nullptr;  // where it is connected (interned), once open
    std::chrono::steady_clock::time_point opened_at_{};
};

namespace detail {

/// T from a reply of command `a`: void accepts anything but an error reply.
template <class T>
T finish(const reply_ptr& r, const argv& a) {
    return convert_reply<T>(r.get(), origin{a.command_name(), a.first_key()});
}

/// Builds EVALSHA sha numkeys keys... args... into `a`.
template <class Keys, class... Args>
void push_evalsha(argv& a, const script& s, const Keys& keys, const Args&... args) {
    a.push_all("EVALSHA", s.sha1(), static_cast<long long>(std::size(keys)), keys, args...);
}

/// Turns EVALSHA into EVAL of the script's text (after NOSCRIPT).
inline void evalsha_to_eval(argv& a, const script& s) noexcept {
    a.set(0, "EVAL");
    a.set(1, s.source());
}

}  // namespace detail

// ---- implementation ----

template <class T, class... Args>
T connection::command(const Args&... args) {
    detail::argv a;
    a.push_all(args...);
    const detail::reply_ptr r = exchange(a);
    return detail::finish<T>(r, a);
}

template <class T, class Keys, class... Args>
T connection::eval(const script& s, const Keys& keys, const Args&... args) {
    detail::argv a;
    detail::push_evalsha(a, s, keys, args...);
    detail::reply_ptr r = exchange(a);
    if (detail::raw_is_error(r.get()) && detail::is_noscript(detail::raw_str(r.get()))) {
        detail::evalsha_to_eval(a, s);
        r = exchange(a);
    }
    return detail::finish<T>(r, a);
}

template <class F>
wait_status connection::wait_reply(waker& wake, std::chrono::milliseconds timeout, F&& on_reply) {
    static_assert(std::is_invocable_v<F&, reply_view>, "redkit: wait_reply's callback takes a redkit::reply_view");
    detail::reply_ptr r;
    const wait_status st = wait_next(wake, timeout, r);
    if (st == wait_status::reply) {
        const detail::origin from{last_command_, last_key_};
        on_reply(detail::view_access::of(r.get(), from));
    }
    return st;
}

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/connection.ipp>
#endif
