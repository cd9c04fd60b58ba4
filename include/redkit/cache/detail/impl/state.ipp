// SPDX-License-Identifier: MIT
// The cache's shared state, out of line (cache/detail/state.hpp): reads and their classes, writes,
// the cross-process lock, the outage bypass and the single-flight table.
#pragma once

#include <redkit/cache/detail/entry.hpp>
#include <redkit/cache/detail/lua.hpp>
#include <redkit/cache/detail/near.hpp>
#include <redkit/cache/detail/state.hpp>
#include <redkit/client.hpp>
#include <redkit/detail/random.hpp>
#include <redkit/error.hpp>
#include <redkit/pipeline.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL void cache_flight::wait() {
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [this] { return done; });
}

REDKIT_DECL void cache_flight::on_done(std::function<void()> k) {
    {
        std::lock_guard<std::mutex> lock(mutex);
        if (!done) {
            then.push_back(std::move(k));
            return;
        }
    }
    k();
}

REDKIT_DECL void cache_flight::succeed(std::shared_ptr<const void> v, const std::type_info& t,
                                       const std::string& encoded, bool was_absent, bool was_stale) {
    std::vector<std::function<void()>> waiting;
    {
        std::lock_guard<std::mutex> lock(mutex);
        value = std::move(v);
        type = &t;
        bytes = encoded;
        absent = was_absent;
        stale = was_stale;
        done = true;
        waiting.swap(then);
    }
    finished.notify_all();
    for (auto& k : waiting) k();
}

REDKIT_DECL void cache_flight::fail(std::exception_ptr e) {
    std::vector<std::function<void()>> waiting;
    {
        std::lock_guard<std::mutex> lock(mutex);
        failure = std::move(e);
        done = true;
        waiting.swap(then);
    }
    finished.notify_all();
    for (auto& k : waiting) k();
}

REDKIT_DECL void cache_check_ttl(std::chrono::milliseconds ttl) {
    if (ttl.count() <= 0) throw std::invalid_argument("redkit: cache: ttl must be positive");
}

REDKIT_DECL void validate_cache_options(const cache_options& o) {
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

REDKIT_DECL cache_state::cache_state(client c, cache_options o) : redis(std::move(c)), options(std::move(o)) {
    validate_cache_options(options);
    if (options.near.enabled) {
        near = std::make_unique<near_store>(options.near.max_entries, options.near.max_bytes);
        const std::string& prefix = options.keys.prefix();
        tracker = std::make_unique<near_tracker>(redis.options(), *near, options.near,
                                                 prefix.empty() ? std::string() : prefix + ":");
    }
}

REDKIT_DECL cache_call::cache_call(const cache_state& s, std::string_view full, bool loads) noexcept
    : to_(s.watcher()), state_(&s), full_(full), loads_(loads), start_(std::chrono::steady_clock::now()) {
    tally.owner = &s;
}

REDKIT_DECL void cache_call::report(bool failed) noexcept {
    if (reported_ || to_ == nullptr) return;
    reported_ = true;
    cache_event e;
    e.cache = state_->options.keys.prefix();
    if (state_->redis.options().observe_keys) e.key = full_;
    const cache_tally& t = tally;
    e.outcome = failed                                                 ? redkit::cache_outcome::failed
                : t.near                                               ? redkit::cache_outcome::near_hit
                : t[cache_count::stale] > 0                            ? redkit::cache_outcome::stale
                : t[cache_count::load] > 0                             ? redkit::cache_outcome::miss
                : t[cache_count::miss] > 0 && loads_                   ? redkit::cache_outcome::waited
                : t[cache_count::miss] > 0 || t[cache_count::hit] == 0 ? redkit::cache_outcome::miss
                                                                       : redkit::cache_outcome::hit;
    e.early_refresh = t[cache_count::early] > 0;
    e.lock_waited = t.lock_waited;
    e.duration = std::chrono::steady_clock::now() - start_;
    observe(to_, &observer::on_cache, e);
}

REDKIT_DECL std::string cache_state::full_key(std::string_view key) const {
    if (key.empty()) throw std::invalid_argument("redkit: cache: key is empty");
    const std::string& prefix = options.keys.prefix();
    if (prefix.empty()) return std::string(key);
    std::string out;
    out.reserve(prefix.size() + 1 + key.size());
    out.append(prefix).append(1, ':').append(key);
    return out;
}

REDKIT_DECL long long cache_state::now_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

REDKIT_DECL double cache_state::draw() const {
    if (options.random) return options.random();
    thread_local std::mt19937_64 engine = [] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }();
    return static_cast<double>(engine() >> 11) * 0x1.0p-53;
}

