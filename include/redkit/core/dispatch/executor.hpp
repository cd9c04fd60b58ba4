// SPDX-License-Identifier: MIT
// One request on one server: the retry rule, written once, and the choice between the shared
// (multiplexed) connection and a pooled one. The client sends every command through execute()
// here (per node, on a cluster).
//
// Retry rule. A request that failed on the transport is tried again on a fresh connection, up to
// client_options::max_retries times with exponential backoff and jitter, only when a retry cannot
// run it twice:
//   - it provably never reached the server (connecting failed, the pooled connection was found
//     closed before the write, the very first write was refused with EPIPE/ECONNRESET, or it was
//     held for a Sentinel failover and its primary was replaced); or
//   - it is read-only (command_traits::read_only); or
//   - the caller marked it idempotent.
// A READONLY reply from a primary a failover demoted is tried again too (the command did not run).
// Timeouts are never retried (the command may still be running; a deadline is a deadline), a
// timeout while a new connection replays its setup included, and neither are error replies.
// Every transport failure, retried or not, is reported to client_options::on_error.
#pragma once

#include <redkit/connection.hpp>
#include <redkit/core/commands.hpp>
#include <redkit/core/dispatch/multiplexer.hpp>
#include <redkit/core/io/connection_access.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>
#include <redkit/pool.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

