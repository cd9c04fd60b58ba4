// SPDX-License-Identifier: MIT
// The near cache behind cache_options::near: decoded values kept in this process, dropped when
// the server reports that their key changed.
//
// How it stays exact (the Redis "client-side caching" protocol, broadcasting mode, RESP2 form):
//   - near_tracker holds a dedicated connection that learns its CLIENT ID, turns on CLIENT
//     TRACKING in broadcasting mode for the cache's key space (BCAST PREFIX "<prefix>:", or every
//     key without a prefix) with itself as the REDIRECT target, and SUBSCRIBEs to
//     __redis__:invalidate. From then on the server publishes the name of every key of that key
//     space that changes (a write by anyone, an expiry, an eviction) to this one connection, and a
//     nil on FLUSHALL/FLUSHDB (drop everything).
//   - So the values may be read through any connection of the cache's client: the server does not
//     have to remember who read what, and none of those connections has to stay open for its
//     reads to be invalidated (in the default tracking mode a key is tracked for the connection
//     that read it only while that connection lives: one closed by the server's `timeout`, a
//     CLIENT KILL or a transport error would leave what it read cached, unwatched).
//   - A value read is kept only if nothing invalidated its key while the read was under way:
//     begin_fill() marks the key "filling" before the read, an invalidation erases the mark, and
//     finish_fill() stores only over its own mark. Without the mark, a change made between the
//     read and its reply (its invalidation may arrive first, on the other connection) would leave
//     the old value cached for good.
//   - Everything is dropped, and nothing is served or stored, while the invalidation connection
//     is down, does not answer its health check, or (Sentinel) belongs to a primary the sentinels
//     have replaced; every drop bumps an epoch that fills begun before it can no longer match.
//   - On a Redis Cluster each primary reports only the writes it executes, so the tracker keeps
//     one such connection on every primary (each with its own thread) and serves only while all
//     of them are subscribed. A slot that moves between primaries stays covered (the old owner
//     reports the keys MIGRATE removes, the new one every later write). A connection that breaks
//     (a primary killed) drops everything at once; a probe connection reads CLUSTER NODES every
//     health_check and, when the set of primaries changed (a failover, a node added), drops
//     everything and tracks the new set.
//   - Every entry expires after max_ttl, and no later than the value's own expiry.
//   - A forked child has the entries but not the thread that would drop them: it serves and
//     stores nothing (a fork count kept by a pthread_atfork handler tells it).
// The price of broadcasting: the server sends this process the name of every key of the key
// space that changes, cached here or not (hence a key space per near-cached cache).
// Sharded (up to 16 ways, one per 64 entries allowed) so that threads reading different keys
// rarely meet on a lock; least recently used entries go first within a shard.
#pragma once

#include <redkit/cache/options.hpp>
#include <redkit/config.hpp>
#include <redkit/connection.hpp>
#include <redkit/options.hpp>
#include <redkit/waker.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

/// How many times this process is a fork()ed child of the one that first asked (the count goes up
/// in every child; a near cache remembers the count it was connected under).
REDKIT_DECL unsigned forks_seen() noexcept;

/// The entries, the fills under way and the counters (no I/O here).
class near_store {
public:
    using time_point = std::chrono::steady_clock::time_point;
    /// Bookkeeping bytes counted per entry on top of its key and stored value.
    static constexpr std::size_t entry_overhead = 128;

    REDKIT_DECL near_store(std::size_t max_entries, std::size_t max_bytes);

    /// A fill under way: valid only when `id` != 0.
    struct ticket {
        std::uint64_t id = 0;
        std::uint64_t epoch = 0;
    };

