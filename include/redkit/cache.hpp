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
// No call is atomic across its commands; each command touches one key, so everything works
// unchanged on Redis Cluster (the client splits get_many's MGET per slot there; the near cache is
// not available on a cluster yet).
//
// Stored bytes (see cache/detail/entry.hpp): the codec's bytes (compact JSON, what JSON.stringify
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
// Near cache (cache_options::near, off by default): decoded values of hot keys also kept in this
// process and served without a round trip, dropped when the server reports a change to their key
// (CLIENT TRACKING in broadcasting mode for the cache's key space; see cache/detail/near.hpp for
// how it stays exact). A near hit never returns a value older than the last write whose
// invalidation reached this process, whichever of the client's connections read it.
//
// Thread safety: every member function may be called from any thread at once; copies of a cache
// share its single-flight table, counters and near cache.
//
// The cache's wing: cache/options.hpp (cache_options, cache_stats, cache_failure_policy) and
// cache/detail/ (the shared state, the stored-bytes format, the Lua). Include this header.
#pragma once

#include <redkit/cache/detail/state.hpp>
#include <redkit/cache/options.hpp>
#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/config.hpp>
#include <redkit/error.hpp>
#include <redkit/future.hpp>
#include <redkit/key.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// The type get_or_set<T> returns: T, or what the loader returns when T is not given.
template <class T, class Loader>
using cache_result_t = typename detail::cache_value<T, Loader>::type;

/// The value type async_get_or_set<T> gives: T, or what the loader gives (U for a loader
/// returning redkit::future<U>) when T is not given.
template <class T, class Loader>
using cache_async_result_t = typename detail::cache_async_value<T, Loader>::type;

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
    REDKIT_DECL cache();
    /// Over redkit::default_client(). Throws std::invalid_argument naming a bad option.
    REDKIT_DECL explicit cache(cache_options options);
    /// Over `redis`. Throws std::invalid_argument naming a bad option.
    REDKIT_DECL explicit cache(client redis, cache_options options = {});

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
    cache_result_t<T, Loader> get_or_set(std::string_view key, Loader&& loader, std::chrono::milliseconds ttl);

    /// get_or_set with options().default_ttl.
    template <class T = void, class Loader>
    cache_result_t<T, Loader> get_or_set(std::string_view key, Loader&& loader) {
        return get_or_set<T>(key, std::forward<Loader>(loader), state_->options.default_ttl);
    }

    /// get_or_set() without waiting: the redkit::future holds the value (get(), then(), co_await;
    /// redkit::async_get for Asio). The loader may be awaitable: one returning redkit::future<U>
    /// (made with redkit::promise<U>, or a command's) is waited for without a thread; one
    /// returning a value runs on the thread that read the miss (redkit's I/O thread: keep it
    /// short). It is moved into the call and runs later: capture by value what it needs.
    ///
    /// Single flight as get_or_set(): concurrent misses on one key in this process, from
    /// coroutines, callbacks and blocking callers alike, run one loader; the others get its
    /// value or its exception. A hit is one GET; a miss is the GET, the loader and a SET PX, after
    /// whose reply the value is served (so a caller that reads next finds it). The near cache's
    /// values are served; a value read here is not added to it. Failures and counters as for
    /// get_or_set(). Two things need a thread to wait and are the blocking call's only: the
    /// cross-process lock (options().lock: this call recomputes on a miss as if it were off) and
    /// XFetch's early refresh (a value it would refresh early is served as fresh). Throws
    /// std::invalid_argument at once for an empty key or ttl <= 0.
    template <class T = void, class Loader>
    future<cache_async_result_t<T, Loader>> async_get_or_set(std::string_view key, Loader&& loader,
                                                             std::chrono::milliseconds ttl);

    /// async_get_or_set with options().default_ttl.
    template <class T = void, class Loader>
    future<cache_async_result_t<T, Loader>> async_get_or_set(std::string_view key, Loader&& loader) {
        return async_get_or_set<T>(key, std::forward<Loader>(loader), state_->options.default_ttl);
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
    /// set() with options().default_ttl.
    template <class T>
    void set(std::string_view key, const T& value) {
        set(key, value, state_->options.default_ttl);
    }

    /// Deletes the cached value: one DEL. Returns whether a value was there. A recompute of this
    /// key running in this process will not store its (possibly outdated) result. Throws
    /// redkit::error when Redis fails (under either policy: a lost invalidation serves stale data).
    REDKIT_DECL bool invalidate(std::string_view key);

    /// Values of many keys in one MGET, in order; std::nullopt where get() would return it.
    /// Redis failures as for get(). On Redis Cluster the client splits the MGET per slot.
    template <class T, class Keys>
    std::vector<std::optional<T>> get_many(const Keys& keys);
    /// get_many() of a braced list of keys: `get_many<T>({"a", "b"})`.
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
    REDKIT_DECL cache_stats stats() const noexcept;

    /// The near cache's counters and size (all zero when options().near is off).
    REDKIT_DECL near_cache_stats near_stats() const;
    /// CLIENT ID of the near cache's invalidation connection (on a cluster: the first primary's of
    /// the ones it keeps, one per primary); 0 while it is down or near is off.
    REDKIT_DECL long long near_connection_id() const noexcept;

    /// The options this cache was made with (shared by its copies).
    const cache_options& options() const noexcept { return state_->options; }

private:
    template <class V>
    std::optional<V> try_decode(std::string_view bytes, std::string_view full) const;
    template <class V>
    void keep_near(detail::near_fill& fill, const detail::cache_read& r, const std::string& full, const V& v) const;
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
    detail::cache_outcome<V> compute(const std::string& full, detail::cache_flight& f, Loader& loader,
                                     std::chrono::milliseconds ttl, bool redis_ok, bool early);
    template <class V, class Loader>
    std::optional<V> join(detail::cache_flight& f, std::string_view full, Loader& loader);
    /// One async_get_or_set, from its GET to its promise (internal).
    template <class V, class Loader>
    struct async_call;

    std::shared_ptr<detail::cache_state> state_;
};

