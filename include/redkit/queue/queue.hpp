// SPDX-License-Identifier: MIT
// redkit::queue<T>: the handle that adds jobs and manages a queue (counts, get_job, pause and
// resume, retry, remove, drain, obliterate, the stalled-job check, flows, job schedulers, the
// rate limit). Each call is one script (upsert_scheduler also reads the server's clock first).
#pragma once

#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/key.hpp>
#include <redkit/pipeline.hpp>
#include <redkit/queue/detail/lua.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/detail/schedule.hpp>
#include <redkit/queue/job.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// One page of jobs in a state (queue::jobs), and how many jobs are in that state.
template <class T>
struct job_page {
    std::vector<job<T>> jobs;
    long long total = 0;
};

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
        : core_(std::make_shared<detail::queue_core>(std::move(c), std::move(name), options.keys)) {
        if (options.replicas < 0) throw std::invalid_argument("redkit: queue_options.replicas must not be negative");
        if (options.replica_timeout.count() < 0) {
            throw std::invalid_argument("redkit: queue_options.replica_timeout must not be negative");
        }
        core_->replicas = options.replicas;
        core_->replica_timeout = options.replica_timeout;
    }

    const std::string& name() const noexcept { return core_->name; }

    /// Adds a job: one script round trip (HSET of the job, then LPUSH / ZADD into its line, ZADD
    /// of the marker that wakes a worker), atomic. With options.job_id set and a job of that id
    /// present (in any state), nothing changes and created is false. Throws std::invalid_argument
    /// for invalid options (naming the field) or data that does not encode, error on failure.
    added_job add(std::string_view name, const T& data, const job_options& options = {}) {
        detail::validate_job_options(options);
        std::vector<std::string> args{core_->job_prefix, "1"};
        args.reserve(15);
        detail::push_add_fields(args, name, redkit::encode(data), options);
        auto r = run_add(args);
        return std::move(r.front());
    }

    /// Adds many jobs: one script per 1000 jobs (each call atomic), ids in input order. Validates
    /// every job's options before sending anything.
    std::vector<added_job> add_bulk(const std::vector<bulk_job<T>>& jobs) {
        for (const auto& j : jobs) detail::validate_job_options(j.options);
        std::vector<added_job> out;
        out.reserve(jobs.size());
        constexpr std::size_t chunk = 1000;
        std::vector<std::string> args;
        for (std::size_t first = 0; first < jobs.size(); first += chunk) {
            const std::size_t n = std::min(chunk, jobs.size() - first);
            args.clear();
            args.reserve(2 + n * 13);
            args.push_back(core_->job_prefix);
            args.push_back(std::to_string(n));
            for (std::size_t i = first; i < first + n; ++i) {
                detail::push_add_fields(args, jobs[i].name, redkit::encode(jobs[i].data), jobs[i].options);
            }
            for (auto& a : run_add(args)) out.push_back(std::move(a));
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
    /// tree (a cycle or a duplicate), or, on Redis Cluster, queues in different slots (a flow's
    /// steps are atomic scripts: its queues must be on one server); error when a custom id
    /// exists already (nothing written).
    added_flow add_flow(const flow_job& root) {
        if (!root.queue.empty() && root.queue != core_->name) {
            throw std::invalid_argument("redkit: add_flow: the root job goes to this queue (" + core_->name +
                                        "), not to '" + root.queue + "'");
        }
        struct node {
            const flow_job* job;
            std::string queue;
            std::size_t parent;  // 1-based index, 0 for the root
            std::vector<std::size_t> children;
        };
        std::vector<node> nodes{{&root, core_->name, 0, {}}};
        for (std::size_t i = 0; i < nodes.size(); ++i) {  // breadth first: parents before children
            if (nodes.size() > 100000) throw std::invalid_argument("redkit: add_flow: at most 100000 jobs per flow");
            for (const auto& c : nodes[i].job->children) {
                nodes[i].children.push_back(nodes.size());
                nodes.push_back({&c, c.queue.empty() ? nodes[i].queue : c.queue, i + 1, {}});
            }
        }
        std::set<std::pair<std::string, std::string>> custom;
        std::vector<std::string> bases;
        for (const auto& n : nodes) {
            detail::validate_job_options(n.job->options);
            const std::string& id = n.job->options.job_id;
            if (!id.empty()) {
                if (!custom.emplace(n.queue, id).second) {
                    throw std::invalid_argument("redkit: add_flow: job '" + id + "' of queue " + n.queue +
                                                " appears twice in the flow (a cycle or a duplicate)");
                }
            }
            bases.push_back(core_->space.key("queue", hash_tag(n.queue), "job"));
            bases.back().resize(bases.back().size() - 3);  // "<prefix>queue:{name}:"
            if (core_->redis.is_cluster() && key_slot(bases.back()) != key_slot(bases.front())) {
                throw std::invalid_argument(
                    "redkit: add_flow: on Redis Cluster a flow's queues must share a slot: " + n.queue + " and " +
                    core_->name + " do not (use one queue, or a single server or Sentinel)");
            }
        }
        std::vector<std::string> args{core_->job_prefix, std::to_string(nodes.size())};
        args.reserve(2 + nodes.size() * 18);
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            const node& n = nodes[i];
            args.push_back(bases[i]);
            args.push_back(std::to_string(n.parent));
            args.emplace_back(n.job->on_failure == on_child_failure::ignore ? "i" : "f");
            args.push_back(n.queue);
            args.push_back(std::to_string(n.children.size()));
            detail::push_add_fields(args, n.job->name, n.job->data.dump(), n.job->options);
        }
        // not idempotent: a resend after a lost reply would add a second flow (or fail on custom ids)
        const auto ids = core_->redis.template eval<std::vector<std::string>>(extras_lua<detail::queue_lua::add_flow>(),
                                                                              core_->keys, args);
        if (ids.size() != nodes.size()) throw error(errc::type_mismatch, core_->what() + "add_flow: unexpected reply");
        const auto build = [&](const auto& self, std::size_t i) -> added_flow {
            added_flow out{nodes[i].queue, unescape_key_part(ids[i]), {}};
            for (std::size_t c : nodes[i].children) out.children.push_back(self(self, c));
            return out;
        };
        return build(build, 0);
    }

    /// A flow parent's completed children and their return values, sorted by queue and id (those
    /// that finished so far). One HGETALL. (In its handler, job::children_values.)
    std::vector<child_value> children_values(std::string_view id) const {
        return detail::read_child_values(detail::children_hash(*core_, escape_key_part(id), ":results"));
    }

    /// A flow parent's children whose final failure it ignored, or that were removed. One HGETALL.
    std::vector<ignored_child> ignored_failures(std::string_view id) const {
        return detail::read_ignored_children(detail::children_hash(*core_, escape_key_part(id), ":ignored"));
    }

    /// The job with this id, or nullopt: one script, a consistent snapshot (HGETALL of the job; for
    /// a waiting or active job also a ZSCAN of the active zset for its lease: O(active jobs)). Data
    /// that does not decode is reported by job::data() (has_data() is false), not thrown here.
    std::optional<job<T>> get_job(std::string_view id) const {
        const std::string stored = escape_key_part(id);
        const auto r = eval_again<std::vector<reply>>(lua<detail::queue_lua::get>(), {stored});
        if (r.size() != 2 || r[0].size() == 0) return std::nullopt;
        detail::job_record rec;
        rec.id = stored;
        detail::read_fields(r[0], rec);
        if (!r[1].is_nil()) {
            rec.state = 'a';
            rec.lease = r[1].text();
            rec.processed = detail::job_field_int(rec.lease.substr(0, rec.lease.find('|')));
        }
        return job<T>(std::move(rec));
    }

    /// Jobs per state (flow parents waiting for children included): one script (LLEN,
    /// ZCARD...), a consistent snapshot.
    job_counts counts() const {
        const auto v = eval_again<std::vector<long long>>(lua<detail::queue_lua::counts>(), {});
        return {v.at(0), v.at(1), v.at(2), v.at(3), v.at(4), v.at(5), v.at(6), v.at(7)};
    }

    /// Stops workers from taking jobs (running ones finish); adding still works. One script.
    void pause() { eval_again<long long>(lua<detail::queue_lua::pause>(), {"1"}); }
    /// Lets workers take jobs again and wakes one. One script.
    void resume() { eval_again<long long>(lua<detail::queue_lua::pause>(), {"0"}); }
    /// One HEXISTS.
    bool is_paused() const {
        return core_->redis.template command<long long>(idempotent, "HEXISTS", core_->key(detail::queue_key::meta),
                                                        "paused") == 1;
    }

    /// Moves a failed job back in line with a fresh set of attempts (its trace is kept). Returns
    /// false when no failed job has this id. One script.
    bool retry(std::string_view id) {
        return eval_again<long long>(extras_lua<detail::queue_lua::retry>(), {escape_key_part(id), "0"}) == 1;
    }

    /// Moves every failed job back in line (one script per 1000). Returns how many.
    std::size_t retry_failed() {
        std::size_t total = 0;
        for (;;) {
            const auto n = eval<long long>(extras_lua<detail::queue_lua::retry>(), {"", "1000"});
            total += static_cast<std::size_t>(n);
            if (n < 1000) return total;
        }
    }

    /// Removes a job and its data. An active (leased) job is not removed (remove_result::active).
    /// One script; O(waiting) for a waiting job (LREM).
    remove_result remove(std::string_view id) {
        const auto r = eval_again<long long>(extras_lua<detail::queue_lua::remove>(), {escape_key_part(id)});
        return r == 1 ? remove_result::removed : r == 0 ? remove_result::not_found : remove_result::active;
    }

    /// Removes every waiting and prioritized job (and delayed ones too when asked); active,
    /// completed and failed jobs stay. One script per 1000 jobs. Returns how many were removed.
    std::size_t drain(bool include_delayed = false) {
        std::size_t total = 0;
        for (;;) {
            const auto n = eval<long long>(lua<detail::queue_lua::drain>(), {include_delayed ? "1" : "0", "1000"});
            total += static_cast<std::size_t>(n);
            if (n < 1000) return total;
        }
    }

    /// Removes completed (or failed) jobs that finished at least `grace` ago, oldest first; other
    /// states throw std::invalid_argument. One script per 1000 jobs. Returns how many.
    std::size_t clean(job_state state, std::chrono::milliseconds grace = std::chrono::milliseconds(0)) {
        if (state != job_state::completed && state != job_state::failed)
            throw std::invalid_argument("redkit: queue::clean: state must be completed or failed");
        if (grace.count() < 0) throw std::invalid_argument("redkit: queue::clean: grace must not be negative");
        const std::string which = state == job_state::completed ? "c" : "f";
        std::size_t total = 0;
        for (;;) {
            const auto n =
                eval<long long>(extras_lua<detail::queue_lua::clean>(), {which, std::to_string(grace.count()), "1000"});
            total += static_cast<std::size_t>(n);
            if (n < 1000) return total;
        }
    }

    /// Deletes the queue: every job and every key. Refuses (returns false, nothing deleted) while
    /// jobs are active unless force is true (their workers then lose their leases). Pauses the
    /// queue first; one script per 1000 jobs, so jobs added meanwhile by others may survive.
    bool obliterate(bool force = false) {
        for (;;) {
            const auto r = eval_again<std::vector<long long>>(extras_lua<detail::queue_lua::obliterate>(),
                                                              {force ? "1" : "0", "1000"});
            if (r.at(0) < 0) return false;
            if (r.at(1) == 1) return true;
        }
    }

    /// Runs the stalled-job check now (workers run it every worker_options::stalled_interval):
    /// active jobs whose lease expired go back in line, or fail when they stalled more than
    /// max_stalled_count times. One script per call (at most 1000 jobs).
    stalled_jobs check_stalled(int max_stalled_count = 1) {
        if (max_stalled_count < 0)
            throw std::invalid_argument("redkit: check_stalled: max_stalled_count must not be negative");
        using ids = std::vector<std::vector<std::string>>;
        return detail::parse_stalled(eval_again<ids>(extras_lua<detail::queue_lua::stalled>(),
                                                     {"0", std::to_string(max_stalled_count), "1000"}));
    }

    // ---- inspection ----

    /// A page of the jobs in `state` (waiting includes paused jobs), newest first by default;
    /// oldest first is the order the queue handles them (next to run, soonest due, soonest lease
    /// deadline, first finished, first to wait for children). One script: O(count) (plus
    /// O(offset) for waiting jobs). Throws std::invalid_argument for job_state::unknown or count
    /// above 1000.
    job_page<T> jobs(job_state state, std::size_t offset = 0, std::size_t count = 50, bool newest_first = true) const {
        static constexpr char letters[] = {'w', 'p', 'd', 'a', 'c', 'f', 'x'};
        const auto index = static_cast<std::size_t>(state);
        if (index >= sizeof letters) throw std::invalid_argument("redkit: queue::jobs: state must be a real state");
        if (count > 1000) throw std::invalid_argument("redkit: queue::jobs: count must be at most 1000");
        job_page<T> page;
        if (count == 0) return page;
        const auto r = eval_again<reply>(
            lua<detail::queue_lua::list>(),
            {std::string(1, letters[index]), std::to_string(offset), std::to_string(count), newest_first ? "1" : "0"});
        page.total = r[0].integer();
        const reply& items = r[1];
        for (std::size_t i = 0; i + 2 < items.size(); i += 3) {
            detail::job_record rec;
            rec.id = items[i].text();
            detail::read_fields(items[i + 1], rec);
            if (rec.state == 0) continue;  // removed between the listing and the read
            if (state == job_state::active) {
                rec.state = 'a';
                rec.lease = items[i + 2].text();
                rec.processed = detail::job_field_int(rec.lease.substr(0, rec.lease.find('|')));
            }
            page.jobs.push_back(job<T>(std::move(rec)));
        }
        return page;
    }

    /// Adds a line to a job's log (kept with the job; at most `keep` lines, the oldest dropped).
    /// Returns false when no job has this id. One script. (In a handler, job::log.)
    bool add_log(std::string_view id, std::string_view line, std::size_t keep = 1000) {
        if (keep == 0) throw std::invalid_argument("redkit: queue::add_log: keep must be positive");
        return eval<long long>(lua<detail::queue_lua::log>(),
                               {escape_key_part(id), std::string(line), std::to_string(keep), std::string()}) >= 0;
    }

    /// A job's log lines from `offset` (oldest first), and how many it has. One script.
    job_logs logs(std::string_view id, std::size_t offset = 0, std::size_t count = 100) const {
        const auto r = eval_again<reply>(lua<detail::queue_lua::logs>(),
                                         {escape_key_part(id), std::to_string(offset), std::to_string(count)});
        job_logs out;
        out.total = r[0].integer();
        for (const auto& line : r[1].elements()) out.lines.push_back(line.text());
        return out;
    }

    /// Jobs completed and failed per minute over the last `span` minutes (the current one
    /// included), oldest first, counted from the finish times of the completed and failed sets:
    /// jobs already removed by retention (remove_on_complete / remove_on_fail) are not counted.
    /// One script of 2 x span ZCOUNTs. Throws std::invalid_argument unless span is in [1, 1440].
    std::vector<minute_counts> metrics(std::chrono::minutes span = std::chrono::minutes(60)) const {
        if (span.count() < 1 || span.count() > 1440)
            throw std::invalid_argument("redkit: queue::metrics: span must be in [1, 1440] minutes");
        const auto r =
            eval_again<std::vector<long long>>(lua<detail::queue_lua::metrics>(), {std::to_string(span.count())});
        std::vector<minute_counts> out;
        for (std::size_t i = 1; i + 1 < r.size(); i += 2) {
            out.push_back({detail::from_epoch_ms(r[0] + static_cast<long long>(i / 2) * 60000), r[i], r[i + 1]});
        }
        return out;
    }

    // ---- events ----

    /// Turns the queue's events on: from now on its scripts append every change of a job
    /// (added, active, progress, completed, retried, failed, stalled, removed) to the stream
    /// "queue:{name}:events", capped at about `max_len` entries, which queue_events reads from any
    /// process. 0 turns them off (the stream stays). Off by default: each event is an XADD in
    /// the script that makes the change (two per job that runs: active and completed). One script.
    void set_events(std::size_t max_len) {
        if (max_len > 100000000) throw std::invalid_argument("redkit: set_events: max_len must be at most 10^8");
        eval_again<long long>(extras_lua<detail::queue_lua::events>(),
                              {max_len == 0 ? std::string() : std::to_string(max_len)});
    }

    /// Whether events are on. One HEXISTS.
    bool events_enabled() const {
        return core_->redis.template command<long long>(idempotent, "HEXISTS", core_->key(detail::queue_key::meta),
                                                        "evmax") == 1;
    }

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
    /// invalid schedule (naming the field), an invalid or unknown cron pattern or time zone, or
    /// job options with delay or job_id (the scheduler sets those); nothing is written then.
    /// Returns when the scheduler's pending job is due. One TIME, then one script.
    std::chrono::system_clock::time_point upsert_scheduler(std::string_view id, const scheduler_options& schedule,
                                                           std::string_view job_name, const T& data,
                                                           const job_options& options = {}) {
        if (id.empty()) throw std::invalid_argument("redkit: upsert_scheduler: id must not be empty");
        if (id.size() > 256) throw std::invalid_argument("redkit: upsert_scheduler: id must be at most 256 bytes");
        detail::validate_job_options(options);
        if (options.delay.count() != 0 || !options.job_id.empty()) {
            throw std::invalid_argument(
                "redkit: upsert_scheduler: job_options.delay and job_id must be unset (the scheduler sets them)");
        }
        detail::schedule s(schedule);
        const std::string spec = s.spec();
        std::string payload = redkit::encode(data);
        const auto t = core_->redis.template command<std::vector<long long>>(idempotent, "TIME");
        const long long now = t.at(0) * 1000 + t.at(1) / 1000;
        const long long first = s.first_tick(now);
        std::vector<std::string> fields;
        detail::push_add_fields(fields, job_name, std::move(payload), options);
        // the 13 add fields, less custom id (0) and delay (3), are the 11 template fields
        std::vector<std::string> args{core_->job_prefix, escape_key_part(id), spec, std::to_string(s.anchor),
                                      std::to_string(first)};
        for (std::size_t i = 0; i < fields.size(); ++i) {
            if (i != 0 && i != 3) args.push_back(std::move(fields[i]));
        }
        const auto r = core_->redis.template eval<std::vector<long long>>(
            idempotent, extras_lua<detail::queue_lua::scheduler_upsert>(), core_->keys, args);
        return detail::from_epoch_ms(r.at(0));
    }

    /// Removes a scheduler and its pending job if that has not started. Returns false when there
    /// was none. One script.
    bool remove_scheduler(std::string_view id) {
        return eval_again<long long>(extras_lua<detail::queue_lua::scheduler_remove>(), {escape_key_part(id)}) == 1;
    }

    /// The scheduler `id`, or nullopt. One script.
    std::optional<scheduler_info> get_scheduler(std::string_view id) const {
        auto v = list_schedulers(escape_key_part(id), 0, 1);
        if (v.empty()) return std::nullopt;
        return std::move(v.front());
    }

    /// Up to `count` schedulers from `offset`, soonest next run first. One script.
    std::vector<scheduler_info> schedulers(std::size_t offset = 0, std::size_t count = 100) const {
        return list_schedulers(std::string(), offset, count);
    }

    // ---- rate limit ----

    /// Lets at most `max` jobs of this queue start in any window of `per`, across every worker
    /// and process (a sliding log of start times: exact, one zset entry per start within the
    /// window). Workers that hit it wait until a start leaves the window. Throws
    /// std::invalid_argument unless max is in [1, 100000] and per in [1 ms, 24 h]. One script.
    void set_rate_limit(long long max, std::chrono::milliseconds per) {
        if (max < 1 || max > 100000) throw std::invalid_argument("redkit: set_rate_limit: max must be in [1, 100000]");
        if (per.count() < 1 || per > std::chrono::hours(24))
            throw std::invalid_argument("redkit: set_rate_limit: per must be in [1 ms, 24 h]");
        eval_again<long long>(extras_lua<detail::queue_lua::limit>(),
                              {std::to_string(max), std::to_string(per.count())});
    }

    /// Removes the rate limit, and any hold a handler's rate_limited_error put on the queue. One script.
    void remove_rate_limit() { eval_again<long long>(extras_lua<detail::queue_lua::limit>(), {"", ""}); }

    /// The rate limit, or nullopt when none. One script.
    std::optional<queue_rate_limit> rate_limit() const {
        const auto r = eval_again<std::vector<reply>>(extras_lua<detail::queue_lua::limit_info>(), {});
        if (r.size() != 3 || r[0].is_nil()) return std::nullopt;
        return queue_rate_limit{detail::job_field_int(r[0].text()),
                                std::chrono::milliseconds(detail::job_field_int(r[1].text()))};
    }

    /// How long until a worker may start a job under the rate limit and any handler's hold (0:
    /// now). One script.
    std::chrono::milliseconds rate_limit_wait() const {
        const auto r = eval_again<std::vector<reply>>(extras_lua<detail::queue_lua::limit_info>(), {});
        return std::chrono::milliseconds(r.size() == 3 ? r[2].integer() : 0);
    }

private:
    template <class>
    friend class worker;

    std::vector<scheduler_info> list_schedulers(const std::string& one, std::size_t offset, std::size_t count) const {
        const auto r = eval_again<reply>(extras_lua<detail::queue_lua::scheduler_list>(),
                                         {one, std::to_string(offset), std::to_string(count)});
        std::vector<scheduler_info> out;
        for (std::size_t i = 0; i + 1 < r.size(); i += 2) out.push_back(detail::read_scheduler(r[i].text(), r[i + 1]));
        return out;
    }

    template <const std::string_view& Body>
    static const script& lua() {
        return detail::queue_script<Body>();
    }
    template <const std::string_view& Body>
    static const script& extras_lua() {
        return detail::extras_script<Body>();
    }

    template <class R>
    R eval(const script& s, std::initializer_list<std::string> extra) const {
        std::vector<std::string> args{core_->job_prefix};
        args.insert(args.end(), extra.begin(), extra.end());
        return core_->redis.template eval<R>(s, core_->keys, args);
    }

    // For scripts that read, or converge when run twice: a transport failure after sending may
    // be retried on a fresh connection (client::eval(idempotent, ...)).
    template <class R>
    R eval_again(const script& s, std::initializer_list<std::string> extra) const {
        std::vector<std::string> args{core_->job_prefix};
        args.insert(args.end(), extra.begin(), extra.end());
        return core_->redis.template eval<R>(idempotent, s, core_->keys, args);
    }

    std::vector<added_job> run_add(const std::vector<std::string>& args) {
        std::vector<reply> r;
        if (core_->replicas == 0) {
            r = core_->redis.template eval<std::vector<reply>>(extras_lua<detail::queue_lua::add>(), core_->keys, args);
        } else {
            // the script and WAIT in one write on one connection: WAIT counts that connection's writes
            pipeline p(core_->redis);
            p.eval(extras_lua<detail::queue_lua::add>(), core_->keys, args);
            p.command("WAIT", core_->replicas, core_->replica_timeout.count());
            const std::vector<reply> both = p.exec();
            r = both.at(0).as<std::vector<reply>>();
            const long long acked = both.at(1).as<long long>();
            if (acked < core_->replicas) {
                throw error(errc::timeout, core_->what() + "add: " + std::to_string(acked) + " of " +
                                               std::to_string(core_->replicas) + " replicas acknowledged within " +
                                               std::to_string(core_->replica_timeout.count()) +
                                               " ms; the job is on the primary but may be lost on a failover");
            }
        }
        std::vector<added_job> out;
        out.reserve(r.size() / 2);
        for (std::size_t i = 0; i + 1 < r.size(); i += 2) {
            out.push_back({unescape_key_part(r[i].text()), r[i + 1].integer() == 1});
        }
        return out;
    }

    std::shared_ptr<detail::queue_core> core_;
};

}  // namespace v0
}  // namespace redkit