REDKIT_DECL std::chrono::milliseconds cache_state::jittered(std::chrono::milliseconds ttl) const {
    if (options.ttl_jitter <= 0) return ttl;
    double u = draw();
    if (!(u >= 0)) u = 0;
    if (u >= 1) u = 0.999999;
    const auto cut = static_cast<long long>(static_cast<double>(ttl.count()) * options.ttl_jitter * u);
    return std::chrono::milliseconds(std::max<long long>(1, ttl.count() - cut));
}

REDKIT_DECL void cache_state::classify(cache_read& r, std::optional<std::string> got, bool xfetch) const {
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

REDKIT_DECL cache_read cache_state::read(const std::string& full, bool xfetch) {
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

REDKIT_DECL long long cache_state::steady_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

REDKIT_DECL bool cache_state::bypassing() const noexcept {
    const long long until = bypass_until_.load(std::memory_order_relaxed);
    return until != 0 && steady_ms() < until;
}

REDKIT_DECL bool cache_state::start_bypass(const error& e) noexcept {
    const bool outage = e.is_transport() || e.kind() == errc::pool_exhausted;
    if (!outage || options.outage_backoff.count() <= 0 ||
        options.on_failure != cache_failure_policy::serve_from_loader) {
        return false;
    }
    bypass_until_.store(steady_ms() + options.outage_backoff.count(), std::memory_order_relaxed);
    return true;
}

REDKIT_DECL bool cache_state::absorb_failure(const error& e, std::string_view what, std::string_view key) {
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

REDKIT_DECL void cache_state::report_write_failure(const error& e, std::string_view what,
                                                   std::string_view key) noexcept {
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

REDKIT_DECL void cache_state::report_undecodable(std::string_view full, const std::exception& e) noexcept {
    try {
        errors.fetch_add(1, std::memory_order_relaxed);
        std::string message = "redkit: cache: ";
        message.append(full).append(": stored value does not decode (").append(e.what()).append("); treated as a miss");
        redis.report(error(errc::decode_error, message));
    } catch (...) {
    }
}

REDKIT_DECL cache_state::stored_form cache_state::prepare(std::string& bytes, bool absent,
                                                          std::chrono::milliseconds ttl, long long delta_us) const {
    const std::chrono::milliseconds t = jittered(ttl);
    if (absent) return {cache_absent_marker, t};
    if (!options.store_metadata) return {bytes, t};
    append_cache_trailer(bytes, cache_meta{now_ms() + t.count(), delta_us});
    return {bytes, t + options.stale_for};
}

REDKIT_DECL void cache_state::write(const std::string& full, std::string& bytes, bool absent,
                                    std::chrono::milliseconds ttl, long long delta_us) {
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

REDKIT_DECL void cache_state::store(const std::string& full, std::string& bytes, bool absent,
                                    std::chrono::milliseconds ttl, long long delta_us) noexcept {
    if (bypassing()) return;
    try {
        write(full, bytes, absent, ttl, delta_us);
    } catch (const error& e) {
        report_write_failure(e, "SET", full);
    } catch (...) {
        // bad_alloc while building the command: the value is still served
    }
}

REDKIT_DECL cache_lock_result cache_state::try_lock(const std::string& lock_key, const std::string& token) {
    if (bypassing()) return cache_lock_result::failed;
    try {
        const bool ok = redis.command<bool>("SET", lock_key, token, "NX", "PX", options.lock_ttl);
        return ok ? cache_lock_result::acquired : cache_lock_result::held;
    } catch (const error& e) {
        if (!absorb_failure(e, "SET NX", lock_key)) throw;
        return cache_lock_result::failed;
    }
}

REDKIT_DECL void cache_state::unlock(const std::string& lock_key, const std::string& token) noexcept {
    try {
        redis.eval<long long>(static_script<cache_lua::unlock>(), {std::string_view(lock_key)}, token);
    } catch (const error& e) {
        report_write_failure(e, "unlock", lock_key);  // the lock still expires after lock_ttl
    } catch (...) {
    }
}

REDKIT_DECL std::string cache_state::new_token() {
    return random_hex(16);  // the OS CSPRNG: forked processes never share a token
}

REDKIT_DECL std::size_t cache_state::end_flight(const std::string& full, const std::shared_ptr<cache_flight>& f,
                                                bool bump) {
    std::lock_guard<std::mutex> lock(flights_mutex);
    const auto it = flights.find(full);
    if (it != flights.end() && it->second == f) flights.erase(it);
    if (bump) generation(full).fetch_add(1, std::memory_order_release);
    return f->waiters;
}

REDKIT_DECL void cache_state::mark_invalidated(const std::string& full) {
    std::lock_guard<std::mutex> lock(flights_mutex);
    const auto it = flights.find(full);
    if (it != flights.end()) it->second->invalidated.store(true);
}

REDKIT_DECL bool cache_state::read_many(const std::vector<std::string>& fulls,
                                        std::vector<std::optional<std::string>>& got) {
    bool available = !bypassing();
    if (available) {
        try {
            got = redis.command<std::vector<std::optional<std::string>>>("MGET", fulls);
            recovered();
        } catch (const error& e) {
            if (!absorb_failure(e, "MGET", fulls.front())) throw;
            available = false;
        }
    }
    if (!available || got.size() != fulls.size()) {
        misses.fetch_add(fulls.size(), std::memory_order_relaxed);
        return false;
    }
    return true;
}

REDKIT_DECL void cache_state::write_many(std::vector<cache_write>& writes, std::chrono::milliseconds ttl) {
    pipeline p(redis);
    for (cache_write& w : writes) {
        const stored_form stored = prepare(w.bytes, w.absent, ttl, 0);
        p.command("SET", w.full, stored.value, "PX", stored.px);
        w.bytes = std::string();  // the pipeline holds its own copy
    }
    for (const cache_write& w : writes) mark_invalidated(w.full);
    const cache_on_exit drop([&] {
        for (const cache_write& w : writes) drop_near(w.full);
    });
    const std::vector<reply> replies = p.exec();
    for (std::size_t i = 0; i < replies.size() && i < writes.size(); ++i) {
        if (replies[i].is_error()) {
            throw server_error(replies[i].text(), "redkit: cache: SET " + writes[i].full + ": " + replies[i].text());
        }
    }
}

REDKIT_DECL std::shared_ptr<cache_flight> cache_state::join_or_lead(const std::string& full, bool wait, bool lead,
                                                                    std::uint64_t seen, bool& leader) {
    std::lock_guard<std::mutex> lock(flights_mutex);
    if (const auto it = flights.find(full); it != flights.end()) {
        if (wait) ++it->second->waiters;
        return it->second;
    }
    if (lead || generation(full).load(std::memory_order_relaxed) == seen) {
        auto f = std::make_shared<cache_flight>();
        flights.emplace(full, f);
        leader = true;
        return f;
    }
    return nullptr;
}

REDKIT_DECL void cache_state::drop_near(const std::string& full) noexcept {
    if (!near) return;
    try {
        near->drop(full);
    } catch (...) {
        near->flush();  // out of memory for the lookup: drop everything rather than keep it
    }
}

REDKIT_DECL long long cache_state::near_life_ms(const cache_read& r, const std::string& full) {
    long long life_ms = options.near.max_ttl.count();
    if (r.has_meta) return std::min(life_ms, r.meta.expiry_ms - now_ms());
    // no logical expiry stored: the key's own TTL bounds the entry
    try {
        const long long pttl = redis.command<long long>("PTTL", full);
        if (pttl == -2) return 0;  // gone meanwhile
        if (pttl >= 0) life_ms = std::min(life_ms, pttl);
    } catch (const error&) {
        return 0;  // not kept; the value read is still served
    }
    return life_ms;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
