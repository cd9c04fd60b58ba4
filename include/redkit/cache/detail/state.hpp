// SPDX-License-Identifier: MIT
// The machinery behind redkit::cache: what copies of a cache share (counters, the single-flight
// table, the outage bypass), how a GET is classified, how values are written and the
// cross-process lock taken and released.
#pragma once

#include <redkit/cache/detail/entry.hpp>
#include <redkit/cache/detail/near.hpp>
#include <redkit/cache/options.hpp>
#include <redkit/client.hpp>
#include <redkit/config.hpp>
#include <redkit/error.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

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

/// What a loader of cache::async_get_or_set gives: U for one returning redkit::future<U> (an
/// awaitable loader), else its result.
template <class R>
struct cache_loaded {
    using type = R;
    static constexpr bool deferred = false;
};
template <class U>
struct cache_loaded<future<U>> {
    using type = U;
    static constexpr bool deferred = true;
};
template <class T, class Loader>
struct cache_async_value {
    using type = T;
};
template <class Loader>
struct cache_async_value<void, Loader> {
    using type = typename cache_loaded<std::decay_t<std::invoke_result_t<Loader&>>>::type;
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
    std::atomic<bool> invalidated{false};     // invalidate()/set() ran meanwhile: do not store
    std::vector<std::function<void()>> then;  // async waiters (cache::async_get_or_set); guarded by mutex

    /// Blocks until the recompute succeeded or failed.
    REDKIT_DECL void wait();
    /// Runs `k` once the recompute succeeded or failed: at once, here, when it has; else on the
    /// thread that finishes it, after the blocking waiters were woken. `k` must not throw.
    REDKIT_DECL void on_done(std::function<void()> k);
    /// The recompute succeeded: publishes its value (`v` of type `t`, encoded as `encoded`) to
    /// the waiters.
    REDKIT_DECL void succeed(std::shared_ptr<const void> v, const std::type_info& t, const std::string& encoded,
                             bool was_absent, bool was_stale);
    /// The recompute threw: the waiters get `e`.
    REDKIT_DECL void fail(std::exception_ptr e);
};

/// Throws std::invalid_argument unless ttl > 0.
REDKIT_DECL void cache_check_ttl(std::chrono::milliseconds ttl);

/// Throws std::invalid_argument naming the first bad option.
REDKIT_DECL void validate_cache_options(const cache_options& o);

/// One value set_many stores: its Redis key and its encoding.
struct cache_write {
    std::string full;
    std::string bytes;  // the codec's bytes (the trailer is appended while the command is built)
    bool absent = false;
};

enum class cache_lock_result { acquired, held, failed };

/// Which of a cache's counters (cache_counter).
enum class cache_count : unsigned char { hit, miss, early, stale, load, error };

/// What one observed call of a cache counted, for its outcome (observer::on_cache).
struct cache_tally {
    const void* owner = nullptr;  // the cache_state whose counters count here
    int counts[6] = {};           // by cache_count
    bool near = false;            // answered from the near cache
    std::chrono::nanoseconds lock_waited{0};
    int operator[](cache_count c) const noexcept { return counts[static_cast<int>(c)]; }
};

/// The tally of the observed cache call this thread is working for (or null).
inline cache_tally*& current_cache_tally() noexcept {
    static thread_local cache_tally* current = nullptr;
    return current;
}

/// Makes `t` this thread's tally while it lives (the one before comes back after).
class cache_tally_scope {
public:
    explicit cache_tally_scope(cache_tally* t) noexcept : previous_(current_cache_tally()) {
        current_cache_tally() = t;
    }
    cache_tally_scope(const cache_tally_scope&) = delete;
    cache_tally_scope& operator=(const cache_tally_scope&) = delete;
    ~cache_tally_scope() { current_cache_tally() = previous_; }

private:
    cache_tally* previous_;
};

/// One of a cache's counters (stats()): an atomic that also counts in this thread's tally when
/// the call it works for is one of its cache's.
class cache_counter {
public:
    cache_counter(const void* owner, cache_count kind) noexcept : owner_(owner), kind_(kind) {}
    void fetch_add(std::uint64_t n, std::memory_order o) noexcept {
        value_.fetch_add(n, o);
        tally(static_cast<int>(n));
    }
    void fetch_sub(std::uint64_t n, std::memory_order o) noexcept {
        value_.fetch_sub(n, o);
        tally(-static_cast<int>(n));
    }
    std::uint64_t load(std::memory_order o) const noexcept { return value_.load(o); }

private:
    void tally(int n) const noexcept {
        cache_tally* t = current_cache_tally();
        if (t != nullptr && t->owner == owner_) t->counts[static_cast<int>(kind_)] += n;
    }
    std::atomic<std::uint64_t> value_{0};
    const void* owner_;
    cache_count kind_;
};

