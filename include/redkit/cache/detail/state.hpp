// SPDX-License-Identifier: MIT
// The machinery behind redkit::cache: what copies of a cache share (counters, the single-flight
// table, the outage bypass), how a GET is classified, how values are written and the
// cross-process lock taken and released.
#pragma once

#include <redkit/cache/detail/entry.hpp>
#include <redkit/cache/detail/lua.hpp>
#include <redkit/cache/detail/near.hpp>
#include <redkit/cache/options.hpp>
#include <redkit/client.hpp>
#include <redkit/detail/random.hpp>
#include <redkit/error.hpp>
#include <redkit/script.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>

namespace redkit {
inline namespace v0 {
namespace detail {

template <class T>
struct cache_optional : std::false_type {
    using value_type = T;
};
template <class U>
struct cache_optional<std::optional<U>> : std::true_type {
    using value_type = U;
};

template <class T, class Loader>
struct cache_value {
    using type = T;
};
template <class Loader>
struct cache_value<void, Loader> {
    using type = std::decay_t<std::invoke_result_t<Loader&>>;
};

enum class cache_read_kind { missing, fresh, early, stale, absent, unreadable, unavailable };

/// What one GET found.
struct cache_read {
    cache_read_kind kind = cache_read_kind::missing;
    std::string raw;  // the stored bytes
    std::size_t value_size = 0;
    cache_meta meta;
    bool has_meta = false;
    std::string_view value() const noexcept { return {raw.data(), value_size}; }
};

/// What a recompute produced: the value, its encoding, and how it was obtained.
template <class V>
struct cache_outcome {
    V value;
    std::string bytes;  // the codec's bytes (no trailer), for waiters asking another type
    bool absent = false;
    bool stale = false;
};

/// One in-process recompute of a key; concurrent callers wait on it.
struct cache_flight {
    std::size_t waiters = 0;  // guarded by cache_state::flights_mutex
    std::mutex mutex;
    std::condition_variable finished;
    bool done = false;
    std::exception_ptr failure;
    std::shared_ptr<const void> value;  // the leader's value, for waiters asking the same type
    const std::type_info* type = nullptr;
    std::string bytes;  // its encoding, for waiters asking another type
    bool absent = false;
    bool stale = false;
    std::atomic<bool> invalidated{false};  // invalidate()/set() ran meanwhile: do not store

    void wait() {
        std::unique_lock<std::mutex> lock(mutex);
        finished.wait(lock, [this] { return done; });
    }
    void fail(std::exception_ptr e) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            failure = std::move(e);
            done = true;
        }
        finished.notify_all();
    }
};

inline void cache_check_ttl(std::chrono::milliseconds ttl) {
    if (ttl.count() <= 0) throw std::invalid_argument("redkit: cache: ttl must be positive");
}

inline void validate_cache_options(const cache_options& o) {
    const auto bad = [](const char* what) {
        throw std::invalid_argument(std::string("redkit: cache_options.") + what);
    };
    if (o.default_ttl.count() <= 0) bad("default_ttl must be positive");
    if (!(o.ttl_jitter >= 0 && o.ttl_jitter < 1)) bad("ttl_jitter must be in [0, 1)");
    if (o.negative_ttl.count() < 0) bad("negative_ttl must not be negative");
    if (!(o.beta >= 0) || !std::isfinite(o.beta)) bad("beta must be a finite number >= 0");
    if (o.stale_for.count() < 0) bad("stale_for must not be negative");
    if (o.stale_for.count() > 0 && !o.store_metadata) {
        bad("stale_for needs store_metadata = true (the logical expiry is kept in the metadata)");
    }
    if (o.lock_ttl.count() <= 0) bad("lock_ttl must be positive");
    if (o.lock_wait.count() < 0) bad("lock_wait must not be negative");
    if (o.outage_backoff.count() < 0) bad("outage_backoff must not be negative");
    if (o.near.enabled) {
        if (o.near.max_entries == 0) bad("near.max_entries must be positive");
        if (o.near.max_bytes == 0) bad("near.max_bytes must be positive");
        if (o.near.max_ttl.count() <= 0) bad("near.max_ttl must be positive");
        if (o.near.health_check.count() <= 0) bad("near.health_check must be positive");
    }
}

enum class cache_lock_result { acquired, held, failed };

/// The state copies of a cache share.
class cache_state {
public:
    cache_state(client c, cache_options o) : redis(std::move(c)), options(std::move(o)) {
        validate_cache_options(options);
        if (options.near.enabled && redis.is_cluster()) {
            // invalidations come from each node to a connection on that node: one tracker per node
            // is not built yet
            throw std::invalid_argument(
                "redkit: cache_options.near is not available on Redis Cluster yet (use it on a single server or "
                "with Sentinel)");
        }
        if (options.near.enabled) {
            near = std::make_unique<near_store>(options.near.max_entries, options.near.max_bytes);
            const std::string& prefix = options.keys.prefix();
            tracker = std::make_unique<near_tracker>(redis.options(), *near, options.near,
                                                     prefix.empty() ? std::string() : prefix + ":");
        }
    }

