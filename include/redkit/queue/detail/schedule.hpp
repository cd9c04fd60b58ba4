// SPDX-License-Identifier: MIT
// The arithmetic of job schedulers, shared by queue<T> (which sets a scheduler up) and worker<T>
// (which moves it on when it takes a tick's job): the schedule as stored (JSON), its first tick,
// and the tick after one. Redis holds the state; the scripts (queue/detail/lua.hpp) make sure
// only the taker of the current tick moves a scheduler on.
#pragma once

#include <redkit/config.hpp>
#include <redkit/queue/cron.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

/// A schedule ready for arithmetic: the options, and the parsed pattern for a cron schedule.
struct schedule {
    scheduler_options options;
    std::optional<cron_expression> cron;
    long long anchor = 0;  // every: ticks are anchor + k * every

    /// Validates (std::invalid_argument naming the field) and parses the pattern.
    REDKIT_DECL explicit schedule(scheduler_options o);

    /// The schedule as stored: JSON with sorted keys, so equal schedules store equal text.
    REDKIT_DECL std::string spec() const;

    /// The stored schedule back (throws std::invalid_argument when it does not parse).
    REDKIT_DECL static schedule from_spec(std::string_view text, long long anchor);

    /// The first tick for a scheduler set up at server time `now` (sets anchor). Throws
    /// std::invalid_argument when the schedule ends before it.
    REDKIT_DECL long long first_tick(long long now);

    /// The tick after `tick` once its job started at server time `now`, with `made` jobs made so
    /// far; -1 when the schedule has ended. Ticks already past (every worker was down, or busy
    /// for longer than an interval) are not made one by one: the next job is due at once, with
    /// `now` as its tick, and the schedule goes on from there.
    REDKIT_DECL long long following_tick(long long tick, long long now, long long made) const;
};

/// A scheduler_list / scheduler_stuck reply entry ({spec, next, count, name, anchor}) as info.
REDKIT_DECL scheduler_info read_scheduler(const std::string& stored_id, reply_view f);

/// Moves scheduler `stored_id` on from `tick` (its job started at server time `now`), given its
/// stored fields {spec, next, count, name, anchor}: makes the next tick's job, or removes the
/// scheduler when its schedule ended. Does nothing when `tick` is no longer its current tick.
REDKIT_DECL void advance_scheduler(queue_core& core, const std::string& stored_id, reply_view f, long long tick,
                                   long long now);

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/queue/detail/impl/schedule.ipp>
#endif
