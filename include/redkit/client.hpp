// SPDX-License-Identifier: MIT
// redkit::client: the thread-safe entry point. A client is a cheap, copyable handle to a bounded
// pool of connections (copies share the pool); redkit::default_client() is the process-wide one,
// configured from REDIS_URL.
//
// Each request shares the multiplexed connection or borrows one from the pool (pool.hpp), sends
// one command and reads its reply (core/dispatch/executor.hpp). Connections are opened lazily (or
// one eagerly, by option), replay their setup (AUTH, SELECT, CLIENT SETNAME), and are discarded
// after any transport failure.
//
// Retry rule. A request that failed on the transport is retried on a fresh connection, up to
// client_options::max_retries times with exponential backoff and jitter, only when a retry cannot
// run it twice:
//   - it provably never reached the server (connecting failed, the pooled connection was found
//     closed before the write, or the very first write was refused with EPIPE/ECONNRESET); or
//   - it is read-only (GET, MGET, EXISTS, TTL, HGETALL, SCAN, PING, ...: see is_read_only()); or
//   - the caller marked it idempotent: client.command<T>(redkit::idempotent, "SET", k, v).
// Timeouts are never retried (the command may still be running; a deadline is a deadline), a
// timeout while a new connection replays its setup included, and neither are error replies from
// the server (WRONGTYPE, NOSCRIPT...). An empty argument list throws std::invalid_argument before
// anything is written. Every transport failure,
// retried or not, is reported to client_options::on_error.
//
// Redis Cluster (client_options::cluster, redis+cluster://): the same, per node. Each command
// goes to the primary that owns its keys' slot (cluster.hpp keeps the slot map and a pool per
// node); MOVED, ASK, TRYAGAIN, CLUSTERDOWN and an unreachable primary are followed or waited out
// (up to cluster.failover_timeout) -- a redirected command never ran, so that is always safe.
// Keys of one command must share a slot (std::invalid_argument before anything is sent), except
// MGET, DEL, EXISTS, UNLINK and TOUCH, which are split per slot and merged in order.
//
// Thread safety: every member function may be called from any thread at once.
#pragma once

#include <redkit/config.hpp>
#include <redkit/connection.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/error.hpp>
#include <redkit/future.hpp>
#include <redkit/options.hpp>
#include <redkit/pool.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>
#include <redkit/url.hpp>

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// Tag: pass as the first argument of client::command to allow retrying a write that is safe to
/// repeat (SET k v, DEL k, HSET...).
struct idempotent_t {
    explicit constexpr idempotent_t() = default;
};
/// The idempotent_t tag: `redis.command<void>(redkit::idempotent, "SET", k, v)`.
inline constexpr idempotent_t idempotent{};

/// Whether a command name (any case) is read-only, so retrying it after a transport failure is
/// harmless.
REDKIT_DECL bool is_read_only(std::string_view name) noexcept;

/// Whether a command (any case) may share the multiplexed connection: not one that blocks or
/// holds connection state (BLPOP, SUBSCRIBE, MULTI, WATCH, SELECT, CLIENT...), whose reply would
/// hold up, or whose effect would leak to, every other caller's.
REDKIT_DECL bool is_multiplexable(std::string_view name) noexcept;

class scan_range;
namespace detail {
class batch;
class cluster_router;
class evalsha_completion;
struct client_access;
struct cluster_node_state;
struct command_traits;
struct shared_dispatch;
}  // namespace detail

/// Thread-safe Redis client over a connection pool. Copies share the pool.
///
/// @code
/// redkit::client redis("redis://127.0.0.1:6379/0?timeout=500ms");
/// redis.command<void>("SET", "user:42:name", "Ada");
/// std::optional<std::string> name = redis.command<std::optional<std::string>>("GET", "user:42:name");
/// long long n = redis.command<long long>("INCR", "visits");
/// @endcode
class client {
public:
    /// Options as given; connects lazily unless options.lazy_connect is false. Throws
    /// std::invalid_argument naming an invalid option.
    REDKIT_DECL explicit client(client_options options = {});

    /// Options parsed from a URL (see url.hpp). Throws std::invalid_argument when malformed.
    explicit client(std::string_view url) : client(parse_url(url)) {}

