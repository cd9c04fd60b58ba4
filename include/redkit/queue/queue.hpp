// SPDX-License-Identifier: MIT
// redkit::queue<T>: the handle that adds jobs and manages a queue (counts, get_job, pause and
// resume, retry, remove, drain, obliterate, the stalled-job check, flows, job schedulers, the
// rate limit). Each call is one script (upsert_scheduler also reads the server's clock first).
#pragma once

#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/config.hpp>
#include <redkit/future.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/detail/model.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/detail/schedule.hpp>
#include <redkit/queue/job.hpp>
#include <redkit/queue/types.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// One page of jobs in a state (queue::jobs), and how many jobs are in that state.
template <class T>
struct job_page {
    std::vector<job<T>> jobs;  ///< the page, in the order asked for (newest or oldest first)
    long long total = 0;       ///< how many jobs are in the state in all, not only on this page
};

namespace detail {

// What queue<T> does that does not depend on T, compiled once (queue/impl/queue.ipp), on the
// handle's shared state: queue_X is the member X (queue_jobs: jobs, queue_get_rate_limit:
// rate_limit), with its checks and messages.
REDKIT_DECL std::shared_ptr<queue_core> make_queue_core(client c, std::string name, const queue_options& options);
/// The add script (and WAIT when replicas are asked for) with its ARGV: the job prefix, the
/// number of jobs and add_script_fields per job.
REDKIT_DECL std::vector<added_job> queue_run_add(const queue_core& core, const std::vector<std::string>& args);
/// queue::add once the options are checked and the data encoded.
REDKIT_DECL added_job queue_add(const queue_core& core, std::string_view name, std::string data,
                                const job_options& options);
/// queue::async_add once the options are checked and the data encoded.
REDKIT_DECL future<added_job> queue_async_add(const queue_core& core, std::string_view name, std::string data,
                                              const job_options& options);
REDKIT_DECL added_flow queue_add_flow(const queue_core& core, const flow_job& root);
REDKIT_DECL std::optional<job_record> queue_get_job(const queue_core& core, std::string_view id);
REDKIT_DECL job_counts queue_counts(const queue_core& core);
REDKIT_DECL void queue_pause(const queue_core& core, bool paused);
REDKIT_DECL bool queue_is_paused(const queue_core& core);
REDKIT_DECL long long queue_workers(const queue_core& core);
REDKIT_DECL bool queue_retry(const queue_core& core, std::string_view id);
REDKIT_DECL std::size_t queue_retry_failed(const queue_core& core);
REDKIT_DECL remove_result queue_remove(const queue_core& core, std::string_view id);
REDKIT_DECL cancel_result queue_cancel(const queue_core& core, std::string_view id, std::string_view reason,
                                       after_cancel then);
REDKIT_DECL std::size_t queue_drain(const queue_core& core, bool include_delayed);
REDKIT_DECL std::size_t queue_clean(const queue_core& core, job_state state, std::chrono::milliseconds grace);
REDKIT_DECL bool queue_obliterate(const queue_core& core, bool force);
REDKIT_DECL stalled_jobs queue_check_stalled(const queue_core& core, int max_stalled_count);
/// queue::jobs: the page's records into `out`; returns how many jobs are in the state.
REDKIT_DECL long long queue_jobs(const queue_core& core, job_state state, std::size_t offset, std::size_t count,
                                 bool newest_first, std::vector<job_record>& out);
REDKIT_DECL long long queue_group_jobs(const queue_core& core, std::string_view group, std::size_t offset,
                                       std::size_t count, bool newest_first, std::vector<job_record>& out);
REDKIT_DECL group_page queue_groups(const queue_core& core, std::size_t offset, std::size_t count);
REDKIT_DECL std::optional<group_info> queue_group(const queue_core& core, std::string_view group);
REDKIT_DECL void queue_pause_group(const queue_core& core, std::string_view group, bool paused);
REDKIT_DECL void queue_set_group_concurrency(const queue_core& core, std::string_view group, long long n);
REDKIT_DECL void queue_set_group_rate_limit(const queue_core& core, long long max, std::chrono::milliseconds per);
REDKIT_DECL void queue_remove_group_rate_limit(const queue_core& core);
REDKIT_DECL bool queue_add_log(const queue_core& core, std::string_view id, std::string_view line, std::size_t keep);
REDKIT_DECL job_logs queue_logs(const queue_core& core, std::string_view id, std::size_t offset, std::size_t count);
REDKIT_DECL std::vector<minute_counts> queue_metrics(const queue_core& core, std::chrono::minutes span);
REDKIT_DECL void queue_set_events(const queue_core& core, std::size_t max_len);
REDKIT_DECL bool queue_events_enabled(const queue_core& core);
/// upsert_scheduler's checks, made before the data is encoded; returns the schedule parsed.
REDKIT_DECL schedule queue_check_scheduler(std::string_view id, const scheduler_options& when,
                                           const job_options& options);
/// upsert_scheduler once checked and the data encoded.
REDKIT_DECL std::chrono::system_clock::time_point queue_upsert_scheduler(const queue_core& core, std::string_view id,
                                                                         schedule s, std::string_view job_name,
                                                                         std::string data, const job_options& options);
REDKIT_DECL bool queue_remove_scheduler(const queue_core& core, std::string_view id);
REDKIT_DECL std::optional<scheduler_info> queue_get_scheduler(const queue_core& core, std::string_view id);
REDKIT_DECL std::vector<scheduler_info> queue_schedulers(const queue_core& core, std::size_t offset, std::size_t count);
REDKIT_DECL void queue_set_rate_limit(const queue_core& core, long long max, std::chrono::milliseconds per);
REDKIT_DECL void queue_remove_rate_limit(const queue_core& core);
REDKIT_DECL std::optional<queue_rate_limit> queue_get_rate_limit(const queue_core& core);
REDKIT_DECL std::chrono::milliseconds queue_rate_limit_wait(const queue_core& core);

}  // namespace detail

