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
// hash slot: "<key>:dead" when the key has a hash tag, "{<key>}:dead" otherwise.
#pragma once

#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/connection.hpp>
#include <redkit/error.hpp>
#include <redkit/pipeline.hpp>
#include <redkit/reply.hpp>
#include <redkit/waker.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// One stream entry as delivered to a handler.
struct stream_entry {
    std::string id;       ///< the stream ID, e.g. "1700000000000-0"
    std::string payload;  ///< the raw bytes of the entry's `data` field
};

namespace detail {
inline bool has_hash_tag(std::string_view key) noexcept {
    const auto open = key.find('{');
    if (open == std::string_view::npos) return false;
    const auto close = key.find('}', open + 1);
    return close != std::string_view::npos && close > open + 1;
}
inline std::string dead_letter_key(std::string_view key) {
    return has_hash_tag(key) ? std::string(key) + ":dead" : "{" + std::string(key) + "}:dead";
}
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
    std::string add_raw(std::string_view bytes) {
        if (max_len_ > 0)
            return client_.command<std::string>("XADD", key_, "MAXLEN", "~", max_len_, "*", "data", bytes);
        return client_.command<std::string>("XADD", key_, "*", "data", bytes);
    }

    /// XLEN.
    long long size() { return client_.command<long long>("XLEN", key_); }

    /// XGROUP CREATE key group start MKSTREAM; an existing group is left as it is.
    void create_group(std::string_view group, std::string_view start = "$") {
        try {
            client_.command<void>("XGROUP", "CREATE", key_, group, start, "MKSTREAM");
        } catch (const server_error& e) {
            if (e.prefix() != "BUSYGROUP") throw;
        }
    }

    const std::string& key() const noexcept { return key_; }

private:
    client client_;
    std::string key_;
    std::size_t max_len_;
};

struct stream_consumer_options {
    std::size_t batch = 16;                       ///< entries per XREADGROUP / XAUTOCLAIM
    std::chrono::milliseconds block{2000};        ///< XREADGROUP BLOCK
    std::chrono::milliseconds claim_idle{30000};  ///< claim others' entries idle this long; 0 = never
    std::string group_start = "0";                ///< where a group created by the consumer starts
    std::function<void(const error&)> on_error;   ///< default: the client's on_error
};

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
    std::size_t poll_once();

    /// Runs poll_once() on a background thread until stop().
    void start();

    /// Stops the background thread; interrupts a blocked XREADGROUP at once. Idempotent.
    void stop();

    /// Entries whose handler returned and which were acknowledged.
    std::uint64_t processed() const noexcept { return processed_.load(std::memory_order_relaxed); }

private:
    std::size_t handle_all(const reply& entries);
    bool handle(const stream_entry& e);
    std::optional<reply> blocking_read();
    void report(const error& e) noexcept;

    client client_;
    std::string key_, group_, name_, dead_key_;
    handler handler_;
    stream_consumer_options options_;
    std::unique_ptr<connection> blocking_;
    std::string claim_cursor_ = "0-0";
    waker wake_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> processed_{0};
    std::mutex thread_mutex_;
    std::thread thread_;
};

// ---- implementation ----

template <class T>
stream_consumer<T>::stream_consumer(client c, std::string key, std::string group, std::string name, handler h,
                                    stream_consumer_options options)
    : client_(std::move(c)),
      key_(std::move(key)),
      group_(std::move(group)),
      name_(std::move(name)),
      dead_key_(detail::dead_letter_key(key_)),
      handler_(std::move(h)),
      options_(std::move(options)) {
    if (key_.empty()) throw std::invalid_argument("redkit: stream_consumer: key must not be empty");
    if (group_.empty()) throw std::invalid_argument("redkit: stream_consumer: group must not be empty");
    if (name_.empty()) throw std::invalid_argument("redkit: stream_consumer: consumer name must not be empty");
    if (!handler_) throw std::invalid_argument("redkit: stream_consumer: handler must not be empty");
    if (options_.batch == 0) throw std::invalid_argument("redkit: stream_consumer_options.batch must be at least 1");
    if (options_.block.count() <= 0)
        throw std::invalid_argument("redkit: stream_consumer_options.block must be positive");
    stream<T>(client_, key_).create_group(group_, options_.group_start);
}

template <class T>
void stream_consumer<T>::report(const error& e) noexcept {
    detail::report_to(options_.on_error, client_, e);
}