    /// Sends one command, returns its reply as T (see reply.hpp for the conversion rules).
    /// Arguments: strings (binary safe), integers, floating point, chrono durations (their
    /// count(), so pass the unit the command expects) and ranges of these (expanded).
    /// Throws error on transport failure after the allowed retries, server_error on an error
    /// reply, std::invalid_argument for an empty argument list (nothing is sent).
    template <class T = reply, class... Args>
    T command(const Args&... args) const {
        detail::argv a;
        a.push_all(args...);
        const detail::reply_ptr r = execute(a, false);
        return detail::finish<T>(r, a);
    }

    /// Like command(), and a transport failure may be retried even if the request was sent.
    template <class T = reply, class... Args>
    T command(idempotent_t, const Args&... args) const {
        detail::argv a;
        a.push_all(args...);
        const detail::reply_ptr r = execute(a, true);
        return detail::finish<T>(r, a);
    }

    /// Runs a Lua script by EVALSHA; on NOSCRIPT (first use, SCRIPT FLUSH, a failover) sends it once
    /// by EVAL. One round trip in the steady state.
    template <class T = reply, class Keys = std::initializer_list<std::string_view>, class... Args>
    T eval(const script& s, const Keys& keys, const Args&... args) const {
        return eval_impl<T>(false, s, keys, args...);
    }

    /// Like eval(), for a script that is safe to run twice (a read, or a write that converges):
    /// a transport failure may then be retried even if the request was sent.
    template <class T = reply, class Keys = std::initializer_list<std::string_view>, class... Args>
    T eval(idempotent_t, const script& s, const Keys& keys, const Args&... args) const {
        return eval_impl<T>(true, s, keys, args...);
    }

    /// Sends one command without waiting for its reply: the redkit::future holds the reply as T
    /// (or the error command() would have thrown). Any number may be outstanding, from any
    /// thread; they share one connection (core/dispatch/multiplexer.hpp), so a thread with 16
    /// outstanding pays about one round trip, not 16. Never retried once it may have run: on a
    /// transport failure every command in flight on the connection fails with it. A command with
    /// a completion (then(), co_await, the Asio operations) whose connection could not be opened
    /// (it provably did not run: a restart, a Sentinel failover) is sent again after a backoff, up
    /// to max_retries times, as command() would be; a plain future's fails. A command that blocks or holds
    /// connection state (BLPOP, SUBSCRIBE, MULTI, SELECT...) throws std::invalid_argument: use
    /// command().
    template <class T = reply, class... Args>
    future<T> submit(const Args&... args) const {
        detail::argv a;
        a.push_all(args...);
        std::shared_ptr<detail::multiplexer> mux;
        std::shared_ptr<detail::mux_request> request = submit_argv(a, mux);
        return future<T>(std::move(mux), std::move(request));
    }

    /// Runs a Lua script as eval() does, without waiting: the redkit::future holds its reply as T
    /// (or the error eval() would have thrown). EVALSHA first; on NOSCRIPT, EVAL once, from the
    /// thread that reads the reply (two round trips then). Sent as submit() sends a command: on
    /// the shared connection, never retried. The script is copied; it need not outlive the call.
    template <class T = reply, class Keys = std::initializer_list<std::string_view>, class... Args>
    future<T> submit_eval(const script& s, const Keys& keys, const Args&... args) const {
        detail::argv a;
        detail::push_evalsha(a, s, keys, args...);
        return future<T>(nullptr, submit_evalsha(a, std::make_shared<const std::string>(s.source())));
    }

    /// Enumerates keys matching a glob pattern with SCAN (never KEYS); see scan_range.
    REDKIT_DECL scan_range scan(std::string match = "*", std::size_t count = 100, std::string type = {}) const;

    /// PING; throws when Redis cannot be reached.
    REDKIT_DECL void ping() const;

    /// True when Redis answers PING; never throws.
    REDKIT_DECL bool is_reachable() const noexcept;

    /// A new connection of its own with this client's options (for subscribers, blocking workers).
    /// On a cluster: to the primary of slot 0, where PUBLISH goes too (every node relays
    /// messages, but PUBLISH counts only the receivers on its own node).
    REDKIT_DECL connection dedicated() const;

