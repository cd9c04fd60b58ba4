// SPDX-License-Identifier: MIT
// redkit::job<T>: one job as a handler or get_job() sees it: its data (decoded through codec<T>),
// options and history; inside a worker's handler also its lease (update_progress, lease_lost).
#pragma once

#include <redkit/codec.hpp>
#include <redkit/detail/epoch.hpp>
#include <redkit/detail/exception_text.hpp>
#include <redkit/error.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/detail/lua.hpp>
#include <redkit/queue/detail/model.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/types.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

template <class T>
class queue;
template <class T>
class worker;

/// A job: its data, options and history. Inside a worker's handler it is leased to that worker:
/// update_progress() works and lease_lost() tells whether the lease was lost.
template <class T>
class job {
public:
    /// The job's id (generated integer, or the job_id given to add).
    const std::string& id() const noexcept { return id_; }
    /// The name it was added with (a label, e.g. for the handler to switch on; not unique).
    const std::string& name() const noexcept { return record_.name; }

    /// The data. Throws error(errc::decode_error) when the stored payload did not decode into T.
    const T& data() const {
        if (!data_) throw error(errc::decode_error, decode_error_);
        return *data_;
    }
    /// Mutable access (handlers may move out of it).
    T& data() {
        if (!data_) throw error(errc::decode_error, decode_error_);
        return *data_;
    }
    /// Whether the stored payload decoded into T (data() throws when it did not).
    bool has_data() const noexcept { return data_.has_value(); }
    /// The payload as stored (JSON by default).
    const std::string& raw_data() const noexcept { return record_.data; }

    /// Where the job was when read: active in a handler; in on_completed or on_failed, where its
    /// outcome put it.
    job_state state() const noexcept { return detail::state_of(record_.state); }
    /// Attempts finished before the current one (0 during the first attempt).
    int attempts_made() const noexcept { return record_.attempts_made; }
    /// Attempts allowed in all.
    int max_attempts() const noexcept { return record_.attempts; }
    /// The priority it was added with: 0 none, 1 the highest (see job_options::priority).
    int priority() const noexcept { return record_.priority; }
    /// job_options::timeout: how long an attempt may run before it is cancelled (0: no limit).
    std::chrono::milliseconds timeout() const noexcept { return std::chrono::milliseconds(record_.timeout_ms); }
    /// Times this job's lease expired and it was recovered by the stalled-job check.
    int stalls() const noexcept { return record_.stalls; }

    /// When the job was added: server time in milliseconds since the epoch.
    long long created_at() const noexcept { return record_.created; }
    /// When a worker took it for the running attempt, else for the last attempt that completed or
    /// failed: server time in milliseconds since the epoch; 0 when there is neither.
    long long processed_at() const noexcept { return record_.processed; }
    /// When it completed or failed for good: server time in milliseconds since the epoch; 0 while
    /// it is not finished.
    long long finished_at() const noexcept { return record_.finished; }
    /// The delay it was added with (job_options::delay; 0 for none).
    std::chrono::milliseconds delay() const noexcept { return std::chrono::milliseconds(record_.delay); }
    /// When a delayed job (a delay, or a retry's backoff) is due, as its score in the queue's
    /// delayed set says: server time in milliseconds since the epoch, read by queue::jobs and
    /// queue::get_job; 0 for a job in any other state.
    long long due_at() const noexcept { return record_.due; }

