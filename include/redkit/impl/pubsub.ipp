// SPDX-License-Identifier: MIT
// redkit::publisher and redkit::subscriber: out-of-line definitions (pubsub.hpp).
#pragma once

#include <redkit/detail/exception_text.hpp>
#include <redkit/detail/redirect.hpp>
#include <redkit/key.hpp>
#include <redkit/pubsub.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

REDKIT_DECL long long publisher::publish_raw(std::string_view channel, std::string_view bytes) {
    return client_.command<long long>("PUBLISH", channel, bytes);
}

REDKIT_DECL long long publisher::publish_sharded_raw(std::string_view channel, std::string_view bytes) {
    return client_.command<long long>("SPUBLISH", channel, bytes);
}

REDKIT_DECL subscriber::subscriber(client c, subscriber_options options)
    : client_(std::move(c)),
      options_(std::move(options)),
      backoff_(options_.reconnect_backoff, options_.reconnect_backoff_max),
      conn_(client_) {
    if (options_.reconnect_backoff.count() <= 0) {
        throw std::invalid_argument("redkit: subscriber_options.reconnect_backoff must be positive");
    }
    if (options_.reconnect_backoff_max < options_.reconnect_backoff) {
        throw std::invalid_argument("redkit: subscriber_options.reconnect_backoff_max must be >= reconnect_backoff");
    }
    if (options_.ping_interval.count() < 0) {
        throw std::invalid_argument("redkit: subscriber_options.ping_interval must not be negative");
    }
    thread_ = std::thread([this] { run(); });
    thread_id_ = thread_.get_id();
}

REDKIT_DECL void subscriber::add(kind k, std::string name, raw_handler handler) {
    if (name.empty()) throw std::invalid_argument("redkit: subscriber: channel or pattern must not be empty");
    if (!handler) throw std::invalid_argument("redkit: subscriber: handler must not be empty");
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto& slot = handlers_[k][name];
        const bool is_new = slot == nullptr;
        slot = std::make_shared<raw_handler>(std::move(handler));
        if (is_new) {
            pending_.push_back({k, true, std::move(name)});
            attention_.store(true);
        }
    }
    wake_.notify();
}

REDKIT_DECL void subscriber::remove(kind k, const std::string& name) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (handlers_[k].erase(name) == 0) return;
        confirmed_[k].erase(name);
        pending_.push_back({k, false, name});
        attention_.store(true);
    }
    confirmed_cv_.notify_all();
    wake_.notify();
}

REDKIT_DECL bool subscriber::all_confirmed_locked() const {
    for (std::size_t k = 0; k < 3; ++k) {
        for (const auto& entry : handlers_[k]) {
            if (confirmed_[k].count(entry.first) == 0) return false;
        }
    }
    return true;
}

REDKIT_DECL bool subscriber::wait_subscribed(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return confirmed_cv_.wait_for(lock, timeout, [this] { return all_confirmed_locked(); });
}

REDKIT_DECL void subscriber::stop() {
    stop_requested_.store(true);
    wake_.notify();
    if (std::this_thread::get_id() == thread_id_) return;  // from a handler: the destructor joins
    std::lock_guard<std::mutex> lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
}

REDKIT_DECL void subscriber::report(const error& e) noexcept { detail::report_to(options_.on_error, client_, e); }

REDKIT_DECL void subscriber::pause() { wake_.sleep_for(backoff_.next()); }

