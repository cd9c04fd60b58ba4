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

#include <redkit/config.hpp>
#include <redkit/connection.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

class pool;
namespace detail {
struct pool_access;
}

/// A borrowed connection: returns it to its pool (or discards it when broken) when dropped.
/// Use it from one thread at a time, and drop it before the client it came from.
class lease {
public:
    /// An empty lease (no connection).
    lease() = default;
    /// Takes over `other`'s connection; `other` is left empty.
    lease(lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), conn_(std::move(other.conn_)), keep_(std::move(other.keep_)) {}
    /// Gives this lease's connection back (as reset()), then takes over `other`'s.
    REDKIT_DECL lease& operator=(lease&& other) noexcept;
    /// Gives the connection back (reset()).
    ~lease() { reset(); }

    /// The leased connection; the lease must not be empty.
    connection* operator->() const noexcept { return conn_.get(); }
    /// The leased connection; the lease must not be empty.
    connection& operator*() const noexcept { return *conn_; }
    /// Whether the lease holds a connection: false once moved from or reset, for a default-made
    /// lease, and for the one try_acquire() returns when every connection is busy.
    explicit operator bool() const noexcept { return conn_ != nullptr; }

    /// Gives the connection back now.
    REDKIT_DECL void reset() noexcept;

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
    REDKIT_DECL explicit pool(client_options options);

    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// A connection: an idle one (checked after a long idle), a new one while fewer than
    /// pool_size exist, or the first one given back within pool_wait_timeout. Throws
    /// error(connect_failed | timeout) or server_error when a new connection fails its setup,
    /// error(pool_exhausted) when none became free in time.
    REDKIT_DECL lease acquire();

    /// As acquire(), but an empty lease instead of waiting when every connection is busy.
    REDKIT_DECL lease try_acquire();

    /// acquire(), and the lease keeps the pool alive (for leases handed to applications).
    REDKIT_DECL lease borrow();

    /// Opens one connection now (client_options::lazy_connect == false).
    void warm_up() { lease l = acquire(); }

    /// Connections currently open (idle or leased).
    REDKIT_DECL std::size_t open_connections() const;

    /// The options every connection of this pool is made with.
    const client_options& options() const noexcept { return *options_; }
    /// The same options, as the shared pointer the pool's connections hold.
    const std::shared_ptr<const client_options>& shared_options() const noexcept { return options_; }

    /// Sends an error to options().on_error (never throws).
    REDKIT_DECL void report(const error& e) const noexcept;

    /// "host:port" or the socket path, for messages.
    REDKIT_DECL std::string endpoint() const;

private:
    friend class lease;
    friend struct detail::pool_access;
    REDKIT_DECL void release(std::unique_ptr<connection> c) noexcept;
    // An empty lease with `failure` set when a new connection could not be opened (its text
    // without "redkit: "), or (wait) when none became free in time (pool_exhausted); an empty
    // lease with `failure` ok when !wait and all are busy. A refused setup throws server_error.
    REDKIT_DECL lease acquire_impl(bool wait, detail::io_status& failure);
    REDKIT_DECL lease acquire_or_throw(bool wait);
    REDKIT_DECL bool healthy_after_idle(connection& c) const noexcept;

    std::shared_ptr<const client_options> options_;
    mutable std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<connection>> idle_;
    std::size_t open_ = 0;     // connections in existence (idle or leased), never above pool_size
    std::size_t waiters_ = 0;  // threads blocked in acquire(); release() signals only when there are some
};

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/pool.ipp>
#endif