    /// A new connection of its own to the server that holds `key` (a blocking pop on it, a
    /// worker's scripts): on a cluster, the primary that owns the key's slot; else dedicated().
    REDKIT_DECL connection dedicated(std::string_view key) const;

    /// Whether this client talks to a Redis Cluster (client_options::cluster, redis+cluster://).
    bool is_cluster() const noexcept { return cluster_ != nullptr; }

    /// The options every connection of this client is made with.
    REDKIT_DECL const client_options& options() const noexcept;

    /// Connections currently open (idle or in use), the shared connection included.
    REDKIT_DECL std::size_t open_connections() const;

    /// Sends an error to options().on_error (for patterns built on this client).
    REDKIT_DECL void report(const error& e) const noexcept;

    /// Borrows a connection for several commands (pipelines, transactions). Return it by letting
    /// the lease go; a broken connection is discarded then. On a cluster: a connection to the
    /// primary of slot 0; use borrow(key) for commands on keys.
    REDKIT_DECL lease borrow() const;

    /// Borrows a connection to the server that holds `key` (on a cluster, its slot's primary:
    /// WATCH, MULTI and EXEC on keys of that slot).
    REDKIT_DECL lease borrow(std::string_view key) const;

private:
    friend class scan_range;
    friend class detail::batch;
    friend class detail::evalsha_completion;
    friend struct detail::client_access;

    // One command, through the core (executor.hpp; cluster.hpp on a cluster). An error reply is
    // returned, not thrown.
    REDKIT_DECL detail::reply_ptr execute(const detail::argv& a, bool idempotent_request) const;
    // execute(), reported to client_options::observer.
    REDKIT_DECL detail::reply_ptr execute_observed(const detail::argv& a, const detail::command_traits& t,
                                                   bool idempotent_request) const;
    // Queues a command on the shared connection of its node; `mux` is set to that connection.
    // `watched`: reported to the observer, if any, as the caller's command (not as a step of one).
    REDKIT_DECL std::shared_ptr<detail::mux_request> submit_argv(const detail::argv& a,
                                                                 std::shared_ptr<detail::multiplexer>& mux,
                                                                 bool watched = true) const;
    // submit_eval(): a request (queued nowhere) that EVALSHA `a`, or EVAL of `source` after
    // NOSCRIPT, finishes. `source` may alias a script that lives for the process (the patterns').
    REDKIT_DECL std::shared_ptr<detail::mux_request> submit_evalsha(const detail::argv& a,
                                                                    std::shared_ptr<const std::string> source) const;
    // Sends RESP `wire` (one command) on the shared connection (on a cluster, to `slot`'s node) and
    // hands its outcome to `caller`, which it finishes.
    REDKIT_DECL void submit_wire(std::string wire, std::string_view command, std::string_view key, int slot,
                                 std::shared_ptr<detail::mux_request> caller) const;

    template <class T, class Keys, class... Args>
    T eval_impl(bool idempotent_request, const script& s, const Keys& keys, const Args&... args) const {
        detail::argv a;
        detail::push_evalsha(a, s, keys, args...);
        detail::reply_ptr r = execute(a, idempotent_request);
        if (detail::raw_is_error(r.get()) && detail::is_noscript(detail::raw_str(r.get()))) {
            detail::evalsha_to_eval(a, s);
            r = execute(a, idempotent_request);
        }
        return detail::finish<T>(r, a);
    }

    std::shared_ptr<pool> pool_;
    std::shared_ptr<detail::shared_dispatch> shared_;
    std::shared_ptr<detail::cluster_router> cluster_;  // with client_options::cluster
};

/// A single-pass range of the keys SCAN returns for a pattern. As SCAN guarantees: every key
/// present for the whole iteration is returned at least once; a key may be returned twice; keys
/// added or removed meanwhile may or may not appear. Each batch is one SCAN round trip. On a
/// cluster it scans each primary of the slot map in turn (a key moved by a resharding during the
/// scan may be missed or seen twice; a primary lost mid-scan throws).
///
/// @code
/// for (const std::string& key : redis.scan("session:*")) { ... }
/// @endcode
class scan_range {
public:
    /// The keys matching the glob `match`, asked `count` at a time (SCAN's COUNT hint), only of
    /// `type` when it is not empty (SCAN's TYPE); nothing is sent before begin(). Usually made by
    /// client::scan(). Throws std::invalid_argument when count is 0.
    REDKIT_DECL scan_range(client c, std::string match, std::size_t count, std::string type);