/// A queue of jobs whose data is T (JSON through codec<T>). A cheap handle; copies share it.
///
/// @code
/// redkit::queue<welcome_mail> mails(redis, "welcome-mail");
/// redkit::job_options o;
/// o.attempts = 3;
/// o.backoff = redkit::backoff_policy::exponential(2s);
/// mails.add("welcome", welcome_mail{"ada@example.com"}, o);
/// @endcode
template <class T = nlohmann::json>
class queue {
public:
    /// Throws std::invalid_argument when the name is empty.
    queue(client c, std::string name, queue_options options = {})
        : core_(detail::make_queue_core(std::move(c), std::move(name), options)) {}

    /// The queue's name as given (its keys are queue:{name}:..., after the key space's prefix).
    const std::string& name() const noexcept { return core_->name; }

    /// Adds a job: one script round trip (HSET of the job, then LPUSH / ZADD into its line, ZADD
    /// of the marker that wakes a worker), atomic. With options.deduplication.id set and that key
    /// held (see deduplication_options), nothing is added: the result names the holder, with
    /// outcome deduplicated, or debounced when the add updated the delayed holder (HSET, ZADD,
    /// PEXPIRE in the same script); else the add takes the key (SET, with PX for a TTL). With
    /// options.job_id set and a job of that id present (in any state), nothing changes and the
    /// outcome is exists. created is true only for add_outcome::created. Throws
    /// std::invalid_argument for invalid options (naming the field) or data that does not encode,
    /// error on failure.
    added_job add(std::string_view name, const T& data, const job_options& options = {}) {
        detail::validate_job_options(options);
        added_job a = detail::queue_add(*core_, name, redkit::encode(data), options);
        if (a.created) detail::observe_added(core_->redis.options().observer.get(), core_->name, a.id, name);
        return a;
    }

    /// add() without waiting: the redkit::future holds the added_job (get(), then(), co_await;
    /// redkit::async_get for Asio). The same one script, sent as client::submit() sends a command
    /// (the shared connection, never retried). Throws std::invalid_argument at once, sending
    /// nothing, where add() would, and when the queue waits for replicas (queue_options::replicas:
    /// WAIT would hold up the shared connection; use add()).
    future<added_job> async_add(std::string_view name, const T& data, const job_options& options = {}) {
        detail::validate_job_options(options);
        return detail::queue_async_add(*core_, name, redkit::encode(data), options);
    }

