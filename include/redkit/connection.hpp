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
// Sockets, hiredis and TLS stay below it (detail/transport.hpp): a pattern that waits through
// wait_reply works unchanged over any transport.
//
// Opening a connection replays its whole setup in one round trip: AUTH (user and password, or
// password alone), SELECT db, CLIENT SETNAME, READONLY (client_options::read_only_replica), CLIENT
// TRACKING (client_options::tracking_redirect).
// After any transport failure (timeout, EOF, reset, protocol error) the connection is broken for
// good: a late reply would be read as the answer to the next command, so it is never reused. Not
// thread-safe: one thread at a time (a waker may be notified from any thread).
#pragma once

#include <redkit/detail/argv.hpp>
#include <redkit/detail/sentinel.hpp>
#include <redkit/detail/transport.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>
#include <redkit/waker.hpp>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
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
}

class connection {
public:
    /// Connects and replays the setup. Throws error(connect_failed) when the server cannot be
    /// reached, error(timeout) when the setup's replies do not come within command_timeout,
    /// server_error when AUTH/SELECT is refused (e.g. WRONGPASS).
    explicit connection(const client_options& options) : connection(std::make_shared<const client_options>(options)) {}

    explicit connection(std::shared_ptr<const client_options> options);

    connection(connection&&) noexcept = default;
    connection& operator=(connection&&) noexcept = default;
    ~connection() = default;

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
    void append(const Args&... args);
    /// Writes everything buffered; its replies are read by wait_reply(). Throws error on a
    /// transport failure (the connection is broken afterwards).
    void flush();
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

    /// Before every blocking read of a reply (command, eval), poll the socket for up to `spin`
    /// without sleeping (0, the default: sleep at once). On virtual machines waking a sleeping
    /// thread costs tens of microseconds, more than a loopback reply takes: polling saves that
    /// wake-up for the CPU it burns.
    void set_read_spin(std::chrono::microseconds spin) noexcept { read_spin_ = spin; }

    /// True once a transport failure happened; a broken connection must be thrown away.
    bool broken() const noexcept { return transport_.broken(); }

    /// Changes the read/write timeout (0 = none), e.g. around a blocking command.
    void set_timeout(std::chrono::milliseconds timeout);

    const client_options& options() const noexcept { return *options_; }

    /// "host:port" or the socket path, for messages.
    std::string endpoint() const { return detail::transport::endpoint_of(*options_); }

private:
    friend struct detail::connection_access;

    static detail::transport open(const client_options& o, std::shared_ptr<detail::sentinel_locator>& locator,
                                  unsigned long long& generation);
    void replay_setup();
    detail::io_status roundtrip(const detail::argv& a, detail::reply_ptr& out);
    void check_demoted(const detail::reply_ptr& r) noexcept;
    bool stale() const noexcept { return locator_ && locator_->generation() != generation_; }
    // Before a write: waits while the sentinels fail the primary over (see detail/sentinel.hpp);
    // false when this connection's primary was replaced meanwhile (it is broken then).
    bool await_failover() {
        if (!locator_ || !locator_->failing_over()) return true;
        locator_->await_failover();
        if (!stale()) return true;
        transport_.poison();
        return false;
    }
    static detail::io_status failed_over() {
        return {errc::connection_closed, false,
                "the sentinels replaced the primary while this command waited for their failover to end; "
                "not sent"};
    }
    detail::reply_ptr exchange(const detail::argv& a);
    [[noreturn]] void fail(const detail::io_status& st) const;

    std::shared_ptr<const client_options> options_;
    std::shared_ptr<detail::sentinel_locator> locator_;  // with Sentinel: who says where the primary is
    unsigned long long generation_ = 0;                  // the locator's generation when this connected
    detail::transport transport_;
    std::chrono::microseconds read_spin_{0};
    std::chrono::steady_clock::time_point last_used_{};
    std::unordered_set<std::string> loaded_scripts_;  // SHA1s loaded through this connection
    std::string last_command_, last_key_;             // of the last command appended, for messages
    bool drop_on_moved_ = false;                      // a cluster client's dedicated connection
};