    /// An input iterator over the keys; advancing past the last key of a batch sends the next
    /// SCAN, and throws what client::command() would.
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;  ///< single pass
        using value_type = std::string;                     ///< a key
        using difference_type = std::ptrdiff_t;             ///< required of iterators; unused
        using pointer = const std::string*;                 ///< what operator->() returns
        using reference = const std::string&;               ///< what operator*() returns

        /// The end iterator.
        iterator() = default;
        /// An iterator at the current key of `r` (begin() makes it).
        explicit iterator(scan_range* r) : range_(r) {}
        /// The current key; valid until the iterator is advanced.
        reference operator*() const { return range_->batch_[range_->index_]; }
        /// A pointer to the current key.
        pointer operator->() const { return &**this; }
        /// Moves to the next key (sending SCAN when the batch is used up); becomes the end
        /// iterator once the scan is complete.
        iterator& operator++() {
            range_->advance();
            if (range_->exhausted()) range_ = nullptr;
            return *this;
        }
        /// What it++ returns: a copy of the key the iterator was at, so `*it++` reads it (as
        /// input iterators allow) after the iterator moved on.
        class postfix {
        public:
            /// The key the iterator was at before it++.
            const std::string& operator*() const noexcept { return key_; }

        private:
            friend class iterator;
            explicit postfix(std::string key) : key_(std::move(key)) {}
            std::string key_;
        };
        /// Advances as ++it does, and returns the key it was at.
        postfix operator++(int) {
            postfix old(**this);
            ++*this;
            return old;
        }
        /// Equal when both are the end iterator or both walk the same range.
        friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.range_ == b.range_; }
        /// Negation of ==.
        friend bool operator!=(const iterator& a, const iterator& b) noexcept { return !(a == b); }

    private:
        scan_range* range_ = nullptr;
    };

    /// Starts the scan (sends the first SCAN).
    REDKIT_DECL iterator begin();
    /// The end of the range (a default-constructed iterator); sends nothing.
    iterator end() noexcept { return {}; }

private:
    bool exhausted() const noexcept { return index_ >= batch_.size() && finished_; }
    REDKIT_DECL void advance();
    REDKIT_DECL void fetch_until_nonempty();

    client client_;
    std::string match_;
    std::size_t count_;
    std::string type_;
    std::string cursor_ = "0";
    std::vector<std::string> batch_;
    std::size_t index_ = 0;
    bool started_ = false;
    bool finished_ = false;
    std::vector<std::shared_ptr<detail::cluster_node_state>> nodes_;  // a cluster's primaries
    std::size_t node_ = 0;
    bool started_nodes_ = false;
};

/// The process-wide client, built on first use from the REDIS_URL environment variable (default
/// redis://127.0.0.1:6379). Connects lazily. Throws std::invalid_argument when REDIS_URL is
/// malformed. Returns a handle sharing one pool.
REDKIT_DECL client default_client();

/// Replaces the process-wide client (apps that configure in code, tests). Handles already taken
/// keep working with the old pool until they are dropped.
REDKIT_DECL void set_default_client(client c);

/// Forgets the process-wide client; the next default_client() builds a new one from REDIS_URL.
REDKIT_DECL void reset_default_client();

namespace detail {
/// What the patterns reach inside a client.
struct client_access {
    /// client::submit_eval of a script that lives for the process (static_script()): not copied.
    template <class T, class Keys = std::initializer_list<std::string_view>, class... Args>
    static future<T> submit_lasting_eval(const client& c, const script& s, const Keys& keys, const Args&... args) {
        argv a;
        push_evalsha(a, s, keys, args...);
        const std::shared_ptr<const std::string> source(std::shared_ptr<void>(), &s.source());  // not owned
        return future_access<T>::detached(c.submit_evalsha(a, source));
    }
};

/// Sends a pattern's failure to its own on_error when it has one, else to the client's.
REDKIT_DECL void report_to(const std::function<void(const error&)>& own, const client& c, const error& e) noexcept;
}  // namespace detail

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/client.ipp>
#endif