    client redis;
    const cache_options options;

    std::unique_ptr<near_store> near;       // with options.near.enabled
    std::unique_ptr<near_tracker> tracker;  // (stops before near goes)

    std::atomic<std::uint64_t> hits{0}, misses{0}, early_refreshes{0}, stale_serves{0}, loader_calls{0}, errors{0};

    std::mutex flights_mutex;
    std::unordered_map<std::string, std::shared_ptr<cache_flight>> flights;

    std::string full_key(std::string_view key) const {
        if (key.empty()) throw std::invalid_argument("redkit: cache: key is empty");
        const std::string& prefix = options.keys.prefix();
        if (prefix.empty()) return std::string(key);
        std::string out;
        out.reserve(prefix.size() + 1 + key.size());
        out.append(prefix).append(1, ':').append(key);
        return out;
    }

    /// Bumped (under flights_mutex) whenever a recompute of a key hashing here has stored its
    /// value: a caller that missed before the bump reads again instead of recomputing.
    std::atomic<std::uint64_t>& generation(std::string_view full) noexcept {
        return generations_[std::hash<std::string_view>{}(full) % generations_.size()];
    }

    static long long now_ms() noexcept {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }

    double draw() const {
        if (options.random) return options.random();
        thread_local std::mt19937_64 engine = [] {
            std::random_device rd;
            std::seed_seq seq{rd(), rd(), rd(), rd()};
            return std::mt19937_64(seq);
        }();
        return static_cast<double>(engine() >> 11) * 0x1.0p-53;
    }

    std::chrono::milliseconds jittered(std::chrono::milliseconds ttl) const {
        if (options.ttl_jitter <= 0) return ttl;
        double u = draw();
        if (!(u >= 0)) u = 0;
        if (u >= 1) u = 0.999999;
        const auto cut = static_cast<long long>(static_cast<double>(ttl.count()) * options.ttl_jitter * u);
        return std::chrono::milliseconds(std::max<long long>(1, ttl.count() - cut));
    }

    /// GET and classify. Failures follow the policy: reported (kind unavailable) or rethrown.
    cache_read read(const std::string& full, bool xfetch);
    /// Classifies stored bytes (or their absence).
    void classify(cache_read& r, std::optional<std::string> got, bool xfetch) const;

    /// Handles a failed read-path command: counts it; with serve_from_loader reports it (and
    /// starts the outage backoff on a transport failure) and returns true; else returns false.
    bool absorb_failure(const error& e, std::string_view what, std::string_view key);
    void report_write_failure(const error& e, std::string_view what, std::string_view key) noexcept;
    void report_undecodable(std::string_view full, const std::exception& e) noexcept;

    /// What SET stores for a value: its bytes (with the trailer appended to `bytes` when metadata
    /// is kept) or the absent marker, and the PX of the jittered TTL.
    struct stored_form {
        std::string_view value;
        std::chrono::milliseconds px;
    };
    stored_form prepare(std::string& bytes, bool absent, std::chrono::milliseconds ttl, long long delta_us) const;

    /// SET full (bytes + trailer | absent marker) PX; throws on failure. `bytes` is restored.
    void write(const std::string& full, std::string& bytes, bool absent, std::chrono::milliseconds ttl,
               long long delta_us);
    /// write(), with failures reported instead of thrown.
    void store(const std::string& full, std::string& bytes, bool absent, std::chrono::milliseconds ttl,
               long long delta_us) noexcept;

    cache_lock_result try_lock(const std::string& lock_key, const std::string& token);
    void unlock(const std::string& lock_key, const std::string& token) noexcept;
    static std::string new_token();

    static long long steady_ms() noexcept;
    bool bypassing() const noexcept;
    /// After a failure of the transport (or an exhausted pool), skip Redis for outage_backoff;
    /// true when the bypass started.
    bool start_bypass(const error& e) noexcept;
    void recovered() noexcept {
        if (bypass_until_.load(std::memory_order_relaxed) != 0) bypass_until_.store(0, std::memory_order_relaxed);
    }

