// SPDX-License-Identifier: MIT
// The value types of the queue API: how a job is added (job_options, backoff_policy, retention,
// deduplication_options, queue_options), where it is (job_state, job_counts) and what came of it
// (added_job, add_outcome, stalled_jobs, remove_result, job_failure), unrecoverable_error and
// rate_limited_error for handlers, the options of schedulers (repeatable jobs) and of a queue's
// rate limit, and flows (flow_job, added_flow, and what a parent reads of its children).
#pragma once

#include <redkit/config.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/detail/cancel.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// How long to wait before retrying a failed attempt.
struct backoff_policy {
    /// How the delay grows from one retry to the next.
    enum class kind {
        none,        ///< no delay: retry at once
        fixed,       ///< `delay` before every retry
        exponential  ///< `delay` doubled per retry: delay, 2 delay, 4 delay...
    };

    kind type = kind::none;              ///< none: retry at once
    std::chrono::milliseconds delay{0};  ///< fixed: every retry; exponential: the first retry
    double jitter = 0;                   ///< in [0, 1]: the delay is drawn from [d * (1 - jitter), d]

    /// No wait: a failed attempt is retried at once (the default).
    static backoff_policy none() { return {}; }
    /// `d` before every retry, shortened at random by up to `jitter` of it.
    static backoff_policy fixed(std::chrono::milliseconds d, double jitter = 0) { return {kind::fixed, d, jitter}; }
    /// delay * 2^(n-1) before retry n (delay, 2 delay, 4 delay...).
    static backoff_policy exponential(std::chrono::milliseconds d, double jitter = 0) {
        return {kind::exponential, d, jitter};
    }

    /// The wait before retry number `retry` (1 for the first), with `random01` in [0, 1) drawing
    /// the jitter. Saturates instead of overflowing.
    REDKIT_DECL std::chrono::milliseconds delay_before(int retry, double random01) const noexcept;
};

/// Which finished jobs to keep (completed or failed), checked when a job finishes. Both limits may
/// be set; a job is removed when either says so.
struct retention {
    std::optional<std::size_t> count;  ///< keep at most the newest `count` (nullopt: no count limit)
    std::chrono::milliseconds age{0};  ///< keep those finished less than `age` ago (0: no age limit)

    /// Keep every finished job (the default).
    static retention keep_all() { return {}; }
    /// Remove a job as soon as it finishes.
    static retention keep_none() { return {std::size_t{0}, std::chrono::milliseconds(0)}; }
    /// Keep the newest `n` finished jobs.
    static retention keep_last(std::size_t n) { return {n, std::chrono::milliseconds(0)}; }
    /// Keep finished jobs for `a` after they finished.
    static retention keep_for(std::chrono::milliseconds a) { return {std::nullopt, a}; }
};

/// Deduplication of adds by a key of the caller's choosing (job_options::deduplication), apart from
/// the job id. Three modes, as BullMQ's:
/// - simple (ttl 0): while the job added with this key has not finished (completed, failed for
///   good, or removed), adds with the same key add nothing and map to that job;
/// - throttle (ttl > 0): for `ttl` after the add that took the key, adds with the same key add
///   nothing and map to that job, even when it finished meanwhile;
/// - debounce (ttl > 0, a delay, and extend and/or replace): as throttle, and an add while that job
///   is still delayed updates it (data, due time) instead; once it started, nothing is updated.
///
/// The key lives in the queue's slot (`queue:{name}:dedup:<id>`); a key with a TTL outlives
/// queue::obliterate until it expires. A failed job that queue::retry moves back in line does not
/// take its key again.
struct deduplication_options {
    /// The deduplication key; empty (the default): no deduplication. At most 512 bytes.
    std::string id;
    /// 0: simple mode, the key is held until the job finishes. Otherwise the key is held this long
    /// from the add that took it (throttle), whatever happens to the job. At most 24 h.
    std::chrono::milliseconds ttl{0};
    /// Debounce: an add while the holder is delayed sets its due time to now + this add's delay and
    /// holds the key `ttl` from now. Needs ttl > 0 and job_options::delay > 0.
    bool extend = false;
    /// Debounce: an add while the holder is delayed replaces its data with this add's (its other
    /// options stay). Needs ttl > 0 and job_options::delay > 0.
    bool replace = false;
};

