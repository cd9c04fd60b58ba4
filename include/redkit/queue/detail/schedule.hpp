// SPDX-License-Identifier: MIT
// The arithmetic of job schedulers, shared by queue<T> (which sets a scheduler up) and worker<T>
// (which moves it on when it takes a tick's job): the schedule as stored (JSON), its first tick,
// and the tick after one. Redis holds the state; the scripts (queue/detail/lua.hpp) make sure
// only the taker of the current tick moves a scheduler on.
#pragma once

#include <redkit/client.hpp>
#include <redkit/detail/epoch.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/cron.hpp>
#include <redkit/queue/detail/lua.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

/// A schedule ready for arithmetic: the options, and the parsed pattern for a cron schedule.
struct schedule {
    scheduler_options options;
    std::optional<cron_expression> cron;
    long long anchor = 0;  // every: ticks are anchor + k * every

    /// Validates (std::invalid_argument naming the field) and parses the pattern.
    explicit schedule(scheduler_options o) : options(std::move(o)) {
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

    /// The schedule as stored: JSON with sorted keys, so equal schedules store equal text.
    std::string spec() const {
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

    /// The stored schedule back (throws std::invalid_argument when it does not parse).
    static schedule from_spec(std::string_view text, long long anchor) {
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

    /// The first tick for a scheduler set up at server time `now` (sets anchor). Throws
    /// std::invalid_argument when the schedule ends before it.
    long long first_tick(long long now) {
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

    /// The tick after `tick` once its job started at server time `now`, with `made` jobs made so
    /// far; -1 when the schedule has ended. Ticks already past (every worker was down, or busy
    /// for longer than an interval) are not made one by one: the next job is due at once, with
    /// `now` as its tick, and the schedule goes on from there.
    long long following_tick(long long tick, long long now, long long made) const {
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
};

/// A scheduler_list / scheduler_stuck reply entry ({spec, next, count, name, anchor}) as info.
inline scheduler_info read_scheduler(const std::string& stored_id, reply_view f) {
    scheduler_info info;
    info.id = unescape_key_part(stored_id);
    const long long anchor = f[4].is_nil() ? 0 : job_field_int(f[4].str());
    info.options = schedule::from_spec(f[0].str(), anchor).options;
    info.next_run = from_epoch_ms(job_field_int(f[1].str()));
    info.jobs_made = job_field_int(f[2].str());
    info.job_name = f[3].is_nil() ? std::string() : std::string(f[3].str());
    return info;
}

/// Moves scheduler `stored_id` on from `tick` (its job started at server time `now`), given its
/// stored fields {spec, next, count, name, anchor}: makes the next tick's job, or removes the
/// scheduler when its schedule ended. Does nothing when `tick` is no longer its current tick.
inline void advance_scheduler(queue_core& core, const std::string& stored_id, reply_view f, long long tick,
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
