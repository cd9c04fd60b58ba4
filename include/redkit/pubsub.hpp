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
#include <redkit/config.hpp>
#include <redkit/connection.hpp>
#include <redkit/dedicated_connection.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/error.hpp>
#include <redkit/key.hpp>
#include <redkit/reply.hpp>
#include <redkit/waker.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
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
    std::string_view channel;  ///< the channel it was published to (also for pattern subscriptions)
    std::string_view pattern;  ///< the pattern that matched, for pattern subscriptions; else empty
    std::string_view payload;  ///< the bytes as published (JSON when sent by publisher::publish)
    bool sharded = false;      ///< delivered through a shard channel (SSUBSCRIBE)
};

/// Publishes values as JSON (or raw bytes). Thread-safe; one round trip per call.
///
/// @code
/// redkit::publisher pub;                        // on redkit::default_client()
/// long long receivers = pub.publish("orders:updates", order_status{...});
/// @endcode
class publisher {
public:
    /// Publishes through `c` (by default redkit::default_client()).
    explicit publisher(client c = default_client()) : client_(std::move(c)) {}

    /// PUBLISH channel, with `value` encoded by codec<T> (JSON by default) as the message.
    /// Returns how many subscribers received it.
    template <class T>
    long long publish(std::string_view channel, const T& value) {
        return publish_raw(channel, encode(value));
    }

    /// PUBLISH channel bytes, unchanged.
    REDKIT_DECL long long publish_raw(std::string_view channel, std::string_view bytes);

    /// SPUBLISH (sharded pub/sub, Redis 7+): the message goes only to the shard owning the channel.
    template <class T>
    long long publish_sharded(std::string_view channel, const T& value) {
        return publish_sharded_raw(channel, encode(value));
    }
    /// SPUBLISH channel bytes, unchanged (Redis 7+). Returns how many subscribers received it.
    REDKIT_DECL long long publish_sharded_raw(std::string_view channel, std::string_view bytes);

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

/// How a subscriber reports trouble and watches its connection; every field has a default.
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
    /// A handler of raw messages: gets each message, payload unchanged, on the subscriber's thread.
    using raw_handler = std::function<void(const message&)>;

    /// Starts the background thread, which connects (and keeps reconnecting) by itself.
    REDKIT_DECL explicit subscriber(client c = default_client(), subscriber_options options = {});
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
    /// PSUBSCRIBE pattern, raw bytes. Replaces an existing handler of that pattern.
    void on_pattern_raw(std::string pattern, raw_handler handler) {
        add(kind_pattern, std::move(pattern), std::move(handler));
    }

    /// SSUBSCRIBE shard channel (Redis 7+), typed.
    template <class T, class F>
    void on_sharded(std::string channel, F handler) {
        add(kind_shard, std::move(channel), typed<T>(std::move(handler)));
    }
    /// SSUBSCRIBE shard channel (Redis 7+), raw bytes. Replaces an existing handler of it.
    void on_sharded_raw(std::string channel, raw_handler handler) {
        add(kind_shard, std::move(channel), std::move(handler));
    }

    /// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE. After it returns, no new handler call for that
    /// name starts (one already running on the subscriber's thread may finish).
    void off(const std::string& channel) { remove(kind_channel, channel); }
    /// PUNSUBSCRIBE pattern: off() for a pattern given to on_pattern() or on_pattern_raw().
    void off_pattern(const std::string& pattern) { remove(kind_pattern, pattern); }
    /// SUNSUBSCRIBE channel: off() for a shard channel given to on_sharded() or on_sharded_raw().
    void off_sharded(const std::string& channel) { remove(kind_shard, channel); }

    /// Waits until the server has confirmed every current subscription. False on timeout.
    REDKIT_DECL bool wait_subscribed(std::chrono::milliseconds timeout);

    /// Stops the thread and closes the connection. Idempotent and thread-safe (any number of
    /// threads may call it at once, the destructor included); returns once the handler running at
    /// the time (if any) returned. No handler starts after stop() was requested, even for messages
    /// already read. Called from inside a handler it only requests the stop (the destructor joins).
    REDKIT_DECL void stop();

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

    REDKIT_DECL void add(kind k, std::string name, raw_handler handler);
    REDKIT_DECL void remove(kind k, const std::string& name);
    REDKIT_DECL void run();
    REDKIT_DECL bool session(connection& conn);  // true: stop requested; false or a throw: reconnect
    REDKIT_DECL void send_ops(connection& conn, std::vector<op>& ops);
    REDKIT_DECL void dispatch(reply_view reply);
    REDKIT_DECL void deliver(kind k, std::string_view name, const message& m);
    REDKIT_DECL void report(const error& e) noexcept;
    REDKIT_DECL bool all_confirmed_locked() const;
    REDKIT_DECL void pause();  // the reconnect backoff, cut short by stop()

    client client_;
    subscriber_options options_;
    waker wake_;
    detail::backoff backoff_;
    dedicated_connection conn_;  // the run thread's

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

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/pubsub.ipp>
#endif
