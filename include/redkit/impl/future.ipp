// SPDX-License-Identifier: MIT
// redkit::future's out-of-line half (future.hpp): the multiplexer's side of a submitted command.
#pragma once

#include <redkit/core/dispatch/multiplexer.hpp>
#include <redkit/core/io/connection_access.hpp>
#include <redkit/future.hpp>

#include <exception>
#include <utility>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL bool request_done(const mux_request& r) noexcept { return r.park.done(); }

REDKIT_DECL void await_request(multiplexer* m, mux_request& r) {
    if (m) return m->await(r);
    if (r.park.done()) return;
    refuse_wait_in_completion();
    (void)r.park.wait_until(std::chrono::steady_clock::time_point::max());
}

REDKIT_DECL bool await_request_until(multiplexer* m, mux_request& r, std::chrono::steady_clock::time_point deadline) {
    return m ? m->await_until(r, deadline) : r.park.wait_until(deadline);
}

REDKIT_DECL reply_ptr take_reply(mux_request& r, std::string& command, std::string& key) {
    if (r.refused) std::rethrow_exception(r.refused);  // the setup's server_error (WRONGPASS...)
    if (!r.status.ok()) throw transport_error(r.status, r.command, r.key);
    command = std::move(r.command);
    key = std::move(r.key);
    return std::move(r.reply);
}

REDKIT_DECL bool attach_completion(multiplexer* m, const std::shared_ptr<mux_request>& r,
                                   std::unique_ptr<mux_completion>& c) {
    return m ? m->attach(r, c) : attach_detached(r, c);
}

REDKIT_DECL void run_completion(mux_completion& c, std::shared_ptr<mux_request> r) { c.complete(std::move(r)); }

REDKIT_DECL std::shared_ptr<mux_request> make_detached() { return std::make_shared<mux_request>(); }

REDKIT_DECL void settle(const std::shared_ptr<mux_request>& r, std::shared_ptr<void> made, std::exception_ptr e,
                        const std::function<void(const error&)>& on_error, bool throw_unhandled) {
    r->made = std::move(made);
    r->refused = std::move(e);
    if (on_error || !throw_unhandled) return finish_detached(r, on_error);
    std::exception_ptr thrown;
    finish_detached(r, [&thrown](const error& x) {
        if (!thrown) thrown = std::make_exception_ptr(x);
    });
    if (thrown) std::rethrow_exception(thrown);
}

REDKIT_DECL void* made_value(mux_request& r) {
    if (r.refused) std::rethrow_exception(r.refused);
    return r.made.get();
}

REDKIT_DECL void withdraw_request(mux_request& r) noexcept {
    r.withdrawn.store(true, std::memory_order_relaxed);
    if (const auto hop = r.hop.lock()) hop->withdrawn.store(true, std::memory_order_relaxed);  // a cluster command's
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
