// SPDX-License-Identifier: MIT
// redkit::cache: cache-aside that survives stampedes, outages and bad data.
//
// get_or_set(key, loader, ttl) reads the key; on a hit it decodes the value into T and returns it;
// on a miss it runs the loader, stores the value with the TTL and returns it.
//
// Commands and round trips:
//   hit                 GET                                            1 command, 1 round trip
//   miss                GET, loader, SET key value PX ttl               2 round trips
//   miss with the lock  GET, SET key:lock token NX PX, GET (re-check), loader, SET, EVALSHA unlock
//   lock held elsewhere GET, then every 5..50 ms: GET + SET NX, up to lock_wait
//   get_many            MGET (1 round trip); set_many: SETs pipelined (1 round trip, not atomic)
//   invalidate          DEL
// No call is atomic across its commands; each command touches one key, so everything but
// get_many works unchanged on Redis Cluster (MGET needs its keys in one slot there: give them one
// hash tag, or call get per key).
//
// Stored bytes (see detail/cache_entry.hpp): the codec's bytes (compact JSON, what JSON.stringify
// writes) followed by a 50-byte trailer of JSON whitespace holding the logical expiry and the last
// recompute time for XFetch. JSON allows trailing whitespace, so a Node service reads the value
// with JSON.parse(await redis.get(key)); `store_metadata = false` stores the exact JSON bytes (and
// turns off early refresh and stale serving). Cached absence is the marker "!redkit:absent", which
// no JSON text can equal. Keys: [prefix:]key, and [prefix:]key:lock for the cross-process lock.
//
// Stampede protection: concurrent misses on one key inside a process run the loader once (single
// flight; the others wait for its result, or its exception). Across processes, with
// `lock = true`, a short lock (SET NX PX with a random token, released by compare-and-delete in
// Lua) lets one process recompute; the others poll up to lock_wait, then serve the stale value if
// one is kept (stale_for), else compute anyway. XFetch recomputes early, with a probability that
// rises as the logical expiry nears: now - delta * beta * ln(rand) >= expiry.
//
// Failure policy: when Redis is unreachable or times out, get_or_set serves from the loader and
// reports through client_options::on_error (or throws, by option). A stored value that does not
// decode is reported, treated as a miss and overwritten. Logical expiry uses the local wall clock
// (system_clock): hosts sharing a cache need synchronised clocks (NTP) for XFetch to be accurate.
//
// Thread safety: every member function may be called from any thread at once; copies of a cache
// share its single-flight table and counters.
#pragma once

#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/detail/cache_entry.hpp>
#include <redkit/detail/scripts/cache.hpp>
#include <redkit/error.hpp>
#include <redkit/key.hpp>
#include <redkit/pipeline.hpp>
#include <redkit/reply.hpp>

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
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// What the cache does when Redis cannot be reached or times out on a read.
enum class cache_failure_policy {
    serve_from_loader,  ///< report through client_options::on_error, then run the loader (the default)
    throw_error,        ///< throw the redkit::error to the caller; the loader does not run
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
/// The type get_or_set<T> returns: T, or what the loader returns when T is not given.
template <class T, class Loader>
using cache_value_t = typename cache_value<T, Loader>::type;

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
    std::string bytes;                  // its encoding, for waiters asking another type
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
    const auto bad = [](const char* what) { throw std::invalid_argument(std::string("redkit: cache_options.") + what); };
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
}

enum class cache_lock_result { acquired, held, failed };

/// The state copies of a cache share.
class cache_state {
public:
    cache_state(client c, cache_options o) : redis(std::move(c)), options(std::move(o)) { validate_cache_options(options); }

    client redis;
    const cache_options options;

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
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
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