    /// Adds many jobs: one script per 1000 jobs (each call atomic), results in input order, each
    /// as add() would give it (a job sees the deduplication keys and ids of the jobs before it in
    /// the same call). Validates every job's options before sending anything.
    std::vector<added_job> add_bulk(const std::vector<bulk_job<T>>& jobs) {
        for (const auto& j : jobs) detail::validate_job_options(j.options);
        std::vector<added_job> out;
        out.reserve(jobs.size());
        constexpr std::size_t chunk = 1000;
        std::vector<std::string> args;
        const std::string trace_context = detail::job_trace_context(*core_);
        observer* const to = core_->redis.options().observer.get();
        for (std::size_t first = 0; first < jobs.size(); first += chunk) {
            const std::size_t n = std::min(chunk, jobs.size() - first);
            args.clear();
            args.reserve(2 + n * detail::add_script_fields);
            args.push_back(core_->job_prefix);
            args.push_back(std::to_string(n));
            for (std::size_t i = first; i < first + n; ++i) {
                detail::push_add_fields(args, jobs[i].name, redkit::encode(jobs[i].data), jobs[i].options);
                detail::push_add_only_fields(args, jobs[i].options, trace_context);
            }
            for (auto& a : detail::queue_run_add(*core_, args)) out.push_back(std::move(a));
            for (std::size_t i = first; i < first + n; ++i) {
                if (out[i].created) detail::observe_added(to, core_->name, out[i].id, jobs[i].name);
            }
        }
        return out;
    }

    /// Adds a flow: a tree of jobs where each parent runs only once all its children finished,
    /// and reads their return values (job::children_values). A child's final failure fails its
    /// parent (and so on up) or is ignored, as its on_failure says. Children may go to other
    /// queues (flow_job::queue, same key space as this handle); the root goes to this queue.
    /// One script: all jobs or none. Parents wait in state waiting_children; a parent's delay
    /// and priority apply once it is let go. Throws std::invalid_argument, nothing written, for
    /// invalid options, a root naming another queue, a custom job id that appears twice in the
    /// tree (a cycle or a duplicate), job_options::deduplication anywhere (flows do not take it),
    /// or, on Redis Cluster, queues in different slots (a flow's
    /// steps are atomic scripts: its queues must be on one server); error when a custom id
    /// exists already (nothing written).
    added_flow add_flow(const flow_job& root) { return detail::queue_add_flow(*core_, root); }

    /// A flow parent's completed children and their return values, sorted by queue and id (those
    /// that finished so far). One HGETALL. (In its handler, job::children_values.)
    std::vector<child_value> children_values(std::string_view id) const {
        return detail::read_child_values(
            detail::children_hash(*core_, escape_key_part(id), detail::queue_model::results));
    }

    /// A flow parent's children whose final failure it ignored, or that were removed. One HGETALL.
    std::vector<ignored_child> ignored_failures(std::string_view id) const {
        return detail::read_ignored_children(
            detail::children_hash(*core_, escape_key_part(id), detail::queue_model::ignored));
    }

    /// The job with this id, or nullopt: one script, a consistent snapshot (HGETALL of the job; for
    /// a waiting or active job also a ZSCAN of the active zset for its lease: O(active jobs)). Data
    /// that does not decode is reported by job::data() (has_data() is false), not thrown here.
    std::optional<job<T>> get_job(std::string_view id) const {
        std::optional<detail::job_record> rec = detail::queue_get_job(*core_, id);
        if (!rec) return std::nullopt;
        return job<T>(std::move(*rec));
    }

    /// Jobs per state (flow parents waiting for children included): one script (LLEN,
    /// ZCARD...), a consistent snapshot.
    job_counts counts() const { return detail::queue_counts(*core_); }