// ---- implementation ----

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
    if (r.kind == detail::cache_read_kind::fresh || r.kind == detail::cache_read_kind::early)
        return try_decode<V>(r.value(), full);
    if constexpr (detail::cache_optional<V>::value) {
        if (r.kind == detail::cache_read_kind::absent) return std::optional<V>(std::in_place);
    }
    return std::nullopt;
}

template <class V>
void cache::publish(detail::cache_flight& f, const detail::cache_outcome<V>& o) {
    f.succeed(std::make_shared<const V>(o.value), typeid(V), o.bytes, o.absent, o.stale);
}

template <class T, class Loader>
cache_result_t<T, Loader> cache::get_or_set(std::string_view key, Loader&& loader, std::chrono::milliseconds ttl) {
    using V = cache_result_t<T, Loader>;
    static_assert(!std::is_void_v<V> && !std::is_reference_v<V>, "redkit: cache: the cached type must be a value type");
    static_assert(std::is_copy_constructible_v<V>,
                  "redkit: cache: the cached type must be copyable (waiters get copies)");
    static_assert(std::is_convertible_v<std::invoke_result_t<Loader&>, V>,
                  "redkit: cache: the loader's result must convert to the cached type");
    using kind = detail::cache_read_kind;
    detail::cache_check_ttl(ttl);
    detail::cache_state& s = *state_;
    const std::string full = s.full_key(key);
    std::atomic<std::uint64_t>& generation = s.generation(full);
    std::optional<detail::cache_call_on_stack> observed;  // reports the outcome as the call ends
    if (s.watcher() != nullptr) observed.emplace(s, full, true);

    int foreign_joins = 0;  // flights joined whose value did not decode as V
    if (auto v = s.near_hit<V>(full)) return std::move(*v);
    for (bool reread = false;; reread = true) {
        const std::uint64_t seen = generation.load(std::memory_order_acquire);
        detail::near_fill fill(s.near.get(), full);
        detail::cache_read r = s.read(full, true);
        if (r.kind == kind::fresh) {
            if (auto v = try_decode<V>(r.value(), full)) {
                s.hits.fetch_add(1, std::memory_order_relaxed);
                keep_near(fill, r, full, *v);
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

        bool leader = false;
        const std::shared_ptr<detail::cache_flight> f =
            s.join_or_lead(full, !current, reread || r.kind == kind::unavailable, seen, leader);
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

// ---- async_get_or_set: get_or_set's steps, each run when the reply or value before it is in ----

template <class V, class Loader>
struct cache::async_call : std::enable_shared_from_this<async_call<V, Loader>> {
    using loaded_t = detail::cache_loaded<std::decay_t<std::invoke_result_t<Loader&>>>;
    using kind = detail::cache_read_kind;

    async_call(cache c, std::string f, Loader l, std::chrono::milliseconds t, promise<V> p)
        : self(std::move(c)), full(std::move(f)), loader(std::move(l)), ttl(t), out(std::move(p)) {}

    cache self;  // shares the state (the flights, the counters) with every copy
    std::string full;
    Loader loader;
    std::chrono::milliseconds ttl;
    promise<V> out;
    std::uint64_t seen = 0;  // the key's generation before our GET
    bool reread = false;
    int foreign_joins = 0;                    // flights joined whose value did not decode as V
    std::optional<detail::cache_call> watch;  // with an observer: the tally its steps count in

    detail::cache_state& state() const noexcept { return *self.state_; }

    void finish(V v) noexcept {
        if (watch) watch->report(false);
        try {
            out.set_value(std::move(v));
        } catch (...) {
            fail(std::current_exception());
        }
    }
    void fail(std::exception_ptr e) noexcept {
        if (watch) watch->report(true);
        try {
            out.set_exception(std::move(e));
        } catch (...) {
            // set already: nothing is owed
        }
    }

    void read() noexcept {
        try {
            seen = state().generation(full).load(std::memory_order_acquire);
            if (state().bypassing()) {
                detail::cache_read r;
                r.kind = kind::unavailable;
                return on_read(std::move(r));
            }
            state()
                .redis.template submit<std::optional<std::string>>("GET", full)
                .then([me = this->shared_from_this()](future<std::optional<std::string>> f) { me->got(std::move(f)); });
        } catch (...) {
            fail(std::current_exception());
        }
    }

    void got(future<std::optional<std::string>> f) noexcept {
        detail::cache_state& s = state();
        detail::cache_read r;
        try {
            try {
                std::optional<std::string> v = f.get();
                s.recovered();
                s.classify(r, std::move(v), false);
            } catch (const server_error& e) {
                if (e.prefix() == "WRONGTYPE") {  // another type at the key: overwritten by the store
                    s.report_undecodable(full, e);
                    r.kind = kind::unreadable;
                } else if (s.absorb_failure(e, "GET", full)) {
                    r.kind = kind::unavailable;
                } else {
                    throw;
                }
            } catch (const error& e) {
                if (!s.absorb_failure(e, "GET", full)) throw;
                r.kind = kind::unavailable;
            }
        } catch (...) {
            return fail(std::current_exception());
        }
        on_read(std::move(r));
    }

    void on_read(detail::cache_read r) noexcept {
        detail::cache_state& s = state();
        std::optional<detail::cache_tally_scope> in;  // this step counts in the call's tally
        if (watch) in.emplace(&watch->tally);
        try {
            if (r.kind == kind::fresh || r.kind == kind::early) {  // no early refresh here: served as fresh
                if (auto v = self.try_decode<V>(r.value(), full)) {
                    s.hits.fetch_add(1, std::memory_order_relaxed);
                    return finish(std::move(*v));
                }
                r.kind = kind::unreadable;
            } else if (r.kind == kind::absent) {
                if constexpr (detail::cache_optional<V>::value) {
                    s.hits.fetch_add(1, std::memory_order_relaxed);
                    return finish(V{});
                }
                r.kind = kind::missing;  // cached absence read as a non-optional type: recompute
            }
            bool leader = false;
            const std::shared_ptr<detail::cache_flight> f =
                s.join_or_lead(full, true, reread || r.kind == kind::unavailable, seen, leader);
            if (!f) {  // a recompute stored this key (or a neighbour) since our GET: read once more
                reread = true;
                return read();
            }
            if (leader) return lead(f, r.kind != kind::unavailable);
            s.misses.fetch_add(1, std::memory_order_relaxed);
            f->on_done([me = this->shared_from_this(), f] { me->joined(*f); });
        } catch (...) {
            fail(std::current_exception());
        }
    }

    // Runs the loader; `then(value)` once it gave one, or fails the call with its exception.
    template <class Then>
    void load(Then then) {
        if constexpr (loaded_t::deferred) {
            loader().then([then](auto g) mutable {
                std::optional<V> v;
                try {
                    v.emplace(g.get());
                } catch (...) {
                    return then(std::current_exception(), std::nullopt);
                }
                then(nullptr, std::move(v));
            });
        } else {
            std::optional<V> v;
            try {
                v.emplace(loader());
            } catch (...) {
                return then(std::current_exception(), std::nullopt);
            }
            then(nullptr, std::move(v));
        }
    }

    void lead(std::shared_ptr<detail::cache_flight> f, bool redis_ok) {
        detail::cache_state& s = state();
        s.misses.fetch_add(1, std::memory_order_relaxed);
        s.loader_calls.fetch_add(1, std::memory_order_relaxed);
        const auto started = std::chrono::steady_clock::now();
        const auto failed = [this, f](std::exception_ptr e) {
            state().end_flight(full, f, false);
            f->fail(e);
            fail(e);
        };
        try {
            load([me = this->shared_from_this(), f, started, redis_ok, failed](std::exception_ptr e,
                                                                               std::optional<V> v) {
                if (e) return failed(e);
                try {
                    me->store(f, std::move(*v), started, redis_ok);
                } catch (...) {
                    failed(std::current_exception());  // an unencodable value: nothing was published
                }
            });
        } catch (...) {
            failed(std::current_exception());
        }
    }

    // The loader's value: stored (SET PX), then published to the flight's waiters and served.
    // Throws only before the flight ends (an unencodable value).
    void store(std::shared_ptr<detail::cache_flight> f, V v, std::chrono::steady_clock::time_point started,
               bool redis_ok) {
        detail::cache_state& s = state();
        const long long delta_us =
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
        auto o = std::make_shared<detail::cache_outcome<V>>(detail::cache_outcome<V>{std::move(v), {}, false, false});
        encode_value(o->value, o->bytes, o->absent);
        if (!redis_ok || f->invalidated.load() || (o->absent && s.options.negative_ttl.count() == 0) || s.bypassing()) {
            return serve(f, o);
        }
        try {
            std::string bytes = o->bytes;
            const auto form = s.prepare(bytes, o->absent, o->absent ? s.options.negative_ttl : ttl, delta_us);
            s.redis.template submit<void>("SET", full, form.value, "PX", form.px)
                .then([me = this->shared_from_this(), f, o](future<void> g) {
                    try {
                        g.get();
                    } catch (const error& e) {
                        me->state().report_write_failure(e, "SET", me->full);
                    } catch (...) {
                    }
                    me->state().drop_near(me->full);
                    me->serve(f, o);
                });
        } catch (...) {
            serve(f, o);  // the SET could not even be queued: the value is still served
        }
    }

    void serve(const std::shared_ptr<detail::cache_flight>& f,
               const std::shared_ptr<detail::cache_outcome<V>>& o) noexcept {
        try {
            // removed first, so nobody joins after the count is read: with no waiter, no copy
            if (state().end_flight(full, f, true) > 0) publish(*f, *o);
        } catch (...) {
            f->fail(std::current_exception());
        }
        finish(std::move(o->value));
    }

    // A flight this call joined has ended (as cache::join, without a thread waiting).
    void joined(const detail::cache_flight& f) noexcept {
        detail::cache_state& s = state();
        std::optional<detail::cache_tally_scope> in;  // this step counts in the call's tally
        if (watch) in.emplace(&watch->tally);
        try {
            if (f.failure) return fail(f.failure);
            if (f.type && *f.type == typeid(V)) {
                if (f.stale) s.stale_serves.fetch_add(1, std::memory_order_relaxed);
                return finish(*static_cast<const V*>(f.value.get()));
            }
            if (f.absent) {
                if constexpr (detail::cache_optional<V>::value) {
                    return finish(V(std::in_place));
                } else {  // the leader's type was optional and found nothing; this caller's cannot say so
                    s.loader_calls.fetch_add(1, std::memory_order_relaxed);
                    return load_only();
                }
            }
            if (std::optional<V> v = self.try_decode<V>(f.bytes, full)) {
                if (f.stale) s.stale_serves.fetch_add(1, std::memory_order_relaxed);
                return finish(std::move(*v));
            }
            // computed for a caller of another type, and it does not decode as V: a miss, as for
            // a sequential caller; should callers of two types keep overtaking, load without storing
            s.misses.fetch_sub(1, std::memory_order_relaxed);
            if (++foreign_joins > 2) {
                s.misses.fetch_add(1, std::memory_order_relaxed);
                s.loader_calls.fetch_add(1, std::memory_order_relaxed);
                return load_only();
            }
            reread = true;
            read();
        } catch (...) {
            fail(std::current_exception());
        }
    }

    void load_only() {
        load([me = this->shared_from_this()](std::exception_ptr e, std::optional<V> v) {
            if (e) return me->fail(e);
            me->finish(std::move(*v));
        });
    }
};

template <class T, class Loader>
future<cache_async_result_t<T, Loader>> cache::async_get_or_set(std::string_view key, Loader&& loader,
                                                                std::chrono::milliseconds ttl) {
    using V = cache_async_result_t<T, Loader>;
    using loaded = detail::cache_loaded<std::decay_t<std::invoke_result_t<Loader&>>>;
    static_assert(!std::is_void_v<V> && !std::is_reference_v<V>, "redkit: cache: the cached type must be a value type");
    static_assert(std::is_copy_constructible_v<V>,
                  "redkit: cache: the cached type must be copyable (waiters get copies)");
    static_assert(std::is_convertible_v<typename loaded::type, V>,
                  "redkit: cache: the loader's result (or its future's) must convert to the cached type");
    detail::cache_check_ttl(ttl);
    detail::cache_state& s = *state_;
    std::string full = s.full_key(key);
    promise<V> p(s.redis.options().on_error);
    future<V> out = p.get_future();
    if (s.near) {
        std::optional<detail::cache_call> near;  // reported only when the near cache answers
        std::optional<detail::cache_tally_scope> in;
        if (s.watcher() != nullptr) {
            near.emplace(s, full, true);
            in.emplace(&near->tally);
        }
        if (auto v = s.near_hit<V>(full)) {
            if (near) near->report(false);
            p.set_value(std::move(*v));
            return out;
        }
    }
    const auto call = std::make_shared<async_call<V, std::decay_t<Loader>>>(
        *this, std::move(full), std::forward<Loader>(loader), ttl, std::move(p));
    if (s.watcher() != nullptr) call->watch.emplace(s, call->full, true);
    call->read();
    return out;
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
        detail::cache_outcome<V> o =
            (s.options.lock && r.kind != kind::unavailable)
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
detail::cache_outcome<V> cache::lead_locked(const std::string& full, detail::cache_flight& f,
                                            const detail::cache_read& r, std::optional<V> current, Loader& loader,
                                            std::chrono::milliseconds ttl) {
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
        const auto waiting_since = std::chrono::steady_clock::now();
        struct note_wait {  // however the wait ends: the observer's lock_waited
            const detail::cache_state& s;
            std::chrono::steady_clock::time_point since;
            ~note_wait() { s.note_lock_wait(std::chrono::steady_clock::now() - since); }
        } noted{s, waiting_since};
        const auto deadline = waiting_since + s.options.lock_wait;
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
    std::optional<detail::cache_call_on_stack> observed;  // reports the outcome as the call ends
    if (s.watcher() != nullptr) observed.emplace(s, full, false);
    if (auto v = s.near_hit<T>(full)) return v;
    detail::near_fill fill(s.near.get(), full);
    const detail::cache_read r = s.read(full, false);
    if (auto v = usable<T>(r, full)) {
        s.hits.fetch_add(1, std::memory_order_relaxed);
        if (r.kind == detail::cache_read_kind::fresh) keep_near(fill, r, full, *v);
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

template <class T, class Keys>
std::vector<std::optional<T>> cache::get_many(const Keys& keys) {
    detail::cache_state& s = *state_;
    std::vector<std::string> fulls;
    for (const auto& k : keys) fulls.push_back(s.full_key(std::string_view(k)));
    std::vector<std::optional<T>> out(fulls.size());
    if (fulls.empty()) return out;
    std::vector<std::optional<std::string>> got;
    if (!s.read_many(fulls, got)) return out;
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
    std::vector<detail::cache_write> writes(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        writes[i].full = s.full_key(items[i].first);
        encode_value(items[i].second, writes[i].bytes, writes[i].absent);
    }
    s.write_many(writes, ttl);
}

template <class V>
void cache::keep_near(detail::near_fill& fill, const detail::cache_read& r, const std::string& full, const V& v) const {
    if (!fill.active()) return;
    const long long life_ms = state_->near_life_ms(r, full);
    if (life_ms <= 0) return;
    try {
        fill.finish(v, r.value_size, std::chrono::steady_clock::now() + std::chrono::milliseconds(life_ms));
    } catch (const std::bad_alloc&) {
        // not kept; the value read is still served
    }
}

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/cache/impl/cache.ipp>
#endif
