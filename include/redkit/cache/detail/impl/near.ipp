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
#include <vector>

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

REDKIT_DECL std::vector<cluster_node> cluster_primaries(std::string_view text) {
    // a line: <id> <ip:port@cport[,hostname]> <flags,...> <primary id> <ping> <pong> <epoch> <link> <slots...>
    std::vector<cluster_node> out;
    while (!text.empty()) {
        const std::size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
        std::string_view fields[9];  // the first 8, and the first slot range if any
        std::size_t n = 0;
        while (n < 9 && !line.empty()) {
            const std::size_t sp = line.find(' ');
            fields[n++] = line.substr(0, sp);
            line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
        }
        if (n < 3) continue;
        bool primary = false, gone = false;
        for (std::string_view flags = fields[2]; !flags.empty();) {
            const std::size_t comma = flags.find(',');
            const std::string_view f = flags.substr(0, comma);
            if (f == "master") primary = true;
            if (f == "fail" || f == "noaddr" || f == "handshake") gone = true;
            flags = comma == std::string_view::npos ? std::string_view() : flags.substr(comma + 1);
        }
        // A failed primary that still owns slots stays: until the view names its replacement, the
        // writes to those slots have no tracked home, and the near cache must not serve.
        const bool owns_slots = n == 9 && !fields[8].empty() && fields[8].front() != '[';
        if (!primary || (gone && !owns_slots)) continue;
        std::string_view address = fields[1].substr(0, fields[1].find_first_of("@,"));
        const std::size_t colon = address.rfind(':');
        if (colon == std::string_view::npos || colon == 0) continue;  // ":0": no address yet
        int port = 0;
        for (const char ch : address.substr(colon + 1)) {
            if (ch < '0' || ch > '9' || port > 65535) {
                port = 0;
                break;
            }
            port = port * 10 + (ch - '0');
        }
        if (port <= 0 || port > 65535) continue;
        std::string_view host = address.substr(0, colon);
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        out.push_back(cluster_node{std::string(host), port});
    }
    std::sort(out.begin(), out.end(), [](const cluster_node& a, const cluster_node& b) {
        return a.host != b.host ? a.host < b.host : a.port < b.port;
    });
    return out;
}