    /// Removes a finished flight and returns how many callers joined it; bump: its value was
    /// stored (see generation()). Once removed, nobody can join it any more.
    std::size_t end_flight(const std::string& full, const std::shared_ptr<cache_flight>& f, bool bump);
    /// Tells a running recompute of `full` not to store its (possibly outdated) value.
    void mark_invalidated(const std::string& full);
    /// The near cache's value of `full`, if it has one of type V (counted as a hit).
    template <class V>
    std::optional<V> near_hit(std::string_view full) {
        if (!near) return std::nullopt;
        std::optional<V> v = near->get<V>(full);
        if (v) hits.fetch_add(1, std::memory_order_relaxed);
        return v;
    }
    /// After this process wrote `full`: drops its near entry and any near fill under way, so the
    /// next read here sees the write without waiting for the server's invalidation.
    void drop_near(const std::string& full) noexcept {
        if (!near) return;
        try {
            near->drop(full);
        } catch (...) {
            near->flush();  // out of memory for the lookup: drop everything rather than keep it
        }
    }

private:
    std::array<std::atomic<std::uint64_t>, 64> generations_{};
    std::atomic<long long> bypass_until_{0};  // steady_clock ms; 0 = not bypassing
};

/// Runs a function when it goes out of scope (e.g. drop_near after a write, also when it throws).
template <class F>
class cache_on_exit {
public:
    explicit cache_on_exit(F f) : f_(std::move(f)) {}
    cache_on_exit(const cache_on_exit&) = delete;
    cache_on_exit& operator=(const cache_on_exit&) = delete;
    ~cache_on_exit() { f_(); }

private:
    F f_;
};

class cache_unlock_guard {
public:
    cache_unlock_guard(cache_state& s, const std::string& key, const std::string& token)
        : s_(s), key_(key), token_(token) {}
    cache_unlock_guard(const cache_unlock_guard&) = delete;
    cache_unlock_guard& operator=(const cache_unlock_guard&) = delete;
    ~cache_unlock_guard() { s_.unlock(key_, token_); }

private:
    cache_state& s_;
    const std::string& key_;
    const std::string& token_;
};

// ---- implementation ----

inline void cache_state::classify(cache_read& r, std::optional<std::string> got, bool xfetch) const {
    if (!got) {
        r.kind = cache_read_kind::missing;
        return;
    }
    r.raw = std::move(*got);
    if (r.raw == cache_absent_marker) {
        r.kind = cache_read_kind::absent;
        return;
    }
    r.value_size = split_cache_entry(r.raw, r.meta, r.has_meta).size();
    r.kind = cache_read_kind::fresh;
    if (!r.has_meta) return;
    const long long now = now_ms();
    if (now >= r.meta.expiry_ms) {
        r.kind = cache_read_kind::stale;
    } else if (xfetch && options.beta > 0 && r.meta.delta_us > 0 &&
               xfetch_should_refresh(now, r.meta, options.beta, draw())) {
        r.kind = cache_read_kind::early;
    }
}

inline cache_read cache_state::read(const std::string& full, bool xfetch) {
    cache_read r;
    if (bypassing()) {
        r.kind = cache_read_kind::unavailable;
        return r;
    }
    std::optional<std::string> got;
    try {
        got = redis.command<std::optional<std::string>>("GET", full);
    } catch (const server_error& e) {
        if (e.prefix() == "WRONGTYPE") {  // another type at the key: a corrupt value, overwritten by the next store
            report_undecodable(full, e);
            r.kind = cache_read_kind::unreadable;
            return r;
        }
        if (!absorb_failure(e, "GET", full)) throw;
        r.kind = cache_read_kind::unavailable;
        return r;
    } catch (const error& e) {
        if (!absorb_failure(e, "GET", full)) throw;
        r.kind = cache_read_kind::unavailable;
        return r;
    }
    recovered();
    classify(r, std::move(got), xfetch);
    return r;
}

inline long long cache_state::steady_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

inline bool cache_state::bypassing() const noexcept {
    const long long until = bypass_until_.load(std::memory_order_relaxed);
    return until != 0 && steady_ms() < until;
}

inline bool cache_state::start_bypass(const error& e) noexcept {
    const bool outage = e.is_transport() || e.kind() == errc::pool_exhausted;
    if (!outage || options.outage_backoff.count() <= 0 ||
        options.on_failure != cache_failure_policy::serve_from_loader) {
        return false;
    }
    bypass_until_.store(steady_ms() + options.outage_backoff.count(), std::memory_order_relaxed);
    return true;
}

inline bool cache_state::absorb_failure(const error& e, std::string_view what, std::string_view key) {
    errors.fetch_add(1, std::memory_order_relaxed);
    if (options.on_failure == cache_failure_policy::throw_error) return false;
    std::string message = "redkit: cache: ";
    message.append(what)
        .append(1, ' ')
        .append(key)
        .append(" failed (")
        .append(e.what())
        .append("); serving from the loader");
    if (start_bypass(e))
        message += " and bypassing Redis for " + std::to_string(options.outage_backoff.count()) + " ms";
    redis.report(error(e.kind(), message));
    return true;
}

inline void cache_state::report_write_failure(const error& e, std::string_view what, std::string_view key) noexcept {
    try {
        errors.fetch_add(1, std::memory_order_relaxed);
        std::string message = "redkit: cache: ";
        message.append(what).append(1, ' ').append(key).append(" failed (").append(e.what()).append(")");
        start_bypass(e);
        redis.report(error(e.kind(), message));
    } catch (...) {
        // reporting must never turn a served value into a failure
    }
}

inline void cache_state::report_undecodable(std::string_view full, const std::exception& e) noexcept {
    try {
        errors.fetch_add(1, std::memory_order_relaxed);
        std::string message = "redkit: cache: ";
        message.append(full).append(": stored value does not decode (").append(e.what()).append("); treated as a miss");
        redis.report(error(errc::decode_error, message));
    } catch (...) {
    }
}

inline cache_state::stored_form cache_state::prepare(std::string& bytes, bool absent, std::chrono::milliseconds ttl,
                                                     long long delta_us) const {
    const std::chrono::milliseconds t = jittered(ttl);
    if (absent) return {cache_absent_marker, t};
    if (!options.store_metadata) return {bytes, t};
    append_cache_trailer(bytes, cache_meta{now_ms() + t.count(), delta_us});
    return {bytes, t + options.stale_for};
}

inline void cache_state::write(const std::string& full, std::string& bytes, bool absent, std::chrono::milliseconds ttl,
                               long long delta_us) {
    const std::size_t size = bytes.size();
    try {
        const stored_form f = prepare(bytes, absent, ttl, delta_us);
        redis.command<void>(idempotent, "SET", full, f.value, "PX", f.px);
    } catch (...) {
        bytes.resize(size);
        drop_near(full);
        throw;
    }
    bytes.resize(size);
    drop_near(full);
}

inline void cache_state::store(const std::string& full, std::string& bytes, bool absent, std::chrono::milliseconds ttl,
                               long long delta_us) noexcept {
    if (bypassing()) return;
    try {
        write(full, bytes, absent, ttl, delta_us);
    } catch (const error& e) {
        report_write_failure(e, "SET", full);
    } catch (...) {
        // bad_alloc while building the command: the value is still served
    }
}

inline cache_lock_result cache_state::try_lock(const std::string& lock_key, const std::string& token) {
    if (bypassing()) return cache_lock_result::failed;
    try {
        const bool ok = redis.command<bool>("SET", lock_key, token, "NX", "PX", options.lock_ttl);
        return ok ? cache_lock_result::acquired : cache_lock_result::held;
    } catch (const error& e) {
        if (!absorb_failure(e, "SET NX", lock_key)) throw;
        return cache_lock_result::failed;
    }
}

inline void cache_state::unlock(const std::string& lock_key, const std::string& token) noexcept {
    try {
        redis.eval<long long>(static_script<cache_lua::unlock>(), {std::string_view(lock_key)}, token);
    } catch (const error& e) {
        report_write_failure(e, "unlock", lock_key);  // the lock still expires after lock_ttl
    } catch (...) {
    }
}

inline std::string cache_state::new_token() {
    return random_hex(16);  // the OS CSPRNG: forked processes never share a token
}

inline std::size_t cache_state::end_flight(const std::string& full, const std::shared_ptr<cache_flight>& f, bool bump) {
    std::lock_guard<std::mutex> lock(flights_mutex);
    const auto it = flights.find(full);
    if (it != flights.end() && it->second == f) flights.erase(it);
    if (bump) generation(full).fetch_add(1, std::memory_order_release);
    return f->waiters;
}

inline void cache_state::mark_invalidated(const std::string& full) {
    std::lock_guard<std::mutex> lock(flights_mutex);
    const auto it = flights.find(full);
    if (it != flights.end()) it->second->invalidated.store(true);
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