/// Options of one job. The defaults run a job once, now, in FIFO order, and keep it when finished.
struct job_options {
    std::chrono::milliseconds delay{0};  ///< run no earlier than this after add (server clock)
    int attempts = 1;                    ///< attempts in all (1: no retry); at least 1
    backoff_policy backoff;              ///< wait between attempts
    /// 0: none (FIFO, taken before any prioritized job, as BullMQ does); 1 (highest) .. 2^21
    /// (2097152), FIFO among jobs of equal priority (exact over the whole range; the order of
    /// equals is kept across 2^31 prioritized adds per queue, then the insertion counter wraps).
    int priority = 0;
    /// Empty: a generated integer id. Otherwise the job's id, at most 512 bytes and not an
    /// integer; adding an id that exists is a no-op (deduplication).
    std::string job_id;
    retention remove_on_complete;  ///< default: keep all completed jobs
    retention remove_on_fail;      ///< default: keep all failed jobs
    /// 0: none. Otherwise an attempt still running this long after it started is cancelled (its
    /// job::cancel_token() is raised) and, once the handler returns, fails with the reason "timed
    /// out after N ms"; attempts and backoff apply. At most 24 h.
    std::chrono::milliseconds timeout{0};
    /// Deduplication by a key apart from the job id (default: none). Checked before job_id: an add
    /// whose key is held maps to the holder whatever its job_id. Only queue::add and
    /// queue::add_bulk take it; add_flow and upsert_scheduler refuse it.
    deduplication_options deduplication;
    /// Empty: none. Otherwise the job's group (a tenant, a customer: at most 512 bytes): workers
    /// take grouped jobs one group at a time in turn, so a group with many jobs in line does not
    /// hold up another's; a group may be paused and limited (queue::set_group_concurrency,
    /// queue::set_group_rate_limit). Within a group, jobs run in the order added; a grouped job
    /// takes no priority. Jobs without a group are taken before grouped ones. Only queue::add
    /// and queue::add_bulk take it; add_flow and upsert_scheduler refuse it.
    std::string group;
};

/// Where a job is.
enum class job_state { waiting, prioritized, delayed, active, completed, failed, waiting_children, unknown };

/// The state's name: "waiting", "prioritized", ..., "waiting-children", "unknown".
REDKIT_DECL const char* to_string(job_state s) noexcept;

/// Jobs per state. While the queue is paused, waiting jobs count as paused (waiting is 0).
struct job_counts {
    long long waiting = 0;           ///< in line without a priority, ready to run (0 while paused)
    long long active = 0;            ///< leased by a worker (running, or stalled until checked)
    long long delayed = 0;           ///< waiting for their delay or retry backoff to pass
    long long prioritized = 0;       ///< in line with a priority (counted here also while paused)
    long long completed = 0;         ///< completed, still kept (job_options::remove_on_complete)
    long long failed = 0;            ///< failed for good, still kept (job_options::remove_on_fail)
    long long paused = 0;            ///< in line without a priority while the queue is paused
    long long waiting_children = 0;  ///< flow parents waiting for their children (queue::add_flow)
    long long grouped = 0;           ///< in their groups' lines (job_options::group), paused groups included
};

/// What one add did (added_job::outcome).
enum class add_outcome {
    created,       ///< a new job was added
    exists,        ///< job_options::job_id named a job that exists: nothing changed
    deduplicated,  ///< the deduplication key was held: nothing changed, the add maps to the holder
    debounced,     ///< the key was held by a delayed job, which this add updated (extend, replace)
};

/// The outcome's name: "created", "exists", "deduplicated", "debounced".
REDKIT_DECL const char* to_string(add_outcome o) noexcept;

/// What add() did, and the job the add maps to.
struct [[nodiscard]] added_job {
    /// The job the add maps to: the new job's id (generated, or job_options::job_id), or the id of
    /// the job that exists or holds the deduplication key.
    std::string id;
    bool created = false;                       ///< outcome == add_outcome::created
    add_outcome outcome = add_outcome::exists;  ///< what the add did
};

/// One job for add_bulk.
template <class T>
struct bulk_job {
    std::string name;          ///< the job's name (job::name())
    T data;                    ///< the job's data, encoded with codec<T>
    job_options options = {};  ///< as for queue::add
};

/// Outcome of a stalled-job check: ids moved back in line, and ids failed for stalling too often.
struct stalled_jobs {
    std::vector<std::string> recovered;  ///< ids of the jobs moved back in line
    std::vector<std::string> failed;     ///< ids of the jobs failed for stalling too often
};

/// Outcome of queue::remove.
enum class remove_result { removed, not_found, active };

template <class T>
class job;

/// What becomes of a cancelled job (queue::cancel).
enum class after_cancel {
    fail,   ///< it fails for good with the reason
    retry,  ///< the attempt fails with the reason; the job runs again while attempts remain
};

