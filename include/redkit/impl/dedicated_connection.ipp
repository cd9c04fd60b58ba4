// SPDX-License-Identifier: MIT
// redkit::dedicated_connection: out-of-line definitions (dedicated_connection.hpp).
#pragma once

#include <redkit/client.hpp>
#include <redkit/connection.hpp>
#include <redkit/dedicated_connection.hpp>
#include <redkit/error.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

namespace redkit {
inline namespace v0 {

REDKIT_DECL std::chrono::milliseconds dedicated_connection::grace() const noexcept {
    return std::max(redis_.options().command_timeout, std::chrono::milliseconds(1000));
}

REDKIT_DECL connection& dedicated_connection::get() {
    if (conn_ && !pending_ && (conn_->broken() || conn_->primary_replaced())) close();
    if (!conn_) {
        conn_.emplace(anchor_.empty() ? redis_.dedicated() : redis_.dedicated(anchor_));
        socket_timeout_ = redis_.options().command_timeout;
    }
    return *conn_;
}

REDKIT_DECL void dedicated_connection::close() noexcept {
    conn_.reset();
    pending_ = false;
}

REDKIT_DECL void dedicated_connection::set_anchor(std::string anchor) {
    if (anchor == anchor_) return;
    close();
    anchor_ = std::move(anchor);
}

// The connection for a command blocking up to `block`: its socket may stay silent that long and
// the grace after it (writes included), so the socket's timeout says the same.
REDKIT_DECL connection& dedicated_connection::prepare(std::chrono::milliseconds block) {
    if (pending_) close();  // an unread reply would answer the next command
    connection& c = get();
    const auto limit = block + grace();
    if (socket_timeout_ != limit) {
        try {
            c.set_timeout(limit);
        } catch (...) {
            close();
            throw;
        }
        socket_timeout_ = limit;
    }
    block_ = block;
    deadline_ = std::chrono::steady_clock::now() + limit;
    return c;
}

REDKIT_DECL void dedicated_connection::overdue() {
    close();
    throw error(errc::timeout, "redkit: " + command_ + " " + anchor_ + ": no reply within " +
                                   std::to_string((block_ + grace()).count()) + " ms (its block and " +
                                   std::to_string(grace().count()) + " ms); reconnecting");
}

}  // namespace v0
}  // namespace redkit