    /// The value kept for `key` if it is there, unexpired and of type V (counts a hit or a miss).
    template <class V>
    std::optional<V> get(std::string_view key) {
        if (!serving()) {
            misses_.fetch_add(1, std::memory_order_relaxed);
            return std::nullopt;
        }
        std::shared_ptr<const void> value;
        {
            shard& s = shard_of(key);
            std::lock_guard<std::mutex> lock(s.mutex);
            const auto it = s.index.find(key);
            if (it != s.index.end()) {
                const auto e = it->second;
                if (e->expires <= std::chrono::steady_clock::now()) {
                    erase(s, e);
                } else if (*e->type == typeid(V)) {
                    s.lru.splice(s.lru.begin(), s.lru, e);
                    value = e->value;
                }
            }
        }
        if (!value) {
            misses_.fetch_add(1, std::memory_order_relaxed);
            return std::nullopt;
        }
        hits_.fetch_add(1, std::memory_order_relaxed);
        return *static_cast<const V*>(value.get());  // copied outside the lock
    }

    /// Marks `key` filling; an invalid ticket while the invalidation connection is down.
    REDKIT_DECL ticket begin_fill(std::string_view key);

    /// Keeps `value` if the fill `t` is still current (no invalidation of the key, no flush since
    /// begin_fill); returns whether it was kept.
    template <class V>
    bool finish_fill(std::string_view key, const ticket& t, V value, std::size_t stored_bytes, time_point expires) {
        if (t.id == 0) return false;
        auto shared = std::make_shared<const V>(std::move(value));  // allocated outside the lock
        shard& s = shard_of(key);
        std::lock_guard<std::mutex> lock(s.mutex);
        if (!erase_mark(s, key, t.id)) return false;
        if (epoch_.load(std::memory_order_acquire) != t.epoch) return false;
        if (const auto it = s.index.find(key); it != s.index.end()) erase(s, it->second);
        s.lru.push_front(entry{std::string(key), std::move(shared), &typeid(V),
                               key.size() + stored_bytes + entry_overhead, expires});
        const auto e = s.lru.begin();
        s.index.emplace(std::string_view(e->key), e);
        s.bytes += e->bytes;
        while (s.lru.size() > s.max_entries || (s.bytes > s.max_bytes && s.lru.size() > 1)) {
            erase(s, std::prev(s.lru.end()));
            evictions_.fetch_add(1, std::memory_order_relaxed);
        }
        if (s.bytes > s.max_bytes) {  // one value larger than the shard's share: not kept
            erase(s, s.lru.begin());
            evictions_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        return true;
    }

    /// A fill that will not finish (its read failed or threw): drops its mark.
    REDKIT_DECL void abandon(std::string_view key, const ticket& t) noexcept;

    /// The server says `key` changed: drops its entry and any fill under way.
    REDKIT_DECL void invalidate(std::string_view key);

    /// Drops `key`'s entry and any fill under way (this process writes it); whether there was one.
    REDKIT_DECL bool drop(std::string_view key);

    /// Drops everything, and every fill under way.
    REDKIT_DECL void flush();

    /// The invalidation connection is up (entries may be served and stored) or down (flushed).
    /// Either way everything is dropped first: nothing from before a connection can be vouched for.
    REDKIT_DECL void set_connected(bool up);

    REDKIT_DECL near_cache_stats stats() const;

private:
    // Connected, in the process that connected (not a fork()ed child of it).
    bool serving() const noexcept { return connected_.load(std::memory_order_acquire) && forks_seen() == forks_; }

    struct entry {
        std::string key;
        std::shared_ptr<const void> value;
        const std::type_info* type;
        std::size_t bytes;
        time_point expires;
    };
    struct shard {
        mutable std::mutex mutex;
        std::list<entry> lru;                                                    // most recently used first
        std::unordered_map<std::string_view, std::list<entry>::iterator> index;  // views of entry::key
        std::unordered_map<std::string, std::uint64_t> filling;                  // key -> ticket id
        std::size_t bytes = 0;
        std::size_t max_entries = 0, max_bytes = 0;  // this shard's share of the bounds
    };

    shard& shard_of(std::string_view key) noexcept {
        return shards_[std::hash<std::string_view>{}(key) % shard_count_];
    }
    // Erases key's fill mark if it has one (with `id`: only that fill's); whether it did.
    REDKIT_DECL static bool erase_mark(shard& s, std::string_view key, std::uint64_t id = 0);
    static void erase(shard& s, std::list<entry>::iterator e) {
        s.index.erase(std::string_view(e->key));
        s.bytes -= e->bytes;
        s.lru.erase(e);
    }

    // up to 16 shards (one per 64 entries allowed: small caches keep an exact LRU)
    const std::size_t shard_count_;
    const std::unique_ptr<shard[]> shards_;
    const unsigned forks_;  // forks_seen() when made
    std::atomic<bool> connected_{false};
    std::atomic<std::uint64_t> epoch_{0}, next_ticket_{0};
    std::atomic<std::uint64_t> hits_{0}, misses_{0}, invalidations_{0}, reported_{0}, evictions_{0}, flushes_{0};
};

/// The primaries of a cluster as CLUSTER NODES lists them (flag "master" and an address; one
/// flagged "fail" only while it still owns slots), sorted by host and port: the nodes whose writes
/// a near cache must hear of.
REDKIT_DECL std::vector<cluster_node> cluster_primaries(std::string_view cluster_nodes);

/// The invalidation connection and its thread (on a cluster: one per primary, and a probe).
class near_tracker {
public:
    /// `prefix`: the key space whose changes are reported ("shop:cache:"; empty: every key).
    REDKIT_DECL near_tracker(const client_options& base, near_store& store, near_cache_options o, std::string prefix);
    REDKIT_DECL ~near_tracker();
    near_tracker(const near_tracker&) = delete;
    near_tracker& operator=(const near_tracker&) = delete;

