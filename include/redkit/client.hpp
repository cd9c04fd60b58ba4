// SPDX-License-Identifier: MIT
// redkit::client: the thread-safe entry point. A client is a cheap, copyable handle to a bounded
// pool of connections (copies share the pool); redkit::default_client() is the process-wide one,
// configured from REDIS_URL.
//
// Each request borrows a connection from the pool (pool.hpp), sends one command, reads its reply
// and returns the connection. Connections are opened lazily (or one eagerly, by option), replay
// their setup (AUTH, SELECT, CLIENT SETNAME), and are discarded after any transport failure.
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

#include <redkit/cluster.hpp>
#include <redkit/connection.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/detail/slots.hpp>
#include <redkit/detail/text.hpp>
#include <redkit/error.hpp>
#include <redkit/future.hpp>
#include <redkit/multiplexer.hpp>
#include <redkit/options.hpp>
#include <redkit/pool.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// Tag: pass as the first argument of client::command to allow retrying a write that is safe to
/// repeat (SET k v, DEL k, HSET...).
struct idempotent_t {
    explicit constexpr idempotent_t() = default;
};
inline constexpr idempotent_t idempotent{};

/// Whether a command name (any case) is read-only, so retrying it after a transport failure is
/// harmless.
inline bool is_read_only(std::string_view name) noexcept {
    static constexpr std::string_view read_only[] = {
        "GET",        "MGET",       "EXISTS",    "TTL",     "PTTL",          "TYPE",       "STRLEN",
        "GETRANGE",   "HGET",       "HMGET",     "HGETALL", "HEXISTS",       "HLEN",       "HKEYS",
        "HVALS",      "HSTRLEN",    "SCAN",      "SSCAN",   "HSCAN",         "ZSCAN",      "SMEMBERS",
        "SISMEMBER",  "SMISMEMBER", "SCARD",     "ZRANGE",  "ZRANGEBYSCORE", "ZREVRANGE",  "ZREVRANGEBYSCORE",
        "ZSCORE",     "ZMSCORE",    "ZCARD",     "ZCOUNT",  "ZRANK",         "ZREVRANK",   "LRANGE",
        "LLEN",       "LINDEX",     "LPOS",      "PING",    "ECHO",          "DBSIZE",     "INFO",
        "TIME",       "XRANGE",     "XREVRANGE", "XLEN",    "EVAL_RO",       "EVALSHA_RO", "PEXPIRETIME",
        "EXPIRETIME", "BITCOUNT",   "GETBIT",    "PFCOUNT", "SRANDMEMBER",   "HRANDFIELD", "ZRANDMEMBER",
    };
    return detail::command_in(name, read_only);
}

class scan_range;
namespace detail {
class batch;
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
    explicit client(client_options options = {})
        : pool_(std::make_shared<pool>(std::move(options))), shared_(std::make_shared<detail::shared_dispatch>()) {
        if (pool_->options().cluster.enabled()) {
            cluster_ = std::make_shared<detail::cluster_router>(pool_->shared_options());
            if (!pool_->options().lazy_connect) (void)cluster_->map();
            return;
        }
        if (pool_->options().multiplex) (void)shared();
        if (!pool_->options().lazy_connect) pool_->warm_up();
    }

    /// Options parsed from a URL (see options.hpp). Throws std::invalid_argument when malformed.
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
    /// thread; they share one connection (multiplexer.hpp), so a thread with 16 outstanding pays
    /// about one round trip, not 16. Never retried: on a transport failure every command in
    /// flight on the connection fails with it. A command that blocks or holds connection state
    /// (BLPOP, SUBSCRIBE, MULTI, SELECT...) throws std::invalid_argument: use command().
    template <class T = reply, class... Args>
    future<T> submit(const Args&... args) const;

    /// Enumerates keys matching a glob pattern with SCAN (never KEYS); see scan_range.
    scan_range scan(std::string match = "*", std::size_t count = 100, std::string type = {}) const;

    /// PING; throws when Redis cannot be reached.
    void ping() const {
        const auto r = command<std::string>("PING");
        if (r != "PONG") throw error(errc::protocol_error, "redkit: PING: unexpected reply '" + r + "'");
    }

    /// True when Redis answers PING; never throws.
    bool is_reachable() const noexcept {
        try {
            ping();
            return true;
        } catch (...) {
            return false;
        }
    }