namespace detail {

/// Builds the exception for a failed transport operation, naming the command and its key.
inline error transport_error(const io_status& st, std::string_view command, std::string_view key) {
    return error(st.code, origin{command, key}.prefix() + st.text);
}

/// What the core (pool, client, pipeline) reaches below a connection's public face.
struct connection_access {
    static io_status roundtrip(connection& c, const argv& a, reply_ptr& out) { return c.roundtrip(a, out); }
    static transport& wire(connection& c) noexcept { return c.transport_; }
    static std::unordered_set<std::string>& loaded_scripts(connection& c) noexcept { return c.loaded_scripts_; }
    static std::chrono::steady_clock::time_point last_used(const connection& c) noexcept { return c.last_used_; }
    static void mark_used(connection& c) noexcept { c.last_used_ = std::chrono::steady_clock::now(); }
    static bool idle_check(connection& c) noexcept { return c.transport_.idle_check(); }
    /// Connected to a primary that the sentinels have replaced since (see detail/sentinel.hpp).
    static bool stale(const connection& c) noexcept { return c.stale(); }
    /// The reply is READONLY from a primary turned replica (Sentinel): the connection was dropped
    /// and the sentinels will be asked again; the command did not run.
    static bool demoted(const connection& c, const reply_ptr& r) noexcept {
        return c.locator_ && c.transport_.broken() && raw_is_error(r.get()) &&
               raw_str(r.get()).substr(0, 9) == "READONLY ";
    }
    static void poison(connection& c) noexcept { c.transport_.poison(); }
    /// Before a write on the wire (multiplexer, pipeline): waits out a failover the sentinels
    /// announced; false (the connection broken) when its primary was replaced meanwhile.
    static bool await_failover(connection& c) { return c.await_failover(); }
    static io_status failed_over() { return connection::failed_over(); }
    /// For replies read off the wire directly (multiplexer): what roundtrip does with READONLY.
    static void check_demoted(connection& c, const reply_ptr& r) noexcept { c.check_demoted(r); }
    /// A MOVED reply breaks the connection (it was opened for a slot that lives elsewhere now).
    static void drop_on_moved(connection& c) noexcept { c.drop_on_moved_ = true; }
};

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

inline detail::transport connection::open(const client_options& o, std::shared_ptr<detail::sentinel_locator>& locator,
                                          unsigned long long& generation) {
    if (o.sentinel.master.empty()) return detail::transport(o);
    locator = detail::sentinel_locator::for_options(o);
    locator->await_failover();  // not to the primary being replaced
    const auto primary = locator->primary();
    generation = primary.generation;
    try {
        return detail::transport(o, primary.host, primary.port);
    } catch (const error&) {
        locator->invalidate(generation);  // gone, or not there yet: ask the sentinels next time
        throw;
    }
}

inline connection::connection(std::shared_ptr<const client_options> options)
    : options_(std::move(options)), transport_(open(*options_, locator_, generation_)) {
    set_timeout(options_->command_timeout);
    replay_setup();
    detail::connection_access::mark_used(*this);
}

inline void connection::set_timeout(std::chrono::milliseconds timeout) {
    if (!transport_.set_timeout(timeout)) {
        throw error(errc::io_error, "redkit: connection " + endpoint() + ": cannot set socket timeout");
    }
}

inline void connection::replay_setup() {
    const client_options& o = *options_;
    std::size_t pending = 0;
    std::string_view names[7];
    if (!o.password.empty()) {
        detail::argv a;
        if (o.user.empty()) {
            a.push_all("AUTH", o.password);
        } else {
            a.push_all("AUTH", o.user, o.password);
        }
        transport_.append(a);
        names[pending++] = "AUTH";
    }
    if (o.db != 0) {
        detail::argv a;
        a.push_all("SELECT", o.db);
        transport_.append(a);
        names[pending++] = "SELECT";
    }
    if (!o.client_name.empty()) {
        detail::argv a;
        a.push_all("CLIENT", "SETNAME", o.client_name);
        transport_.append(a);
        names[pending++] = "CLIENT SETNAME";
    }
    if (o.read_only_replica) {
        detail::argv a;
        a.push_all("READONLY");
        transport_.append(a);
        names[pending++] = "READONLY";
    }
    if (o.tracking_redirect != 0) {
        detail::argv a;
        a.push_all("CLIENT", "TRACKING", "on", "REDIRECT", o.tracking_redirect);
        transport_.append(a);
        names[pending++] = "CLIENT TRACKING";
    }
    if (locator_) {
        // Sentinel may still name a primary that was just demoted: check before any command
        detail::argv a;
        a.push_all("ROLE");
        transport_.append(a);
        names[pending++] = "ROLE";
    }
    if (pending == 0 && o.tls.enabled) {
        // TLS 1.3 servers send session tickets after the handshake: reading one round trip's reply
        // consumes them, so a later wait (SUBSCRIBE, BZPOPMIN) never sees a readable socket with
        // no reply behind it (and blocks in SSL_read).
        detail::argv a;
        a.push_all("PING");
        transport_.append(a);
        names[pending++] = "PING";
    }
    if (pending == 0) return;
    // A setup that times out is a timeout (never retried: the server may be stopped, not gone);
    // any other failure here happened before the caller's request was written: connect_failed.
    const auto setup_failed = [&](const detail::io_status& st, std::string_view step) {
        const errc code = st.code == errc::timeout ? errc::timeout : errc::connect_failed;
        return error(code, "redkit: connect " + endpoint() + ": " + std::string(step) + ": " + st.text);
    };
    if (auto st = transport_.flush(); !st.ok()) throw setup_failed(st, "setup");
    for (std::size_t i = 0; i < pending; ++i) {
        detail::reply_ptr r;
        if (auto st = transport_.read(r); !st.ok()) throw setup_failed(st, names[i]);
        if (names[i] == "ROLE" && !detail::raw_is_error(r.get())) {
            const bool primary =
                detail::raw_size(r.get()) > 0 && detail::raw_str(detail::raw_at(r.get(), 0)) == "master";
            if (!primary) {
                transport_.poison();
                locator_->invalidate(generation_);
                throw error(errc::connect_failed, "redkit: connect " + endpoint() +
                                                      ": the sentinels' primary is a replica now (a failover is under "
                                                      "way); asking them again");
            }
            continue;
        }
        if (detail::raw_is_error(r.get())) {
            transport_.poison();  // a half set-up connection must not be pooled
            const std::string text(detail::raw_str(r.get()));
            throw server_error(text, "redkit: " + std::string(names[i]) + " " + endpoint() + ": " + text);
        }
    }
}

inline detail::io_status connection::roundtrip(const detail::argv& a, detail::reply_ptr& out) {
    detail::require_arguments(a);
    if (!await_failover()) return failed_over();
    transport_.append(a);
    if (auto st = transport_.flush(); !st.ok()) return st;
    auto st = transport_.read(out, read_spin_);
    if (st.ok()) check_demoted(out);
    return st;
}

inline void connection::check_demoted(const detail::reply_ptr& r) noexcept {
    if (drop_on_moved_ && detail::raw_is_error(r.get()) && detail::raw_str(r.get()).substr(0, 6) == "MOVED ") {
        // the slot this connection was opened for lives elsewhere now: whoever holds it (a
        // worker, a subscriber) opens a new one, routed by the new map
        transport_.poison();
        return;
    }
    if (locator_ && detail::raw_is_error(r.get()) && detail::raw_str(r.get()).substr(0, 9) == "READONLY ") {
        // the primary was demoted under this connection: drop it and ask the sentinels again
        transport_.poison();
        locator_->invalidate(generation_);
    }
}

inline detail::reply_ptr connection::exchange(const detail::argv& a) {
    detail::reply_ptr r;
    if (auto st = roundtrip(a, r); !st.ok()) throw detail::transport_error(st, a.command_name(), a.first_key());
    return r;
}

inline void connection::fail(const detail::io_status& st) const {
    throw detail::transport_error(st, last_command_, last_key_);
}

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

template <class... Args>
void connection::append(const Args&... args) {
    detail::argv a;
    a.push_all(args...);
    detail::require_arguments(a);
    transport_.append(a);
    last_command_.assign(a.command_name());
    last_key_.assign(a.first_key().substr(0, 200));
}

inline void connection::flush() {
    if (auto st = transport_.flush(); !st.ok()) fail(st);
}

template <class F>
wait_status connection::wait_reply(waker& wake, std::chrono::milliseconds timeout, F&& on_reply) {
    static_assert(std::is_invocable_v<F&, reply_view>, "redkit: wait_reply's callback takes a redkit::reply_view");
    std::optional<std::chrono::steady_clock::time_point> deadline;  // the clock is read only if we must wait
    for (;;) {
        detail::reply_ptr r;
        if (detail::io_status st; !transport_.take_buffered(r, st)) fail(st);
        if (r) {
            check_demoted(r);
            const detail::origin from{last_command_, last_key_};
            on_reply(detail::view_access::of(r.get(), from));
            return wait_status::reply;
        }
        const auto now = std::chrono::steady_clock::now();
        if (!deadline) deadline = now + std::max(timeout, std::chrono::milliseconds(0));
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now);
        const auto w = transport_.wait_readable(wake.flag_, std::max(left, std::chrono::milliseconds(0)));
        if (w == detail::wait_result::woken) {
            wake.flag_.drain();
            return wait_status::woken;
        }
        if (w == detail::wait_result::timeout) return wait_status::timeout;
        if (auto st = transport_.read_available(); !st.ok()) fail(st);
    }
}

}  // namespace v0
}  // namespace redkit
