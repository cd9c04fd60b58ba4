// SPDX-License-Identifier: MIT
// The queue's value types: out-of-line definitions (types.hpp).
#pragma once

#include <redkit/queue/types.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace redkit {
inline namespace v0 {

REDKIT_DECL std::chrono::milliseconds backoff_policy::delay_before(int retry, double random01) const noexcept {
    if (type == kind::none || delay.count() <= 0) return std::chrono::milliseconds(0);
    double d = static_cast<double>(delay.count());
    if (type == kind::exponential) d *= std::ldexp(1.0, std::min(std::max(retry, 1) - 1, 40));
    d = std::min(d, 1e15);
    if (jitter > 0) d -= d * jitter * random01;
    return std::chrono::milliseconds(static_cast<long long>(d));
}

REDKIT_DECL const char* to_string(job_state s) noexcept {
    switch (s) {
        case job_state::waiting: return "waiting";
        case job_state::prioritized: return "prioritized";
        case job_state::delayed: return "delayed";
        case job_state::active: return "active";
        case job_state::completed: return "completed";
        case job_state::failed: return "failed";
        case job_state::waiting_children: return "waiting-children";
        case job_state::unknown: return "unknown";
    }
    return "unknown";
}

REDKIT_DECL const char* to_string(add_outcome o) noexcept {
    switch (o) {
        case add_outcome::created: return "created";
        case add_outcome::exists: return "exists";
        case add_outcome::deduplicated: return "deduplicated";
        case add_outcome::debounced: return "debounced";
    }
    return "unknown";
}

REDKIT_DECL rate_limited_error::rate_limited_error(std::chrono::milliseconds retry_after, const std::string& what)
    : std::runtime_error(what), retry_after_(retry_after) {
    if (retry_after.count() < 0 || retry_after > std::chrono::hours(24)) {
        throw std::invalid_argument("redkit: rate_limited_error: retry_after must be in [0, 24 h]");
    }
}

REDKIT_DECL scheduler_options scheduler_options::cron_pattern(std::string pattern, std::string zone) {
    scheduler_options o;
    o.cron = std::move(pattern);
    o.time_zone = std::move(zone);
    return o;
}

REDKIT_DECL scheduler_options scheduler_options::every_interval(std::chrono::milliseconds interval) {
    scheduler_options o;
    o.every = interval;
    return o;
}

}  // namespace v0
}  // namespace redkit