    /// SET full (bytes + trailer | absent marker) PX; throws on failure. `bytes` is restored.
    void write(const std::string& full, std::string& bytes, bool absent, std::chrono::milliseconds ttl, long long delta_us);
    /// write(), with failures reported instead of thrown.
    void store(const std::string& full, std::string& bytes, bool absent, std::chrono::milliseconds ttl, long long delta_us) noexcept;

    cache_lock_result try_lock(const std::string& lock_key, const std::string& token);
    void unlock(const std::string& lock_key, const std::string& token) noexcept;
    static std::string new_token();

    bool bypassing() const noexcept;
    void recovered() noexcept {
        if (bypass_until_.load(std::memory_order_relaxed) != 0) bypass_until_.store(0, std::memory_order_relaxed);
    }

    /// Removes a finished flight and returns how many callers joined it; bump: its value was
    /// stored (see generation()). Once removed, nobody can join it any more.
    std::size_t end_flight(const std::string& full, const std::shared_ptr<cache_flight>& f, bool bump);
    /// Tells a running recompute of `full` not to store its (possibly outdated) value.
    void mark_invalidated(const std::string& full);

private:
    std::array<std::atomic<std::uint64_t>, 64> generations_{};
    std::atomic<long long> bypass_until_{0};  // steady_clock ms; 0 = not bypassing
};

class cache_unlock_guard {
public:
    cache_unlock_guard(cache_state& s, const std::string& key, const std::string& token) : s_(s), key_(key), token_(token) {}
    cache_unlock_guard(const cache_unlock_guard&) = delete;
    cache_unlock_guard& operator=(const cache_unlock_guard&) = delete;
    ~cache_unlock_guard() { s_.unlock(key_, token_); }

private:
    cache_state& s_;
    const std::string& key_;
    const std::string& token_;
};

}  // namespace detail

/// Cache-aside over a redkit::client. Cheap to copy (copies share state); thread-safe.
///
/// @code
/// redkit::cache_options o;
/// o.keys = redkit::key_space("shop:cache");
/// redkit::cache products(redis, o);                     // or redkit::cache{} over default_client()
/// product p = products.get_or_set<product>(redkit::make_key("product", id),
///                                          [&] { return db.load_product(id); }, std::chrono::minutes(10));
/// std::optional<user> u = users.get_or_set(key, [&] { return db.find_user(id); });  // nullopt cached too
/// products.invalidate(redkit::make_key("product", id));                            // after a write
/// @endcode
class cache {
public:
    /// Over redkit::default_client(), default options.
    cache() : cache(default_client(), cache_options{}) {}
    /// Over redkit::default_client(). Throws std::invalid_argument naming a bad option.
    explicit cache(cache_options options) : cache(default_client(), std::move(options)) {}
    /// Over `redis`. Throws std::invalid_argument naming a bad option.
    explicit cache(client redis, cache_options options = {})
        : state_(std::make_shared<detail::cache_state>(std::move(redis), std::move(options))) {}

    /// The cached value of `key`, or the loader's, stored with `ttl` (jittered).
    ///
    /// Hit: one GET, decoded into T (codec<T>: JSON through nlohmann by default). Miss: the
    /// loader runs once per process however many threads miss together (the others wait for
    /// its value as long as it runs, or get its exception; nothing is cached then), and the
    /// value is stored with SET PX. With options().lock, one process recomputes at a time (see
    /// the header comment).
    /// Near the logical expiry XFetch may recompute early (the caller that draws it runs the
    /// loader; others keep getting the current value). T defaults to the loader's result type;
    /// with T = std::optional<U>, a loader result of nullopt is cached as "absent" for
    /// negative_ttl and later calls return nullopt without calling the loader.
    ///
    /// Failures: Redis unreachable or timing out -> the loader's value (reported through
    /// on_error), or redkit::error with cache_failure_policy::throw_error. A failed SET after the
    /// loader ran is reported and the value returned, under either policy. An undecodable stored
    /// value is reported, treated as a miss and overwritten. Exceptions of the loader, and
    /// std::invalid_argument (empty key, ttl <= 0, a value the codec cannot encode), propagate.
    /// A loader must not call get_or_set for its own key (it would wait for itself).
    template <class T = void, class Loader>
    detail::cache_value_t<T, Loader> get_or_set(std::string_view key, Loader&& loader, std::chrono::milliseconds ttl);