    /// A new connection of its own with this client's options (for subscribers, blocking workers).
    /// On a cluster: to the primary of slot 0, where PUBLISH goes too (every node relays
    /// messages, but PUBLISH counts only the receivers on its own node).
    connection dedicated() const {
        if (cluster_) return dedicated_to(cluster_->home());
        return connection(pool_->shared_options());
    }

    /// A new connection of its own to the server that holds `key` (a blocking pop on it, a
    /// worker's scripts): on a cluster, the primary that owns the key's slot; else dedicated().
    connection dedicated(std::string_view key) const {
        if (cluster_) {
            // a dedicated connection is made again after its server failed or its slot moved:
            // read the map first, unless it is fresh
            cluster_->refresh_if_older(std::chrono::seconds(1));
            return dedicated_to(cluster_->owner(detail::slot_of(key)));
        }
        return connection(pool_->shared_options());
    }

    /// Whether this client talks to a Redis Cluster (client_options::cluster, redis+cluster://).
    bool is_cluster() const noexcept { return cluster_ != nullptr; }

    const client_options& options() const noexcept { return pool_->options(); }

    /// Connections currently open (idle or in use), the shared connection included.
    std::size_t open_connections() const {
        std::size_t n = pool_->open_connections() + (shared_->connected() ? 1 : 0);
        if (cluster_) {
            for (const auto& node : cluster_->all_nodes()) {
                n += node->pool->open_connections() + (node->shared->connected() ? 1 : 0);
            }
        }
        return n;
    }

    /// Sends an error to options().on_error (for patterns built on this client).
    void report(const error& e) const noexcept { pool_->report(e); }

    /// Borrows a connection for several commands (pipelines, transactions). Return it by letting
    /// the lease go; a broken connection is discarded then. On a cluster: a connection to the
    /// primary of slot 0; use borrow(key) for commands on keys.
    lease borrow() const {
        if (cluster_) return cluster_->home()->pool->borrow();
        return pool_->borrow();
    }

    /// Borrows a connection to the server that holds `key` (on a cluster, its slot's primary:
    /// WATCH, MULTI and EXEC on keys of that slot).
    lease borrow(std::string_view key) const {
        if (cluster_) return cluster_->owner(detail::slot_of(key))->pool->borrow();
        return pool_->borrow();
    }

private:
    friend class scan_range;
    friend class detail::batch;

    detail::reply_ptr execute(const detail::argv& a, bool idempotent_request) const {
        if (cluster_) return execute_cluster(a, idempotent_request);
        return execute_on(*pool_, *shared_, a, idempotent_request);
    }
    static detail::reply_ptr execute_on(pool& p, detail::shared_dispatch& sd, const detail::argv& a,
                                        bool idempotent_request);
    static detail::reply_ptr execute_shared(pool& p, detail::shared_dispatch& sd, const detail::argv& a,
                                            bool idempotent_request);
    detail::reply_ptr execute_cluster(const detail::argv& a, bool idempotent_request) const;
    detail::reply_ptr execute_cluster_slot(const detail::argv& a, int slot, bool idempotent_request) const;
    detail::reply_ptr execute_split(const detail::argv& a, const detail::key_positions& keys,
                                    bool idempotent_request) const;
    detail::reply_ptr execute_broadcast(const detail::argv& a, bool idempotent_request) const;
    static detail::reply_ptr execute_asking(detail::cluster_node_state& n, const detail::argv& a);
    connection dedicated_to(const std::shared_ptr<detail::cluster_node_state>& n) const;
    // On a cluster: a pooled connection to the owner of `slot` (-1: the home node), waiting out a
    // failover as requests do (nothing has been sent yet). Sets `node` to the node it came from.
    lease borrow_slot(int slot, std::shared_ptr<detail::cluster_node_state>& node) const;
    multiplexer& shared() const { return shared_->get(*pool_); }

    template <class T, class Keys, class... Args>
    T eval_impl(bool idempotent_request, const script& s, const Keys& keys, const Args&... args) const;

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
    scan_range(client c, std::string match, std::size_t count, std::string type)
        : client_(std::move(c)), match_(std::move(match)), count_(count), type_(std::move(type)) {
        if (count_ == 0) throw std::invalid_argument("redkit: scan: count must be at least 1");
    }

    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = std::string;
        using difference_type = std::ptrdiff_t;
        using pointer = const std::string*;
        using reference = const std::string&;