REDKIT_DECL near_tracker::near_tracker(const client_options& base, near_store& store, near_cache_options o,
                                       std::string prefix)
    : options_(base), store_(store), near_(o), prefix_(std::move(prefix)) {
    options_.tracking_redirect = 0;
    options_.read_only_replica = false;
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

REDKIT_DECL std::chrono::milliseconds near_tracker::reply_timeout() const noexcept {
    return options_.command_timeout.count() > 0 ? options_.command_timeout : std::chrono::seconds(5);
}

REDKIT_DECL void near_tracker::run() {
    std::chrono::milliseconds backoff(50);
    while (!stopping_.load()) {
        try {
            if (options_.cluster.enabled()) {
                serve_cluster();
            } else {
                serve_one();
            }
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

REDKIT_DECL void near_tracker::serve_one() {
    connection c(options_);
    const long long id = subscribe(c, wake_, stopping_);
    if (id == 0) return;
    id_.store(id);
    store_.set_connected(true);
    watch(c, wake_, stopping_);
}

REDKIT_DECL long long near_tracker::subscribe(connection& c, waker& wake, const std::atomic<bool>& stop) {
    const long long id = c.command<long long>("CLIENT", "ID");
    if (prefix_.empty()) {
        c.command<void>("CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST");
    } else {
        c.command<void>("CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST", "PREFIX", prefix_);
    }
    c.send("SUBSCRIBE", "__redis__:invalidate");
    bool subscribed = false;
    while (!subscribed) {
        const auto st = c.wait_reply(wake, reply_timeout(), [&](reply_view r) {
            subscribed = r.is_array() && r.size() >= 1 && r[0].str() == "subscribe";
        });
        if (stop.load()) return 0;
        if (st == wait_status::timeout) throw error(errc::timeout, "no reply to SUBSCRIBE __redis__:invalidate");
    }
    return id;
}

REDKIT_DECL void near_tracker::watch(connection& c, waker& wake, const std::atomic<bool>& stop) {
    bool ping_out = false;
    for (;;) {
        bool pong = false;
        const auto st = c.wait_reply(wake, ping_out ? reply_timeout() : near_.health_check, [&](reply_view r) {
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
        if (stop.load()) return;
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

REDKIT_DECL client_options near_tracker::node_options(const cluster_node& n) const {
    client_options o = options_;
    o.cluster = cluster_options{};
    o.host = n.host;
    o.port = n.port;
    o.unix_socket.clear();
    o.db = 0;  // a cluster has only database 0
    return o;
}

REDKIT_DECL connection near_tracker::probe() const {
    std::vector<cluster_node> candidates = options_.cluster.nodes;
    candidates.insert(candidates.end(), known_.begin(), known_.end());
    std::string failures;
    for (const cluster_node& n : candidates) {
        if (stopping_.load()) break;
        try {
            return connection(node_options(n));
        } catch (const error& e) {
            failures += (failures.empty() ? "" : "; ") + n.host + ":" + std::to_string(n.port) + ": " + e.what();
        }
    }
    throw error(errc::connection_closed, "no cluster node answers (" + failures + ")");
}

REDKIT_DECL void near_tracker::serve_cluster() {
    connection map = probe();
    std::vector<cluster_node> primaries = cluster_primaries(map.command<std::string>("CLUSTER", "NODES"));
    if (primaries.empty()) throw error(errc::connection_closed, "CLUSTER NODES lists no primary");
    known_ = primaries;

    // one invalidation connection per primary, each on its own thread
    struct node_watch {
        cluster_node node;
        waker wake;
        std::atomic<int> state{0};  // 0 subscribing, 1 subscribed, 2 failed
        long long id = 0;           // CLIENT ID, written before state turns 1
        std::string failure;        // written before state turns 2
        std::thread thread;
    };
    std::atomic<bool> stop{false};
    std::vector<std::unique_ptr<node_watch>> watches;
    struct joiner {
        std::atomic<bool>& stop;
        std::vector<std::unique_ptr<node_watch>>& watches;
        ~joiner() {
            stop.store(true);
            for (auto& w : watches) w->wake.notify();
            for (auto& w : watches) {
                if (w->thread.joinable()) w->thread.join();
            }
        }
    } join_all{stop, watches};
    for (const cluster_node& n : primaries) {
        watches.push_back(std::make_unique<node_watch>());
        node_watch& w = *watches.back();
        w.node = n;
        w.thread = std::thread([this, &w, &stop] {
            try {
                connection c(node_options(w.node));
                w.id = subscribe(c, w.wake, stop);
                if (w.id == 0) return;
                w.state.store(1);
                wake_.notify();
                watch(c, w.wake, stop);
                return;
            } catch (const std::exception& e) {
                w.failure = w.node.host + ":" + std::to_string(w.node.port) + ": " + e.what();
            }
            if (stop.load()) return;
            // drop everything now, not when the watching thread next looks: writes on this
            // primary are no longer reported
            w.state.store(2);
            store_.set_connected(false);
            wake_.notify();
        });
    }
    const auto failed = [&]() -> const node_watch* {
        for (const auto& w : watches) {
            if (w->state.load() == 2) return w.get();
        }
        return nullptr;
    };
    // serving once every primary's connection is subscribed
    const auto deadline = std::chrono::steady_clock::now() + options_.connect_timeout + reply_timeout();
    for (;;) {
        if (stopping_.load()) return;
        if (const node_watch* w = failed()) throw error(errc::connection_closed, w->failure);
        bool all = true;
        for (const auto& w : watches) all = all && w->state.load() == 1;
        if (all) break;
        if (std::chrono::steady_clock::now() > deadline) {
            throw error(errc::timeout, "the primaries' invalidation connections did not subscribe in time");
        }
        wake_.sleep_for(std::chrono::milliseconds(100));
    }
    store_.set_connected(true);
    id_.store(watches.front()->id);
    for (;;) {
        // a connection that failed while the store turned on, or since: its thread dropped
        // everything; start over on the cluster's current primaries
        if (const node_watch* w = failed()) throw error(errc::connection_closed, w->failure);
        wake_.sleep_for(near_.health_check);
        if (stopping_.load()) return;
        if (failed()) continue;
        const std::vector<cluster_node> now = cluster_primaries(map.command<std::string>("CLUSTER", "NODES"));
        const auto same = [](const cluster_node& a, const cluster_node& b) {
            return a.host == b.host && a.port == b.port;
        };
        if (!std::equal(now.begin(), now.end(), primaries.begin(), primaries.end(), same)) {
            known_ = now;
            throw error(errc::connection_closed, "the cluster's primaries changed");
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