class cache_state;

/// One call of a cache, observed: its tally and start; reports its outcome once (on_cache).
class cache_call {
public:
    /// `full`: the key (a view that must outlive the call); `loads`: get_or_set (else get).
    REDKIT_DECL cache_call(const cache_state& s, std::string_view full, bool loads) noexcept;
    cache_call(const cache_call&) = delete;
    cache_call& operator=(const cache_call&) = delete;
    /// Tells the observer (once).
    REDKIT_DECL void report(bool failed) noexcept;

    cache_tally tally;

private:
    observer* to_;
    const cache_state* state_;
    std::string_view full_;
    bool loads_;
    bool reported_ = false;
    std::chrono::steady_clock::time_point start_;
};

/// A blocking call's observation, on its stack: the tally is this thread's while it lives, and the
/// outcome is reported as it ends (failed when it ends by an exception).
class cache_call_on_stack {
public:
    cache_call_on_stack(const cache_state& s, std::string_view full, bool loads) noexcept
        : call_(s, full, loads), scope_(&call_.tally), exceptions_(std::uncaught_exceptions()) {}
    cache_call_on_stack(const cache_call_on_stack&) = delete;
    cache_call_on_stack& operator=(const cache_call_on_stack&) = delete;
    ~cache_call_on_stack() { call_.report(std::uncaught_exceptions() > exceptions_); }

private:
    cache_call call_;
    cache_tally_scope scope_;
    int exceptions_;
};

/// The state copies of a cache share.
class cache_state {
public:
    /// Throws std::invalid_argument naming a bad option.
    REDKIT_DECL cache_state(client c, cache_options o);

    client redis;
    const cache_options options;

    std::unique_ptr<near_store> near;       // with options.near.enabled
    std::unique_ptr<near_tracker> tracker;  // (stops before near goes)

    cache_counter hits{this, cache_count::hit}, misses{this, cache_count::miss},
        early_refreshes{this, cache_count::early}, stale_serves{this, cache_count::stale},
        loader_calls{this, cache_count::load}, errors{this, cache_count::error};

    /// The client's observer, or null.
    observer* watcher() const noexcept { return redis.options().observer.get(); }
    /// With cache_options::lock: counts a wait for another process's load in this thread's tally.
    void note_lock_wait(std::chrono::nanoseconds waited) const noexcept {
        cache_tally* t = current_cache_tally();
        if (t != nullptr && t->owner == this) t->lock_waited += waited;
    }

    std::mutex flights_mutex;
    std::unordered_map<std::string, std::shared_ptr<cache_flight>> flights;

    /// [prefix:]key; throws std::invalid_argument for an empty key.
    REDKIT_DECL std::string full_key(std::string_view key) const;

    /// Bumped (under flights_mutex) whenever a recompute of a key hashing here has stored its
    /// value: a caller that missed before the bump reads again instead of recomputing.
    std::atomic<std::uint64_t>& generation(std::string_view full) noexcept {
        return generations_[std::hash<std::string_view>{}(full) % generations_.size()];
    }

    /// The wall clock, Unix epoch milliseconds (logical expiries are kept in it).
    REDKIT_DECL static long long now_ms() noexcept;

    /// A uniform number in [0, 1): options.random, or a per-thread generator.
    REDKIT_DECL double draw() const;

    /// `ttl` shortened by up to ttl_jitter of itself (never below 1 ms).
    REDKIT_DECL std::chrono::milliseconds jittered(std::chrono::milliseconds ttl) const;

    /// GET and classify. Failures follow the policy: reported (kind unavailable) or rethrown.
    REDKIT_DECL cache_read read(const std::string& full, bool xfetch);
    /// MGET of `fulls` (not empty) into `got`, failures as for read(); false (every key counted
    /// as a miss) when Redis is unavailable.
    REDKIT_DECL bool read_many(const std::vector<std::string>& fulls, std::vector<std::optional<std::string>>& got);
    /// Classifies stored bytes (or their absence).
    REDKIT_DECL void classify(cache_read& r, std::optional<std::string> got, bool xfetch) const;