        iterator() = default;
        explicit iterator(scan_range* r) : range_(r) {}
        reference operator*() const { return range_->batch_[range_->index_]; }
        pointer operator->() const { return &**this; }
        iterator& operator++() {
            range_->advance();
            if (range_->exhausted()) range_ = nullptr;
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.range_ == b.range_; }
        friend bool operator!=(const iterator& a, const iterator& b) noexcept { return !(a == b); }

    private:
        scan_range* range_ = nullptr;
    };

    /// Starts the scan (sends the first SCAN).
    iterator begin() {
        if (!started_) {
            started_ = true;
            fetch_until_nonempty();
        }
        return exhausted() ? iterator() : iterator(this);
    }
    iterator end() noexcept { return {}; }

private:
    bool exhausted() const noexcept { return index_ >= batch_.size() && finished_; }

    void advance() {
        ++index_;
        if (index_ >= batch_.size()) fetch_until_nonempty();
    }

    void fetch_until_nonempty() {
        batch_.clear();
        index_ = 0;
        if (!started_nodes_ && client_.cluster_) {
            nodes_ = client_.cluster_->primaries();  // SCAN walks each primary in turn
            started_nodes_ = true;
        }
        while (batch_.empty() && !finished_) {
            detail::argv a;
            a.push_all("SCAN", cursor_, "MATCH", match_, "COUNT", count_);
            if (!type_.empty()) a.push_all("TYPE", type_);
            detail::reply_ptr raw;
            if (nodes_.empty()) {
                raw = client_.execute(a, true);
            } else {
                auto& n = *nodes_[node_];
                try {
                    raw = client::execute_on(*n.pool, *n.shared, a, true);
                } catch (const error& e) {
                    if (e.is_transport()) client_.cluster_->refresh(true);
                    throw;
                }
            }
            using scan_reply = std::pair<std::string, std::vector<std::string>>;
            scan_reply r = detail::finish<scan_reply>(raw, a);
            cursor_ = std::move(r.first);
            batch_ = std::move(r.second);
            if (cursor_ == "0") {
                if (node_ + 1 < nodes_.size()) {
                    ++node_;
                } else {
                    finished_ = true;
                }
            }
        }
    }

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

namespace detail {
struct default_slot {
    std::mutex mutex;
    std::optional<client> instance;
};
// Never destroyed: threads still using the default client during static destruction stay safe.
inline default_slot& default_client_slot() {
    static default_slot* slot = new default_slot;
    return *slot;
}
}  // namespace detail

/// The process-wide client, built on first use from the REDIS_URL environment variable (default
/// redis://127.0.0.1:6379). Connects lazily. Throws std::invalid_argument when REDIS_URL is
/// malformed. Returns a handle sharing one pool.
inline client default_client() {
    auto& slot = detail::default_client_slot();
    std::lock_guard<std::mutex> lock(slot.mutex);
    if (!slot.instance) {
        const char* url = std::getenv("REDIS_URL");
        slot.instance.emplace(parse_url(url && *url ? url : "redis://127.0.0.1:6379"));
    }
    return *slot.instance;
}

/// Replaces the process-wide client (apps that configure in code, tests). Handles already taken
/// keep working with the old pool until they are dropped.
inline void set_default_client(client c) {
    auto& slot = detail::default_client_slot();
    std::lock_guard<std::mutex> lock(slot.mutex);
    slot.instance = std::move(c);
}

/// Forgets the process-wide client; the next default_client() builds a new one from REDIS_URL.
inline void reset_default_client() {
    auto& slot = detail::default_client_slot();
    std::lock_guard<std::mutex> lock(slot.mutex);
    slot.instance.reset();
}

// ---- implementation ----

