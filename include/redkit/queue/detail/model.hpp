// SPDX-License-Identifier: MIT
// The queue's data model, written once: its keys, the fields of its hashes and the state
// letters, as the Lua scripts (queue/detail/lua.hpp) and the C++ side both use them. The C++ side
// names them by the constants below; the Lua cannot include C++, so a unit test
// (tests/unit/queue_model_test.cpp) reads every script and checks that the fields it uses on a
// job, meta or scheduler hash are the ones listed here, and that each one listed is used.
//
// A queue's keys are <prefix>queue:{<name>}:<suffix> (key_space::key(root, hash_tag(name),
// suffix)); <base> below is <prefix>queue:{<name>}.
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
//                          stalled, removed, waiting, deduplicated, debounced), id (stored job
//                          id), x (name, progress, return value or reason)
//   <base>:waiting-children  zset: flow parents waiting for their children, score = created ms
//   <base>:job:<id>:results  hash: a flow parent's completed children, "<queue>:<id>" -> value
//   <base>:job:<id>:ignored  hash: its children whose failure was ignored, "<queue>:<id>" -> reason
//   <base>:group:<g>       list: group g's jobs in line (job field grp; g escaped as ids are), LPUSH in,
//                          RPOP out. <base>:group:<g>:limiter zset: its starts within the
//                          per-group rate limit's window (as <base>:limiter), expiring with it
//   <base>:groups          zset: the rotation, the groups that may start a job now, score = their
//                          turn (meta gturn: a group that gave a job goes to the back)
//   <base>:gheld           zset: groups the per-group rate limit holds, score = ms they may start again
//   <base>:gall            zset: every group with jobs in line or active, paused, or with its own
//                          concurrency (score 0: by name), for listing
//   <base>:gactive         hash: group -> its leases (jobs active); <base>:gpaused hash: paused
//                          groups -> 1; <base>:gcap hash: group -> its own concurrency
//   <base>:workers         zset: the queue's workers (in any process), score = ms until which each
//                          counts as alive: each worker joins as it starts, again at each of its
//                          stalled-job checks (for 3 intervals), and leaves as it closes
//   <base>:dedup:<key>     string: the stored id of the job that holds the deduplication key
//                          <key> (job_options::deduplication.id, escaped as ids are). Without a
//                          TTL (simple mode) it lives until that job finishes or is removed:
//                          the scripts that finish a job or delete its hash release it (prelude
//                          release_dedup) while it still names that job. With a TTL (throttle,
//                          debounce) nothing releases it: it expires, whatever the job does
//
// Flows (queue::add_flow) may span queues: a child's hash names its parent by the parent
// queue's key base (par, "<prefix>queue:{name}:") and stored id (pid), so the scripts that
// finish a child reach keys of another queue that are not in KEYS. That is fine on one server;
// on Redis Cluster add_flow refuses a flow whose queues are in different slots.
//
// Meta fields for groups: gon (a grouped job was ever added: the take and the lease ends mind the
// groups), gw (jobs in groups' lines), gturn (the rotation's turn counter), gcap (every group's
// default concurrency), glmax and gldur (every group's rate limit).
// Meta fields besides those above: evmax (events on, the stream's cap), lmax, ldur (rate limit: at most lmax jobs start
// per ldur ms), lunt (no job starts before this ms: a handler reported a downstream rate limit). A scheduler hash: spec
// (its schedule as JSON, read by C++: the cron/every arithmetic lives there), anchor (ms the ticks of an "every"
// schedule count from), next (tick of its pending job), count (jobs made), and the job template as the job fields name,
// data, prio, att, bo, bd, bj, rcn, rca, rfn, rfa, to. The job of a tick has the id "repeat:<scheduler id>:<tick>"
// (escaped as stored ids are) and the extra fields sch (scheduler id) and tick.
//
// A job is active while the active zset holds a lease of it. Taking a job writes nothing to its
// hash: st keeps naming the container the job was last put in, so a job whose st is w, p or d
// but which that container no longer holds is active. Job hash fields: name, data, ts (created ms), st
// (w waiting, p prioritized, d delayed, c completed, f failed), att (max attempts, absent = 1),
// made (attempts made), prio, delay, bo/bd/bj (backoff kind, delay ms, jitter per mille),
// rcn/rca and rfn/rfa (retention of completed/failed: keep count, keep age ms; absent = keep all),
// tok (the lease that last finished it), pt (processed ms), ft (finished ms), rv (return value,
// JSON), fr (failed reason), tr (JSON array of failures), prog (progress, JSON), stl (times
// stalled), to (timeout ms of an attempt), cx (a cancel request for one attempt: "<lease>|<r>|<reason>",
// r '1' when the attempt is to be retried, else '0'; queue::cancel writes it, renew and the
// stalled check read it, and it means nothing once that lease is gone). A flow parent has st x (waiting for children)
// while kids (its children not yet finished) is above 0; a flow child has par and pid (its parent, above), pqn (the
// parent's queue name), pol ('i': its final failure is ignored, else it fails the parent), cref (its field in the
// parent's results: "<queue name>:<id>") and done (set once it told the parent). A job added with a
// deduplication key has de (that key, stored form: its <base>:dedup:<key> above); one added with a group has
// grp (the group, stored form) and st g while in its group's line. tc: the trace context of the code
// that added it (observer::job_trace_context), when there was one.
#pragma once