    /// For a job a scheduler made (queue::upsert_scheduler): the scheduler's id, else empty.
    std::string scheduler_id() const {
        return record_.scheduler.empty() ? std::string() : unescape_key_part(record_.scheduler);
    }
    /// For a job a scheduler made: the tick it was made for (server time), else the epoch.
    std::chrono::system_clock::time_point scheduled_for() const {
        return std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::milliseconds(record_.tick)));
    }

    /// The deduplication key it was added with (job_options::deduplication.id), else empty.
    std::string deduplication_id() const {
        return record_.dedup_id.empty() ? std::string() : unescape_key_part(record_.dedup_id);
    }

    /// Its group (job_options::group), else empty.
    std::string group() const { return record_.group.empty() ? std::string() : unescape_key_part(record_.group); }

    /// For a flow's child (queue::add_flow): its parent, else nullopt.
    std::optional<job_ref> parent() const {
        if (record_.parent_id.empty()) return std::nullopt;
        return job_ref{record_.parent_queue, unescape_key_part(record_.parent_id)};
    }
    /// For a flow parent: its children that have not finished yet (0 once it can run).
    long long pending_children() const noexcept { return record_.pending_children; }

    /// For a flow parent, in its handler: the return values of its completed children, sorted
    /// by queue and id. One HGETALL. Throws error(invalid_state) outside a worker's handler
    /// (use queue::children_values there).
    std::vector<child_value> children_values() const;
    /// For a flow parent, in its handler: the children whose final failure it ignored
    /// (on_child_failure::ignore) or that were removed. One HGETALL.
    std::vector<ignored_child> ignored_failures() const;

    /// The last failure's reason (empty if none).
    const std::string& failed_reason() const noexcept { return record_.failed_reason; }
    /// One entry per failed attempt, the newest last (at most 10): "attempt N: type: what".
    std::vector<std::string> trace() const {
        std::vector<std::string> out;
        if (record_.trace.empty()) return out;
        try {
            const auto j = nlohmann::json::parse(record_.trace);
            for (const auto& e : j) out.push_back(e.is_string() ? e.get<std::string>() : e.dump());
        } catch (const std::exception&) {
            out.push_back(record_.trace);
        }
        return out;
    }
    /// The handler's result (null when none, or not completed).
    nlohmann::json return_value() const {
        if (record_.return_value.empty()) return nullptr;
        return nlohmann::json::parse(record_.return_value, nullptr, false);
    }
    /// The last progress reported (null when none).
    nlohmann::json progress() const {
        if (record_.progress.empty()) return nullptr;
        return nlohmann::json::parse(record_.progress, nullptr, false);
    }

    /// The options the job was added with.
    job_options options() const {
        job_options o;
        o.delay = std::chrono::milliseconds(record_.delay);
        o.attempts = record_.attempts;
        o.priority = record_.priority;
        o.job_id = detail::is_generated_id(id_) ? std::string() : id_;
        o.backoff.type = static_cast<backoff_policy::kind>(record_.backoff_kind);
        o.backoff.delay = std::chrono::milliseconds(record_.backoff_ms);
        o.backoff.jitter = static_cast<double>(record_.jitter_permille) / 1000.0;
        const auto keep = [](long long n, long long a) {
            retention r;
            if (n >= 0) r.count = static_cast<std::size_t>(n);
            r.age = std::chrono::milliseconds(a);
            return r;
        };
        o.remove_on_complete = keep(record_.keep_completed_count, record_.keep_completed_age);
        o.remove_on_fail = keep(record_.keep_failed_count, record_.keep_failed_age);
        return o;
    }

    /// Stores progress (any JSON) on the job: one script round trip (lease checked). Returns false
    /// when the lease was lost. Throws error(invalid_state) outside a worker's handler, and
    /// error on a transport failure.
    bool update_progress(const nlohmann::json& value);

    /// Adds a line to the job's log (queue::logs reads it; at most `keep` lines kept, the
    /// oldest dropped): one script round trip (lease checked). Returns false when the lease was
    /// lost. Throws error(invalid_state) outside a worker's handler (use queue::add_log there).
    bool log(std::string_view line, std::size_t keep = 1000);

    /// True once the worker learned that this job's lease was lost (the job was recovered as
    /// stalled or removed): its outcome will be discarded.
    bool lease_lost() const noexcept { return lease_ && lease_->lost.load(); }

    /// True when the worker is closing: a long handler may finish early.
    bool closing() const noexcept { return lease_ && lease_->closing && lease_->closing->load(); }

    /// What tells a running handler that its attempt was cancelled (queue::cancel, or
    /// job_options::timeout): poll stop_requested() or wait_for() on it. Outside a worker's
    /// handler a token that is never cancelled.
    redkit::cancel_token cancellation() const noexcept {
        return lease_ ? redkit::cancel_token(lease_->cancel) : redkit::cancel_token();
    }

