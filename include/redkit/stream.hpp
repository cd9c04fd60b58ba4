// SPDX-License-Identifier: MIT
// Durable messaging: a typed Redis Stream with consumer groups, for messages that must survive
// restarts and crashes (pub/sub is at-most-once; this is at-least-once).
//
// stream<T>::add          XADD key [MAXLEN ~ n] * data <JSON>          1 round trip
// stream_consumer<T>      per poll: XAUTOCLAIM (entries idle past claim_idle, left by a consumer
//                         that crashed or whose handler threw), then XREADGROUP ... BLOCK on a
//                         connection of its own; each entry handled is acknowledged by XACK.
//
// Semantics: an entry is acknowledged only after its handler returned, so a consumer killed
// mid-batch leaves its unacknowledged entries pending, and another consumer of the group (or the
// same one, restarted) claims and processes them once they have been idle for claim_idle: nothing
// is lost, and an entry may be processed more than once (make handlers idempotent). An entry that
// cannot be decoded into T is moved to a dead-letter stream (MULTI: XADD <dead> + XACK) and
// reported, so it cannot block the group forever. The dead-letter stream shares the stream key's
// hash slot: "<key>:dead" when the key has a hash tag, "{<key>}:dead" otherwise, and for a key
// with a '}' but no tag (which no braces around it could keep whole) "{<t>}:dead:<key>", where
// <t> is the first of "0", "1", "2"... whose slot is the key's.
#pragma once

