// SPDX-License-Identifier: MIT
// Pub/sub with typed messages: redkit::publisher and redkit::subscriber.
//
// Delivery is at-most-once, as Redis pub/sub is: a message published while a subscriber is
// disconnected, or dropped because the subscriber fell behind (the server's
// client-output-buffer-limit for pubsub disconnects slow subscribers), is gone. When messages must
// survive restarts, use a Stream with a consumer group (redkit/stream.hpp).
//
// publisher: PUBLISH / SPUBLISH through the client's pool; one round trip, returns the number of
// receivers. subscriber: owns one connection and one background thread. Subscribing and
// unsubscribing are possible from any thread, handlers included; handlers run on the subscriber's
// thread, one at a time, in the order the server delivered the messages (so per-channel order is
// kept). While idle it PINGs every ping_interval to find a dead connection. When the connection
// drops (restart, CLIENT KILL, network) it reconnects with backoff, subscribes every channel,
// pattern and shard channel again, and calls on_reconnect once the server confirmed them all:
// messages published meanwhile were lost. stop() (and the destructor) returns promptly even while
// the server is silent: the thread waits in poll() on the socket and an eventfd that stop() raises;
// the bound is the time a handler in progress takes to return, or connect_timeout while connecting.
// No handler starts once stop() was requested, even for messages already read.
//
// A message that does not decode into T (errc::decode_error), or a handler that throws anything
// (errc::handler_failed, naming the channel), goes to on_error (default: the client's on_error);
// the subscriber keeps running. Keys: none (channels are not keys; sharded
// channels hash like keys on Redis Cluster).
//
// Redis Cluster: a subscriber's connection goes to the primary of slot 0 (as PUBLISH does, so its
// receiver count is exact), or, when it has shard channels, to the owner of the first one's slot;
// every node relays classic messages. Shard channels of one subscriber must live on one node (one
// hash tag): one on another node is unsubscribed and reported. When a slot moves (resharding,
// failover) the subscriber follows it to the new owner, like any reconnect.
#pragma once

#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/connection.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/detail/redirect.hpp>
#include <redkit/error.hpp>
#include <redkit/key.hpp>
#include <redkit/reply.hpp>
#include <redkit/waker.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// A received message. The views are valid only during the handler call; copy what you keep.
struct message {
    std::string_view channel;
    std::string_view pattern;  ///< the pattern that matched, for pattern subscriptions; else empty
    std::string_view payload;
    bool sharded = false;  ///< delivered through a shard channel (SSUBSCRIBE)
};

/// Publishes values as JSON (or raw bytes). Thread-safe; one round trip per call.
///
/// @code
/// redkit::publisher pub;                        // on redkit::default_client()
/// long long receivers = pub.publish("orders:updates", order_status{...});
/// @endcode
class publisher {
public:
    explicit publisher(client c = default_client()) : client_(std::move(c)) {}

    /// PUBLISH channel <JSON of value>. Returns how many subscribers received it.
    template <class T>
    long long publish(std::string_view channel, const T& value) {
        return publish_raw(channel, encode(value));
    }

    /// PUBLISH channel bytes, unchanged.
    long long publish_raw(std::string_view channel, std::string_view bytes) {
        return client_.command<long long>("PUBLISH", channel, bytes);
    }

    /// SPUBLISH (sharded pub/sub, Redis 7+): the message goes only to the shard owning the channel.
    template <class T>
    long long publish_sharded(std::string_view channel, const T& value) {
        return publish_sharded_raw(channel, encode(value));
    }
    long long publish_sharded_raw(std::string_view channel, std::string_view bytes) {
        return client_.command<long long>("SPUBLISH", channel, bytes);
    }

private:
    client client_;
};

namespace detail {
/// Thrown by a typed handler wrapper when a message does not decode: a decode error, not a
/// failure of the application's handler.
struct undecodable_message {
    error failure;
};
}  // namespace detail

struct subscriber_options {
    /// Decode failures, handler exceptions and connection trouble. Runs on the subscriber's
    /// thread; must not throw. Default: the client's on_error.
    std::function<void(const error&)> on_error;
    /// Called (on the subscriber's thread) after a dropped connection came back and the server
    /// confirmed every subscription again. Messages published in between were lost.
    std::function<void()> on_reconnect;
    /// PING this often while no traffic arrives; a connection that does not answer within another
    /// interval is treated as dead. 0 turns the health check off.
    std::chrono::milliseconds ping_interval{5000};
    std::chrono::milliseconds reconnect_backoff{50};        ///< first delay; doubles per failed attempt
    std::chrono::milliseconds reconnect_backoff_max{2000};  ///< cap; each delay is drawn in [d/2, d]
};