inline detail::reply_ptr client::execute_on(pool& p, detail::shared_dispatch& sd, const detail::argv& a,
                                            bool idempotent_request) {
    detail::require_arguments(a);
    pool* const pool_ = &p;
    const client_options& o = pool_->options();
    // Multiplexed: share the connection, unless it is busy with too little to batch and a pooled
    // connection is free at once (then one command costs what it costs without multiplexing).
    lease spilled;
    std::optional<multiplexer::caller_guard> counted;
    if (o.multiplex && multiplexer::multiplexable(a.command_name())) {
        multiplexer& mux = sd.get(p);
        counted.emplace(mux);
        if (!mux.lightly_loaded()) return execute_shared(p, sd, a, idempotent_request);
        try {
            spilled = pool_->try_acquire();
        } catch (const error& e) {
            if (e.is_transport()) pool_->report(e);  // a new pooled connection failed: share instead
        }
        if (!spilled) return execute_shared(p, sd, a, idempotent_request);
    }
    for (int attempt = 0;; ++attempt) {
        detail::io_status st;
        detail::reply_ptr r;
        {
            lease l = std::move(spilled);  // retries wait for the pool as usual
            try {
                if (!l) l = pool_->acquire();
            } catch (const server_error&) {
                throw;  // the setup was refused (WRONGPASS, NOPERM...): the message names the step
            } catch (const error& e) {
                // connect_failed: nothing was sent, so a retry is safe; a timeout during the setup
                // is a timeout and never retried; pool_exhausted is not a transport failure
                if (e.is_transport()) pool_->report(e);
                if (e.kind() != errc::connect_failed || attempt >= o.max_retries) {
                    throw error(e.kind(), detail::origin{a.command_name(), a.first_key()}.prefix() +
                                              std::string(detail::without_prefix(e.what())));
                }
                std::this_thread::sleep_for(detail::backoff::draw(o.retry_backoff, o.retry_backoff_max, attempt));
                continue;
            }
            st = detail::connection_access::roundtrip(*l, a, r);
            if (st.ok() && detail::connection_access::demoted(*l, r) && attempt < o.max_retries) {
                // READONLY: a primary demoted by a failover refused the command, which did not run
                pool_->report(error(errc::server_error, detail::origin{a.command_name(), a.first_key()}.prefix() +
                                                            std::string(detail::raw_str(r.get())) +
                                                            " (the primary moved; asking the sentinels again)"));
                l.reset();
                std::this_thread::sleep_for(detail::backoff::draw(o.retry_backoff, o.retry_backoff_max, attempt));
                continue;
            }
        }  // the connection goes back to the pool (or is discarded) before the reply is converted
        if (st.ok()) return r;

        error failure = detail::transport_error(st, a.command_name(), a.first_key());
        pool_->report(failure);
        const bool safe =
            st.code != errc::timeout && (!st.maybe_sent || idempotent_request || is_read_only(a.command_name()));
        if (!safe || attempt >= o.max_retries) throw failure;
        std::this_thread::sleep_for(detail::backoff::draw(o.retry_backoff, o.retry_backoff_max, attempt));
    }
}

inline detail::reply_ptr client::execute_shared(pool& p, detail::shared_dispatch& sd, const detail::argv& a,
                                                bool idempotent_request) {
    pool* const pool_ = &p;
    const client_options& o = pool_->options();
    multiplexer& mux = sd.get(p);
    for (int attempt = 0;; ++attempt) {
        detail::reply_ptr r;
        bool demoted = false;
        const detail::io_status st = mux.run(a, r, demoted);
        if (st.ok() && demoted && attempt < o.max_retries) {
            // READONLY: a primary demoted by a failover refused the command, which did not run
            pool_->report(error(errc::server_error, detail::origin{a.command_name(), a.first_key()}.prefix() +
                                                        std::string(detail::raw_str(r.get())) +
                                                        " (the primary moved; asking the sentinels again)"));
            std::this_thread::sleep_for(detail::backoff::draw(o.retry_backoff, o.retry_backoff_max, attempt));
            continue;
        }
        if (st.ok()) return r;
        error failure = detail::transport_error(st, a.command_name(), a.first_key());
        if (st.code == errc::pool_exhausted) throw failure;
        pool_->report(failure);
        const bool safe =
            st.code != errc::timeout && (!st.maybe_sent || idempotent_request || is_read_only(a.command_name()));
        if (!safe || attempt >= o.max_retries) throw failure;
        std::this_thread::sleep_for(detail::backoff::draw(o.retry_backoff, o.retry_backoff_max, attempt));
    }
}