    /// get_or_set with options().default_ttl.
    template <class T = void, class Loader>
    detail::cache_value_t<T, Loader> get_or_set(std::string_view key, Loader&& loader) {
        return get_or_set<T>(key, std::forward<Loader>(loader), state_->options.default_ttl);
    }

    /// The cached value, if a fresh one is stored: one GET. std::nullopt on a miss, an expired
    /// (stale) value, an undecodable value (reported), or Redis unavailable (reported; throws
    /// redkit::error with throw_error). For T = std::optional<U>, a cached absence is an engaged
    /// result holding std::nullopt, distinct from a miss.
    template <class T>
    std::optional<T> get(std::string_view key);

    /// Stores a value with `ttl` (jittered): one SET PX. For T = std::optional<U>, nullopt
    /// stores "absent" for ttl. A recompute of this key running in this process will not
    /// overwrite it. Throws redkit::error when Redis fails (under either policy: a lost write is
    /// never silent), std::invalid_argument for an empty key, ttl <= 0 or an unencodable value.
    template <class T>
    void set(std::string_view key, const T& value, std::chrono::milliseconds ttl);
    template <class T>
    void set(std::string_view key, const T& value) {
        set(key, value, state_->options.default_ttl);
    }

    /// Deletes the cached value: one DEL. Returns whether a value was there. A recompute of this
    /// key running in this process will not store its (possibly outdated) result. Throws
    /// redkit::error when Redis fails (under either policy: a lost invalidation serves stale data).
    bool invalidate(std::string_view key);

    /// Values of many keys in one MGET, in order; std::nullopt where get() would return it.
    /// Redis failures as for get(). On Redis Cluster the keys must share one hash slot.
    template <class T, class Keys>
    std::vector<std::optional<T>> get_many(const Keys& keys);
    template <class T>
    std::vector<std::optional<T>> get_many(std::initializer_list<std::string_view> keys) {
        return get_many<T, std::initializer_list<std::string_view>>(keys);
    }

    /// Stores many values with one TTL (each jittered): SETs pipelined in one round trip, not
    /// atomic. Throws redkit::error on a transport failure (some SETs may have run) and
    /// server_error for the first refused SET (the others ran).
    template <class T>
    void set_many(const std::vector<std::pair<std::string, T>>& items, std::chrono::milliseconds ttl);

    /// The Redis key a cache key is stored at (with the prefix).
    std::string key(std::string_view key) const { return state_->full_key(key); }

    /// The counters so far (each read atomically; not a consistent snapshot across counters).
    cache_stats stats() const noexcept;

    const cache_options& options() const noexcept { return state_->options; }

private:
    template <class V>
    std::optional<V> try_decode(std::string_view bytes, std::string_view full) const;
    template <class V>
    std::optional<V> usable(const detail::cache_read& r, std::string_view full) const;
    template <class V>
    static V decode_value(std::string_view bytes, std::string_view full);
    template <class V>
    static void encode_value(const V& v, std::string& bytes, bool& absent);
    template <class V>
    static void publish(detail::cache_flight& f, const detail::cache_outcome<V>& o);
    template <class V, class Loader>
    V lead(const std::string& full, const std::shared_ptr<detail::cache_flight>& f, const detail::cache_read& r,
           std::optional<V> current, Loader& loader, std::chrono::milliseconds ttl);
    template <class V, class Loader>
    detail::cache_outcome<V> lead_locked(const std::string& full, detail::cache_flight& f, const detail::cache_read& r,
                                         std::optional<V> current, Loader& loader, std::chrono::milliseconds ttl);
    template <class V, class Loader>
    detail::cache_outcome<V> compute(const std::string& full, detail::cache_flight& f, Loader& loader, std::chrono::milliseconds ttl,
                                     bool redis_ok, bool early);
    template <class V, class Loader>
    std::optional<V> join(detail::cache_flight& f, std::string_view full, Loader& loader);