/// Receives messages on a connection and a thread of its own.
///
/// @code
/// redkit::subscriber sub;
/// sub.on<order_status>("orders:updates", [](const order_status& o) { notify(o); });
/// sub.on_pattern_raw("audit:*", [](const redkit::message& m) { log(m.channel, m.payload); });
/// sub.wait_subscribed(std::chrono::seconds(1));
/// @endcode
class subscriber {
public:
    using raw_handler = std::function<void(const message&)>;

    /// Starts the background thread, which connects (and keeps reconnecting) by itself.
    explicit subscriber(client c = default_client(), subscriber_options options = {});
    /// Stops and joins (unsubscribes by closing the connection).
    ~subscriber() { stop(); }

    subscriber(const subscriber&) = delete;
    subscriber& operator=(const subscriber&) = delete;

    /// SUBSCRIBE channel; each message is decoded from JSON into T. F is void(const T&) or
    /// void(const T&, const message&). Replaces an existing handler of that channel.
    template <class T, class F>
    void on(std::string channel, F handler) {
        add(kind_channel, std::move(channel), typed<T>(std::move(handler)));
    }
    /// SUBSCRIBE channel, raw bytes.
    void on_raw(std::string channel, raw_handler handler) { add(kind_channel, std::move(channel), std::move(handler)); }

    /// PSUBSCRIBE pattern (glob: * ? [...]), typed.
    template <class T, class F>
    void on_pattern(std::string pattern, F handler) {
        add(kind_pattern, std::move(pattern), typed<T>(std::move(handler)));
    }
    void on_pattern_raw(std::string pattern, raw_handler handler) {
        add(kind_pattern, std::move(pattern), std::move(handler));
    }

    /// SSUBSCRIBE shard channel (Redis 7+), typed.
    template <class T, class F>
    void on_sharded(std::string channel, F handler) {
        add(kind_shard, std::move(channel), typed<T>(std::move(handler)));
    }
    void on_sharded_raw(std::string channel, raw_handler handler) {
        add(kind_shard, std::move(channel), std::move(handler));
    }

    /// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE. After it returns, no new handler call for that
    /// name starts (one already running on the subscriber's thread may finish).
    void off(const std::string& channel) { remove(kind_channel, channel); }
    void off_pattern(const std::string& pattern) { remove(kind_pattern, pattern); }
    void off_sharded(const std::string& channel) { remove(kind_shard, channel); }

    /// Waits until the server has confirmed every current subscription. False on timeout.
    bool wait_subscribed(std::chrono::milliseconds timeout);

    /// Stops the thread and closes the connection. Idempotent and thread-safe (any number of
    /// threads may call it at once, the destructor included); returns once the handler running at
    /// the time (if any) returned. No handler starts after stop() was requested, even for messages
    /// already read. Called from inside a handler it only requests the stop (the destructor joins).
    void stop();

    /// Times the connection was re-established after a drop.
    std::uint64_t reconnects() const noexcept { return reconnects_.load(std::memory_order_relaxed); }
    /// Messages handed to a handler (including ones whose handler threw).
    std::uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }

private:
    enum kind : std::size_t { kind_channel = 0, kind_pattern = 1, kind_shard = 2 };
    static constexpr const char* subscribe_command[3] = {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"};
    static constexpr const char* unsubscribe_command[3] = {"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"};

    struct op {
        kind k;
        bool subscribe;
        std::string name;
    };

    template <class T, class F>
    static raw_handler typed(F handler) {
        static_assert(std::is_invocable_v<F&, const T&> || std::is_invocable_v<F&, const T&, const message&>,
                      "redkit: a typed handler takes (const T&) or (const T&, const redkit::message&)");
        return [h = std::move(handler)](const message& m) mutable {
            const T value = decode_message<T>(m);
            if constexpr (std::is_invocable_v<F&, const T&, const message&>) {
                h(value, m);
            } else {
                h(value);
            }
        };
    }

    // A message's payload as T; a failure is a decode error, not a failure of the handler.
    template <class T>
    static T decode_message(const message& m) {
        try {
            return decode<T>(m.payload, m.channel);
        } catch (const error& e) {
            throw detail::undecodable_message{e};
        }
    }

    void add(kind k, std::string name, raw_handler handler);
    void remove(kind k, const std::string& name);
    void run();
    bool session(connection& conn);  // true: stop requested; false or a throw: reconnect
    void send_ops(connection& conn, std::vector<op>& ops);
    void dispatch(reply_view reply);
    void deliver(kind k, std::string_view name, const message& m);
    void report(const error& e) noexcept;
    bool all_confirmed_locked() const;
    void pause();  // the reconnect backoff, cut short by stop()

    client client_;
    subscriber_options options_;
    waker wake_;
    detail::backoff backoff_;

    mutable std::mutex mutex_;
    std::condition_variable confirmed_cv_;
    std::unordered_map<std::string, std::shared_ptr<raw_handler>> handlers_[3];
    std::unordered_set<std::string> confirmed_[3];
    std::vector<op> pending_;
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> attention_{false};  // pending_ or resubscribe_pending_ need the thread's look
    bool resubscribe_pending_ = false;    // a reconnect whose on_reconnect has not fired yet
    int anchor_slot_ = -1;                // on a cluster: the slot whose owner this connection is on
    bool moved_away_ = false;             // on a cluster: the server dropped a wanted shard channel

    std::atomic<std::uint64_t> reconnects_{0};
    std::atomic<std::uint64_t> delivered_{0};
    std::string lookup_;     // subscriber thread only: reused key buffer for handler lookups
    std::mutex join_mutex_;  // one stop() joins; the others wait for it, then find nothing to join
    std::thread thread_;
    std::thread::id thread_id_;  // set once in the constructor
};