    /// Stops workers from taking jobs (running ones finish); adding still works. One script.
    void pause() { detail::queue_pause(*core_, true); }
    /// Lets workers take jobs again and wakes one. One script.
    void resume() { detail::queue_pause(*core_, false); }
    /// One HEXISTS.
    bool is_paused() const { return detail::queue_is_paused(*core_); }

    /// The workers of this queue alive now, in every process: each counts from its start until it
    /// closes; one whose process died counts until three of its stalled_intervals have passed
    /// since its last stalled-job check. One script.
    std::size_t workers() const { return static_cast<std::size_t>(detail::queue_workers(*core_)); }

    /// Moves a failed job back in line with a fresh set of attempts (its trace is kept). Returns
    /// false when no failed job has this id. One script.
    bool retry(std::string_view id) { return detail::queue_retry(*core_, id); }

    /// Moves every failed job back in line (one script per 1000). Returns how many.
    std::size_t retry_failed() { return detail::queue_retry_failed(*core_); }

    /// Removes a job and its data. An active (leased) job is not removed (remove_result::active).
    /// Releases the job's deduplication key in simple mode (one with a TTL runs out). One script;
    /// O(waiting) for a waiting job (LREM).
    remove_result remove(std::string_view id) { return detail::queue_remove(*core_, id); }

    /// Cancels a running job, from any process: the worker running it learns within one lease
    /// renewal (worker_options::lease_renew_interval) and raises the job's cancel_token
    /// (job::cancellation()); once the handler returns, the attempt fails with the reason
    /// "cancelled: <reason>", and the job fails for good (after_cancel::fail) or is retried while
    /// attempts remain (after_cancel::retry). If that worker is gone, the stalled-job check fails
    /// the job instead of running it again (or, after_cancel::retry, puts it back in line). A job
    /// in line, delayed or finished is left alone (cancel_result::not_running; remove() takes one
    /// out of line). One script round trip. Throws std::invalid_argument for a reason over 1024
    /// bytes.
    cancel_result cancel(std::string_view id, std::string_view reason = "by request",
                         after_cancel then = after_cancel::fail) {
        return detail::queue_cancel(*core_, id, reason, then);
    }

    /// Removes every waiting and prioritized job (and delayed ones too when asked); active,
    /// completed and failed jobs stay. One script per 1000 jobs. Returns how many were removed.
    std::size_t drain(bool include_delayed = false) { return detail::queue_drain(*core_, include_delayed); }

    /// Removes completed (or failed) jobs that finished at least `grace` ago, oldest first; other
    /// states throw std::invalid_argument. One script per 1000 jobs. Returns how many.
    std::size_t clean(job_state state, std::chrono::milliseconds grace = std::chrono::milliseconds(0)) {
        return detail::queue_clean(*core_, state, grace);
    }

    /// Deletes the queue: every job and every key. Refuses (returns false, nothing deleted) while
    /// jobs are active unless force is true (their workers then lose their leases). Pauses the
    /// queue first; one script per 1000 jobs, so jobs added meanwhile by others may survive.
    /// Deduplication keys with a TTL (throttle, debounce) are not deleted: they expire.
    bool obliterate(bool force = false) { return detail::queue_obliterate(*core_, force); }

    /// Runs the stalled-job check now (workers run it every worker_options::stalled_interval):
    /// active jobs whose lease expired go back in line, or fail when they stalled more than
    /// max_stalled_count times. One script per call (at most 1000 jobs).
    stalled_jobs check_stalled(int max_stalled_count = 1) {
        return detail::queue_check_stalled(*core_, max_stalled_count);
    }

    // ---- inspection ----

    /// A page of the jobs in `state` (waiting includes paused jobs, not grouped ones: a group's
    /// line is group_jobs()), newest first by default;
    /// oldest first is the order the queue handles them (next to run, soonest due, soonest lease
    /// deadline, first finished, first to wait for children). One script: O(count) (plus
    /// O(offset) for waiting jobs). Throws std::invalid_argument for job_state::unknown or count
    /// above 1000.
    job_page<T> jobs(job_state state, std::size_t offset = 0, std::size_t count = 50, bool newest_first = true) const {
        std::vector<detail::job_record> records;
        job_page<T> page;
        page.total = detail::queue_jobs(*core_, state, offset, count, newest_first, records);
        for (auto& rec : records) page.jobs.push_back(job<T>(std::move(rec)));
        return page;
    }