#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/config.hpp>
#include <redkit/connection.hpp>
#include <redkit/dedicated_connection.hpp>
#include <redkit/detail/exception_text.hpp>
#include <redkit/error.hpp>
#include <redkit/pipeline.hpp>
#include <redkit/reply.hpp>
#include <redkit/waker.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace redkit {
inline namespace v0 {

/// One stream entry as delivered to a handler.
struct stream_entry {
    std::string id;       ///< the stream ID, e.g. "1700000000000-0"
    std::string payload;  ///< the raw bytes of the entry's `data` field
};

namespace detail {
// stream<T>'s commands, whatever T is.
REDKIT_DECL std::string stream_add(const client& c, const std::string& key, std::size_t max_len,
                                   std::string_view bytes);
REDKIT_DECL long long stream_size(const client& c, const std::string& key);
REDKIT_DECL void stream_create_group(const client& c, const std::string& key, std::string_view group,
                                     std::string_view start);
// The dead-letter stream of `stream_key`, in the same hash slot (see the header comment).
REDKIT_DECL std::string dead_letter_key(std::string_view stream_key);
}  // namespace detail

/// A stream of T values (JSON in the entry's `data` field).
///
/// @code
/// redkit::stream<order_event> orders(redis, "orders:events", 100000);
/// orders.add(order_event{...});
/// @endcode
template <class T>
class stream {
public:
    /// max_len > 0 trims with MAXLEN ~ max_len on every add (approximate, cheap).
    stream(client c, std::string key, std::size_t max_len = 0)
        : client_(std::move(c)), key_(std::move(key)), max_len_(max_len) {
        if (key_.empty()) throw std::invalid_argument("redkit: stream key must not be empty");
    }

    /// XADD; returns the new entry's ID.
    std::string add(const T& value) { return add_raw(encode(value)); }

    /// XADD of bytes as they are.
    std::string add_raw(std::string_view bytes) { return detail::stream_add(client_, key_, max_len_, bytes); }

    /// XLEN.
    long long size() { return detail::stream_size(client_, key_); }

    /// XGROUP CREATE key group start MKSTREAM; an existing group is left as it is.
    void create_group(std::string_view group, std::string_view start = "$") {
        detail::stream_create_group(client_, key_, group, start);
    }

    /// The stream's Redis key, as given.
    const std::string& key() const noexcept { return key_; }

private:
    client client_;
    std::string key_;
    std::size_t max_len_;
};

/// How a stream_consumer reads, claims and reports; every field has a default.
struct stream_consumer_options {
    std::size_t batch = 16;                       ///< entries per XREADGROUP / XAUTOCLAIM
    std::chrono::milliseconds block{2000};        ///< XREADGROUP BLOCK
    std::chrono::milliseconds claim_idle{30000};  ///< claim others' entries idle this long; 0 = never
    std::string group_start = "0";                ///< where a group created by the consumer starts
    std::function<void(const error&)> on_error;   ///< default: the client's on_error
};

namespace detail {

/// What stream_consumer<T> does whatever T is: the group, claiming idle entries, the blocking
/// reads, acknowledgements, dead letters and the background thread. `handle` (empty when the
/// application gave no handler) decodes an entry and runs the application's handler.
class stream_reader {
public:
    REDKIT_DECL stream_reader(client c, std::string key, std::string group, std::string name,
                              stream_consumer_options options, std::function<bool(const stream_entry&)> handle);
    stream_reader(const stream_reader&) = delete;
    stream_reader& operator=(const stream_reader&) = delete;

    REDKIT_DECL std::size_t poll_once();
    REDKIT_DECL void start();
    REDKIT_DECL void stop();
    std::uint64_t processed() const noexcept { return processed_.load(std::memory_order_relaxed); }
    const std::string& key() const noexcept { return key_; }

    /// XACK, counted as processed.
    REDKIT_DECL void acknowledge(const stream_entry& e);
    /// Reports the decode failure, then parks the entry in the dead-letter stream and acknowledges
    /// it, atomically (MULTI: XADD <dead> + XACK).
    REDKIT_DECL void dead_letter(const stream_entry& e, const error& decode_failure);
    /// Reports a handler that threw (thrown: what call_caught returned); the entry stays pending.
    REDKIT_DECL void handler_threw(const stream_entry& e, const std::string& thrown);

private:
    REDKIT_DECL std::size_t handle_all(const reply& entries);
    REDKIT_DECL std::optional<reply> blocking_read();
    REDKIT_DECL void report(const error& e) noexcept;

    client client_;
    std::string key_, group_, name_, dead_key_;
    std::function<bool(const stream_entry&)> handle_;
    stream_consumer_options options_;
    dedicated_connection blocking_;  // XREADGROUP BLOCK
    std::string claim_cursor_ = "0-0";
    waker wake_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> processed_{0};
    std::mutex thread_mutex_;
    std::thread thread_;
};

}  // namespace detail

/// Consumes a stream as one member of a consumer group.
///
/// @code
/// redkit::stream_consumer<order_event> c(redis, "orders:events", "billing", "billing-1",
///     [](const order_event& e, const redkit::stream_entry&) { bill(e); });
/// c.start();   // or call c.poll_once() from your own loop
/// @endcode
template <class T>
class stream_consumer {
public:
    /// Gets each entry decoded into T, and the entry itself; returning acknowledges the entry,
    /// throwing leaves it pending (reported, claimed again after claim_idle).
    using handler = std::function<void(const T&, const stream_entry&)>;

    /// Creates the group (XGROUP CREATE ... MKSTREAM) when it does not exist yet.
    stream_consumer(client c, std::string key, std::string group, std::string name, handler h,
                    stream_consumer_options options = {});
    ~stream_consumer() { stop(); }
    stream_consumer(const stream_consumer&) = delete;
    stream_consumer& operator=(const stream_consumer&) = delete;

    /// One pass: claim idle pending entries, then read new ones (blocking up to options.block),
    /// handle and acknowledge them. Returns the number handled successfully. Transport failures are
    /// reported and the pass ends early; the next pass starts on a fresh connection.
    std::size_t poll_once() { return reader_.poll_once(); }

    /// Runs poll_once() on a background thread until stop().
    void start() { reader_.start(); }

    /// Stops the background thread; interrupts a blocked XREADGROUP at once. Idempotent.
    void stop() { reader_.stop(); }

    /// Entries whose handler returned and which were acknowledged.
    std::uint64_t processed() const noexcept { return reader_.processed(); }

private:
    bool handle(const stream_entry& e);

    handler handler_;
    detail::stream_reader reader_;  // after handler_: its handle calls handler_
};

// ---- implementation ----

template <class T>
stream_consumer<T>::stream_consumer(client c, std::string key, std::string group, std::string name, handler h,
                                    stream_consumer_options options)
    : handler_(std::move(h)),
      reader_(std::move(c), std::move(key), std::move(group), std::move(name), std::move(options),
              handler_ ? std::function<bool(const stream_entry&)>([this](const stream_entry& e) { return handle(e); })
                       : nullptr) {}

template <class T>
bool stream_consumer<T>::handle(const stream_entry& e) {
    std::optional<T> value;
    try {
        value.emplace(decode<T>(e.payload, reader_.key() + " " + e.id));
    } catch (const error& decode_failure) {
        reader_.dead_letter(e, decode_failure);  // poison entry: parked and acknowledged
        return false;
    }
    if (const auto thrown = detail::call_caught([&] { handler_(*value, e); })) {
        reader_.handler_threw(e, *thrown);
        return false;  // stays pending; claimed again after claim_idle
    }
    reader_.acknowledge(e);
    return true;
}

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/stream.ipp>
#endif
