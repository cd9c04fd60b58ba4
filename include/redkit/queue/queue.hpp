// SPDX-License-Identifier: MIT
// redkit::queue<T>: the handle that adds jobs and manages a queue (counts, get_job, pause and
// resume, retry, remove, drain, obliterate, the stalled-job check). Each call is one script.
#pragma once

#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/key.hpp>
#include <redkit/pipeline.hpp>
#include <redkit/queue/detail/lua.hpp>
#include <redkit/queue/detail/record.hpp>
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
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

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

    /// Jobs per state: one script (LLEN, ZCARD...), a consistent snapshot.
    job_counts counts() const {
        const auto v = eval_again<std::vector<long long>>(lua<detail::queue_lua::counts>(), {});
        return {v.at(0), v.at(1), v.at(2), v.at(3), v.at(4), v.at(5), v.at(6)};
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
        return eval_again<long long>(lua<detail::queue_lua::retry>(), {escape_key_part(id), "0"}) == 1;
    }

    /// Moves every failed job back in line (one script per 1000). Returns how many.
    std::size_t retry_failed() {
        std::size_t total = 0;
        for (;;) {
            const auto n = eval<long long>(lua<detail::queue_lua::retry>(), {"", "1000"});
            total += static_cast<std::size_t>(n);
            if (n < 1000) return total;
        }
    }

    /// Removes a job and its data. An active (leased) job is not removed (remove_result::active).
    /// One script; O(waiting) for a waiting job (LREM).
    remove_result remove(std::string_view id) {
        const auto r = eval_again<long long>(lua<detail::queue_lua::remove>(), {escape_key_part(id)});
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

    /// Deletes the queue: every job and every key. Refuses (returns false, nothing deleted) while
    /// jobs are active unless force is true (their workers then lose their leases). Pauses the
    /// queue first; one script per 1000 jobs, so jobs added meanwhile by others may survive.
    bool obliterate(bool force = false) {
        for (;;) {
            const auto r =
                eval_again<std::vector<long long>>(lua<detail::queue_lua::obliterate>(), {force ? "1" : "0", "1000"});
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
        return detail::parse_stalled(
            eval_again<ids>(lua<detail::queue_lua::stalled>(), {"0", std::to_string(max_stalled_count), "1000"}));
    }

private:
    template <class>
    friend class worker;

    template <const std::string_view& Body>
    static const script& lua() {
        return detail::queue_script<Body>();
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
            r = core_->redis.template eval<std::vector<reply>>(lua<detail::queue_lua::add>(), core_->keys, args);
        } else {
            // the script and WAIT in one write on one connection: WAIT counts that connection's writes
            pipeline p(core_->redis);
            p.eval(lua<detail::queue_lua::add>(), core_->keys, args);
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