/// Outcome of queue::cancel.
enum class cancel_result {
    requested,    ///< the job is running: its worker sees the request at its next lease renewal
    not_running,  ///< the job exists but no worker runs it (in line, delayed or finished): nothing done
    not_found,    ///< no job with this id
};

/// What a running job's handler polls or waits on to learn that its attempt was cancelled:
/// by queue::cancel (from any process; the worker learns it at its next lease renewal) or by the
/// job's timeout (job_options::timeout). Cancelling is cooperative: a handler that never looks
/// runs to its end. Once a cancel was requested the attempt's outcome is the cancel's, whatever
/// the handler returns or throws: failed with the reason (retried if attempts remain for a
/// timeout or a cancel that asked for a retry). Cheap to copy; a default token is never cancelled.
class cancel_token {
public:
    /// A token that is never cancelled (a job outside a worker's handler has one).
    cancel_token() = default;

    /// Whether a cancel was requested (a relaxed atomic read: poll it in a loop).
    bool stop_requested() const noexcept { return state_ && state_->requested.load(); }

    /// Why: "cancelled: <the reason given to queue::cancel>" or "timed out after N ms"; empty
    /// while no cancel was requested.
    std::string reason() const { return state_ ? state_->read().first : std::string(); }

    /// Waits up to `d` for a cancel request (e.g. instead of a sleep); true once there is one.
    bool wait_for(std::chrono::milliseconds d) const {
        if (!state_) return false;
        return state_->wait_for(d);
    }

private:
    template <class T>
    friend class job;
    explicit cancel_token(std::shared_ptr<const detail::cancel_state> state) noexcept : state_(std::move(state)) {}

    std::shared_ptr<const detail::cancel_state> state_;
};

/// Why an attempt failed, as given to worker_options::on_failed.
struct job_failure {
    /// The what() of the exception the handler threw, or why the data did not decode.
    std::string reason;
    bool will_retry = false;                ///< attempts remain: the job runs again
    std::chrono::milliseconds retry_in{0};  ///< backoff before that
};