REDKIT_DECL void subscriber::run() {
    bool connected_before = false;
    for (;;) {
        if (stop_requested_.load()) return;
        connection* conn = nullptr;
        try {
            // on a cluster, shard channels live on the owner of their slot: connect there
            std::string anchor;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!handlers_[kind_shard].empty()) anchor = handlers_[kind_shard].begin()->first;
                anchor_slot_ = anchor.empty() ? -1 : key_slot(anchor);
            }
            conn_.set_anchor(std::move(anchor));
            conn = &conn_.get();
        } catch (const error& e) {
            report(e);
            pause();
            continue;
        } catch (const std::exception& e) {
            report(error(errc::connect_failed, std::string("redkit: subscriber: ") + e.what()));
            pause();
            continue;
        }
        if (connected_before) {
            reconnects_.fetch_add(1, std::memory_order_relaxed);
            detail::observe_consumer(client_.options().observer.get(), consumer_step::reconnected, {});
        }
        bool stopped = false;
        try {
            stopped = session(*conn);
        } catch (const error& e) {
            report(e);  // the connection failed (or a PING went unanswered): reconnect
        }
        conn_.close();  // a session ends for good: subscribing again starts on a new connection
        if (stopped) return;
        connected_before = true;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (auto& c : confirmed_) c.clear();
            resubscribe_pending_ = true;
            attention_.store(true);
        }
        backoff_.reset();  // this connection worked: start the backoff afresh
        pause();
    }
}

REDKIT_DECL void subscriber::send_ops(connection& conn, std::vector<op>& ops) {
    if (ops.empty()) return;
    for (const op& o : ops) conn.append(o.subscribe ? subscribe_command[o.k] : unsubscribe_command[o.k], o.name);
    ops.clear();
    conn.flush();
}

REDKIT_DECL bool subscriber::session(connection& conn) {
    // (Re)subscribe everything wanted now; queued ops are subsumed by this snapshot.
    std::vector<op> ops;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_requested_) return true;
        pending_.clear();
        for (std::size_t k = 0; k < 3; ++k) {
            for (const auto& entry : handlers_[k]) ops.push_back({static_cast<kind>(k), true, entry.first});
        }
    }
    send_ops(conn, ops);

    const bool pinging = options_.ping_interval.count() > 0;
    const auto wait_for = pinging ? options_.ping_interval : std::chrono::milliseconds(3600 * 1000);
    bool awaiting_pong = false;
    for (;;) {
        // no handler starts once stop() was asked, even for messages already read
        if (stop_requested_.load()) return true;
        if (attention_.load()) {  // ops queued, or an on_reconnect waiting for confirmations
            bool fire_reconnect = false;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                ops.swap(pending_);
                if (resubscribe_pending_ && ops.empty() && all_confirmed_locked()) {
                    resubscribe_pending_ = false;
                    fire_reconnect = true;
                }
                attention_.store(resubscribe_pending_);
            }
            send_ops(conn, ops);
            if (fire_reconnect && options_.on_reconnect) {
                if (const auto thrown = detail::call_caught(options_.on_reconnect)) {
                    report(error(errc::handler_failed, "redkit: subscriber: on_reconnect threw" + *thrown));
                }
            }
        }
        const wait_status w = conn.wait_reply(wake_, wait_for, [&](reply_view r) {
            awaiting_pong = false;
            dispatch(r);
        });
        if (w != wait_status::timeout) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!moved_away_) continue;
            moved_away_ = false;
            report(error(errc::connection_closed,
                         "redkit: subscriber: the cluster moved a shard channel's slot; subscribing on its new owner"));
            return false;
        }
        if (awaiting_pong) {
            report(error(errc::timeout, "redkit: subscriber: no answer to PING within " +
                                            std::to_string(options_.ping_interval.count()) + " ms; reconnecting"));
            return false;
        }
        conn.send("PING");
        awaiting_pong = true;
    }
}