template <class T, class... Args>
future<T> client::submit(const Args&... args) const {
    detail::argv a;
    a.push_all(args...);
    detail::require_arguments(a);
    if (!multiplexer::multiplexable(a.command_name())) {
        throw std::invalid_argument("redkit: submit: " + std::string(a.command_name()) +
                                    " blocks or holds connection state; send it with command()");
    }
    auto r = std::make_shared<detail::mux_request>();
    detail::append_resp(r->wire, a);
    r->command.assign(a.command_name());
    r->key.assign(a.first_key().substr(0, 200));
    if (cluster_) {
        // the node of the command's slot; a MOVED or ASK reply fails the future (and moves the
        // slot in the map, so the next command goes to the right node)
        const detail::key_positions keys(a);
        if (keys.kind() == detail::route_kind::broadcast) {
            throw std::invalid_argument("redkit: submit: " + std::string(a.command_name()) +
                                        " runs on every primary of a cluster; send it with command()");
        }
        const auto node =
            keys.kind() == detail::route_kind::keyed ? cluster_->owner(keys.single_slot()) : cluster_->any_primary();
        multiplexer& mux = node->shared->get(*node->pool);
        mux.submit(r);
        return future<T>(std::shared_ptr<multiplexer>(node->shared, &mux), std::move(r));
    }
    multiplexer& mux = shared();
    mux.submit(r);
    return future<T>(std::shared_ptr<multiplexer>(shared_, &mux), std::move(r));
}

template <class T, class Keys, class... Args>
T client::eval_impl(bool idempotent_request, const script& s, const Keys& keys, const Args&... args) const {
    detail::argv a;
    detail::push_evalsha(a, s, keys, args...);
    detail::reply_ptr r = execute(a, idempotent_request);
    if (detail::raw_is_error(r.get()) && detail::is_noscript(detail::raw_str(r.get()))) {
        detail::evalsha_to_eval(a, s);
        r = execute(a, idempotent_request);
    }
    return detail::finish<T>(r, a);
}

// ---- cluster ----

inline detail::reply_ptr client::execute_cluster(const detail::argv& a, bool idempotent_request) const {
    detail::require_arguments(a);
    const detail::key_positions keys(a);
    if (keys.kind() == detail::route_kind::broadcast) return execute_broadcast(a, idempotent_request);
    if (keys.kind() == detail::route_kind::keyless) {
        static constexpr std::string_view publish[] = {"PUBLISH"};
        return execute_cluster_slot(a, detail::command_in(a.command_name(), publish) ? 0 : -1, idempotent_request);
    }
    int slot = -1;
    try {
        slot = keys.single_slot();
    } catch (const std::invalid_argument&) {
        static constexpr std::string_view splittable[] = {"MGET", "DEL", "EXISTS", "UNLINK", "TOUCH"};
        if (detail::command_in(a.command_name(), splittable)) return execute_split(a, keys, idempotent_request);
        throw;
    }
    return execute_cluster_slot(a, slot, idempotent_request);
}

inline detail::reply_ptr client::execute_cluster_slot(const detail::argv& a, int slot, bool idempotent_request) const {
    const client_options& o = pool_->options();
    std::optional<std::chrono::steady_clock::time_point> deadline;  // read the clock only on trouble
    const auto may_wait = [&](int attempt) {
        const auto now = std::chrono::steady_clock::now();
        if (!deadline) deadline = now + o.cluster.failover_timeout;
        if (now >= *deadline) return false;
        const auto pause = std::min<std::chrono::steady_clock::duration>(
            detail::backoff::draw(o.retry_backoff, o.retry_backoff_max, std::min(attempt, 16)), *deadline - now);
        std::this_thread::sleep_for(pause);
        return true;
    };
    std::shared_ptr<detail::cluster_node_state> asking;
    int redirects = 0;
    // replica_reads: a read goes to a replica of the slot, unless one failed this request already
    bool from_replica = o.cluster.replica_reads && slot >= 0 && is_read_only(a.command_name());
    for (int attempt = 0;; ++attempt) {
        detail::reply_ptr r;
        try {
            if (asking) {
                const auto node = std::move(asking);
                asking.reset();
                r = execute_asking(*node, a);
            } else if (from_replica) {
                const auto node = cluster_->reader(slot);
                try {
                    r = execute_on(*node->pool, *node->shared, a, idempotent_request);
                } catch (const error& e) {
                    if (!e.is_transport() && e.kind() != errc::pool_exhausted) throw;
                    from_replica = false;  // read it from the primary instead
                    continue;
                }
            } else {
                const auto node = slot >= 0 ? cluster_->owner(slot) : cluster_->any_primary();
                r = execute_on(*node->pool, *node->shared, a, idempotent_request);
            }
        } catch (const server_error&) {
            throw;
        } catch (const error& e) {
            // nothing reached a server (the node is down, a failover is under way): find the slot's
            // owner again and retry while the failover window lasts
            if (e.kind() != errc::connect_failed) {
                if (e.is_transport()) cluster_->refresh(true);
                throw;
            }
            if (!cluster_->has_map()) throw;  // never reached the cluster: no failover to wait for
            cluster_->refresh(true);
            if (!may_wait(attempt)) throw;
            continue;
        }
        if (!detail::raw_is_error(r.get())) return r;
        const std::string_view text = detail::raw_str(r.get());
        detail::redirect to;
        if (detail::parse_redirect(text, "MOVED", to) && ++redirects <= 16) {
            cluster_->moved(to);
            continue;
        }
        if (detail::parse_redirect(text, "ASK", to) && ++redirects <= 16) {
            asking = cluster_->node_at(to.host, to.port);
            continue;
        }
        if (detail::cluster_busy(text)) {
            cluster_->refresh(true);
            if (may_wait(attempt)) continue;
        }
        return r;
    }
}

