// SPDX-License-Identifier: MIT
// redkit::cache's out-of-line definitions (cache.hpp): construction, invalidation and the counters.
#pragma once

#include <redkit/cache.hpp>
#include <redkit/cache/detail/state.hpp>
#include <redkit/client.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace redkit {
inline namespace v0 {

REDKIT_DECL cache::cache() : cache(default_client(), cache_options{}) {}

REDKIT_DECL cache::cache(cache_options options) : cache(default_client(), std::move(options)) {}

REDKIT_DECL cache::cache(client redis, cache_options options)
    : state_(std::make_shared<detail::cache_state>(std::move(redis), std::move(options))) {}

REDKIT_DECL bool cache::invalidate(std::string_view key) {
    detail::cache_state& s = *state_;
    const std::string full = s.full_key(key);
    s.mark_invalidated(full);
    const detail::cache_on_exit drop([&] { s.drop_near(full); });
    return s.redis.command<long long>(idempotent, "DEL", full) > 0;
}

REDKIT_DECL cache_stats cache::stats() const noexcept {
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

REDKIT_DECL near_cache_stats cache::near_stats() const {
    const detail::cache_state& s = *state_;
    return s.near ? s.near->stats() : near_cache_stats{};
}

REDKIT_DECL long long cache::near_connection_id() const noexcept { return state_->tracker ? state_->tracker->id() : 0; }

}  // namespace v0
}  // namespace redkit
