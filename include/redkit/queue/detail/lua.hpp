// SPDX-License-Identifier: MIT
// Lua scripts of redkit::queue and redkit::worker, in detail::queue_lua: each an `inline
// constexpr std::string_view` made into a script by queue_script<Body>(), extras_script<Body>()
// or move_script(), below. Every state change of a job is one of these scripts, so it is atomic.
// The rest of redkit includes this header; the scripts live in queue/detail/lua/, by lifecycle:
//   common.hpp      the helpers scripts begin with (prelude, extras, flow)
//   take.hpp        a job's run: move (outcomes + take), renew, stalled, progress
//   add.hpp         add, add_flow
//   admin.hpp       pause, retry, remove, drain, obliterate, clean, events, limit
//   schedulers.hpp  scheduler_upsert, scheduler_next, scheduler_remove, scheduler_list, scheduler_stuck
//   inspection.hpp  get, counts, list, log, logs, metrics, limit_info
//
// All scripts take the same KEYS (one hash tag, so one Redis Cluster slot):
//   KEYS[1] wait        list: job ids ready to run without a priority (LPUSH in, RPOP out: FIFO)
//   KEYS[2] prioritized zset: job ids with a priority, score priority * 2^31 + (insertion counter
//                       mod 2^31): at most 2^21 * 2^31 + 2^31 - 1 < 2^53, so every score is an
//                       exact double (Lua numbers and zset scores are doubles)
//   KEYS[3] delayed     zset: job ids waiting for a due time (delay or retry backoff), score = due ms
//   KEYS[4] active      zset: the leases, member "<id>:<lease>", score = lease deadline ms (server
//                       clock); a lease is "<taken ms>|<token>". Ids never hold ':' (escaped), so
//                       the id is the member up to its first ':'
//   KEYS[5] completed   zset: finished job ids kept by retention, score = finish ms
//   KEYS[6] failed      zset: failed job ids kept by retention, score = finish ms
//   KEYS[7] meta        hash: paused (present while paused), pc (priority counter), stalled (total)
//   KEYS[8] marker      zset: member "0" present while jobs may be ready; idle workers BZPOPMIN it
//   KEYS[9] id          string: the job id counter
//   KEYS[10] stalled-check  string with a TTL: at most one stalled-job check per interval
// and ARGV[1] = the job key prefix ("<base>:job:"). Keys built from it, in the same slot as KEYS
// (the tag is in the prefix), kept out of KEYS so the hot scripts do not carry them:
//   <base>:job:<id>        hash: a job
//   <base>:job:<id>:logs   list: the job's log lines (job::log), the newest last, capped
//   <base>:limiter         zset: the jobs started within the rate limit's window (member
//                          "<token>:<n>", score = start ms); absent without a limit
//   <base>:schedulers      zset: scheduler ids, score = the tick (ms) of the job each has pending
//   <base>:scheduler:<id>  hash: a scheduler
//   <base>:events          stream: the queue's events while they are on (meta evmax = its cap):
//                          fields ev (added, active, progress, completed, retried, failed,
//                          stalled, removed, waiting), id (stored job id), x (name, progress,
//                          return value or reason)
//   <base>:waiting-children  zset: flow parents waiting for their children, score = created ms
//   <base>:job:<id>:results  hash: a flow parent's completed children, "<queue>:<id>" -> value
//   <base>:job:<id>:ignored  hash: its children whose failure was ignored, "<queue>:<id>" -> reason
//
// Flows (queue::add_flow) may span queues: a child's hash names its parent by the parent
// queue's key base (par, "<prefix>queue:{name}:") and stored id (pid), so the scripts that
// finish a child reach keys of another queue that are not in KEYS. That is fine on one server;
// on Redis Cluster add_flow refuses a flow whose queues are in different slots.
//
// Meta fields besides those above: evmax (events on, the stream's cap), lmax, ldur (rate limit: at most lmax jobs start
// per ldur ms), lunt (no job starts before this ms: a handler reported a downstream rate limit). A scheduler hash: spec
// (its schedule as JSON, read by C++: the cron/every arithmetic lives there), anchor (ms the ticks of an "every"
// schedule count from), next (tick of its pending job), count (jobs made), and the job template as the job fields name,
// data, prio, att, bo, bd, bj, rcn, rca, rfn, rfa. The job of a tick has the id "repeat:<scheduler id>:<tick>" (escaped
// as stored ids are) and the extra fields sch (scheduler id) and tick.
//
// A job is active while the active zset holds a lease of it. Taking a job writes nothing to its
// hash: st keeps naming the container the job was last put in, so a job whose st is w, p or d
// but which that container no longer holds is active. Job hash fields: name, data, ts (created ms), st
// (w waiting, p prioritized, d delayed, c completed, f failed), att (max attempts, absent = 1),
// made (attempts made), prio, delay, bo/bd/bj (backoff kind, delay ms, jitter per mille),
// rcn/rca and rfn/rfa (retention of completed/failed: keep count, keep age ms; absent = keep all),
// tok (the lease that last finished it), pt (processed ms), ft (finished ms), rv (return value,
// JSON), fr (failed reason), tr (JSON array of failures), prog (progress, JSON), stl (times
// stalled). A flow parent has st x (waiting for children) while kids (its children not yet
// finished) is above 0; a flow child has par and pid (its parent, above), pqn (the parent's
// queue name), pol ('i': its final failure is ignored, else it fails the parent), cref (its
// field in the parent's results: "<queue name>:<id>") and done (set once it told the parent).
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