#include <redkit/queue/types.hpp>

#include <cstddef>
#include <iterator>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

/// The KEYS of every queue script, in their order (queue_model::key_suffixes names each).
enum class queue_key : std::size_t {
    wait,
    prioritized,
    delayed,
    active,
    completed,
    failed,
    meta,
    marker,
    id,
    stalled_check
};

namespace queue_model {

/// The first part of every queue key (key_space::key("queue", hash_tag(name), suffix)).
inline constexpr std::string_view root = "queue";

/// The suffixes of the KEYS, in queue_key order.
inline constexpr std::string_view key_suffixes[] = {"wait",   "prioritized", "delayed", "active", "completed",
                                                    "failed", "meta",        "marker",  "id",     "stalled-check"};
static_assert(std::size(key_suffixes) == static_cast<std::size_t>(queue_key::stalled_check) + 1,
              "one suffix per queue_key");

constexpr std::string_view suffix(queue_key k) noexcept { return key_suffixes[static_cast<std::size_t>(k)]; }

// The keys outside KEYS. The job key prefix (the scripts' ARGV[1]) is key(root, tag, job) + ":".
inline constexpr std::string_view job = "job";                            ///< <base>:job:<id>
inline constexpr std::string_view logs = ":logs";                         ///< after a job key
inline constexpr std::string_view results = ":results";                   ///< after a job key
inline constexpr std::string_view ignored = ":ignored";                   ///< after a job key
inline constexpr std::string_view limiter = "limiter";                    ///< <base>:limiter
inline constexpr std::string_view schedulers = "schedulers";              ///< <base>:schedulers
inline constexpr std::string_view scheduler = "scheduler:";               ///< <base>:scheduler:<id>
inline constexpr std::string_view events = "events";                      ///< <base>:events
inline constexpr std::string_view waiting_children = "waiting-children";  ///< <base>:waiting-children
inline constexpr std::string_view dedup = "dedup:";                       ///< <base>:dedup:<key>
inline constexpr std::string_view group = "group:";                       ///< <base>:group:<g>
inline constexpr std::string_view group_limiter = ":limiter";             ///< after a group key
inline constexpr std::string_view groups = "groups";                      ///< <base>:groups
inline constexpr std::string_view groups_held = "gheld";                  ///< <base>:gheld
inline constexpr std::string_view groups_all = "gall";                    ///< <base>:gall
inline constexpr std::string_view groups_active = "gactive";              ///< <base>:gactive
inline constexpr std::string_view groups_paused = "gpaused";              ///< <base>:gpaused
inline constexpr std::string_view groups_cap = "gcap";                    ///< <base>:gcap
inline constexpr std::string_view workers = "workers";                    ///< <base>:workers

/// The suffixes of the keys outside KEYS that hang off <base> (not a job's).
inline constexpr std::string_view base_suffixes[] = {
    limiter, schedulers,  scheduler,  events,        waiting_children, dedup,      group,
    groups,  groups_held, groups_all, groups_active, groups_paused,    groups_cap, workers};

/// The fields of a job hash (the comment above says what each holds).
namespace job_field {
inline constexpr std::string_view name = "name", data = "data", ts = "ts", st = "st", att = "att", made = "made",
                                  prio = "prio", delay = "delay", bo = "bo", bd = "bd", bj = "bj", rcn = "rcn",
                                  rca = "rca", rfn = "rfn", rfa = "rfa", tok = "tok", pt = "pt", ft = "ft", rv = "rv",
                                  fr = "fr", tr = "tr", prog = "prog", stl = "stl", par = "par", pid = "pid",
                                  pqn = "pqn", pol = "pol", cref = "cref", done = "done", kids = "kids", sch = "sch",
                                  tick = "tick", to = "to", cx = "cx", de = "de", grp = "grp", tc = "tc";
}  // namespace job_field

inline constexpr std::string_view job_fields[] = {
    job_field::name, job_field::data,  job_field::ts,  job_field::st,   job_field::att,  job_field::made,
    job_field::prio, job_field::delay, job_field::bo,  job_field::bd,   job_field::bj,   job_field::rcn,
    job_field::rca,  job_field::rfn,   job_field::rfa, job_field::tok,  job_field::pt,   job_field::ft,
    job_field::rv,   job_field::fr,    job_field::tr,  job_field::prog, job_field::stl,  job_field::par,
    job_field::pid,  job_field::pqn,   job_field::pol, job_field::cref, job_field::done, job_field::kids,
    job_field::sch,  job_field::tick,  job_field::to,  job_field::cx,   job_field::de,   job_field::grp,
    job_field::tc};

/// The fields of the meta hash (KEYS[7]).
namespace meta_field {
inline constexpr std::string_view paused = "paused", pc = "pc", stalled = "stalled", evmax = "evmax", lmax = "lmax",
                                  ldur = "ldur", lunt = "lunt", gon = "gon", gw = "gw", gturn = "gturn", gcap = "gcap",
                                  glmax = "glmax", gldur = "gldur";
}  // namespace meta_field

inline constexpr std::string_view meta_fields[] = {
    meta_field::paused, meta_field::pc,    meta_field::stalled, meta_field::evmax, meta_field::lmax,
    meta_field::ldur,   meta_field::lunt,  meta_field::gon,     meta_field::gw,    meta_field::gturn,
    meta_field::gcap,   meta_field::glmax, meta_field::gldur};

/// The fields of a scheduler hash besides its job template (job fields: name, data, prio, ...).
inline constexpr std::string_view scheduler_fields[] = {"spec", "anchor", "next", "count"};

/// The letters of a job's st field, and the list script's state argument (active is never stored).
namespace state_letter {
inline constexpr char waiting = 'w', prioritized = 'p', delayed = 'd', active = 'a', completed = 'c', failed = 'f',
                      waiting_children = 'x';
/// A job in its group's line (job_options::group): job_state::waiting, as it is read.
inline constexpr char grouped = 'g';
}  // namespace state_letter

/// The letter of each job_state, in job_state order (unknown has none).
inline constexpr char state_letters[] = {
    state_letter::waiting,   state_letter::prioritized, state_letter::delayed,         state_letter::active,
    state_letter::completed, state_letter::failed,      state_letter::waiting_children};
static_assert(std::size(state_letters) == static_cast<std::size_t>(job_state::unknown), "one letter per job_state");

}  // namespace queue_model
}  // namespace detail
}  // namespace v0
}  // namespace redkit
