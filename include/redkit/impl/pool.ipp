// SPDX-License-Identifier: MIT
// redkit::pool and redkit::lease: out-of-line definitions (pool.hpp).
#pragma once

#include <redkit/core/io/connection_access.hpp>
#include <redkit/core/io/observe.hpp>
#include <redkit/core/io/tls.hpp>
#include <redkit/core/io/transport.hpp>
#include <redkit/pool.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace redkit {
inline namespace v0 {

REDKIT_DECL lease& lease::operator=(lease&& other) noexcept {
    if (this != &other) {
        reset();
        pool_ = std::exchange(other.pool_, nullptr);
        conn_ = std::move(other.conn_);
        keep_ = std::move(other.keep_);
    }
    return *this;
}

REDKIT_DECL void lease::reset() noexcept {
    if (pool_ && conn_) pool_->release(std::move(conn_));
    pool_ = nullptr;
    conn_.reset();
    keep_.reset();
}

REDKIT_DECL pool::pool(client_options options) : options_(std::make_shared<const client_options>(std::move(options))) {
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
    if (o.sentinel.failover_timeout.count() < 0) bad("sentinel.failover_timeout must not be negative");
    if (o.db < 0) bad("db must not be negative");
    if (o.cluster.enabled() && !o.sentinel.master.empty()) bad("cluster and sentinel cannot both be set");
    if (o.cluster.enabled() && o.db != 0) bad("db must be 0 with cluster (Redis Cluster has only database 0)");
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

REDKIT_DECL lease pool::acquire() { return acquire_or_throw(true); }

REDKIT_DECL lease pool::try_acquire() { return acquire_or_throw(false); }

REDKIT_DECL lease pool::borrow() {
    lease l = acquire();
    l.keep_ = shared_from_this();
    return l;
}

REDKIT_DECL std::size_t pool::open_connections() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return open_;
}

REDKIT_DECL void pool::report(const error& e) const noexcept { detail::notify(options_->on_error, e); }

REDKIT_DECL std::string pool::endpoint() const { return detail::transport::endpoint_of(*options_); }

REDKIT_DECL lease pool::acquire_or_throw(bool wait) {
    detail::io_status failure;
    lease l = acquire_impl(wait, failure);
    if (!failure.ok()) throw error(failure.code, "redkit: " + failure.text);
    return l;
}

REDKIT_DECL lease pool::acquire_impl(bool wait, detail::io_status& failure) {
    std::optional<std::chrono::steady_clock::time_point> deadline;  // read the clock only if we must wait
    // a caller that waited is reported to the observer, with or without a connection
    struct wait_report {
        const pool& p;
        const std::optional<std::chrono::steady_clock::time_point>& deadline;
        bool exhausted = false;
        ~wait_report() {
            if (!deadline || !p.options_->observer) return;
            try {
                const std::string server = p.endpoint();
                pool_wait_event e;
                e.server = server;
                e.waited = std::chrono::steady_clock::now() - (*deadline - p.options_->pool_wait_timeout);
                e.exhausted = exhausted;
                e.pool_size = p.options_->pool_size;
                detail::observe(p.options_->observer.get(), &observer::on_pool_wait, e);
            } catch (...) {  // out of memory for the name: not reported
            }
        }
    } waited{*this, deadline};
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
            std::unique_ptr<connection> c;
            std::exception_ptr thrown;  // a refused setup (server_error) or a bad configuration
            try {
                c = detail::connection_access::open(options_, failure);
            } catch (...) {
                thrown = std::current_exception();
            }
            if (c) return lease(this, std::move(c));
            lock.lock();
            --open_;
            const bool wake = waiters_ > 0;
            lock.unlock();
            if (wake) available_.notify_one();
            if (thrown) std::rethrow_exception(thrown);
            return lease();
        }
        if (!wait) return lease();
        if (!deadline) deadline = std::chrono::steady_clock::now() + options_->pool_wait_timeout;
        ++waiters_;
        const auto status = available_.wait_until(lock, *deadline);
        --waiters_;
        if (status == std::cv_status::timeout && idle_.empty() && open_ >= options_->pool_size) {
            waited.exhausted = true;
            failure = {errc::pool_exhausted, false,
                       "all " + std::to_string(options_->pool_size) + " pooled connections stayed busy for " +
                           std::to_string(options_->pool_wait_timeout.count()) + " ms"};
            return lease();
        }
    }
}

REDKIT_DECL void pool::release(std::unique_ptr<connection> c) noexcept {
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

REDKIT_DECL bool pool::healthy_after_idle(connection& c) const noexcept {
    if (detail::connection_access::stale(c)) return false;  // a primary the sentinels replaced since
    if (options_->idle_check_after.count() > 0 &&
        std::chrono::steady_clock::now() - detail::connection_access::last_used(c) < options_->idle_check_after) {
        return !c.broken();
    }
    return detail::connection_access::idle_check(c);
}

}  // namespace v0
}  // namespace redkit
