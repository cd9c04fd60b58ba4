// SPDX-License-Identifier: MIT
// Lua scripts of redkit::queue and redkit::worker, in detail::queue_lua: each an `inline
// constexpr std::string_view` made into a script by queue_script<Body>(), extras_script<Body>()
// or move_script(), below. Every state change of a job is one of these scripts, so it is atomic.
// The rest of redkit includes this header; the scripts live in queue/detail/lua/, by lifecycle:
//   common.hpp      the helpers scripts begin with (prelude, extras, flow)
//   take.hpp        a job's run: move (outcomes + take), renew, stalled, progress
//   add.hpp         add, add_flow
//   admin.hpp       pause, retry, remove, drain, obliterate, workers, clean, events, limit
//   schedulers.hpp  scheduler_upsert, scheduler_next, scheduler_remove, scheduler_list, scheduler_stuck
//   inspection.hpp  get, counts, list, log, logs, metrics, limit_info
//
// The keys and fields the scripts use (KEYS, the keys outside KEYS, the hashes' fields) are the
// queue's data model: queue/detail/model.hpp describes them and names them for the C++ side.
//
// Times come from redis.call('TIME') in integer milliseconds. Numbers given to redis.call are
// sent exactly; numbers concatenated into strings stay below 10^14 (Lua prints %.14g).
#pragma once

#include <redkit/queue/detail/lua/add.hpp>
#include <redkit/queue/detail/lua/admin.hpp>
#include <redkit/queue/detail/lua/common.hpp>
#include <redkit/queue/detail/lua/inspection.hpp>
#include <redkit/queue/detail/lua/schedulers.hpp>
#include <redkit/queue/detail/lua/take.hpp>
#include <redkit/script.hpp>

#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

/// The queue script whose body is Body, after the shared prelude: built once, on first use.
template <const std::string_view& Body>
const script& queue_script() {
    return static_script<queue_lua::prelude, Body>();
}

/// The same with the extras (rate limit and scheduler keys and helpers) and the flow helpers too.
template <const std::string_view& Body>
const script& extras_script() {
    return static_script<queue_lua::prelude, queue_lua::extras, queue_lua::flow, Body>();
}

/// The worker's take: the prelude, the flow helpers (a flow's child that finishes tells its
/// parent) and move.
inline const script& move_script() { return static_script<queue_lua::prelude, queue_lua::flow, queue_lua::move>(); }

}  // namespace detail
}  // namespace v0
}  // namespace redkit
