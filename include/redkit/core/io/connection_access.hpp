// SPDX-License-Identifier: MIT
// What the core (pool, executor, multiplexer, pipeline, cluster) reaches below a connection's
// public face: its wire, its status-returning round trip and open, its Sentinel state.
#pragma once

#include <redkit/connection.hpp>
#include <redkit/core/io/sentinel.hpp>
#include <redkit/core/io/transport.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>

namespace redkit {
inline namespace v0 {
namespace detail {

struct connection_access {
    /// A connection, or null with `failure` set when the server cannot be reached or the setup
    /// timed out (a refused setup throws server_error).
    static std::unique_ptr<connection> open(std::shared_ptr<const client_options> options, io_status& failure) {
        std::unique_ptr<connection> c(new connection(connection::unopened{}, std::move(options)));
        failure = c->open();
        if (!failure.ok()) c.reset();
        return c;
    }
    static io_status roundtrip(connection& c, const argv& a, reply_ptr& out) { return c.roundtrip(a, out); }
    static transport& wire(connection& c) noexcept { return *c.transport_; }
    static std::unordered_set<std::string>& loaded_scripts(connection& c) noexcept { return c.loaded_scripts_; }
    static std::chrono::steady_clock::time_point last_used(const connection& c) noexcept { return c.last_used_; }
    static void mark_used(connection& c) noexcept { c.last_used_ = std::chrono::steady_clock::now(); }
    static bool idle_check(connection& c) noexcept { return c.transport_->idle_check(); }
    /// Connected to a primary that the sentinels have replaced since (see sentinel.hpp).
    static bool stale(const connection& c) noexcept { return c.stale(); }
    /// The reply is READONLY from a primary turned replica (Sentinel): the connection was dropped
    /// and the sentinels will be asked again; the command did not run.
    static bool demoted(const connection& c, const reply_ptr& r) noexcept {
        return c.locator_ && c.transport_->broken() && raw_is_error(r.get()) &&
               raw_str(r.get()).substr(0, 9) == "READONLY ";
    }
    static void poison(connection& c) noexcept { c.transport_->poison(); }
    /// Where it is connected ("host:port", interned; null when it is not open or nothing observes).
    static const std::string* server(const connection& c) noexcept { return c.server_; }
    /// Before a write on the wire (multiplexer, pipeline): waits out a failover the sentinels
    /// announced; false (the connection broken) when its primary was replaced meanwhile.
    static bool await_failover(connection& c) { return c.await_failover(); }
    /// What a command held for a failover whose primary was replaced meanwhile fails with.
    static io_status failed_over() { return failover_replaced_primary(); }
    /// For replies read off the wire directly (multiplexer): what roundtrip does with READONLY.
    static void check_demoted(connection& c, const reply_ptr& r) noexcept { c.check_demoted(r); }
    /// A MOVED reply breaks the connection (it was opened for a slot that lives elsewhere now).
    static void drop_on_moved(connection& c) noexcept { c.drop_on_moved_ = true; }
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