    /// The CLIENT ID of the invalidation connection (on a cluster: the first primary's), 0 while
    /// down: for tests and diagnostics.
    long long id() const noexcept { return id_.load(); }

private:
    REDKIT_DECL void run();
    // One server (or Sentinel's primary): one invalidation connection, on this thread.
    REDKIT_DECL void serve_one();
    // A cluster: one invalidation connection per primary, each on a thread of its own; this thread
    // watches them and the set of primaries.
    REDKIT_DECL void serve_cluster();
    // Turns broadcast tracking on for `c` and subscribes; its CLIENT ID, or 0 when `stop` rose.
    REDKIT_DECL long long subscribe(connection& c, waker& wake, const std::atomic<bool>& stop);
    // Applies invalidations until the connection fails its health check, breaks or turns stale
    // (throws), or `stop` rises (returns).
    REDKIT_DECL void watch(connection& c, waker& wake, const std::atomic<bool>& stop);
    // A connection to a seed or a known primary (the first that answers), for CLUSTER NODES.
    REDKIT_DECL connection probe() const;
    REDKIT_DECL client_options node_options(const cluster_node& n) const;
    REDKIT_DECL std::chrono::milliseconds reply_timeout() const noexcept;
    REDKIT_DECL void report(const std::exception& e) const noexcept;

    client_options options_;
    near_store& store_;
    const near_cache_options near_;
    const std::string prefix_;
    std::vector<cluster_node> known_;  // the primaries last tracked (cluster; this thread only)
    std::atomic<long long> id_{0};
    std::atomic<bool> stopping_{false};
    waker wake_;
    std::thread thread_;
};

/// One read that may fill the near cache: marks the key filling for its lifetime (nothing, when
/// the near cache is off or its invalidation connection is down).
class near_fill {
public:
    REDKIT_DECL near_fill(near_store* store, std::string_view key);
    REDKIT_DECL ~near_fill();
    near_fill(const near_fill&) = delete;
    near_fill& operator=(const near_fill&) = delete;

    /// Whether the value read may be kept.
    bool active() const noexcept { return ticket_.id != 0; }

    /// Keeps the value read (see near_store::finish_fill).
    template <class V>
    void finish(V value, std::size_t stored_bytes, near_store::time_point expires) {
        if (!active()) return;
        store_->finish_fill(key_, ticket_, std::move(value), stored_bytes, expires);
        ticket_ = {};
    }

private:
    near_store* store_;
    std::string_view key_;
    near_store::ticket ticket_;
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/cache/detail/impl/near.ipp>
#endif