template <class T>
bool stream_consumer<T>::handle(const stream_entry& e) {
    std::optional<T> value;
    try {
        value.emplace(decode<T>(e.payload, key_ + " " + e.id));
    } catch (const error& decode_failure) {
        // Poison entry: park it in the dead-letter stream and acknowledge it, atomically.
        report(decode_failure);
        transaction tx(client_);
        tx.command("XADD", dead_key_, "*", "id", e.id, "error", decode_failure.what(), "data", e.payload)
            .command("XACK", key_, group_, e.id);
        tx.exec();
        return false;
    }
    try {
        handler_(*value, e);
    } catch (const std::exception& ex) {
        report(
            error(errc::handler_failed, "redkit: stream " + key_ + " entry " + e.id + ": handler threw: " + ex.what()));
        return false;  // stays pending; claimed again after claim_idle
    } catch (...) {
        report(error(errc::handler_failed, "redkit: stream " + key_ + " entry " + e.id + ": handler threw"));
        return false;
    }
    client_.command<long long>("XACK", key_, group_, e.id);
    processed_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

template <class T>
std::size_t stream_consumer<T>::handle_all(const reply& entries) {
    std::size_t ok = 0;
    for (const reply& entry : entries.elements()) {
        if (stopping_.load(std::memory_order_relaxed)) break;
        if (!entry.is_array() || entry.size() < 2) continue;  // an entry deleted while pending
        stream_entry e;
        e.id = entry[0].text();
        bool found = false;
        const reply& fields = entry[1];
        for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
            if (fields[i].text() == "data") {
                e.payload = fields[i + 1].text();
                found = true;
                break;
            }
        }
        if (!found) e.payload.clear();  // decodes as an error: dead-lettered
        if (handle(e)) ++ok;
    }
    return ok;
}

template <class T>
std::optional<reply> stream_consumer<T>::blocking_read() {
    if (!blocking_ || blocking_->broken()) {
        blocking_.reset();
        blocking_ = std::make_unique<connection>(client_.dedicated(key_));
    }
    try {
        blocking_->send("XREADGROUP", "GROUP", group_, name_, "COUNT", options_.batch, "BLOCK", options_.block.count(),
                        "STREAMS", key_, ">");
        const auto limit = options_.block + client_.options().command_timeout + std::chrono::milliseconds(1000);
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            std::optional<reply> got;
            const wait_status w = blocking_->wait_reply(wake_, left, [&](reply_view r) { got.emplace(r); });
            if (w == wait_status::reply) return got;
            if (w == wait_status::timeout) {
                throw error(errc::timeout, "redkit: XREADGROUP " + key_ + ": no reply within " +
                                               std::to_string(limit.count()) + " ms");
            }
            if (stopping_.load()) {
                blocking_.reset();  // closing the socket ends the blocked command on the server
                return std::nullopt;
            }
        }
    } catch (...) {
        blocking_.reset();  // its reply is lost or in doubt: never reuse it
        throw;
    }
}

template <class T>
std::size_t stream_consumer<T>::poll_once() {
    std::size_t handled = 0;
    try {
        if (options_.claim_idle.count() > 0) {
            const reply claimed = client_.command("XAUTOCLAIM", key_, group_, name_, options_.claim_idle.count(),
                                                  claim_cursor_, "COUNT", options_.batch);
            if (claimed.is_error())
                throw server_error(claimed.text(), "redkit: XAUTOCLAIM " + key_ + ": " + claimed.text());
            if (claimed.is_array() && claimed.size() >= 2) {
                claim_cursor_ = claimed[0].text();
                handled += handle_all(claimed[1]);
            }
        }
        if (stopping_.load()) return handled;
        const std::optional<reply> got = blocking_read();
        if (!got || got->is_nil()) return handled;
        if (got->is_error()) {
            throw server_error(got->text(), "redkit: XREADGROUP " + key_ + ": " + got->text());
        }
        for (const reply& per_stream : got->elements()) {
            if (per_stream.size() >= 2) handled += handle_all(per_stream[1]);
        }
    } catch (const server_error& e) {
        if (e.prefix() == "NOGROUP") {
            // the stream or group was deleted (e.g. a FLUSHALL): recreate and go on
            stream<T>(client_, key_).create_group(group_, options_.group_start);
        }
        report(e);
    } catch (const error& e) {
        report(e);
        if (e.is_transport()) wake_.sleep_for(std::chrono::milliseconds(50));  // do not spin while down
    }
    return handled;
}

template <class T>
void stream_consumer<T>::start() {
    std::lock_guard<std::mutex> lock(thread_mutex_);
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = std::thread([this] {
        while (!stopping_.load()) poll_once();
    });
}

template <class T>
void stream_consumer<T>::stop() {
    stopping_ = true;
    wake_.notify();
    std::lock_guard<std::mutex> lock(thread_mutex_);
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

}  // namespace v0
}  // namespace redkit