    /// A page of group `group`'s line (job_options::group), newest first by default; oldest first
    /// is the order the group's jobs run in. One script: O(offset + count). Throws
    /// std::invalid_argument for an empty group or count above 1000.
    job_page<T> group_jobs(std::string_view group, std::size_t offset = 0, std::size_t count = 50,
                           bool newest_first = true) const {
        std::vector<detail::job_record> records;
        job_page<T> page;
        page.total = detail::queue_group_jobs(*core_, group, offset, count, newest_first, records);
        for (auto& rec : records) page.jobs.push_back(job<T>(std::move(rec)));
        return page;
    }

    /// Adds a line to a job's log (kept with the job; at most `keep` lines, the oldest dropped).
    /// Returns false when no job has this id. One script. (In a handler, job::log.)
    bool add_log(std::string_view id, std::string_view line, std::size_t keep = 1000) {
        return detail::queue_add_log(*core_, id, line, keep);
    }

    /// A job's log lines from `offset` (oldest first), and how many it has. One script.
    job_logs logs(std::string_view id, std::size_t offset = 0, std::size_t count = 100) const {
        return detail::queue_logs(*core_, id, offset, count);
    }

    /// Jobs completed and failed per minute over the last `span` minutes (the current one
    /// included), oldest first, counted from the finish times of the completed and failed sets:
    /// jobs already removed by retention (remove_on_complete / remove_on_fail) are not counted.
    /// One script of 2 x span ZCOUNTs. Throws std::invalid_argument unless span is in [1, 1440].
    std::vector<minute_counts> metrics(std::chrono::minutes span = std::chrono::minutes(60)) const {
        return detail::queue_metrics(*core_, span);
    }

    // ---- events ----

    /// Turns the queue's events on: from now on its scripts append every change of a job
    /// (added, active, progress, completed, retried, failed, stalled, removed) to the stream
    /// "queue:{name}:events", capped at about `max_len` entries, which queue_events reads from any
    /// process. 0 turns them off (the stream stays). Off by default: each event is an XADD in
    /// the script that makes the change (two per job that runs: active and completed). One script.
    void set_events(std::size_t max_len) { detail::queue_set_events(*core_, max_len); }

    /// Whether events are on. One HEXISTS.
    bool events_enabled() const { return detail::queue_events_enabled(*core_); }

    // ---- job schedulers (repeatable jobs) ----

    /// Creates or updates the scheduler `id`: it makes a job named `job_name` with `data` and
    /// `options` at each tick of `schedule` (a cron pattern in a time zone, or a fixed interval).
    /// Exactly one job per tick, however many workers and processes run: the job of the next
    /// tick is made when a worker takes the job of the current one (one script), so with a
    /// worker up none is skipped; ticks missed while every worker was down (or busy past the
    /// next tick) give one job, due at once, not one per tick. Calling it again with the same
    /// schedule changes only the job template (every process may call it at start-up); a new
    /// schedule replaces the pending job (if it has not started) with the first tick of the new
    /// one. Job ids are "repeat:<id>:<tick ms>". Throws std::invalid_argument for an empty id, an
    /// invalid schedule (naming the field), an invalid or unknown cron pattern or time zone, job
    /// options with delay or job_id (the scheduler sets those) or with deduplication (one job per
    /// tick is the scheduler's own deduplication); nothing is written then.
    /// Returns when the scheduler's pending job is due. One TIME, then one script.
    std::chrono::system_clock::time_point upsert_scheduler(std::string_view id, const scheduler_options& schedule,
                                                           std::string_view job_name, const T& data,
                                                           const job_options& options = {}) {
        detail::schedule s = detail::queue_check_scheduler(id, schedule, options);
        return detail::queue_upsert_scheduler(*core_, id, std::move(s), job_name, redkit::encode(data), options);
    }