// ASKING and the command in one write on one pooled connection of the importing node.
inline detail::reply_ptr client::execute_asking(detail::cluster_node_state& n, const detail::argv& a) {
    lease l = n.pool->acquire();
    detail::argv asking;
    asking.push_all("ASKING");
    detail::transport& wire = detail::connection_access::wire(*l);
    wire.append(asking);
    wire.append(a);
    detail::reply_ptr ok, r;
    detail::io_status st = wire.flush();
    if (st.ok()) st = wire.read(ok);
    if (st.ok()) st = wire.read(r);
    if (!st.ok()) {
        error e = detail::transport_error(st, a.command_name(), a.first_key());
        n.pool->report(e);
        throw e;
    }
    return r;
}

namespace detail {
inline void append_bulk(std::string& out, std::string_view s) {
    out += '$';
    out += std::to_string(s.size());
    out += "\r\n";
    out.append(s.data(), s.size());
    out += "\r\n";
}
}  // namespace detail

// MGET, DEL, EXISTS, UNLINK, TOUCH over several slots: one command per slot, the replies merged
// in the caller's order (MGET) or summed.
inline detail::reply_ptr client::execute_split(const detail::argv& a, const detail::key_positions& keys,
                                               bool idempotent_request) const {
    std::vector<int> slots;
    std::vector<std::vector<std::size_t>> groups;  // argument indexes per slot
    for (const std::size_t i : keys.keys()) {
        const int s = detail::slot_of(a.at(i));
        const auto at = std::find(slots.begin(), slots.end(), s);
        if (at == slots.end()) {
            slots.push_back(s);
            groups.emplace_back(1, i);
        } else {
            groups[static_cast<std::size_t>(at - slots.begin())].push_back(i);
        }
    }
    const bool mget = detail::command_in(a.command_name(), {std::string_view("MGET")});
    std::vector<detail::reply_ptr> replies;
    replies.reserve(groups.size());
    long long sum = 0;
    for (std::size_t g = 0; g < groups.size(); ++g) {
        detail::argv one;
        one.push_all(a.command_name());
        for (const std::size_t i : groups[g]) one.push_all(a.at(i));
        detail::reply_ptr r = execute_cluster_slot(one, slots[g], idempotent_request);
        if (detail::raw_is_error(r.get())) return r;
        if (!mget) sum += detail::raw_integer(r.get());
        replies.push_back(std::move(r));
    }
    std::string resp;
    if (!mget) {
        resp = ":" + std::to_string(sum) + "\r\n";
        return detail::parse_resp(resp);
    }
    std::vector<const detail::raw_node*> value(a.size(), nullptr);
    for (std::size_t g = 0; g < groups.size(); ++g) {
        for (std::size_t j = 0; j < groups[g].size() && j < detail::raw_size(replies[g].get()); ++j) {
            value[groups[g][j]] = detail::raw_at(replies[g].get(), j);
        }
    }
    resp = "*" + std::to_string(keys.keys().size()) + "\r\n";
    for (const std::size_t i : keys.keys()) {
        const detail::raw_node* v = value[i];
        if (v == nullptr || detail::raw_type(v) == reply_type::nil) {
            resp += "$-1\r\n";
        } else {
            detail::append_bulk(resp, detail::raw_str(v));
        }
    }
    return detail::parse_resp(resp);
}

