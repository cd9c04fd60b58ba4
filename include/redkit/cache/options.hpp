// SPDX-License-Identifier: MIT
// redkit::cache_options, cache_stats and cache_failure_policy: how a redkit::cache behaves and
// what it counted (the cache itself is in <redkit/cache.hpp>).
#pragma once

#include <redkit/key.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace redkit {
inline namespace v0 {

/// What the cache does when Redis cannot be reached or times out on a read.
enum class cache_failure_policy {
    serve_from_loader,  ///< report through client_options::on_error, then run the loader (the default)
    throw_error,        ///< throw the redkit::error to the caller; the loader does not run
};

/// The near cache: decoded values of hot keys kept in this process, dropped when the server says
/// the key changed (CLIENT TRACKING in broadcasting mode for the cache's key space, Redis 6 or
/// later). See cache_options::near.
struct near_cache_options {
    /// Off by default: a near cache costs a connection and a thread per cache, and memory; the
    /// server sends that connection the name of every key of the cache's key space (cache_options::
    /// keys; every key of the server without one) that changes, whether it is cached here or not.
    bool enabled = false;
    /// Most entries kept. The least recently used go first (the entries are kept in up to 16
    /// shards, one per 64 entries allowed, each with its share of the bounds and its own order).
    std::size_t max_entries = 10000;
    /// Most bytes kept, counted as each value's stored JSON plus its key plus 128 bytes of
    /// bookkeeping (not the decoded object's own heap, which is usually of the same order).
    std::size_t max_bytes = std::size_t{64} << 20;
    /// Longest an entry is served without asking Redis, even if nothing changed it (also bounded
    /// by the value's own expiry).
    std::chrono::milliseconds max_ttl{std::chrono::minutes(1)};
    /// The invalidation connection is pinged after this long without traffic; a PONG that does
    /// not come within client_options::command_timeout empties the near cache and reconnects.
    std::chrono::milliseconds health_check{std::chrono::seconds(1)};
};

/// What a near cache did so far, and holds now. Each counter is read atomically.
struct near_cache_stats {
    std::uint64_t hits = 0;           ///< reads served from process memory
    std::uint64_t misses = 0;         ///< reads that went to Redis
    std::uint64_t invalidations = 0;  ///< entries (or fills under way) dropped on the server's word
    std::uint64_t reported = 0;       ///< keys the server said changed, cached here or not
    std::uint64_t evictions = 0;      ///< entries dropped for max_entries / max_bytes
    std::uint64_t flushes = 0;        ///< times everything was dropped (FLUSHALL, a lost connection)
    std::size_t entries = 0;          ///< entries held now
    std::size_t bytes = 0;            ///< bytes held now (as max_bytes counts them)
    bool connected = false;           ///< the invalidation connection is up (entries are served)
};

/// How a redkit::cache behaves. Defaults suit a service caching database reads for minutes.
struct cache_options {
    /// Prefix of every key: with key_space("shop:cache"), key "product:42" is stored at
    /// "shop:cache:product:42". Empty (the default): keys are used as given.
    key_space keys;

    /// TTL of get_or_set / set calls that pass none.
    std::chrono::milliseconds default_ttl{std::chrono::minutes(5)};

    /// Each write's TTL is ttl * (1 - ttl_jitter * u), u uniform in [0, 1), so keys written
    /// together do not expire together; never longer than asked. In [0, 1); 0 disables.
    double ttl_jitter = 0.1;

    /// TTL of a cached absence (a loader returning std::nullopt), jittered like values.
    /// 0 disables negative caching (nullopt is returned and not stored).
    std::chrono::milliseconds negative_ttl{std::chrono::seconds(10)};

    /// XFetch early refresh: higher recomputes earlier; 0 disables early refresh. Finite, >= 0.
    double beta = 1.0;

    /// Store the logical expiry and the recompute time in a whitespace trailer after the JSON
    /// (still plain JSON to any parser). false stores exactly the codec's bytes and disables early
    /// refresh and stale serving.
    bool store_metadata = true;

    /// How long a value stays in Redis after its logical expiry, to be served stale while another
    /// process holds the recompute lock. The Redis TTL is ttl + stale_for; plain GET readers (a
    /// Node service) see the value for that long. 0 (the default): nothing is kept past the TTL.
    std::chrono::milliseconds stale_for{0};

    /// Cross-process stampede lock around the recompute (SET key:lock NX PX).
    bool lock = false;
    /// Lock lifetime: a safety bound for a holder that dies; make it longer than the loader.
    std::chrono::milliseconds lock_ttl{std::chrono::seconds(5)};
    /// How long a process that finds the lock held waits for the holder's value before serving
    /// stale (if kept) or computing anyway.
    std::chrono::milliseconds lock_wait{std::chrono::seconds(1)};

    /// Reads that fail on Redis: serve from the loader (and report), or throw.
    cache_failure_policy on_failure = cache_failure_policy::serve_from_loader;

    /// With serve_from_loader: after a transport failure, skip Redis for this long (reads go
    /// straight to the loader, writes are skipped) instead of paying a connect timeout per call.
    /// 0 disables.
    std::chrono::milliseconds outage_backoff{250};

    /// Uniform random numbers in [0, 1) for XFetch and jitter; empty: a per-thread generator
    /// seeded from std::random_device. Set it (e.g. a seeded engine) for deterministic tests;
    /// it is called from every thread that uses the cache, so it must be thread-safe.
    std::function<double()> random;
    /// Keep decoded values of hot keys in this process too (off by default): see
    /// near_cache_options and the README's "Near cache".
    near_cache_options near;
};

/// A snapshot of a cache's counters. Each get_or_set counts one of hits, misses or
/// early_refreshes; get and get_many count hits and misses.
struct cache_stats {
    std::uint64_t hits = 0;             ///< served from a fresh cached value (cached absence included)
    std::uint64_t misses = 0;           ///< nothing fresh cached (absent, expired, corrupt, Redis unavailable)
    std::uint64_t early_refreshes = 0;  ///< XFetch recomputed a value before its expiry
    std::uint64_t stale_serves = 0;     ///< misses served a logically expired value (lock held elsewhere)
    std::uint64_t loader_calls = 0;     ///< loader invocations
    std::uint64_t errors = 0;           ///< failed Redis calls and undecodable values
};

}  // namespace v0
}  // namespace redkit