    /// Removes a scheduler and its pending job if that has not started. Returns false when there
    /// was none. One script.
    bool remove_scheduler(std::string_view id) { return detail::queue_remove_scheduler(*core_, id); }

    /// The scheduler `id`, or nullopt. One script.
    std::optional<scheduler_info> get_scheduler(std::string_view id) const {
        return detail::queue_get_scheduler(*core_, id);
    }

    /// Up to `count` schedulers from `offset`, soonest next run first. One script.
    std::vector<scheduler_info> schedulers(std::size_t offset = 0, std::size_t count = 100) const {
        return detail::queue_schedulers(*core_, offset, count);
    }

    // ---- groups (job_options::group) ----
    /// A page of the queue's groups by name (those with jobs in line or running, paused, or with
    /// their own concurrency), with the settings every group shares. One script: O(count).
    /// Throws std::invalid_argument for count above 1000.
    group_page groups(std::size_t offset = 0, std::size_t count = 100) const {
        return detail::queue_groups(*core_, offset, count);
    }
    /// One group, or nullopt when it is not listed (see groups()). One script.
    std::optional<group_info> group(std::string_view name) const { return detail::queue_group(*core_, name); }
    /// Stops workers from starting the group's jobs (its running ones finish; adding still
    /// works); the other groups go on. Throws std::invalid_argument for an empty group. One script.
    void pause_group(std::string_view name) { detail::queue_pause_group(*core_, name, true); }
    /// Lets the group's jobs start again, in their turn. One script.
    void resume_group(std::string_view name) { detail::queue_pause_group(*core_, name, false); }
    /// At most `n` jobs of any one group active at once, across every worker and process (0: no
    /// limit): checked by the take script, on the server's count of each group's leases. A
    /// group's own limit (the overload with a group) wins over this default. One script, O(groups).
    void set_group_concurrency(long long n) { detail::queue_set_group_concurrency(*core_, {}, n); }
    /// Group `name`'s own concurrency limit (0: back to the default). One script.
    void set_group_concurrency(std::string_view name, long long n) {
        if (name.empty()) throw std::invalid_argument("redkit: queue::set_group_concurrency: group must not be empty");
        detail::queue_set_group_concurrency(*core_, name, n);
    }
    /// Lets at most `max` jobs of each group start in any window of `per` (a sliding log of each
    /// group's starts, as set_rate_limit keeps for the queue); a group at its limit sits out of
    /// the rotation until a start leaves its window. Throws std::invalid_argument unless max is
    /// in [1, 100000] and per in [1 ms, 24 h]. One script, O(groups).
    void set_group_rate_limit(long long max, std::chrono::milliseconds per) {
        detail::queue_set_group_rate_limit(*core_, max, per);
    }
    /// Removes the per-group rate limit. One script, O(groups).
    void remove_group_rate_limit() { detail::queue_remove_group_rate_limit(*core_); }

    // ---- rate limit ----

    /// Lets at most `max` jobs of this queue start in any window of `per`, across every worker
    /// and process (a sliding log of start times: exact, one zset entry per start within the
    /// window). Workers that hit it wait until a start leaves the window. Throws
    /// std::invalid_argument unless max is in [1, 100000] and per in [1 ms, 24 h]. One script.
    void set_rate_limit(long long max, std::chrono::milliseconds per) {
        detail::queue_set_rate_limit(*core_, max, per);
    }

    /// Removes the rate limit, and any hold a handler's rate_limited_error put on the queue. One script.
    void remove_rate_limit() { detail::queue_remove_rate_limit(*core_); }

    /// The rate limit, or nullopt when none. One script.
    std::optional<queue_rate_limit> rate_limit() const { return detail::queue_get_rate_limit(*core_); }

    /// How long until a worker may start a job under the rate limit and any handler's hold (0:
    /// now). One script.
    std::chrono::milliseconds rate_limit_wait() const { return detail::queue_rate_limit_wait(*core_); }

private:
    template <class>
    friend class worker;

    std::shared_ptr<detail::queue_core> core_;
};

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/queue/impl/queue.ipp>
#endif