    /// Handles a failed read-path command: counts it; with serve_from_loader reports it (and
    /// starts the outage backoff on a transport failure) and returns true; else returns false.
    REDKIT_DECL bool absorb_failure(const error& e, std::string_view what, std::string_view key);
    REDKIT_DECL void report_write_failure(const error& e, std::string_view what, std::string_view key) noexcept;
    REDKIT_DECL void report_undecodable(std::string_view full, const std::exception& e) noexcept;

    /// What SET stores for a value: its bytes (with the trailer appended to `bytes` when metadata
    /// is kept) or the absent marker, and the PX of the jittered TTL.
    struct stored_form {
        std::string_view value;
        std::chrono::milliseconds px;
    };
    REDKIT_DECL stored_form prepare(std::string& bytes, bool absent, std::chrono::milliseconds ttl,
                                    long long delta_us) const;

    /// SET full (bytes + trailer | absent marker) PX; throws on failure. `bytes` is restored.
    REDKIT_DECL void write(const std::string& full, std::string& bytes, bool absent, std::chrono::milliseconds ttl,
                           long long delta_us);
    /// write(), with failures reported instead of thrown.
    REDKIT_DECL void store(const std::string& full, std::string& bytes, bool absent, std::chrono::milliseconds ttl,
                           long long delta_us) noexcept;
    /// set_many's SETs, pipelined (each TTL jittered); throws redkit::error on a transport
    /// failure, server_error for the first refused SET.
    REDKIT_DECL void write_many(std::vector<cache_write>& writes, std::chrono::milliseconds ttl);

    REDKIT_DECL cache_lock_result try_lock(const std::string& lock_key, const std::string& token);
    REDKIT_DECL void unlock(const std::string& lock_key, const std::string& token) noexcept;
    REDKIT_DECL static std::string new_token();

    REDKIT_DECL static long long steady_ms() noexcept;
    REDKIT_DECL bool bypassing() const noexcept;
    /// After a failure of the transport (or an exhausted pool), skip Redis for outage_backoff;
    /// true when the bypass started.
    REDKIT_DECL bool start_bypass(const error& e) noexcept;
    void recovered() noexcept {
        if (bypass_until_.load(std::memory_order_relaxed) != 0) bypass_until_.store(0, std::memory_order_relaxed);
    }

    /// The recompute of `full` running in this process, joined (counted as a waiter when `wait`);
    /// else a new one, which the caller leads (`leader` set), when `lead` or when no recompute of a
    /// key hashing here has stored its value since generation `seen`; else null (read again).
    REDKIT_DECL std::shared_ptr<cache_flight> join_or_lead(const std::string& full, bool wait, bool lead,
                                                           std::uint64_t seen, bool& leader);
    /// Removes a finished flight and returns how many callers joined it; bump: its value was
    /// stored (see generation()). Once removed, nobody can join it any more.
    REDKIT_DECL std::size_t end_flight(const std::string& full, const std::shared_ptr<cache_flight>& f, bool bump);
    /// Tells a running recompute of `full` not to store its (possibly outdated) value.
    REDKIT_DECL void mark_invalidated(const std::string& full);
    /// The near cache's value of `full`, if it has one of type V (counted as a hit).
    template <class V>
    std::optional<V> near_hit(std::string_view full) {
        if (!near) return std::nullopt;
        std::optional<V> v = near->get<V>(full);
        if (v) {
            hits.fetch_add(1, std::memory_order_relaxed);
            if (cache_tally* t = current_cache_tally(); t != nullptr && t->owner == this) t->near = true;
        }
        return v;
    }
    /// After this process wrote `full`: drops its near entry and any near fill under way, so the
    /// next read here sees the write without waiting for the server's invalidation.
    REDKIT_DECL void drop_near(const std::string& full) noexcept;
    /// How long a value just read may stay in the near cache: near.max_ttl, bounded by its logical
    /// expiry or, without one, its key's PTTL (one more command); <= 0: not kept.
    REDKIT_DECL long long near_life_ms(const cache_read& r, const std::string& full);

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

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/cache/detail/impl/state.ipp>
#endif
