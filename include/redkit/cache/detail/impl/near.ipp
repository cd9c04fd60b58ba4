// SPDX-License-Identifier: MIT
// The near cache's out-of-line definitions (cache/detail/near.hpp): the store's bookkeeping, the
// invalidation connection's thread, and the fork count.
#pragma once

#include <redkit/cache/detail/near.hpp>
#include <redkit/connection.hpp>
#include <redkit/error.hpp>
#include <redkit/reply.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <pthread.h>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL unsigned forks_seen() noexcept {
    static std::atomic<unsigned> forks{0};
    static const bool watching = [] {
        return ::pthread_atfork(nullptr, nullptr, [] { forks.fetch_add(1, std::memory_order_relaxed); }) == 0;
    }();
    (void)watching;
    return forks.load(std::memory_order_relaxed);
}

REDKIT_DECL near_store::near_store(std::size_t max_entries, std::size_t max_bytes)
    : shard_count_(std::clamp<std::size_t>(max_entries / 64, 1, 16)),
      shards_(new shard[shard_count_]),
      forks_(forks_seen()) {
    // each shard bounds its share; the shares add up to the bounds exactly
    for (std::size_t i = 0; i < shard_count_; ++i) {
        shards_[i].max_entries = max_entries / shard_count_ + (i < max_entries % shard_count_ ? 1 : 0);
        shards_[i].max_bytes = max_bytes / shard_count_ + (i < max_bytes % shard_count_ ? 1 : 0);
    }
}

REDKIT_DECL near_store::ticket near_store::begin_fill(std::string_view key) {
    if (!serving()) return {};
    ticket t{next_ticket_.fetch_add(1, std::memory_order_relaxed) + 1, epoch_.load(std::memory_order_acquire)};
    shard& s = shard_of(key);
    std::lock_guard<std::mutex> lock(s.mutex);
    s.filling[std::string(key)] = t.id;  // a newer fill of the same key supersedes an older one
    return t;
}

REDKIT_DECL void near_store::abandon(std::string_view key, const ticket& t) noexcept {
    if (t.id == 0) return;
    shard& s = shard_of(key);
    std::lock_guard<std::mutex> lock(s.mutex);
    erase_mark(s, key, t.id);
}

REDKIT_DECL void near_store::invalidate(std::string_view key) {
    reported_.fetch_add(1, std::memory_order_relaxed);
    if (drop(key)) invalidations_.fetch_add(1, std::memory_order_relaxed);
}

REDKIT_DECL bool near_store::drop(std::string_view key) {
    shard& s = shard_of(key);
    std::lock_guard<std::mutex> lock(s.mutex);
    bool dropped = erase_mark(s, key);
    if (const auto it = s.index.find(key); it != s.index.end()) {
        erase(s, it->second);
        dropped = true;
    }
    return dropped;
}

REDKIT_DECL void near_store::flush() {
    epoch_.fetch_add(1, std::memory_order_acq_rel);  // before the shards: a fill checking after sees it
    for (std::size_t i = 0; i < shard_count_; ++i) {
        shard& s = shards_[i];
        std::lock_guard<std::mutex> lock(s.mutex);
        s.index.clear();
        s.lru.clear();
        s.filling.clear();
        s.bytes = 0;
    }
    flushes_.fetch_add(1, std::memory_order_relaxed);
}

REDKIT_DECL void near_store::set_connected(bool up) {
    if (!up) connected_.store(false, std::memory_order_release);
    flush();
    if (up) connected_.store(true, std::memory_order_release);
}

REDKIT_DECL near_cache_stats near_store::stats() const {
    near_cache_stats out;
    out.hits = hits_.load(std::memory_order_relaxed);
    out.misses = misses_.load(std::memory_order_relaxed);
    out.invalidations = invalidations_.load(std::memory_order_relaxed);
    out.reported = reported_.load(std::memory_order_relaxed);
    out.evictions = evictions_.load(std::memory_order_relaxed);
    out.flushes = flushes_.load(std::memory_order_relaxed);
    out.connected = serving();
    for (std::size_t i = 0; i < shard_count_; ++i) {
        const shard& s = shards_[i];
        std::lock_guard<std::mutex> lock(s.mutex);
        out.entries += s.lru.size();
        out.bytes += s.bytes;
    }
    return out;
}

