// SPDX-License-Identifier: MIT
// redkit::stream and redkit::stream_consumer: out-of-line definitions of what does not depend on
// the entry type (stream.hpp).
#pragma once

#include <redkit/detail/hash.hpp>
#include <redkit/pipeline.hpp>
#include <redkit/stream.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
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
namespace detail {

inline bool has_hash_tag(std::string_view key) noexcept {
    const auto open = key.find('{');
    if (open == std::string_view::npos) return false;
    const auto close = key.find('}', open + 1);
    return close != std::string_view::npos && close > open + 1;
}

REDKIT_DECL std::string dead_letter_key(std::string_view key) {
    if (has_hash_tag(key)) return std::string(key) + ":dead";
    // braces around the key make it the tag, unless it holds a '}' (the tag would end there: "a}b"
    // would hash "a"); then a short tag of the key's slot, found by counting (about 16384 tries)
    if (key.find('}') == std::string_view::npos) return "{" + std::string(key) + "}:dead";
    const int slot = slot_of(key);
    for (unsigned long n = 0;; ++n) {
        const std::string tag = std::to_string(n);
        if (slot_of(tag) == slot) return "{" + tag + "}:dead:" + std::string(key);
    }
}

REDKIT_DECL std::string stream_add(const client& c, const std::string& key, std::size_t max_len,
                                   std::string_view bytes) {
    if (max_len > 0) return c.command<std::string>("XADD", key, "MAXLEN", "~", max_len, "*", "data", bytes);
    return c.command<std::string>("XADD", key, "*", "data", bytes);
}

REDKIT_DECL long long stream_size(const client& c, const std::string& key) { return c.command<long long>("XLEN", key); }

REDKIT_DECL void stream_create_group(const client& c, const std::string& key, std::string_view group,
                                     std::string_view start) {
    try {
        c.command<void>("XGROUP", "CREATE", key, group, start, "MKSTREAM");
    } catch (const server_error& e) {
        if (e.prefix() != "BUSYGROUP") throw;
    }
}

REDKIT_DECL stream_reader::stream_reader(client c, std::string key, std::string group, std::string name,
                                         stream_consumer_options options,
                                         std::function<bool(const stream_entry&)> handle)
    : client_(std::move(c)),
      key_(std::move(key)),
      group_(std::move(group)),
      name_(std::move(name)),
      dead_key_(dead_letter_key(key_)),
      handle_(std::move(handle)),
      options_(std::move(options)),
      blocking_(client_, key_) {
    if (key_.empty()) throw std::invalid_argument("redkit: stream_consumer: key must not be empty");
    if (group_.empty()) throw std::invalid_argument("redkit: stream_consumer: group must not be empty");
    if (name_.empty()) throw std::invalid_argument("redkit: stream_consumer: consumer name must not be empty");
    if (!handle_) throw std::invalid_argument("redkit: stream_consumer: handler must not be empty");
    if (options_.batch == 0) throw std::invalid_argument("redkit: stream_consumer_options.batch must be at least 1");
    if (options_.block.count() <= 0)
        throw std::invalid_argument("redkit: stream_consumer_options.block must be positive");
    stream_create_group(client_, key_, group_, options_.group_start);
}

REDKIT_DECL void stream_reader::report(const error& e) noexcept { report_to(options_.on_error, client_, e); }

REDKIT_DECL void stream_reader::acknowledge(const stream_entry& e) {
    client_.command<long long>("XACK", key_, group_, e.id);
    processed_.fetch_add(1, std::memory_order_relaxed);
}

REDKIT_DECL void stream_reader::dead_letter(const stream_entry& e, const error& decode_failure) {
    report(decode_failure);
    transaction tx(client_);
    tx.command("XADD", dead_key_, "*", "id", e.id, "error", decode_failure.what(), "data", e.payload)
        .command("XACK", key_, group_, e.id);
    tx.exec();
    observe_consumer(client_.options().observer.get(), consumer_step::dead_letter, key_, group_, e.id, {},
                     decode_failure.what());
}

REDKIT_DECL void stream_reader::handler_threw(const stream_entry& e, const std::string& thrown) {
    report(error(errc::handler_failed, "redkit: stream " + key_ + " entry " + e.id + ": handler threw" + thrown));
    observe_consumer(client_.options().observer.get(), consumer_step::handler_failed, key_, group_, e.id, {}, thrown);
}

// How old a stream entry is, from its id ("<ms>-<seq>", the server's clock when it was added).
inline std::chrono::milliseconds entry_age(std::string_view id) noexcept {
    long long ms = 0;
    const auto parsed = std::from_chars(id.data(), id.data() + id.size(), ms);
    if (parsed.ec != std::errc()) return std::chrono::milliseconds(0);
    const auto now =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
    return std::max(std::chrono::milliseconds(0), now - std::chrono::milliseconds(ms));
}

REDKIT_DECL std::size_t stream_reader::handle_all(const reply& entries) {
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
        if (observer* to = client_.options().observer.get()) {
            observe_consumer(to, consumer_step::delivered, key_, group_, e.id, entry_age(e.id));
        }
        if (handle_(e)) ++ok;
    }
    return ok;
}

REDKIT_DECL std::optional<reply> stream_reader::blocking_read() {
    // woken: stop() asked; closing the socket ends the blocked command on the server
    return blocking_.blocking(wake_, options_.block, "XREADGROUP", "GROUP", group_, name_, "COUNT", options_.batch,
                              "BLOCK", options_.block.count(), "STREAMS", key_, ">");
}

REDKIT_DECL std::size_t stream_reader::poll_once() {
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
            stream_create_group(client_, key_, group_, options_.group_start);
        }
        report(e);
    } catch (const error& e) {
        report(e);
        if (e.is_transport()) wake_.sleep_for(std::chrono::milliseconds(50));  // do not spin while down
    }
    return handled;
}

REDKIT_DECL void stream_reader::start() {
    std::lock_guard<std::mutex> lock(thread_mutex_);
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = std::thread([this] {
        while (!stopping_.load()) poll_once();
    });
}

REDKIT_DECL void stream_reader::stop() {
    stopping_ = true;
    wake_.notify();
    std::lock_guard<std::mutex> lock(thread_mutex_);
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