// ---- implementation ----

inline subscriber::subscriber(client c, subscriber_options options)
    : client_(std::move(c)),
      options_(std::move(options)),
      backoff_(options_.reconnect_backoff, options_.reconnect_backoff_max) {
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

inline void subscriber::add(kind k, std::string name, raw_handler handler) {
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

inline void subscriber::remove(kind k, const std::string& name) {
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

inline bool subscriber::all_confirmed_locked() const {
    for (std::size_t k = 0; k < 3; ++k) {
        for (const auto& entry : handlers_[k]) {
            if (confirmed_[k].count(entry.first) == 0) return false;
        }
    }
    return true;
}

inline bool subscriber::wait_subscribed(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return confirmed_cv_.wait_for(lock, timeout, [this] { return all_confirmed_locked(); });
}

inline void subscriber::stop() {
    stop_requested_.store(true);
    wake_.notify();
    if (std::this_thread::get_id() == thread_id_) return;  // from a handler: the destructor joins
    std::lock_guard<std::mutex> lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
}

inline void subscriber::report(const error& e) noexcept { detail::report_to(options_.on_error, client_, e); }

inline void subscriber::pause() { wake_.sleep_for(backoff_.next()); }

inline void subscriber::run() {
    bool connected_before = false;
    for (;;) {
        if (stop_requested_.load()) return;
        std::unique_ptr<connection> conn;
        try {
            // on a cluster, shard channels live on the owner of their slot: connect there
            std::string anchor;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!handlers_[kind_shard].empty()) anchor = handlers_[kind_shard].begin()->first;
                anchor_slot_ = anchor.empty() ? -1 : key_slot(anchor);
            }
            conn = std::make_unique<connection>(anchor.empty() ? client_.dedicated() : client_.dedicated(anchor));
        } catch (const error& e) {
            report(e);
            pause();
            continue;
        } catch (const std::exception& e) {
            report(error(errc::connect_failed, std::string("redkit: subscriber: ") + e.what()));
            pause();
            continue;
        }
        if (connected_before) reconnects_.fetch_add(1, std::memory_order_relaxed);
        bool stopped = false;
        try {
            stopped = session(*conn);
        } catch (const error& e) {
            report(e);  // the connection failed (or a PING went unanswered): reconnect
        }
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

inline void subscriber::send_ops(connection& conn, std::vector<op>& ops) {
    if (ops.empty()) return;
    for (const op& o : ops) conn.append(o.subscribe ? subscribe_command[o.k] : unsubscribe_command[o.k], o.name);
    ops.clear();
    conn.flush();
}

inline bool subscriber::session(connection& conn) {
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
                try {
                    options_.on_reconnect();
                } catch (const std::exception& e) {
                    report(error(errc::handler_failed,
                                 std::string("redkit: subscriber: on_reconnect threw: ") + e.what()));
                } catch (...) {
                    report(error(errc::handler_failed, "redkit: subscriber: on_reconnect threw"));
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

inline void subscriber::dispatch(reply_view reply) {
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

inline void subscriber::deliver(kind k, std::string_view name, const message& m) {
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
    try {
        (*handler)(m);
    } catch (const detail::undecodable_message& u) {
        report(u.failure);
    } catch (const std::exception& e) {
        report(error(errc::handler_failed,
                     "redkit: subscriber " + std::string(m.channel) + ": handler threw: " + e.what()));
    } catch (...) {
        report(error(errc::handler_failed, "redkit: subscriber " + std::string(m.channel) + ": handler threw"));
    }
}

}  // namespace v0
}  // namespace redkit