REDKIT_DECL void subscriber::dispatch(reply_view reply) {
    if (reply.type() == reply_type::error) {
        const std::string text(reply.str());
        detail::redirect moved;
        if (detail::parse_redirect(text, "MOVED", moved)) {
            // SSUBSCRIBE of a shard channel another node serves. The connection is dropped and made
            // again on the owner of the first shard channel; channels of other nodes cannot share it
            std::vector<std::string> dropped;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                for (auto it = handlers_[kind_shard].begin(); it != handlers_[kind_shard].end();) {
                    // (a connection made before any shard channel was wanted just moves to its owner)
                    if (anchor_slot_ >= 0 && key_slot(it->first) == moved.slot && moved.slot != anchor_slot_) {
                        dropped.push_back(it->first);
                        confirmed_[kind_shard].erase(it->first);
                        it = handlers_[kind_shard].erase(it);
                    } else {
                        ++it;
                    }
                }
            }
            for (const auto& channel : dropped) {
                report(error(errc::invalid_state,
                             "redkit: subscriber: shard channel " + channel + " (slot " + std::to_string(moved.slot) +
                                 ") lives on another cluster node than this subscriber's other shard channels; "
                                 "unsubscribed. Use one subscriber per node, or one hash tag for the channels"));
            }
            if (dropped.empty()) {
                report(server_error(text, "redkit: subscriber: " + text + " (the slot moved; reconnecting)"));
            }
            return;
        }
        report(server_error(text, "redkit: subscriber: " + text));
        return;
    }
    if (!reply.is_array() || reply.size() < 2) return;
    const std::string_view type = reply[0].str();
    if (type == "message" && reply.size() >= 3) {
        message m;
        m.channel = reply[1].str();
        m.payload = reply[2].str();
        deliver(kind_channel, m.channel, m);
    } else if (type == "pmessage" && reply.size() >= 4) {
        message m;
        m.pattern = reply[1].str();
        m.channel = reply[2].str();
        m.payload = reply[3].str();
        deliver(kind_pattern, m.pattern, m);
    } else if (type == "smessage" && reply.size() >= 3) {
        message m;
        m.channel = reply[1].str();
        m.payload = reply[2].str();
        m.sharded = true;
        deliver(kind_shard, m.channel, m);
    } else if (type == "subscribe" || type == "psubscribe" || type == "ssubscribe") {
        const kind k = type == "subscribe" ? kind_channel : type == "psubscribe" ? kind_pattern : kind_shard;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            lookup_.assign(reply[1].str());
            if (handlers_[k].count(lookup_) != 0) confirmed_[k].insert(lookup_);
            if (resubscribe_pending_) attention_.store(true);  // on_reconnect may be due
        }
        confirmed_cv_.notify_all();
    } else if (type == "sunsubscribe") {
        // on a cluster, a node that loses a slot unsubscribes its shard channels by itself: follow
        // the slot to its new owner if the channel is still wanted
        std::lock_guard<std::mutex> lock(mutex_);
        lookup_.assign(reply[1].str());
        if (handlers_[kind_shard].count(lookup_) != 0 && confirmed_[kind_shard].count(lookup_) != 0) {
            moved_away_ = true;
        }
    }
    // other unsubscribe acknowledgements and PONGs need no action
}

REDKIT_DECL void subscriber::deliver(kind k, std::string_view name, const message& m) {
    std::shared_ptr<raw_handler> handler;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_requested_.load()) return;  // stop() from a handler called before this message
        lookup_.assign(name.data(), name.size());
        const auto it = handlers_[k].find(lookup_);
        if (it == handlers_[k].end()) return;  // unsubscribed meanwhile
        handler = it->second;
    }
    delivered_.fetch_add(1, std::memory_order_relaxed);
    const auto thrown = detail::call_caught([&] {
        try {
            (*handler)(m);
        } catch (const detail::undecodable_message& u) {
            report(u.failure);  // the payload did not decode into the handler's type
        }
    });
    if (thrown) {
        // the observer first: what on_error's caller sees, the observer has seen
        detail::observe_consumer(client_.options().observer.get(), consumer_step::handler_failed, m.channel, {}, {}, {},
                                 *thrown);
        report(
            error(errc::handler_failed, "redkit: subscriber " + std::string(m.channel) + ": handler threw" + *thrown));
    }
}

}  // namespace v0
}  // namespace redkit
