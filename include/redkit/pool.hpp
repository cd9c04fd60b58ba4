// SPDX-License-Identifier: MIT
// redkit::pool and redkit::lease: the bounded pool of connections behind a redkit::client.
//
// A pool holds at most client_options::pool_size connections, opened lazily, reused LIFO (the
// most recently used first, whose socket is warm). A caller that finds none free waits up to
// pool_wait_timeout, then gets error(pool_exhausted). A lease is a borrowed connection; it goes
// back when the lease is dropped, or is discarded when it broke (a connection that saw any
// transport failure is never reused). A connection idle for idle_check_after or longer is
// checked with a non-blocking poll before reuse, so one the server closed meanwhile is replaced
// before a command is written to it. Thread-safe.
#pragma once

#include <redkit/connection.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

class pool;

/// A borrowed connection: returns it to its pool (or discards it when broken) when dropped.
/// Use it from one thread at a time, and drop it before the client it came from.
class lease {
public:
    lease() = default;
    lease(lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), conn_(std::move(other.conn_)), keep_(std::move(other.keep_)) {}
    lease& operator=(lease&& other) noexcept {
        if (this != &other) {
            reset();
            pool_ = std::exchange(other.pool_, nullptr);
            conn_ = std::move(other.conn_);
            keep_ = std::move(other.keep_);
        }
        return *this;
    }
    ~lease() { reset(); }

    connection* operator->() const noexcept { return conn_.get(); }
    connection& operator*() const noexcept { return *conn_; }
    explicit operator bool() const noexcept { return conn_ != nullptr; }

    /// Gives the connection back now.
    void reset() noexcept;

private:
    friend class pool;
    lease(pool* p, std::unique_ptr<connection> c) noexcept : pool_(p), conn_(std::move(c)) {}

    pool* pool_ = nullptr;
    std::unique_ptr<connection> conn_;
    std::shared_ptr<pool> keep_;  // set by pool::borrow: keeps the pool alive while the lease lives
};

/// Bounded LIFO pool of connections sharing one set of options.
class pool : public std::enable_shared_from_this<pool> {
public:
    /// Validates the options (std::invalid_argument naming the field); connects nothing.
    explicit pool(client_options options);

    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// A connection: an idle one (checked after a long idle), a new one while fewer than
    /// pool_size exist, or the first one given back within pool_wait_timeout. Throws
    /// error(connect_failed | timeout) or server_error when a new connection fails its setup,
    /// error(pool_exhausted) when none became free in time.
    lease acquire();

    /// As acquire(), but an empty lease instead of waiting when every connection is busy.
    lease try_acquire() { return acquire_impl(false); }

    /// acquire(), and the lease keeps the pool alive (for leases handed to applications).
    lease borrow() {
        lease l = acquire();
        l.keep_ = shared_from_this();
        return l;
    }

    /// Opens one connection now (client_options::lazy_connect == false).
    void warm_up() { lease l = acquire(); }

    /// Connections currently open (idle or leased).
    std::size_t open_connections() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return open_;
    }

    const client_options& options() const noexcept { return *options_; }
    const std::shared_ptr<const client_options>& shared_options() const noexcept { return options_; }

    /// Sends an error to options().on_error (never throws).
    void report(const error& e) const noexcept {
        if (!options_->on_error) return;
        try {
            options_->on_error(e);
        } catch (...) {
            // documented: the callback must not throw; never let it break a request
        }
    }

    /// "host:port" or the socket path, for messages.
    std::string endpoint() const { return detail::transport::endpoint_of(*options_); }

private:
    friend class lease;
    void release(std::unique_ptr<connection> c) noexcept;
    lease acquire_impl(bool wait);
    bool healthy_after_idle(connection& c) const noexcept;

    std::shared_ptr<const client_options> options_;
    mutable std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<connection>> idle_;
    std::size_t open_ = 0;     // connections in existence (idle or leased), never above pool_size
    std::size_t waiters_ = 0;  // threads blocked in acquire(); release() signals only when there are some
};

// ---- implementation ----

inline void lease::reset() noexcept {
    if (pool_ && conn_) pool_->release(std::move(conn_));
    pool_ = nullptr;
    conn_.reset();
    keep_.reset();
}