private:
    template <class>
    friend class queue;
    template <class>
    friend class worker;

    // A job from its stored fields; decodes the data now unless `decode` is false (a worker
    // decodes on the handler's thread, decode_data()).
    explicit job(detail::job_record r, std::shared_ptr<detail::job_lease> lease = nullptr, bool decode = true)
        : record_(std::move(r)), id_(unescape_key_part(record_.id)), lease_(std::move(lease)) {
        if (decode) decode_data();
    }
    void decode_data() {
        if (data_ || !decode_error_.empty()) return;
        if (const auto thrown = detail::call_caught([&] { data_.emplace(codec<T>::decode(record_.data)); })) {
            decode_error_ = "redkit: job " + id_ + ": data does not decode" + *thrown;
        }
    }
    detail::job_record& record() noexcept { return record_; }
    const detail::job_record& record() const noexcept { return record_; }
    const std::string& decode_error() const noexcept { return decode_error_; }
    const std::shared_ptr<detail::job_lease>& lease() const noexcept { return lease_; }
    // HGETALL of "<job key><suffix>" (a flow parent's children), in a handler only.
    std::vector<std::string> children_hash(std::string_view suffix, const char* caller) const;

    detail::job_record record_;
    std::string id_;
    std::optional<T> data_;
    std::string decode_error_;
    std::shared_ptr<detail::job_lease> lease_;
};

// ---- implementation ----

template <class T>
bool job<T>::update_progress(const nlohmann::json& value) {
    if (!lease_ || !lease_->core) {
        throw error(errc::invalid_state, "redkit: job " + id_ + ": update_progress outside a worker's handler");
    }
    auto& core = *lease_->core;
    const std::vector<std::string> args{core.job_prefix, record_.id, lease_->lease, value.dump()};
    const bool ok = core.redis.template eval<long long>(
                        idempotent, detail::extras_script<detail::queue_lua::progress>(), core.keys, args) == 1;
    if (!ok) {
        lease_->lost = true;
    } else {
        record_.progress = args[3];
    }
    return ok;
}

template <class T>
std::vector<std::string> job<T>::children_hash(std::string_view suffix, const char* caller) const {
    if (!lease_ || !lease_->core) {
        throw error(errc::invalid_state, "redkit: job " + id_ + ": " + caller + " outside a worker's handler");
    }
    return detail::children_hash(*lease_->core, record_.id, suffix);
}

template <class T>
std::vector<child_value> job<T>::children_values() const {
    return detail::read_child_values(children_hash(detail::queue_model::results, "children_values"));
}

template <class T>
std::vector<ignored_child> job<T>::ignored_failures() const {
    return detail::read_ignored_children(children_hash(detail::queue_model::ignored, "ignored_failures"));
}

template <class T>
bool job<T>::log(std::string_view line, std::size_t keep) {
    if (!lease_ || !lease_->core) {
        throw error(errc::invalid_state, "redkit: job " + id_ + ": log outside a worker's handler");
    }
    if (keep == 0) throw std::invalid_argument("redkit: job::log: keep must be positive");
    auto& core = *lease_->core;
    const std::vector<std::string> args{core.job_prefix, record_.id, std::string(line), std::to_string(keep),
                                        lease_->lease};
    // not idempotent: a resend after a lost reply could add the line twice
    const long long n =
        core.redis.template eval<long long>(detail::queue_script<detail::queue_lua::log>(), core.keys, args);
    if (n == -2) lease_->lost = true;
    return n >= 0;
}

}  // namespace v0
}  // namespace redkit