REDKIT_DECL bool near_store::erase_mark(shard& s, std::string_view key, std::uint64_t id) {
    if (s.filling.empty()) return false;  // the usual case: no lookup key to build
    const auto mark = s.filling.find(std::string(key));
    if (mark == s.filling.end() || (id != 0 && mark->second != id)) return false;
    s.filling.erase(mark);
    return true;
}

REDKIT_DECL near_tracker::near_tracker(const client_options& base, near_store& store, near_cache_options o,
                                       std::string prefix)
    : options_(base), store_(store), near_(o), prefix_(std::move(prefix)) {
    options_.tracking_redirect = 0;
    thread_ = std::thread([this] { run(); });
}

REDKIT_DECL near_tracker::~near_tracker() {
    stopping_.store(true);
    wake_.notify();
    thread_.join();
}

REDKIT_DECL void near_tracker::report(const std::exception& e) const noexcept {
    if (!options_.on_error) return;
    try {
        options_.on_error(error(errc::connection_closed, std::string("redkit: cache: near cache: ") + e.what() +
                                                             "; near entries dropped, reconnecting"));
    } catch (...) {
    }
}

REDKIT_DECL void near_tracker::run() {
    std::chrono::milliseconds backoff(50);
    while (!stopping_.load()) {
        try {
            connection c(options_);
            serve(c);
            backoff = std::chrono::milliseconds(50);
        } catch (const std::exception& e) {
            report(e);
        }
        if (id_.exchange(0) != 0) store_.set_connected(false);
        if (stopping_.load()) break;
        wake_.sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    }
}

REDKIT_DECL void near_tracker::serve(connection& c) {
    const long long id = c.command<long long>("CLIENT", "ID");
    if (prefix_.empty()) {
        c.command<void>("CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST");
    } else {
        c.command<void>("CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST", "PREFIX", prefix_);
    }
    c.send("SUBSCRIBE", "__redis__:invalidate");
    const auto timeout = options_.command_timeout.count() > 0 ? options_.command_timeout : std::chrono::seconds(5);
    bool subscribed = false;
    while (!subscribed) {
        const auto st = c.wait_reply(wake_, timeout, [&](reply_view r) {
            subscribed = r.is_array() && r.size() >= 1 && r[0].str() == "subscribe";
        });
        if (stopping_.load()) return;
        if (st == wait_status::timeout) throw error(errc::timeout, "no reply to SUBSCRIBE __redis__:invalidate");
    }
    id_.store(id);
    store_.set_connected(true);

    bool ping_out = false;
    for (;;) {
        bool pong = false;
        const auto st = c.wait_reply(wake_, ping_out ? timeout : near_.health_check, [&](reply_view r) {
            if (!r.is_array() || r.size() < 1) return;
            const std::string_view kind = r[0].str();
            if (kind == "pong") {
                pong = true;
            } else if (kind == "message" && r.size() == 3) {
                const reply_view keys = r[2];
                if (keys.is_nil()) {
                    store_.flush();  // FLUSHALL / FLUSHDB
                } else {
                    for (std::size_t i = 0; i < keys.size(); ++i) store_.invalidate(keys[i].str());
                }
            }
        });
        if (stopping_.load()) return;
        if (c.primary_replaced()) {
            // Sentinel: writes now go to another primary, whose invalidations this one never sees
            throw error(errc::connection_closed, "the sentinels replaced the primary");
        }
        if (st == wait_status::timeout) {
            if (ping_out) throw error(errc::timeout, "the invalidation connection did not answer PING in time");
            c.send("PING");
            ping_out = true;
        } else if (pong) {
            ping_out = false;
        }
    }
}

REDKIT_DECL near_fill::near_fill(near_store* store, std::string_view key) : store_(store), key_(key) {
    if (store_) ticket_ = store_->begin_fill(key_);
}

REDKIT_DECL near_fill::~near_fill() {
    if (store_) store_->abandon(key_, ticket_);
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