    std::shared_ptr<detail::cache_state> state_;
};

// ---- implementation ----

namespace detail {

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
    } else if (xfetch && options.beta > 0 && r.meta.delta_us > 0 && xfetch_should_refresh(now, r.meta, options.beta, draw())) {
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

inline bool cache_state::bypassing() const noexcept {
    const long long until = bypass_until_.load(std::memory_order_relaxed);
    if (until == 0) return false;
    const long long now =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
    return now < until;
}

inline bool cache_state::absorb_failure(const error& e, std::string_view what, std::string_view key) {
    errors.fetch_add(1, std::memory_order_relaxed);
    if (options.on_failure == cache_failure_policy::throw_error) return false;
    std::string message = "redkit: cache: ";
    message.append(what).append(1, ' ').append(key).append(" failed (").append(e.what()).append("); serving from the loader");
    const bool outage = e.is_transport() || e.kind() == errc::pool_exhausted;
    if (outage && options.outage_backoff.count() > 0) {
        const long long now =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
        bypass_until_.store(now + options.outage_backoff.count(), std::memory_order_relaxed);
        message += " and bypassing Redis for " + std::to_string(options.outage_backoff.count()) + " ms";
    }
    redis.report(error(e.kind(), message));
    return true;
}

inline void cache_state::report_write_failure(const error& e, std::string_view what, std::string_view key) noexcept {
    try {
        errors.fetch_add(1, std::memory_order_relaxed);
        std::string message = "redkit: cache: ";
        message.append(what).append(1, ' ').append(key).append(" failed (").append(e.what()).append(")");
        if ((e.is_transport() || e.kind() == errc::pool_exhausted) && options.outage_backoff.count() > 0 &&
            options.on_failure == cache_failure_policy::serve_from_loader) {
            const long long now =
                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
            bypass_until_.store(now + options.outage_backoff.count(), std::memory_order_relaxed);
        }
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

inline void cache_state::write(const std::string& full, std::string& bytes, bool absent, std::chrono::milliseconds ttl,
                               long long delta_us) {
    if (absent) {
        redis.command<void>(idempotent, "SET", full, cache_absent_marker, "PX", jittered(ttl));
        return;
    }
    const std::chrono::milliseconds t = jittered(ttl);
    if (!options.store_metadata) {
        redis.command<void>(idempotent, "SET", full, bytes, "PX", t);
        return;
    }
    const std::size_t size = bytes.size();
    append_cache_trailer(bytes, cache_meta{now_ms() + t.count(), delta_us});
    try {
        redis.command<void>(idempotent, "SET", full, bytes, "PX", t + options.stale_for);
    } catch (...) {
        bytes.resize(size);
        throw;
    }
    bytes.resize(size);
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
        redis.eval<long long>(scripts::cache_unlock(), {std::string_view(lock_key)}, token);
    } catch (const error& e) {
        report_write_failure(e, "unlock", lock_key);  // the lock still expires after lock_ttl
    } catch (...) {
    }
}

inline std::string cache_state::new_token() {
    // random_device draws fresh entropy on every call, so forked processes never share tokens
    // (a seeded engine copied by fork() would hand both children the same sequence).
    static std::mutex mutex;
    static std::random_device rd;
    static constexpr char hex[] = "0123456789abcdef";
    std::string token;
    token.reserve(32);
    std::lock_guard<std::mutex> lock(mutex);
    for (int i = 0; i < 4; ++i) {
        const auto w = static_cast<std::uint32_t>(rd());
        for (int s = 28; s >= 0; s -= 4) token += hex[(w >> s) & 0xFU];
    }
    return token;
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

template <class V>
V cache::decode_value(std::string_view bytes, std::string_view full) {
    using opt = detail::cache_optional<V>;
    if constexpr (opt::value) {
        return V(redkit::decode<typename opt::value_type>(bytes, full));
    } else {
        return redkit::decode<V>(bytes, full);
    }
}

template <class V>
void cache::encode_value(const V& v, std::string& bytes, bool& absent) {
    if constexpr (detail::cache_optional<V>::value) {
        absent = !v.has_value();
        if (v) bytes = redkit::encode(*v);
    } else {
        absent = false;
        bytes = redkit::encode(v);
    }
}

template <class V>
std::optional<V> cache::try_decode(std::string_view bytes, std::string_view full) const {
    try {
        return decode_value<V>(bytes, full);
    } catch (const error& e) {
        state_->report_undecodable(full, e);
        return std::nullopt;
    }
}

template <class V>
std::optional<V> cache::usable(const detail::cache_read& r, std::string_view full) const {
    if (r.kind == detail::cache_read_kind::fresh || r.kind == detail::cache_read_kind::early) return try_decode<V>(r.value(), full);
    if constexpr (detail::cache_optional<V>::value) {
        if (r.kind == detail::cache_read_kind::absent) return std::optional<V>(std::in_place);
    }
    return std::nullopt;
}

template <class V>
void cache::publish(detail::cache_flight& f, const detail::cache_outcome<V>& o) {
    auto shared = std::make_shared<const V>(o.value);
    {
        std::lock_guard<std::mutex> lock(f.mutex);
        f.value = std::move(shared);
        f.type = &typeid(V);
        f.bytes = o.bytes;
        f.absent = o.absent;
        f.stale = o.stale;
        f.done = true;
    }
    f.finished.notify_all();
}

template <class T, class Loader>
detail::cache_value_t<T, Loader> cache::get_or_set(std::string_view key, Loader&& loader, std::chrono::milliseconds ttl) {
    using V = detail::cache_value_t<T, Loader>;
    static_assert(!std::is_void_v<V> && !std::is_reference_v<V>, "redkit: cache: the cached type must be a value type");
    static_assert(std::is_copy_constructible_v<V>, "redkit: cache: the cached type must be copyable (waiters get copies)");
    static_assert(std::is_convertible_v<std::invoke_result_t<Loader&>, V>,
                  "redkit: cache: the loader's result must convert to the cached type");
    using kind = detail::cache_read_kind;
    detail::cache_check_ttl(ttl);
    detail::cache_state& s = *state_;
    const std::string full = s.full_key(key);
    std::atomic<std::uint64_t>& generation = s.generation(full);

    int foreign_joins = 0;  // flights joined whose value did not decode as V
    for (bool reread = false;; reread = true) {
        const std::uint64_t seen = generation.load(std::memory_order_acquire);
        detail::cache_read r = s.read(full, true);
        if (r.kind == kind::fresh) {
            if (auto v = try_decode<V>(r.value(), full)) {
                s.hits.fetch_add(1, std::memory_order_relaxed);
                return std::move(*v);
            }
            r.kind = kind::unreadable;
        } else if (r.kind == kind::absent) {
            if constexpr (detail::cache_optional<V>::value) {
                s.hits.fetch_add(1, std::memory_order_relaxed);
                return V{};
            }
            r.kind = kind::missing;  // cached absence read as a non-optional type: recompute
        }

        // XFetch chose to refresh a value that is still fresh: keep it at hand, it is served if
        // someone else is refreshing already.
        std::optional<V> current;
        if (r.kind == kind::early) {
            current = try_decode<V>(r.value(), full);
            if (!current) r.kind = kind::unreadable;
        }

        std::shared_ptr<detail::cache_flight> f;
        bool leader = false;
        {
            std::lock_guard<std::mutex> lock(s.flights_mutex);
            if (const auto it = s.flights.find(full); it != s.flights.end()) {
                f = it->second;
                if (!current) ++f->waiters;
            } else if (reread || r.kind == kind::unavailable || generation.load(std::memory_order_relaxed) == seen) {
                f = std::make_shared<detail::cache_flight>();
                s.flights.emplace(full, f);
                leader = true;
            }
        }
        if (!f) continue;  // a recompute stored this key (or a neighbour) since our GET: read once more
        if (leader) return lead<V>(full, f, r, std::move(current), loader, ttl);
        if (current) {  // a refresh is already running here; ours is still fresh
            s.hits.fetch_add(1, std::memory_order_relaxed);
            return std::move(*current);
        }
        if (auto v = join<V>(*f, full, loader)) return std::move(*v);
        // The value computed meanwhile (for a caller asking another type) does not decode as V:
        // as for a sequential caller, that is a miss. Read again, and recompute if it is still
        // there; should callers of two types keep overtaking each other, load without storing.
        if (++foreign_joins > 2) {
            s.misses.fetch_add(1, std::memory_order_relaxed);
            s.loader_calls.fetch_add(1, std::memory_order_relaxed);
            return loader();
        }
    }
}

template <class V, class Loader>
std::optional<V> cache::join(detail::cache_flight& f, std::string_view full, Loader& loader) {
    detail::cache_state& s = *state_;
    s.misses.fetch_add(1, std::memory_order_relaxed);
    f.wait();
    if (f.failure) std::rethrow_exception(f.failure);
    if (f.type && *f.type == typeid(V)) {
        if (f.stale) s.stale_serves.fetch_add(1, std::memory_order_relaxed);
        return *static_cast<const V*>(f.value.get());
    }
    if (f.absent) {
        if constexpr (detail::cache_optional<V>::value) {
            return std::optional<V>(std::in_place);
        } else {  // the leader's type was optional and found nothing; this caller's type cannot say so
            s.loader_calls.fetch_add(1, std::memory_order_relaxed);
            return V(loader());
        }
    }
    std::optional<V> out = try_decode<V>(f.bytes, full);
    if (!out) {
        s.misses.fetch_sub(1, std::memory_order_relaxed);  // the caller reads again and counts then
    } else if (f.stale) {
        s.stale_serves.fetch_add(1, std::memory_order_relaxed);
    }
    return out;
}

template <class V, class Loader>
V cache::lead(const std::string& full, const std::shared_ptr<detail::cache_flight>& f, const detail::cache_read& r,
              std::optional<V> current, Loader& loader, std::chrono::milliseconds ttl) {
    using kind = detail::cache_read_kind;
    detail::cache_state& s = *state_;
    if (r.kind != kind::early) s.misses.fetch_add(1, std::memory_order_relaxed);
    try {
        detail::cache_outcome<V> o = (s.options.lock && r.kind != kind::unavailable)
                                         ? lead_locked<V>(full, *f, r, std::move(current), loader, ttl)
                                         : compute<V>(full, *f, loader, ttl, r.kind != kind::unavailable, r.kind == kind::early);
        // Removed first, so nobody joins after the count is read: with no waiter, no copy.
        if (s.end_flight(full, f, true) > 0) publish(*f, o);
        return std::move(o.value);
    } catch (...) {
        s.end_flight(full, f, false);
        f->fail(std::current_exception());
        throw;
    }
}

template <class V, class Loader>
detail::cache_outcome<V> cache::lead_locked(const std::string& full, detail::cache_flight& f, const detail::cache_read& r,
                                            std::optional<V> current, Loader& loader, std::chrono::milliseconds ttl) {
    using kind = detail::cache_read_kind;
    detail::cache_state& s = *state_;
    const bool early = r.kind == kind::early;
    const std::string lock_key = full + ":lock";
    const std::string token = detail::cache_state::new_token();

    // Holding the lock: another process may have stored a value between our GET and our SET NX
    // (and released its lock), so read once more before paying for the loader.
    using outcome = detail::cache_outcome<V>;
    const auto recompute_locked = [&]() -> outcome {
        detail::cache_unlock_guard unlock(s, lock_key, token);
        const detail::cache_read again = s.read(full, false);
        if (again.kind != kind::unavailable && again.raw != r.raw) {
            if (auto v = usable<V>(again, full)) {
                if (early) s.hits.fetch_add(1, std::memory_order_relaxed);
                return outcome{std::move(*v), std::string(again.value()), again.kind == kind::absent, false};
            }
        }
        return compute<V>(full, f, loader, ttl, again.kind != kind::unavailable, early);
    };

    detail::cache_lock_result lock = s.try_lock(lock_key, token);
    if (lock == detail::cache_lock_result::acquired) return recompute_locked();
    if (lock == detail::cache_lock_result::held) {
        if (early && current) {  // someone else is refreshing; ours is still fresh
            s.hits.fetch_add(1, std::memory_order_relaxed);
            return outcome{std::move(*current), std::string(r.value()), false, false};
        }
        const auto deadline = std::chrono::steady_clock::now() + s.options.lock_wait;
        std::chrono::milliseconds pause(5);
        for (;;) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) break;
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
            pause = std::min(pause * 2, std::chrono::milliseconds(50));
            const detail::cache_read w = s.read(full, false);
            if (w.kind == kind::unavailable) {
                lock = detail::cache_lock_result::failed;
                break;
            }
            if (w.raw != r.raw) {
                if (auto v = usable<V>(w, full)) {
                    if (early) s.hits.fetch_add(1, std::memory_order_relaxed);
                    return outcome{std::move(*v), std::string(w.value()), w.kind == kind::absent, false};
                }
            }
            lock = s.try_lock(lock_key, token);
            if (lock == detail::cache_lock_result::acquired) return recompute_locked();
            if (lock == detail::cache_lock_result::failed) break;
        }
        if (lock == detail::cache_lock_result::held && r.kind == kind::stale) {
            if (auto v = try_decode<V>(r.value(), full)) {
                s.stale_serves.fetch_add(1, std::memory_order_relaxed);
                return outcome{std::move(*v), std::string(r.value()), false, true};
            }
        }
    }
    // The holder did not deliver in time and nothing stale is kept (or Redis failed): compute anyway.
    return compute<V>(full, f, loader, ttl, lock != detail::cache_lock_result::failed, early);
}

template <class V, class Loader>
detail::cache_outcome<V> cache::compute(const std::string& full, detail::cache_flight& f, Loader& loader,
                                        std::chrono::milliseconds ttl, bool redis_ok, bool early) {
    detail::cache_state& s = *state_;
    if (early) s.early_refreshes.fetch_add(1, std::memory_order_relaxed);
    s.loader_calls.fetch_add(1, std::memory_order_relaxed);
    const auto started = std::chrono::steady_clock::now();
    V v = loader();
    const long long delta_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
    std::string bytes;
    bool absent = false;
    encode_value(v, bytes, absent);
    if (redis_ok && !f.invalidated.load() && !(absent && s.options.negative_ttl.count() == 0)) {
        s.store(full, bytes, absent, absent ? s.options.negative_ttl : ttl, delta_us);
    }
    return detail::cache_outcome<V>{std::move(v), std::move(bytes), absent, false};
}

template <class T>
std::optional<T> cache::get(std::string_view key) {
    detail::cache_state& s = *state_;
    const std::string full = s.full_key(key);
    const detail::cache_read r = s.read(full, false);
    if (auto v = usable<T>(r, full)) {
        s.hits.fetch_add(1, std::memory_order_relaxed);
        return v;
    }
    s.misses.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
}

template <class T>
void cache::set(std::string_view key, const T& value, std::chrono::milliseconds ttl) {
    detail::cache_check_ttl(ttl);
    detail::cache_state& s = *state_;
    const std::string full = s.full_key(key);
    std::string bytes;
    bool absent = false;
    encode_value(value, bytes, absent);
    s.mark_invalidated(full);
    s.write(full, bytes, absent, ttl, 0);
}

inline bool cache::invalidate(std::string_view key) {
    detail::cache_state& s = *state_;
    const std::string full = s.full_key(key);
    s.mark_invalidated(full);
    return s.redis.command<long long>(idempotent, "DEL", full) > 0;
}

template <class T, class Keys>
std::vector<std::optional<T>> cache::get_many(const Keys& keys) {
    detail::cache_state& s = *state_;
    std::vector<std::string> fulls;
    for (const auto& k : keys) fulls.push_back(s.full_key(std::string_view(k)));
    std::vector<std::optional<T>> out(fulls.size());
    if (fulls.empty()) return out;
    std::vector<std::optional<std::string>> got;
    bool available = !s.bypassing();
    if (available) {
        try {
            got = s.redis.command<std::vector<std::optional<std::string>>>("MGET", fulls);
            s.recovered();
        } catch (const error& e) {
            if (!s.absorb_failure(e, "MGET", fulls.front())) throw;
            available = false;
        }
    }
    if (!available || got.size() != fulls.size()) {
        s.misses.fetch_add(fulls.size(), std::memory_order_relaxed);
        return out;
    }
    for (std::size_t i = 0; i < fulls.size(); ++i) {
        detail::cache_read r;
        s.classify(r, std::move(got[i]), false);
        out[i] = usable<T>(r, fulls[i]);
        (out[i] ? s.hits : s.misses).fetch_add(1, std::memory_order_relaxed);
    }
    return out;
}

template <class T>
void cache::set_many(const std::vector<std::pair<std::string, T>>& items, std::chrono::milliseconds ttl) {
    detail::cache_check_ttl(ttl);
    if (items.empty()) return;
    detail::cache_state& s = *state_;
    std::vector<std::string> fulls;
    fulls.reserve(items.size());
    pipeline p(s.redis);
    for (const auto& [key, value] : items) {
        fulls.push_back(s.full_key(key));
        std::string bytes;
        bool absent = false;
        encode_value(value, bytes, absent);
        const std::chrono::milliseconds t = s.jittered(ttl);
        if (absent) {
            p.command("SET", fulls.back(), detail::cache_absent_marker, "PX", t);
        } else if (!s.options.store_metadata) {
            p.command("SET", fulls.back(), bytes, "PX", t);
        } else {
            detail::append_cache_trailer(bytes, detail::cache_meta{detail::cache_state::now_ms() + t.count(), 0});
            p.command("SET", fulls.back(), bytes, "PX", t + s.options.stale_for);
        }
    }
    for (const auto& full : fulls) s.mark_invalidated(full);
    const std::vector<reply> replies = p.exec();
    for (std::size_t i = 0; i < replies.size() && i < fulls.size(); ++i) {
        if (replies[i].is_error()) {
            throw server_error(replies[i].text(), "redkit: cache: SET " + fulls[i] + ": " + replies[i].text());
        }
    }
}

inline cache_stats cache::stats() const noexcept {
    const detail::cache_state& s = *state_;
    cache_stats out;
    out.hits = s.hits.load(std::memory_order_relaxed);
    out.misses = s.misses.load(std::memory_order_relaxed);
    out.early_refreshes = s.early_refreshes.load(std::memory_order_relaxed);
    out.stale_serves = s.stale_serves.load(std::memory_order_relaxed);
    out.loader_calls = s.loader_calls.load(std::memory_order_relaxed);
    out.errors = s.errors.load(std::memory_order_relaxed);
    return out;
}

}  // namespace v0
}  // namespace redkit