inline pool::pool(client_options options) : options_(std::make_shared<const client_options>(std::move(options))) {
    const client_options& o = *options_;
    const auto bad = [](const char* what) {
        throw std::invalid_argument(std::string("redkit: client_options.") + what);
    };
    if (o.pool_size == 0) bad("pool_size must be at least 1");
    if (o.max_retries < 0) bad("max_retries must not be negative");
    if (o.connect_timeout.count() <= 0) bad("connect_timeout must be positive");
    if (o.command_timeout.count() < 0) bad("command_timeout must not be negative");
    if (o.port <= 0 || o.port > 65535) bad("port must be in [1, 65535]");
    if (!o.sentinel.master.empty() && o.sentinel.nodes.empty()) bad("sentinel.nodes must name a sentinel");
    if (o.db < 0) bad("db must not be negative");
    if (o.cluster.enabled() && !o.sentinel.master.empty()) bad("cluster and sentinel cannot both be set");
    if (o.cluster.enabled() && o.db != 0) bad("db must be 0 with cluster (Redis Cluster has only database 0)");
    if (o.sentinel.failover_timeout.count() < 0) bad("sentinel.failover_timeout must not be negative");
    if (o.cluster.enabled() && o.cluster.failover_timeout.count() < 0)
        bad("cluster.failover_timeout must not be negative");
    if (o.tls.enabled && !tls_available) throw std::invalid_argument(detail::no_tls_message("client_options::tls"));
    if (o.tls.enabled && !o.tls.verify) {
        report(error(errc::insecure, "redkit: TLS to " + endpoint() +
                                         " without certificate verification (tls_options::verify = false): "
                                         "encrypted, but nobody checks who is at the other end"));
    }
    idle_.reserve(std::min<std::size_t>(o.pool_size, 1024));  // release() pushes without allocating
}

inline lease pool::acquire() { return acquire_impl(true); }

inline lease pool::acquire_impl(bool wait) {
    std::optional<std::chrono::steady_clock::time_point> deadline;  // read the clock only if we must wait
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        if (!idle_.empty()) {
            std::unique_ptr<connection> c = std::move(idle_.back());
            idle_.pop_back();
            lock.unlock();
            if (healthy_after_idle(*c)) return lease(this, std::move(c));
            c.reset();  // closed by the server while idle: drop it, look again
            report(error(errc::connection_closed,
                         "redkit: pooled connection to " + endpoint() + " was closed while idle; replacing it"));
            lock.lock();
            --open_;
            continue;
        }
        if (open_ < options_->pool_size) {
            ++open_;
            lock.unlock();
            try {
                return lease(this, std::make_unique<connection>(options_));
            } catch (...) {
                lock.lock();
                --open_;
                const bool wake = waiters_ > 0;
                lock.unlock();
                if (wake) available_.notify_one();
                throw;
            }
        }
        if (!wait) return lease();
        if (!deadline) deadline = std::chrono::steady_clock::now() + options_->pool_wait_timeout;
        ++waiters_;
        const auto status = available_.wait_until(lock, *deadline);
        --waiters_;
        if (status == std::cv_status::timeout && idle_.empty() && open_ >= options_->pool_size) {
            throw error(errc::pool_exhausted, "redkit: all " + std::to_string(options_->pool_size) +
                                                  " pooled connections stayed busy for " +
                                                  std::to_string(options_->pool_wait_timeout.count()) + " ms");
        }
    }
}

inline void pool::release(std::unique_ptr<connection> c) noexcept {
    bool wake = false;
    if (!c->broken()) detail::connection_access::mark_used(*c);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (c->broken()) {
            --open_;
        } else {
            idle_.push_back(std::move(c));
        }
        wake = waiters_ > 0;
    }
    c.reset();  // a broken connection closes outside the lock
    if (wake) available_.notify_one();
}

inline bool pool::healthy_after_idle(connection& c) const noexcept {
    if (detail::connection_access::stale(c)) return false;  // a primary the sentinels replaced since
    if (options_->idle_check_after.count() > 0 &&
        std::chrono::steady_clock::now() - detail::connection_access::last_used(c) < options_->idle_check_after) {
        return !c.broken();
    }
    return detail::connection_access::idle_check(c);
}

}  // namespace v0
}  // namespace redkit