namespace redkit {
inline namespace v0 {
namespace detail {

/// The multiplexer a pool's callers share: made at construction with client_options::multiplex,
/// else on the first submit().
struct shared_dispatch {
    std::once_flag once;
    std::unique_ptr<multiplexer> mux;
    std::atomic<multiplexer*> made{nullptr};  // mux, once made (read without the once_flag)

    multiplexer& get(const pool& p) {
        std::call_once(once, [&] {
            mux = std::make_unique<multiplexer>(p.shared_options());
            made.store(mux.get(), std::memory_order_release);
        });
        return *mux;
    }
    bool connected() const noexcept {
        const multiplexer* m = made.load(std::memory_order_acquire);
        return m != nullptr && m->connected();
    }
    shared_dispatch() = default;
    shared_dispatch(const shared_dispatch&) = delete;
    shared_dispatch& operator=(const shared_dispatch&) = delete;
    /// The last share of a client may go on the multiplexer's own I/O thread (a completion
    /// callback that held a copy of the client, a coroutine it resumed): that thread cannot wait
    /// for itself to stop, so another stops it, once the callback has returned.
    ~shared_dispatch() {
        if (mux && mux->on_io_thread()) std::thread([m = std::move(mux)]() mutable { m.reset(); }).detach();
    }
};

/// What the executor reaches inside a pool: an acquire that returns its failure.
struct pool_access {
    static lease acquire(pool& p, bool wait, io_status& failure) { return p.acquire_impl(wait, failure); }
};

/// The retry rule for one request (see the header comment). Holds the attempt count; pause()
/// sleeps the backoff before the next attempt.
class retry_rule {
public:
    retry_rule(const client_options& o, const command_traits& t, bool idempotent) noexcept
        : options_(o), read_only_(t.read_only), idempotent_(idempotent) {}

    /// Whether a request that failed with `st` on the transport may run again: it cannot run
    /// twice, and attempts are left.
    bool after_failure(const io_status& st) const noexcept { return safe(st) && attempts_left(); }
    /// Whether a request may be tried again after an answer proving it did not run (a connect
    /// that failed, READONLY from a demoted primary).
    bool after_refusal() const noexcept { return attempts_left(); }
    /// Whether sending again cannot run a request twice, whatever the attempts.
    bool safe(const io_status& st) const noexcept {
        return st.code != errc::timeout && st.code != errc::pool_exhausted &&
               (!st.maybe_sent || idempotent_ || read_only_);
    }
    bool attempts_left() const noexcept { return attempt_ < options_.max_retries; }
    int attempt() const noexcept { return attempt_; }

    /// Sleeps the backoff of this attempt and counts the next one.
    void pause() {
        std::this_thread::sleep_for(backoff::draw(options_.retry_backoff, options_.retry_backoff_max, attempt_));
        ++attempt_;
    }

private:
    const client_options& options_;
    const bool read_only_;
    const bool idempotent_;
    int attempt_ = 0;
};

inline reply_ptr execute_shared(pool& p, shared_dispatch& sd, const argv& a, const command_traits& t, bool idempotent,
                                command_watch* watch);

/// One command on one server, through the shared connection or a pooled one, retried by the rule.
/// Throws error (its message built once, naming the command and key) after the allowed retries;
/// server_error when a new connection's setup is refused. An error reply is returned. `watch`
/// (observed commands only) learns the path, the server and the retries.
inline reply_ptr execute(pool& p, shared_dispatch& sd, const argv& a, const command_traits& t, bool idempotent,
                         command_watch* watch = nullptr) {
    require_arguments(a);
    const client_options& o = p.options();
    // Multiplexed: share the connection, unless it is busy with too little to batch and a pooled
    // connection is free at once (then one command costs what it costs without multiplexing).
    lease spilled;
    std::optional<multiplexer::caller_guard> counted;
    if (o.multiplex && t.shareable) {
        multiplexer& mux = sd.get(p);
        counted.emplace(mux);
        if (!mux.lightly_loaded()) return execute_shared(p, sd, a, t, idempotent, watch);
        io_status failure;
        spilled = pool_access::acquire(p, false, failure);
        // a new pooled connection failed: share instead
        if (!failure.ok()) p.report(transport_error(failure, a.command_name(), a.first_key()));
        if (!spilled) return execute_shared(p, sd, a, t, idempotent, watch);
    }
    if (watch != nullptr) watch->path = command_path::pooled;
    for (retry_rule rule(o, t, idempotent);; rule.pause()) {
        io_status st;
        reply_ptr r;
        if (watch != nullptr && rule.attempt() > 0) ++watch->retries;
        {
            lease l = std::move(spilled);  // retries wait for the pool as usual
            if (!l) l = pool_access::acquire(p, true, st);
            if (l) {
                if (watch != nullptr) watch->server = connection_access::server(*l);
                st = connection_access::roundtrip(*l, a, r);
                if (st.ok() && connection_access::demoted(*l, r)) {
                    // READONLY: a primary demoted by a failover refused the command, which did not run
                    if (!rule.after_refusal()) return r;
                    p.report(error(errc::server_error, origin{a.command_name(), a.first_key()}.prefix() +
                                                           std::string(raw_str(r.get())) +
                                                           " (the primary moved; asking the sentinels again)"));
                    continue;
                }
            }
        }  // the connection goes back to the pool (or is discarded) before the reply is converted
        if (st.ok()) return r;
        error failure = transport_error(st, a.command_name(), a.first_key());
        // pool_exhausted is no failure of the transport: not reported, never retried
        if (st.code != errc::pool_exhausted) p.report(failure);
        if (!rule.after_failure(st)) throw failure;
    }
}

/// One command through the shared connection, retried by the rule.
inline reply_ptr execute_shared(pool& p, shared_dispatch& sd, const argv& a, const command_traits& t, bool idempotent,
                                command_watch* watch) {
    multiplexer& mux = sd.get(p);
    for (retry_rule rule(p.options(), t, idempotent);; rule.pause()) {
        reply_ptr r;
        bool demoted = false;
        const io_status st = mux.run(a, r, demoted);
        if (watch != nullptr) {
            watch->path = command_path::shared;
            if (rule.attempt() > 0) ++watch->retries;
            watch->server = mux.server();
        }
        if (st.ok() && demoted) {
            // READONLY: a primary demoted by a failover refused the command, which did not run
            if (!rule.after_refusal()) return r;
            p.report(error(errc::server_error, origin{a.command_name(), a.first_key()}.prefix() +
                                                   std::string(raw_str(r.get())) +
                                                   " (the primary moved; asking the sentinels again)"));
            continue;
        }
        if (st.ok()) return r;
        error failure = transport_error(st, a.command_name(), a.first_key());
        if (st.code != errc::pool_exhausted) p.report(failure);
        if (!rule.after_failure(st)) throw failure;
    }
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
