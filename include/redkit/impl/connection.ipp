// SPDX-License-Identifier: MIT
// redkit::connection's out-of-line definitions (connection.hpp).
#pragma once

#include <redkit/connection.hpp>
#include <redkit/core/io/observe.hpp>
#include <redkit/core/io/sentinel.hpp>
#include <redkit/core/io/transport.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace redkit {
inline namespace v0 {

REDKIT_DECL connection::connection(unopened, std::shared_ptr<const client_options> options)
    : options_(std::move(options)), transport_(std::make_unique<detail::transport>()) {}

REDKIT_DECL connection::connection(std::shared_ptr<const client_options> options)
    : connection(unopened{}, std::move(options)) {
    if (detail::io_status st = open(); !st.ok()) throw error(st.code, "redkit: " + st.text);
}

REDKIT_DECL connection::connection(connection&&) noexcept = default;
REDKIT_DECL connection& connection::operator=(connection&&) noexcept = default;
REDKIT_DECL connection::~connection() {
    if (server_ == nullptr || !transport_ || !options_ || !options_->observer) return;
    close_event e;
    e.server = *server_;
    e.reason = transport_->broken_by();
    e.lifetime = std::chrono::steady_clock::now() - opened_at_;
    detail::observe(options_->observer.get(), &observer::on_close, e);
}

REDKIT_DECL detail::io_status connection::open() {
    const client_options& o = *options_;
    if (!o.observer) return open_unobserved();
    const auto started = std::chrono::steady_clock::now();
    detail::io_status st;
    try {
        st = open_unobserved();
    } catch (const server_error& e) {  // a refused setup
        const detail::io_status refused{errc::server_error, false, e.what()};
        detail::observe_connect(o, address(), std::chrono::steady_clock::now() - started, &refused);
        throw;
    }
    detail::observe_connect(o, address(), std::chrono::steady_clock::now() - started, &st);
    if (st.ok()) {
        opened_at_ = std::chrono::steady_clock::now();
        server_ = detail::intern_server(address());
    }
    return st;
}

REDKIT_DECL std::string connection::address() const {
    return detail::transport::endpoint_of(*options_, host_.empty() ? options_->host : host_,
                                          host_.empty() ? options_->port : port_);
}

REDKIT_DECL detail::io_status connection::open_unobserved() {
    const client_options& o = *options_;
    std::string host = o.host;
    int port = o.port;
    if (!o.sentinel.master.empty()) {
        locator_ = detail::sentinel_locator::for_options(o);
        locator_->await_failover();  // not to the primary being replaced
        detail::sentinel_locator::address primary;
        std::string why;
        if (!locator_->locate(primary, why)) return {errc::connect_failed, false, why};
        locator_->report_switch(o.observer);
        generation_ = primary.generation;
        host = primary.host;
        port = primary.port;
        host_ = host;
        port_ = port;
    }
    if (detail::io_status st = transport_->connect(o, host, port); !st.ok()) {
        if (locator_) locator_->invalidate(generation_);  // gone, or not there yet: ask the sentinels next time
        return st;
    }
    if (!transport_->set_timeout(o.command_timeout)) {
        return {errc::io_error, false, "connection " + endpoint() + ": cannot set socket timeout"};
    }
    if (detail::io_status st = replay_setup(); !st.ok()) return st;
    last_used_ = std::chrono::steady_clock::now();
    return {};
}

REDKIT_DECL void connection::set_timeout(std::chrono::milliseconds timeout) {
    if (!transport_->set_timeout(timeout)) {
        throw error(errc::io_error, "redkit: connection " + endpoint() + ": cannot set socket timeout");
    }
}

REDKIT_DECL bool connection::broken() const noexcept { return !transport_ || transport_->broken(); }

REDKIT_DECL std::string connection::endpoint() const { return detail::transport::endpoint_of(*options_); }

REDKIT_DECL bool connection::stale() const noexcept { return locator_ && locator_->generation() != generation_; }

REDKIT_DECL bool connection::primary_replaced() const noexcept { return stale(); }

REDKIT_DECL bool connection::await_failover() {
    if (!locator_ || !locator_->failing_over()) return true;
    locator_->await_failover();
    if (!stale()) return true;
    transport_->poison(close_reason::failover);
    return false;
}

REDKIT_DECL detail::io_status connection::replay_setup() {
    const client_options& o = *options_;
    detail::transport& wire = *transport_;
    std::size_t pending = 0;
    std::string_view names[7];
    if (!o.password.empty()) {
        detail::argv a;
        if (o.user.empty()) {
            a.push_all("AUTH", o.password);
        } else {
            a.push_all("AUTH", o.user, o.password);
        }
        wire.append(a);
        names[pending++] = "AUTH";
    }
    if (o.db != 0) {
        detail::argv a;
        a.push_all("SELECT", o.db);
        wire.append(a);
        names[pending++] = "SELECT";
    }
    if (!o.client_name.empty()) {
        detail::argv a;
        a.push_all("CLIENT", "SETNAME", o.client_name);
        wire.append(a);
        names[pending++] = "CLIENT SETNAME";
    }
    if (o.read_only_replica) {
        detail::argv a;
        a.push_all("READONLY");
        wire.append(a);
        names[pending++] = "READONLY";
    }
    if (o.tracking_redirect != 0) {
        detail::argv a;
        a.push_all("CLIENT", "TRACKING", "on", "REDIRECT", o.tracking_redirect);
        wire.append(a);
        names[pending++] = "CLIENT TRACKING";
    }
    if (locator_) {
        // Sentinel may still name a primary that was just demoted: check before any command
        detail::argv a;
        a.push_all("ROLE");
        wire.append(a);
        names[pending++] = "ROLE";
    }
    if (pending == 0 && o.tls.enabled) {
        // TLS 1.3 servers send session tickets after the handshake: reading one round trip's reply
        // consumes them, so a later wait (SUBSCRIBE, BZPOPMIN) never sees a readable socket with
        // no reply behind it (and blocks in SSL_read).
        detail::argv a;
        a.push_all("PING");
        wire.append(a);
        names[pending++] = "PING";
    }
    if (pending == 0) return {};
    // A setup that times out is a timeout (never retried: the server may be stopped, not gone);
    // any other failure here happened before the caller's request was written: connect_failed.
    const auto setup_failed = [&](const detail::io_status& st, std::string_view step) {
        return detail::io_status{st.code == errc::timeout ? errc::timeout : errc::connect_failed, false,
                                 "connect " + endpoint() + ": " + std::string(step) + ": " + st.text};
    };
    if (detail::io_status st = wire.flush(); !st.ok()) return setup_failed(st, "setup");
    for (std::size_t i = 0; i < pending; ++i) {
        detail::reply_ptr r;
        if (detail::io_status st = wire.read(r); !st.ok()) return setup_failed(st, names[i]);
        if (names[i] == "ROLE" && !detail::raw_is_error(r.get())) {
            const bool primary =
                detail::raw_size(r.get()) > 0 && detail::raw_str(detail::raw_at(r.get(), 0)) == "master";
            if (!primary) {
                wire.poison(close_reason::failover);
                locator_->invalidate(generation_);
                return {errc::connect_failed, false,
                        "connect " + endpoint() +
                            ": the sentinels' primary is a replica now (a failover is under way); asking them again"};
            }
            continue;
        }
        if (detail::raw_is_error(r.get())) {
            wire.poison(close_reason::setup);  // a half set-up connection must not be pooled
            const std::string text(detail::raw_str(r.get()));
            throw server_error(text, "redkit: " + std::string(names[i]) + " " + endpoint() + ": " + text);
        }
    }
    return {};
}

REDKIT_DECL detail::io_status connection::roundtrip(const detail::argv& a, detail::reply_ptr& out) {
    detail::require_arguments(a);
    if (!await_failover()) return detail::failover_replaced_primary();
    transport_->append(a);
    if (auto st = transport_->flush(); !st.ok()) return st;
    auto st = transport_->read(out, read_spin_);
    if (st.ok()) check_demoted(out);
    return st;
}

REDKIT_DECL void connection::check_demoted(const detail::reply_ptr& r) noexcept {
    if (drop_on_moved_ && detail::raw_is_error(r.get()) && detail::raw_str(r.get()).substr(0, 6) == "MOVED ") {
        // the slot this connection was opened for lives elsewhere now: whoever holds it (a
        // worker, a subscriber) opens a new one, routed by the new map
        transport_->poison(close_reason::moved);
        return;
    }
    if (locator_ && detail::raw_is_error(r.get()) && detail::raw_str(r.get()).substr(0, 9) == "READONLY ") {
        // the primary was demoted under this connection: drop it and ask the sentinels again
        transport_->poison(close_reason::failover);
        locator_->invalidate(generation_);
    }
}

REDKIT_DECL detail::reply_ptr connection::exchange(const detail::argv& a) {
    detail::reply_ptr r;
    if (auto st = roundtrip(a, r); !st.ok()) throw detail::transport_error(st, a.command_name(), a.first_key());
    return r;
}

REDKIT_DECL void connection::append_argv(const detail::argv& a) {
    detail::require_arguments(a);
    transport_->append(a);
    last_command_.assign(a.command_name());
    last_key_.assign(a.first_key().substr(0, 200));
}

REDKIT_DECL void connection::flush() {
    if (auto st = transport_->flush(); !st.ok()) throw detail::transport_error(st, last_command_, last_key_);
}

REDKIT_DECL wait_status connection::wait_next(waker& wake, std::chrono::milliseconds timeout, detail::reply_ptr& out) {
    std::optional<std::chrono::steady_clock::time_point> deadline;  // the clock is read only if we must wait
    for (;;) {
        if (detail::io_status st; !transport_->take_buffered(out, st)) {
            throw detail::transport_error(st, last_command_, last_key_);
        }
        if (out) {
            check_demoted(out);
            return wait_status::reply;
        }
        if (!deadline && read_spin_.count() > 0) transport_->spin_until_readable(read_spin_);
        const auto now = std::chrono::steady_clock::now();
        if (!deadline) deadline = now + std::max(timeout, std::chrono::milliseconds(0));
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now);
        const auto w = transport_->wait_readable(wake.flag_, std::max(left, std::chrono::milliseconds(0)));
        if (w == detail::wait_result::woken) {
            wake.flag_.drain();
            return wait_status::woken;
        }
        if (w == detail::wait_result::timeout) return wait_status::timeout;
        if (auto st = transport_->read_available(); !st.ok())
            throw detail::transport_error(st, last_command_, last_key_);
    }
}

}  // namespace v0
}  // namespace redkit