// FLUSHALL, FLUSHDB, SCRIPT, FUNCTION, DBSIZE, KEYS, CONFIG SET..., CLIENT PAUSE/LIST: on every
// primary. DBSIZE sums, KEYS and CLIENT LIST join, the others answer with the first primary's
// reply (or the first error).
inline detail::reply_ptr client::execute_broadcast(const detail::argv& a, bool idempotent_request) const {
    const auto nodes = cluster_->primaries();
    const bool dbsize = detail::command_in(a.command_name(), {std::string_view("DBSIZE")});
    const bool keys = detail::command_in(a.command_name(), {std::string_view("KEYS")});
    const bool lines = a.size() > 1 && detail::command_in(a.at(1), {std::string_view("LIST")});  // CLIENT LIST
    std::vector<detail::reply_ptr> replies;
    for (const auto& node : nodes) {
        detail::reply_ptr r;
        try {
            r = execute_on(*node->pool, *node->shared, a, idempotent_request);
        } catch (const error& e) {
            if (e.is_transport()) cluster_->refresh(true);
            throw;
        }
        if (detail::raw_is_error(r.get())) return r;
        replies.push_back(std::move(r));
    }
    if (!dbsize && !keys && !lines) return std::move(replies.front());
    std::string resp;
    if (lines) {
        std::string all;
        for (const auto& r : replies) all.append(detail::raw_str(r.get()));
        detail::append_bulk(resp, all);
    } else if (dbsize) {
        long long sum = 0;
        for (const auto& r : replies) sum += detail::raw_integer(r.get());
        resp = ":" + std::to_string(sum) + "\r\n";
    } else {
        std::size_t n = 0;
        for (const auto& r : replies) n += detail::raw_size(r.get());
        resp = "*" + std::to_string(n) + "\r\n";
        for (const auto& r : replies) {
            for (std::size_t j = 0; j < detail::raw_size(r.get()); ++j) {
                detail::append_bulk(resp, detail::raw_str(detail::raw_at(r.get(), j)));
            }
        }
    }
    return detail::parse_resp(resp);
}

inline lease client::borrow_slot(int slot, std::shared_ptr<detail::cluster_node_state>& node) const {
    const client_options& o = pool_->options();
    std::optional<std::chrono::steady_clock::time_point> deadline;
    for (int attempt = 0;; ++attempt) {
        try {
            node = slot >= 0 ? cluster_->owner(slot) : cluster_->home();
            return node->pool->borrow();
        } catch (const server_error&) {
            throw;
        } catch (const error& e) {
            if (e.kind() != errc::connect_failed || !cluster_->has_map()) throw;
            if (e.is_transport()) pool_->report(e);
            cluster_->refresh(true);
            const auto now = std::chrono::steady_clock::now();
            if (!deadline) deadline = now + o.cluster.failover_timeout;
            if (now >= *deadline) throw;
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
                detail::backoff::draw(o.retry_backoff, o.retry_backoff_max, std::min(attempt, 16)), *deadline - now));
        }
    }
}

inline connection client::dedicated_to(const std::shared_ptr<detail::cluster_node_state>& n) const {
    try {
        connection c(n->pool->shared_options());
        detail::connection_access::drop_on_moved(c);
        return c;
    } catch (const error& e) {
        if (e.kind() == errc::connect_failed) cluster_->refresh(true);
        throw;
    }
}

namespace detail {
/// Sends a pattern's failure to its own on_error when it has one, else to the client's.
inline void report_to(const std::function<void(const error&)>& own, const client& c, const error& e) noexcept {
    if (!own) {
        c.report(e);
        return;
    }
    try {
        own(e);
    } catch (...) {
        // documented: error callbacks must not throw; never let one break the caller
    }
}
}  // namespace detail

inline scan_range client::scan(std::string match, std::size_t count, std::string type) const {
    return scan_range(*this, std::move(match), count, std::move(type));
}

}  // namespace v0
}  // namespace redkit
