// SPDX-License-Identifier: MIT
// The arithmetic of job schedulers: out-of-line definitions (schedule.hpp).
#pragma once

#include <redkit/client.hpp>
#include <redkit/detail/epoch.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/cron.hpp>
#include <redkit/queue/detail/lua.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/detail/schedule.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL schedule::schedule(scheduler_options o) : options(std::move(o)) {
    const bool has_cron = !options.cron.empty();
    if (has_cron == (options.every.count() != 0)) {
        throw std::invalid_argument("redkit: scheduler_options: set exactly one of cron and every");
    }
    if (!has_cron && options.every.count() < 10) {
        throw std::invalid_argument("redkit: scheduler_options.every must be at least 10 ms");
    }
    if (!has_cron && !options.time_zone.empty()) {
        throw std::invalid_argument("redkit: scheduler_options.time_zone applies to a cron pattern only");
    }
    if (options.limit < 0) throw std::invalid_argument("redkit: scheduler_options.limit must not be negative");
    if (options.start && options.end && *options.end < *options.start) {
        throw std::invalid_argument("redkit: scheduler_options.end must not be before start");
    }
    if (has_cron) cron.emplace(options.cron, options.time_zone);
}

REDKIT_DECL std::string schedule::spec() const {
    nlohmann::json j = nlohmann::json::object();
    if (cron) {
        j["cron"] = options.cron;
        j["tz"] = options.time_zone;
    } else {
        j["every"] = options.every.count();
    }
    if (options.start) j["start"] = to_epoch_ms(*options.start);
    if (options.end) j["end"] = to_epoch_ms(*options.end);
    if (options.limit > 0) j["limit"] = options.limit;
    return j.dump();
}

REDKIT_DECL schedule schedule::from_spec(std::string_view text, long long anchor) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) throw std::invalid_argument("redkit: scheduler: stored schedule is not JSON");
    scheduler_options o;
    o.cron = j.value("cron", std::string());
    o.time_zone = j.value("tz", std::string());
    o.every = std::chrono::milliseconds(j.value("every", 0LL));
    if (j.contains("start")) o.start = from_epoch_ms(j.value("start", 0LL));
    if (j.contains("end")) o.end = from_epoch_ms(j.value("end", 0LL));
    o.limit = j.value("limit", 0LL);
    schedule s(std::move(o));
    s.anchor = anchor;
    return s;
}

REDKIT_DECL long long schedule::first_tick(long long now) {
    const long long start = options.start ? to_epoch_ms(*options.start) : now;
    long long tick = 0;
    if (cron) {
        tick = cron->next_after_ms(std::max(now, start) - 1);
        if (tick < 0) throw std::invalid_argument("redkit: scheduler: the cron pattern never matches again");
    } else {
        anchor = start;
        const long long every = options.every.count();
        tick = start >= now ? start : start + (now - start + every - 1) / every * every;
    }
    if (options.end && tick > to_epoch_ms(*options.end)) {
        throw std::invalid_argument("redkit: scheduler: the schedule ends before its first job");
    }
    return tick;
}

REDKIT_DECL long long schedule::following_tick(long long tick, long long now, long long made) const {
    if (options.limit > 0 && made >= options.limit) return -1;
    long long next = 0;
    if (cron) {
        next = cron->next_after_ms(tick);
        if (next < 0) return -1;
    } else {
        const long long every = options.every.count();
        next = tick < anchor ? anchor : anchor + ((tick - anchor) / every + 1) * every;
    }
    if (next <= now) next = now;
    if (options.end && next > to_epoch_ms(*options.end)) return -1;
    return next;
}

REDKIT_DECL scheduler_info read_scheduler(const std::string& stored_id, reply_view f) {
    scheduler_info info;
    info.id = unescape_key_part(stored_id);
    const long long anchor = f[4].is_nil() ? 0 : job_field_int(f[4].str());
    info.options = schedule::from_spec(f[0].str(), anchor).options;
    info.next_run = from_epoch_ms(job_field_int(f[1].str()));
    info.jobs_made = job_field_int(f[2].str());
    info.job_name = f[3].is_nil() ? std::string() : std::string(f[3].str());
    return info;
}

REDKIT_DECL void advance_scheduler(queue_core& core, const std::string& stored_id, reply_view f, long long tick,
                                   long long now) {
    if (f[0].is_nil() || f[1].is_nil() || job_field_int(f[1].str()) != tick) return;
    const long long anchor = f[4].is_nil() ? 0 : job_field_int(f[4].str());
    const schedule s = schedule::from_spec(f[0].str(), anchor);
    const long long next = s.following_tick(tick, now, job_field_int(f[2].str()));
    const std::vector<std::string> args{core.job_prefix, stored_id, std::to_string(tick),
                                        next < 0 ? std::string() : std::to_string(next)};
    (void)core.redis.eval<long long>(idempotent, extras_script<queue_lua::scheduler_next>(), core.keys, args);
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