/// Thrown by a handler to fail the job at once, without the remaining attempts.
class unrecoverable_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Thrown by a handler when a service it calls said "too many requests, retry after D" (an HTTP
/// 429): the job goes back to the head of the line without using an attempt, and no worker of
/// the queue (in any process) starts a job for `retry_after`.
class rate_limited_error : public std::runtime_error {
public:
    /// Throws std::invalid_argument when retry_after is negative or longer than a day.
    REDKIT_DECL explicit rate_limited_error(std::chrono::milliseconds retry_after,
                                            const std::string& what = "rate limited");
    /// How long the queue starts no job, as given.
    std::chrono::milliseconds retry_after() const noexcept { return retry_after_; }

private:
    std::chrono::milliseconds retry_after_;
};

/// A queue's rate limit: at most `max` jobs start in any window of `per`, across every worker
/// and process (queue::set_rate_limit).
struct queue_rate_limit {
    long long max = 0;                 ///< most jobs that start in one window
    std::chrono::milliseconds per{0};  ///< the window's length
};

/// A group of a queue's jobs (job_options::group), as queue::groups and queue::group see it.
struct group_info {
    std::string name;                      ///< as given to job_options::group
    long long waiting = 0;                 ///< its jobs in line
    long long active = 0;                  ///< its jobs running (leased), across every worker and process
    bool paused = false;                   ///< queue::pause_group: it starts none until resumed
    std::optional<long long> concurrency;  ///< its own limit (set_group_concurrency(group, n)), if any
    /// While its rate limit (queue::set_group_rate_limit) holds it: when it may start a job again.
    std::optional<std::chrono::system_clock::time_point> held_until;
};

/// A page of a queue's groups (queue::groups), by name, and the settings that apply to every group.
struct group_page {
    std::vector<group_info> groups;  ///< the page
    long long total = 0;  ///< groups listed in all: those with jobs in line or running, paused, or with their own limit
    std::optional<long long> concurrency;        ///< the default per-group concurrency, if any
    std::optional<queue_rate_limit> rate_limit;  ///< the per-group rate limit, if any
};

/// When a scheduler (queue::upsert_scheduler) makes jobs: a cron pattern in a time zone, or a
/// fixed interval, optionally between a start and an end and up to a number of jobs.
struct scheduler_options {
    /// A cron pattern (see cron_expression: 5 fields, or 6 with seconds), or empty with `every`.
    std::string cron;
    /// The IANA zone the pattern is read in ("Europe/Berlin"); empty: UTC. Only with `cron`.
    std::string time_zone;
    /// A fixed interval instead of a pattern, at least 10 ms: the first job at `start` (at once
    /// when unset), then one every `every`.
    std::chrono::milliseconds every{0};
    /// No job before this time (unset: from now).
    std::optional<std::chrono::system_clock::time_point> start;
    /// No job after this time (unset: no end); the scheduler is removed when it is reached.
    std::optional<std::chrono::system_clock::time_point> end;
    /// At most this many jobs in all (0: no limit); the scheduler is removed after the last.
    long long limit = 0;

    /// A schedule of the cron `pattern` read in the IANA `zone` (empty: UTC), without start, end
    /// or limit.
    REDKIT_DECL static scheduler_options cron_pattern(std::string pattern, std::string zone = {});
    /// A job every `interval` (at least 10 ms), the first at once, without end or limit.
    REDKIT_DECL static scheduler_options every_interval(std::chrono::milliseconds interval);
};

/// A scheduler as stored (queue::schedulers, queue::get_scheduler).
struct scheduler_info {
    std::string id;             ///< the id given to queue::upsert_scheduler
    scheduler_options options;  ///< its schedule
    std::string job_name;       ///< the name of the jobs it makes
    /// The tick of its pending job (server time): when that job is due.
    std::chrono::system_clock::time_point next_run;
    /// Jobs it made so far (counted since its schedule last changed).
    long long jobs_made = 0;
};

/// A job's log lines (queue::logs), oldest first, and how many it has in all.
struct job_logs {
    std::vector<std::string> lines;  ///< the lines asked for, oldest first
    long long total = 0;             ///< how many lines the job's log holds in all
};

/// Jobs that finished in one minute (queue::metrics).
struct minute_counts {
    std::chrono::system_clock::time_point minute;  ///< the minute's start (server clock)
    /// Jobs that completed in that minute, of those still kept.
    long long completed = 0;
    /// Jobs that failed for good in that minute, of those still kept.
    long long failed = 0;
};

/// What a flow child's final failure does to its parent (flow_job::on_failure).
enum class on_child_failure {
    fail_parent,  ///< the parent fails ("child <queue>:<id> failed: <reason>"), and so on up
    ignore,       ///< the parent runs anyway; queue::ignored_failures lists the child
};

/// One job of a flow (queue::add_flow): a parent runs once all its children finished.
struct flow_job {
    /// A job with an empty name and null data.
    flow_job() = default;
    /// A job named `job_name` with `job_data`, for the queue `queue_name` (empty: its parent's).
    flow_job(std::string job_name, nlohmann::json job_data, std::string queue_name = {})
        : name(std::move(job_name)), data(std::move(job_data)), queue(std::move(queue_name)) {}

    std::string name;     ///< the job's name (job::name())
    nlohmann::json data;  ///< stored as JSON: the job's queue decodes it into its own T
    job_options options;  ///< a parent's delay counts from when its last child finished
    /// The queue it goes to; empty: its parent's queue (for the root: the queue add_flow is
    /// called on, the only one it may name).
    std::string queue;
    /// For a child: what its final failure does to its parent.
    on_child_failure on_failure = on_child_failure::fail_parent;
    std::vector<flow_job> children;  ///< jobs that must finish before this one runs
};

/// A job added by queue::add_flow, with its children in the order given.
struct added_flow {
    std::string queue;                 ///< the name of the queue the job went to
    std::string id;                    ///< its id: generated, or job_options::job_id
    std::vector<added_flow> children;  ///< its children, in the order given
};

/// A job named by its queue and id (a flow child's parent).
struct job_ref {
    std::string queue;  ///< the queue's name
    std::string id;     ///< the job's id in that queue
};

/// A flow child that completed, as its parent reads it: its return value.
struct child_value {
    std::string queue;     ///< the child's queue name
    std::string id;        ///< the child's id
    nlohmann::json value;  ///< what its handler returned (null for a handler returning void)
};

/// A flow child whose final failure its parent ignored (or that was removed: reason "removed").
struct ignored_child {
    std::string queue;   ///< the child's queue name
    std::string id;      ///< the child's id
    std::string reason;  ///< its final failure's reason, or "removed"
};

/// Options of a queue handle.
struct queue_options {
    key_space keys;  ///< prefix of the queue's keys (default: none, keys are queue:{name}:...)
    /// add() and add_bulk() return once this many replicas also hold the jobs (WAIT, in the same
    /// write as the add script): an acknowledged job then survives a failover (Sentinel, Cluster)
    /// that promotes one of them. 0 (the default): acknowledged by the primary alone.
    int replicas = 0;
    /// How long add() waits for those replicas; past it, add() throws error(errc::timeout) -- the
    /// job was added on the primary and may still run, but is not known to be replicated.
    std::chrono::milliseconds replica_timeout{1000};
};

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/queue/impl/types.ipp>
#endif
