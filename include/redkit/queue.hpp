// SPDX-License-Identifier: MIT
// redkit::queue and redkit::worker: durable job queues in the spirit of BullMQ, at least once,
// with nothing lost.
//
// A queue<T> adds jobs (T travels as JSON through codec<T>); a worker<T> runs them on N threads.
// Jobs may be delayed, prioritised, retried with fixed or exponential backoff (with jitter),
// deduplicated by a job id of the caller's choosing, and kept or removed once finished
// (retention). A worker takes a job with a lease (a token and a deadline, on the server clock),
// renewed while the handler runs. Recording the outcome checks the lease, so a worker that lost
// it (it hung and the job was recovered) cannot overwrite a newer outcome. Leases that expire (a
// crashed or hung worker, or one cut off from Redis for longer than the lease) are found by a
// periodic stalled-job check and the jobs go back in line, or fail once they stalled more than
// worker_options::max_stalled_count times. So a job runs at least once, and more than once only
// after its lease expired.
//
// Redis commands and round trips:
//   - Every state change is one Lua script (EVALSHA; EVAL once on NOSCRIPT), so it is atomic:
//     add/add_bulk (one round trip per 1000 jobs), a worker's move (record any number of
//     outcomes AND lease the next jobs: due delayed jobs join the line first, then waiting jobs
//     are taken before prioritized ones, those by priority), renew, stalled check, progress,
//     pause/resume, retry, remove, drain, obliterate, counts, get_job.
//   - A worker recording an outcome and taking the next job is one round trip. With concurrency
//     N, the outcomes of all threads that finished while a round trip was in flight go together
//     in the next one, which asks for as many jobs as there are idle threads (no prefetch: a
//     leased job is always being handled or about to be).
//   - An idle worker blocks on the server: BZPOPMIN on the queue's marker key with a timeout
//     (worker_options::block_timeout), on a dedicated connection whose wait is a poll() that
//     close() cuts short. Adding a job (or a retry, a recovered stall, resume) sets the marker;
//     a worker woken by it that takes all it asked for sets it again, so idle workers wake one
//     after the other. A worker that found nothing ready learns in the same round trip when the
//     earliest delayed job is due, and fetches then. While its round trip is in flight, a busy
//     worker polls the socket briefly before sleeping (worker_options::reply_spin).
//
// Key layout (all keys of a queue share the hash tag {name}, so they live in one Redis Cluster
// slot; job keys are built inside the scripts from a prefix carrying the same tag):
//   <prefix:>queue:{name}:wait | prioritized | delayed | active | completed | failed | meta |
//   marker | id | stalled-check, and <prefix:>queue:{name}:job:<id> (a hash per job). A lease
//   lives only in the active zset (member "<id>:<lease>", score its deadline): taking a job
//   writes nothing to its hash.
// Custom job ids are escaped like key parts (escape_key_part) and must not be integers (those are
// the generated ids). detail/scripts/queue.hpp documents every key and field.
//
// Thread safety: queue<T> is a cheap handle; every member may be called from any thread. A
// worker's public members may be called from any thread (close() from its own threads only asks).
#pragma once


#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/connection.hpp>
#include <redkit/detail/scripts/queue.hpp>
#include <redkit/detail/wait.hpp>
#include <redkit/error.hpp>
#include <redkit/key.hpp>
#include <redkit/reply.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__has_include)
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define REDKIT_QUEUE_HAS_CXXABI 1
#endif
#endif

namespace redkit {
inline namespace v0 {

/// How long to wait before retrying a failed attempt.
struct backoff_policy {
    enum class kind { none, fixed, exponential };

    kind type = kind::none;              ///< none: retry at once
    std::chrono::milliseconds delay{0};  ///< fixed: every retry; exponential: the first retry
    double jitter = 0;                   ///< in [0, 1]: the delay is drawn from [d * (1 - jitter), d]

    static backoff_policy none() { return {}; }
    static backoff_policy fixed(std::chrono::milliseconds d, double jitter = 0) { return {kind::fixed, d, jitter}; }
    /// delay * 2^(n-1) before retry n (delay, 2 delay, 4 delay...).
    static backoff_policy exponential(std::chrono::milliseconds d, double jitter = 0) {
        return {kind::exponential, d, jitter};
    }

    /// The wait before retry number `retry` (1 for the first), with `random01` in [0, 1) drawing
    /// the jitter. Saturates instead of overflowing.
    std::chrono::milliseconds delay_before(int retry, double random01) const noexcept {
        if (type == kind::none || delay.count() <= 0) return std::chrono::milliseconds(0);
        double d = static_cast<double>(delay.count());
        if (type == kind::exponential) d *= std::ldexp(1.0, std::min(std::max(retry, 1) - 1, 40));
        d = std::min(d, 1e15);
        if (jitter > 0) d -= d * jitter * random01;
        return std::chrono::milliseconds(static_cast<long long>(d));
    }
};

/// Which finished jobs to keep (completed or failed), checked when a job finishes. Both limits may
/// be set; a job is removed when either says so.
struct retention {
    std::optional<std::size_t> count;  ///< keep at most the newest `count` (nullopt: no count limit)
    std::chrono::milliseconds age{0};  ///< keep those finished less than `age` ago (0: no age limit)

    static retention keep_all() { return {}; }
    static retention keep_none() { return {std::size_t{0}, std::chrono::milliseconds(0)}; }
    static retention keep_last(std::size_t n) { return {n, std::chrono::milliseconds(0)}; }
    static retention keep_for(std::chrono::milliseconds a) { return {std::nullopt, a}; }
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
};

/// Options of a queue handle.
struct queue_options {
    key_space keys;  ///< prefix of the queue's keys (default: none, keys are queue:{name}:...)
};

/// Where a job is.
enum class job_state { waiting, prioritized, delayed, active, completed, failed, unknown };

inline const char* to_string(job_state s) noexcept {
    switch (s) {
        case job_state::waiting:
            return "waiting";
        case job_state::prioritized:
            return "prioritized";
        case job_state::delayed:
            return "delayed";
        case job_state::active:
            return "active";
        case job_state::completed:
            return "completed";
        case job_state::failed:
            return "failed";
        case job_state::unknown:
            return "unknown";
    }
    return "unknown";
}

/// Jobs per state. While the queue is paused, waiting jobs count as paused (waiting is 0).
struct job_counts {
    long long waiting = 0;
    long long active = 0;
    long long delayed = 0;
    long long prioritized = 0;
    long long completed = 0;
    long long failed = 0;
    long long paused = 0;
};

/// What add() did: the job's id, and whether it was created (false: a job with this id existed).
struct [[nodiscard]] added_job {
    std::string id;
    bool created = false;
};

/// One job for add_bulk.
template <class T>
struct bulk_job {
    std::string name;
    T data;
    job_options options = {};
};

/// Outcome of a stalled-job check: ids moved back in line, and ids failed for stalling too often.
struct stalled_jobs {
    std::vector<std::string> recovered;
    std::vector<std::string> failed;
};

/// Outcome of queue::remove.
enum class remove_result { removed, not_found, active };

/// Why an attempt failed, as given to worker_options::on_failed.
struct job_failure {
    std::string reason;
    bool will_retry = false;                ///< attempts remain: the job runs again
    std::chrono::milliseconds retry_in{0};  ///< backoff before that
};

/// Thrown by a handler to fail the job at once, without the remaining attempts.
class unrecoverable_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

/// Everything a queue handle, its workers and their jobs share.
struct queue_core {
    client redis;
    std::string name;
    std::vector<std::string> keys;  // the 10 KEYS of every queue script
    std::string job_prefix;         // "<base>:job:"

    queue_core(client c, std::string queue_name, const key_space& ks)
        : redis(std::move(c)), name(std::move(queue_name)) {
        if (name.empty()) throw std::invalid_argument("redkit: queue: name must not be empty");
        static constexpr const char* suffixes[] = {"wait",   "prioritized", "delayed", "active", "completed",
                                                   "failed", "meta",        "marker",  "id",     "stalled-check"};
        for (const char* s : suffixes) keys.push_back(ks.key("queue", hash_tag(name), s));
        job_prefix = ks.key("queue", hash_tag(name), "job") + ":";
    }

    /// "redkit: queue <name>: " for messages.
    std::string what() const { return "redkit: queue " + name + ": "; }
};

/// The fields of a job hash as read from Redis (ids still escaped).
struct job_record {
    std::string id;  // as stored (escaped)
    std::string name, data, lease, return_value, failed_reason, trace, progress;
    char state = 0;
    int attempts = 1, attempts_made = 0, stalls = 0, priority = 0;
    long long created = 0, processed = 0, finished = 0, delay = 0;
    int backoff_kind = 0;
    long long backoff_ms = 0, jitter_permille = 0;
    long long keep_completed_count = -1, keep_completed_age = 0, keep_failed_count = -1, keep_failed_age = 0;
};

inline long long job_field_int(std::string_view s) noexcept {
    long long v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

/// Fills a record from an HGETALL array (a node over the reply).
inline void read_fields(node h, job_record& r) {
    const std::size_t n = h.size();
    for (std::size_t i = 0; i + 1 < n; i += 2) {
        const std::string_view f = h.at(i).str();
        const std::string_view v = h.at(i + 1).str();
        if (f.empty()) continue;
        switch (f[0]) {
            case 'a':
                if (f == "att") r.attempts = static_cast<int>(job_field_int(v));
                break;
            case 'b':
                if (f == "bo")
                    r.backoff_kind = static_cast<int>(job_field_int(v));
                else if (f == "bd")
                    r.backoff_ms = job_field_int(v);
                else if (f == "bj")
                    r.jitter_permille = job_field_int(v);
                break;
            case 'd':
                if (f == "data")
                    r.data = std::string(v);
                else if (f == "delay")
                    r.delay = job_field_int(v);
                break;
            case 'f':
                if (f == "fr")
                    r.failed_reason = std::string(v);
                else if (f == "ft")
                    r.finished = job_field_int(v);
                break;
            case 'm':
                if (f == "made") r.attempts_made = static_cast<int>(job_field_int(v));
                break;
            case 'n':
                if (f == "name") r.name = std::string(v);
                break;
            case 'p':
                if (f == "prio")
                    r.priority = static_cast<int>(job_field_int(v));
                else if (f == "pt")
                    r.processed = job_field_int(v);
                else if (f == "prog")
                    r.progress = std::string(v);
                break;
            case 'r':
                if (f == "rv")
                    r.return_value = std::string(v);
                else if (f == "rcn")
                    r.keep_completed_count = job_field_int(v);
                else if (f == "rca")
                    r.keep_completed_age = job_field_int(v);
                else if (f == "rfn")
                    r.keep_failed_count = job_field_int(v);
                else if (f == "rfa")
                    r.keep_failed_age = job_field_int(v);
                break;
            case 's':
                if (f == "st")
                    r.state = v.empty() ? '\0' : v[0];
                else if (f == "stl")
                    r.stalls = static_cast<int>(job_field_int(v));
                break;
            case 't':
                if (f == "ts")
                    r.created = job_field_int(v);
                else if (f == "tr")
                    r.trace = std::string(v);
                break;
            default:
                break;
        }
    }
}

inline job_state state_of(char c) noexcept {
    switch (c) {
        case 'w':
            return job_state::waiting;
        case 'p':
            return job_state::prioritized;
        case 'd':
            return job_state::delayed;
        case 'a':
            return job_state::active;
        case 'c':
            return job_state::completed;
        case 'f':
            return job_state::failed;
        default:
            return job_state::unknown;
    }
}

/// Whether a worker's leader should poll for its next reply (worker_options::reply_spin). Polling
/// pays only where a sleeping thread is slow to wake and the server runs on another CPU; where it
/// shares the worker's CPU, polling delays the reply, and a remote server's replies come too late
/// for it. So both ways are timed (moving averages of 8 replies), polling is used while it is at
/// least 10% faster, and every 64th reply is awaited the other way to keep both times current.
class reply_timing {
public:
    bool poll_next(unsigned long long exchange) const noexcept {
        bool poll;
        if (polled_.n < 4) {
            poll = true;
        } else if (slept_.n < 4) {
            poll = false;
        } else {
            poll = polled_.mean < slept_.mean;
        }
        return exchange % 32 == 0 ? !poll : poll;
    }
    void record(bool polled, std::chrono::microseconds took) noexcept { (polled ? polled_ : slept_).add(took); }

private:
    struct moving_mean {
        std::chrono::microseconds mean{0};
        unsigned n = 0;  // samples, up to 8
        void add(std::chrono::microseconds t) noexcept {
            mean = n == 0 ? t : (mean * 7 + t) / 8;
            if (n < 8) ++n;
        }
    };
    moving_mean polled_, slept_;
};

/// A worker's hold on one job: what update_progress needs, and whether the lease was lost.
struct job_lease {
    std::shared_ptr<queue_core> core;
    std::string lease;  // "<taken ms>|<token>", as in the queue's active zset ("<id>:<lease>")
    std::atomic<bool> lost{false};
    std::shared_ptr<const std::atomic<bool>> closing;
};

inline bool is_generated_id(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

/// Checks job options; throws std::invalid_argument naming the field.
inline void validate_job_options(const job_options& o) {
    if (o.delay.count() < 0) throw std::invalid_argument("redkit: job_options.delay must not be negative");
    if (o.attempts < 1) throw std::invalid_argument("redkit: job_options.attempts must be at least 1");
    if (o.priority < 0 || o.priority > (1 << 21)) {
        throw std::invalid_argument("redkit: job_options.priority must be in [0, 2097152]");
    }
    if (o.backoff.delay.count() < 0)
        throw std::invalid_argument("redkit: job_options.backoff.delay must not be negative");
    if (!(o.backoff.jitter >= 0 && o.backoff.jitter <= 1)) {
        throw std::invalid_argument("redkit: job_options.backoff.jitter must be in [0, 1]");
    }
    if (o.backoff.type != backoff_policy::kind::none && o.backoff.delay.count() == 0) {
        throw std::invalid_argument(
            "redkit: job_options.backoff.delay must be positive for fixed or exponential backoff");
    }
    if (o.remove_on_complete.age.count() < 0) {
        throw std::invalid_argument("redkit: job_options.remove_on_complete.age must not be negative");
    }
    if (o.remove_on_fail.age.count() < 0)
        throw std::invalid_argument("redkit: job_options.remove_on_fail.age must not be negative");
    if (!o.job_id.empty()) {
        if (o.job_id.size() > 512) throw std::invalid_argument("redkit: job_options.job_id must be at most 512 bytes");
        if (is_generated_id(o.job_id)) {
            throw std::invalid_argument(
                "redkit: job_options.job_id must not be an integer (integers are generated ids)");
        }
    }
}

inline std::string job_field_number(long long v, bool present) {
    return present ? std::to_string(v) : std::string();
}

/// Appends the 13 add-script fields of one job.
inline void push_add_fields(std::vector<std::string>& out, std::string_view name, std::string data,
                            const job_options& o) {
    out.push_back(o.job_id.empty() ? std::string() : escape_key_part(o.job_id));
    out.emplace_back(name);
    out.push_back(std::move(data));
    out.push_back(job_field_number(o.delay.count(), o.delay.count() > 0));
    out.push_back(job_field_number(o.priority, o.priority > 0));
    out.push_back(job_field_number(o.attempts, o.attempts != 1));
    const bool has_backoff = o.backoff.type != backoff_policy::kind::none;
    out.push_back(job_field_number(static_cast<int>(o.backoff.type), has_backoff));
    out.push_back(job_field_number(o.backoff.delay.count(), has_backoff));
    out.push_back(job_field_number(std::llround(o.backoff.jitter * 1000), has_backoff && o.backoff.jitter > 0));
    const auto keep = [&](const retention& r) {
        out.push_back(r.count ? std::to_string(*r.count) : std::string());
        out.push_back(job_field_number(r.age.count(), r.age.count() > 0));
    };
    keep(o.remove_on_complete);
    keep(o.remove_on_fail);
}

/// Runs a script on a connection of one's own: EVALSHA, then EVAL once on NOSCRIPT. Returns the
/// raw reply (error replies included); throws error on a transport failure. `spin`: see
/// connection::read.
inline reply_ptr eval_raw(connection& c, const script& s, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args, std::chrono::microseconds spin = {}) {
    argv a;
    a.push_all("EVALSHA", s.sha1(), static_cast<long long>(keys.size()), keys, args);
    reply_ptr r;
    const auto run = [&](const char* command) {
        c.append(a);
        auto st = c.flush();
        if (st.ok()) st = c.read(r, spin);
        if (!st.ok()) throw transport_error(st, command, keys.empty() ? "" : keys[0]);
    };
    run("EVALSHA");
    if (r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).substr(0, 8) == "NOSCRIPT") {
        a.set(0, "EVAL");
        a.set(1, s.source());
        r.reset();
        run("EVAL");
    }
    return r;
}

inline std::string demangled_type_name(const char* name) {
#ifdef REDKIT_QUEUE_HAS_CXXABI
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (status == 0 && out) {
        std::string s(out);
        std::free(out);
        return s;
    }
    std::free(out);
#endif
    return name;
}

/// "std::runtime_error: text", then "; caused by ..." for nested exceptions.
inline std::string describe_exception(const std::exception& e) {
    std::string s = demangled_type_name(typeid(e).name()) + ": " + e.what();
    try {
        std::rethrow_if_nested(e);
    } catch (const std::exception& inner) {
        s += "; caused by " + describe_exception(inner);
    } catch (...) {
        s += "; caused by an exception of unknown type";
    }
    return s;
}

}  // namespace detail

/// A job: its data, options and history. Inside a worker's handler it is leased to that worker:
/// update_progress() works and lease_lost() tells whether the lease was lost.
template <class T>
class job {
public:
    /// The job's id (generated integer, or the job_id given to add).
    const std::string& id() const noexcept { return id_; }
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
    bool has_data() const noexcept { return data_.has_value(); }
    /// The payload as stored (JSON by default).
    const std::string& raw_data() const noexcept { return record_.data; }

    job_state state() const noexcept { return detail::state_of(record_.state); }
    /// Attempts finished before the current one (0 during the first attempt).
    int attempts_made() const noexcept { return record_.attempts_made; }
    /// Attempts allowed in all.
    int max_attempts() const noexcept { return record_.attempts; }
    int priority() const noexcept { return record_.priority; }
    /// Times this job's lease expired and it was recovered by the stalled-job check.
    int stalls() const noexcept { return record_.stalls; }

    /// Server times in milliseconds since the epoch (0 when not yet).
    long long created_at() const noexcept { return record_.created; }
    long long processed_at() const noexcept { return record_.processed; }
    long long finished_at() const noexcept { return record_.finished; }

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

    /// True once the worker learned that this job's lease was lost (the job was recovered as
    /// stalled or removed): its outcome will be discarded.
    bool lease_lost() const noexcept { return lease_ && lease_->lost.load(); }

    /// True when the worker is closing: a long handler may finish early.
    bool closing() const noexcept { return lease_ && lease_->closing && lease_->closing->load(); }

    // ---- internal: used by queue and worker ----
    /// A job from its stored fields; decodes the data now unless `decode` is false (a worker
    /// decodes on the handler's thread, decode_data()).
    explicit job(detail::job_record r, std::shared_ptr<detail::job_lease> lease = nullptr, bool decode = true)
        : record_(std::move(r)), id_(unescape_key_part(record_.id)), lease_(std::move(lease)) {
        if (decode) decode_data();
    }
    void decode_data() {
        if (data_ || !decode_error_.empty()) return;
        try {
            data_.emplace(codec<T>::decode(record_.data));
        } catch (const std::exception& e) {
            decode_error_ = "redkit: job " + id_ + ": data does not decode: " + e.what();
        } catch (...) {
            decode_error_ = "redkit: job " + id_ + ": data does not decode";
        }
    }
    detail::job_record& record() noexcept { return record_; }
    const detail::job_record& record() const noexcept { return record_; }
    const std::string& decode_error() const noexcept { return decode_error_; }
    const std::shared_ptr<detail::job_lease>& lease() const noexcept { return lease_; }

private:
    detail::job_record record_;
    std::string id_;
    std::optional<T> data_;
    std::string decode_error_;
    std::shared_ptr<detail::job_lease> lease_;
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
        : core_(std::make_shared<detail::queue_core>(std::move(c), std::move(name), options.keys)) {}

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
        const auto r = eval_again<std::vector<reply>>(scripts().get_job, {stored});
        if (r.size() != 2 || r[0].size() == 0) return std::nullopt;
        detail::job_record rec;
        rec.id = stored;
        detail::read_fields(detail::node(&r[0]), rec);
        if (!r[1].is_nil()) {
            rec.state = 'a';
            rec.lease = r[1].text();
            rec.processed = detail::job_field_int(rec.lease.substr(0, rec.lease.find('|')));
        }
        return job<T>(std::move(rec));
    }

    /// Jobs per state: one script (LLEN, ZCARD...), a consistent snapshot.
    job_counts counts() const {
        const auto v = eval_again<std::vector<long long>>(scripts().counts, {});
        return {v.at(0), v.at(1), v.at(2), v.at(3), v.at(4), v.at(5), v.at(6)};
    }

    /// Stops workers from taking jobs (running ones finish); adding still works. One script.
    void pause() { eval_again<long long>(scripts().pause, {"1"}); }
    /// Lets workers take jobs again and wakes one. One script.
    void resume() { eval_again<long long>(scripts().pause, {"0"}); }
    /// One HEXISTS.
    bool is_paused() const {
        return core_->redis.template command<long long>(idempotent, "HEXISTS", core_->keys[6], "paused") == 1;
    }

    /// Moves a failed job back in line with a fresh set of attempts (its trace is kept). Returns
    /// false when no failed job has this id. One script.
    bool retry(std::string_view id) { return eval_again<long long>(scripts().retry, {escape_key_part(id), "0"}) == 1; }

    /// Moves every failed job back in line (one script per 1000). Returns how many.
    std::size_t retry_failed() {
        std::size_t total = 0;
        for (;;) {
            const auto n = eval<long long>(scripts().retry, {"", "1000"});
            total += static_cast<std::size_t>(n);
            if (n < 1000) return total;
        }
    }

    /// Removes a job and its data. An active (leased) job is not removed (remove_result::active).
    /// One script; O(waiting) for a waiting job (LREM).
    remove_result remove(std::string_view id) {
        const auto r = eval_again<long long>(scripts().remove, {escape_key_part(id)});
        return r == 1 ? remove_result::removed : r == 0 ? remove_result::not_found : remove_result::active;
    }

    /// Removes every waiting and prioritized job (and delayed ones too when asked); active,
    /// completed and failed jobs stay. One script per 1000 jobs. Returns how many were removed.
    std::size_t drain(bool include_delayed = false) {
        std::size_t total = 0;
        for (;;) {
            const auto n = eval<long long>(scripts().drain, {include_delayed ? "1" : "0", "1000"});
            total += static_cast<std::size_t>(n);
            if (n < 1000) return total;
        }
    }

    /// Deletes the queue: every job and every key. Refuses (returns false, nothing deleted) while
    /// jobs are active unless force is true (their workers then lose their leases). Pauses the
    /// queue first; one script per 1000 jobs, so jobs added meanwhile by others may survive.
    bool obliterate(bool force = false) {
        for (;;) {
            const auto r = eval_again<std::vector<long long>>(scripts().obliterate, {force ? "1" : "0", "1000"});
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
        // (not eval<reply>: a reply holds error replies as values, so NOSCRIPT would not be retried)
        using ids = std::vector<std::vector<std::string>>;
        return parse_stalled(eval_again<ids>(scripts().stalled, {"0", std::to_string(max_stalled_count), "1000"}));
    }

    // ---- used by worker ----
    const std::shared_ptr<detail::queue_core>& core() const noexcept { return core_; }

    static stalled_jobs parse_stalled(const std::vector<std::vector<std::string>>& r) {
        stalled_jobs out;
        if (r.size() == 2) {
            for (const auto& id : r[0]) out.recovered.push_back(unescape_key_part(id));
            for (const auto& id : r[1]) out.failed.push_back(unescape_key_part(id));
        }
        return out;
    }

private:
    static const detail::queue_scripts& scripts() { return detail::queue_scripts::get(); }

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
        const auto r = core_->redis.template eval<std::vector<reply>>(scripts().add, core_->keys, args);
        std::vector<added_job> out;
        out.reserve(r.size() / 2);
        for (std::size_t i = 0; i + 1 < r.size(); i += 2) {
            out.push_back({unescape_key_part(r[i].text()), r[i + 1].integer() == 1});
        }
        return out;
    }

    std::shared_ptr<detail::queue_core> core_;
};

/// How a worker runs. Durations must be positive unless said otherwise.
template <class T>
struct worker_options {
    std::size_t concurrency = 1;                        ///< handler threads, in [1, 4096]
    std::chrono::milliseconds lease_duration{30000};    ///< a job's lease; renewed while it runs
    std::chrono::milliseconds lease_renew_interval{0};  ///< 0: lease_duration / 2
    /// How often the stalled-job check runs. The check takes a per-queue lock for this long, so
    /// one worker of the queue checks per interval: give every worker of a queue the same value.
    std::chrono::milliseconds stalled_interval{30000};
    int max_stalled_count = 1;                       ///< a job that stalls more often than this fails
    std::chrono::milliseconds block_timeout{5000};   ///< longest BZPOPMIN of an idle worker
    std::chrono::milliseconds close_timeout{30000};  ///< how long the destructor's close() waits
    /// While its round trip is in flight and no other thread of the worker is running a job, the
    /// thread that records outcomes and takes jobs polls the socket for up to this long before
    /// sleeping in read(), in [0, 10 ms]. On virtual machines waking a sleeping thread costs tens
    /// of microseconds per reply: polling lets a busy worker take its next job sooner, for the
    /// CPU the polling burns (at most this much per job, only while jobs flow: an idle worker
    /// sleeps in BZPOPMIN). The worker times replies both ways and polls only while that is
    /// faster (not when Redis shares its CPU, nor for a remote server). 0: never poll.
    std::chrono::microseconds reply_spin{100};

    /// Called once Redis recorded the job as completed.
    std::function<void(const job<T>&)> on_completed;
    /// Called for every failed attempt once recorded; failure.will_retry tells whether it runs again.
    std::function<void(const job<T>&, const job_failure&)> on_failed;
    /// Called when this worker's stalled-job check recovered or failed jobs.
    std::function<void(const stalled_jobs&)> on_stalled;
    /// Called on transport and server errors (the worker retries with backoff) and when a job's
    /// lease was lost (its outcome discarded). Unset: the client's on_error gets them.
    /// Callbacks run on the worker's threads, must not throw (exceptions are swallowed) and should
    /// return quickly: they delay the thread's next job.
    std::function<void(const error&)> on_error;
};

/// Runs a queue's jobs on `concurrency` threads, at least once each.
///
/// The handler is `void(job<T>&)` or `R(job<T>&)` (R stored as JSON, job::return_value()). It
/// runs on the worker's threads, concurrently when concurrency > 1. A handler that throws fails
/// the attempt (reason and a trace entry stored); while attempts remain the job goes back with
/// its backoff; unrecoverable_error fails it at once. A job whose data does not decode into T
/// fails at once with a reason saying so; the worker goes on.
///
/// Threads and connections. A handler thread that finished a job records it itself: it sends
/// the outcomes of every thread that finished meanwhile and asks for as many jobs as there are
/// idle threads, in one script round trip on the worker's connection (client::dedicated()); the
/// other threads wait, then take the jobs it brought. So at concurrency 1 a job costs one round
/// trip and no thread hand-off, and under load outcomes travel in batches. While the round trip
/// is in flight and no other thread runs a job, it polls for the reply before sleeping
/// (worker_options::reply_spin). A keeper thread owns a second dedicated connection for the
/// blocking BZPOPMIN of an idle worker, wakes a thread to fetch when the marker pops or a delayed
/// job falls due, and through the client's pool renews the leases of held jobs (one script for
/// all, every lease_renew_interval) and runs the stalled-job check (one script every
/// stalled_interval, by one worker of the queue).
///
/// @code
/// redkit::worker<welcome_mail> w(mails, [](redkit::job<welcome_mail>& j) { send(j.data()); });
/// ...
/// w.close(5s);  // stop taking jobs, wait for the running ones
/// @endcode
template <class T>
class worker {
public:
    /// Validates the options (std::invalid_argument naming the field) and starts the threads. Never
    /// throws for an unreachable Redis: the worker reports through on_error and retries.
    template <class Handler>
    worker(const queue<T>& q, Handler handler, worker_options<T> options = {});

    /// close(options.close_timeout), then waits for the threads to end (a handler that never
    /// returns blocks this destructor).
    ~worker();

    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    /// Stops taking jobs, wakes the idle worker at once (its BZPOPMIN is abandoned) and waits up
    /// to `timeout` for the running jobs to finish and their outcomes to be recorded. Returns true
    /// when they did. On timeout the worker stops renewing the leases of jobs still running (so
    /// another worker recovers them once their lease expires) and returns false; outcomes of
    /// handlers finishing later are still sent. From one of the worker's own threads (a handler or
    /// callback) it only requests the close and returns false. Any thread; idempotent.
    bool close(std::chrono::milliseconds timeout);
    bool close() { return close(options_.close_timeout); }

    /// Jobs leased by this worker and not yet recorded as finished.
    std::size_t running() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return held_.size();
    }

    bool closing() const noexcept { return closing_->load(); }

private:
    using clock = std::chrono::steady_clock;

    struct outcome {
        std::unique_ptr<job<T>> item;
        char kind = 'c';  // c completed, f failed attempt, u failed for good
        std::string payload;
        std::string trace;
        long long retry_delay = 0;
    };

    struct move_result {
        std::vector<long long> codes;
        std::vector<std::unique_ptr<job<T>>> jobs;
        long long now = 0;
        long long next_delay = -1;
    };

    static const void*& current_worker() {
        static thread_local const void* p = nullptr;
        return p;
    }

    void handler_loop();
    std::unique_ptr<job<T>> next(std::optional<outcome>& done);
    void lead(std::unique_lock<std::mutex>& lock);
    outcome run_one(std::unique_ptr<job<T>> j);
    move_result exchange(const std::vector<outcome>& sending, std::size_t want, bool rearm, bool alone);
    void notify_outcomes(const move_result& r, std::vector<outcome>& sent);
    void keeper_loop();
    void renew();
    void check_stalled();
    void refresh_marker();
    void start_block();
    bool read_block();
    void drop_block(bool look_again);
    void report(const error& e) noexcept;
    static std::chrono::milliseconds backoff(int failures) noexcept {
        return std::chrono::milliseconds(std::min<long long>(50LL << std::min(failures, 6), 2000));
    }
    template <class F, class... A>
    void call(const F& f, A&&... a) noexcept;

    std::shared_ptr<detail::queue_core> core_;
    std::function<std::string(job<T>&)> handler_;
    worker_options<T> options_;
    std::chrono::milliseconds renew_interval_;
    std::string worker_id_;

    mutable std::mutex mutex_;
    std::condition_variable jobs_cv_;            // handler threads: jobs ready, the connection free, closing
    std::condition_variable done_cv_;            // close(): the keeper ended
    std::deque<std::unique_ptr<job<T>>> ready_;  // leased, not started yet
    std::vector<outcome> pending_;               // finished, not recorded yet
    std::unordered_map<std::string, std::shared_ptr<detail::job_lease>> held_;  // leased, by stored id
    std::size_t idle_ = 0;                                                      // handler threads waiting in next()
    std::size_t live_ = 0;                                                      // handler threads alive
    bool busy_ = false;                // an exchange is in flight on cmd_ (only its leader touches cmd_)
    bool fetch_ = true;                // jobs may be ready
    unsigned long long wake_gen_ = 0;  // bumped when the keeper learns jobs may be ready
    bool rearm_ = true;                // a marker was (or may have been) popped for us: a full take resets it
    bool blocking_ = false;            // the keeper has a BZPOPMIN pending
    clock::time_point delayed_at_ = clock::time_point::max();  // fetch then: a delayed job falls due
    unsigned long long seq_ = 0;
    detail::reply_timing reply_timing_;  // the leader's
    int failures_ = 0;
    bool abandoned_ = false;  // close() timed out: stop renewing
    bool keeper_done_ = false;
    // shared with the jobs' leases: job::closing() stays valid if a job outlives the worker
    std::shared_ptr<std::atomic<bool>> closing_ = std::make_shared<std::atomic<bool>>(false);

    std::optional<connection> cmd_;    // the leader's
    std::optional<connection> block_;  // the keeper's
    clock::time_point block_deadline_{};
    bool block_pending_ = false;  // the keeper's view of blocking_

    detail::notifier waker_;  // wakes the keeper
    std::vector<std::thread> handlers_;
    std::thread keeper_;
};

// ---- implementation ----

template <class T>
bool job<T>::update_progress(const nlohmann::json& value) {
    if (!lease_ || !lease_->core) {
        throw error(errc::invalid_state, "redkit: job " + id_ + ": update_progress outside a worker's handler");
    }
    auto& core = *lease_->core;
    const std::vector<std::string> args{core.job_prefix, record_.id, lease_->lease, value.dump()};
    const bool ok =
        core.redis.template eval<long long>(idempotent, detail::queue_scripts::get().progress, core.keys, args) == 1;
    if (!ok) {
        lease_->lost = true;
    } else {
        record_.progress = args[3];
    }
    return ok;
}

template <class T>
template <class Handler>
worker<T>::worker(const queue<T>& q, Handler handler, worker_options<T> options)
    : core_(q.core()), options_(std::move(options)) {
    using R = std::invoke_result_t<Handler&, job<T>&>;
    if constexpr (std::is_void_v<R>) {
        handler_ = [h = std::move(handler)](job<T>& j) mutable {
            h(j);
            return std::string("null");
        };
    } else {
        handler_ = [h = std::move(handler)](job<T>& j) mutable { return nlohmann::json(h(j)).dump(); };
    }
    const auto& o = options_;
    if (o.concurrency < 1 || o.concurrency > 4096)
        throw std::invalid_argument("redkit: worker_options.concurrency must be in [1, 4096]");
    if (o.lease_duration.count() < 10)
        throw std::invalid_argument("redkit: worker_options.lease_duration must be at least 10 ms");
    if (o.lease_renew_interval.count() < 0 || o.lease_renew_interval >= o.lease_duration) {
        throw std::invalid_argument("redkit: worker_options.lease_renew_interval must be in [0, lease_duration)");
    }
    if (o.stalled_interval.count() <= 0)
        throw std::invalid_argument("redkit: worker_options.stalled_interval must be positive");
    if (o.max_stalled_count < 0)
        throw std::invalid_argument("redkit: worker_options.max_stalled_count must not be negative");
    if (o.block_timeout.count() < 1 || o.block_timeout > std::chrono::hours(24)) {
        throw std::invalid_argument("redkit: worker_options.block_timeout must be in [1 ms, 24 h]");
    }
    if (o.close_timeout.count() < 0)
        throw std::invalid_argument("redkit: worker_options.close_timeout must not be negative");
    if (o.reply_spin.count() < 0 || o.reply_spin > std::chrono::milliseconds(10))
        throw std::invalid_argument("redkit: worker_options.reply_spin must be in [0, 10 ms]");
    renew_interval_ = o.lease_renew_interval.count() > 0 ? o.lease_renew_interval : o.lease_duration / 2;

    std::random_device rd;
    char id[24];
    std::snprintf(id, sizeof id, "%08x%08x", rd(), rd());
    worker_id_ = id;

    handlers_.reserve(o.concurrency);
    live_ = o.concurrency;
    try {
        for (std::size_t i = 0; i < o.concurrency; ++i) handlers_.emplace_back([this] { handler_loop(); });
        keeper_ = std::thread([this] { keeper_loop(); });
    } catch (...) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            *closing_ = true;
            live_ -= o.concurrency - handlers_.size();
        }
        jobs_cv_.notify_all();
        for (auto& t : handlers_) t.join();
        throw;
    }
}

template <class T>
worker<T>::~worker() {
    close(options_.close_timeout);
    for (auto& t : handlers_) {
        if (t.joinable()) t.join();
    }
    if (keeper_.joinable()) keeper_.join();
}

template <class T>
bool worker<T>::close(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    *closing_ = true;
    jobs_cv_.notify_all();
    waker_.notify();
    if (current_worker() == this) return false;
    if (done_cv_.wait_for(lock, timeout, [&] { return keeper_done_; })) return true;
    abandoned_ = true;
    jobs_cv_.notify_all();
    waker_.notify();
    return false;
}

template <class T>
void worker<T>::report(const error& e) noexcept {
    detail::report_to(options_.on_error, core_->redis, e);
}

template <class T>
template <class F, class... A>
void worker<T>::call(const F& f, A&&... a) noexcept {
    if (!f) return;
    try {
        f(std::forward<A>(a)...);
    } catch (...) {
        // documented: callbacks must not throw
    }
}

template <class T>
void worker<T>::handler_loop() {
    current_worker() = this;
    std::optional<outcome> done;
    for (;;) {
        std::unique_ptr<job<T>> j = next(done);
        if (!j) return;
        done = run_one(std::move(j));
    }
}

// Hands in the previous outcome (if any) and returns the next job, or nullptr once the worker
// is closing and nothing of this worker is left to record.
template <class T>
std::unique_ptr<job<T>> worker<T>::next(std::optional<outcome>& done) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (done) {
        pending_.push_back(std::move(*done));
        done.reset();
    }
    ++idle_;
    for (;;) {
        if (!ready_.empty()) {
            std::unique_ptr<job<T>> j = std::move(ready_.front());
            ready_.pop_front();
            --idle_;
            return j;
        }
        const bool closing = *closing_;
        if (!busy_ && (!pending_.empty() || (fetch_ && !closing))) {
            lead(lock);
            continue;
        }
        if (closing && !busy_ && pending_.empty()) {
            --idle_;
            if (--live_ == 0) waker_.notify();
            return nullptr;
        }
        jobs_cv_.wait(lock);
    }
}

// One exchange: the pending outcomes out, jobs for the idle threads in. Called with the lock
// held and busy_ false; returns with the lock held.
template <class T>
void worker<T>::lead(std::unique_lock<std::mutex>& lock) {
    busy_ = true;
    const unsigned long long gen = wake_gen_;
    std::vector<outcome> sending = std::move(pending_);
    pending_.clear();
    const std::size_t want = *closing_ ? 0 : idle_;  // ready_ is empty: every idle thread needs a job
    const bool rearm = rearm_ && want > 0;
    if (rearm) rearm_ = false;
    const bool alone = idle_ == live_;  // no other thread is running a job (and needs the CPU)
    lock.unlock();
    move_result r;
    bool ok = false;
    try {
        r = exchange(sending, want, rearm, alone);
        ok = true;
    } catch (const error& e) {
        report(e);
    } catch (const std::exception& e) {
        report(error(errc::invalid_state, core_->what() + e.what()));
    }
    lock.lock();
    if (!ok) {
        rearm_ = rearm_ || rearm;
        if (!abandoned_) {
            // the outcomes go again (the script recognises a resend); back off holding busy_
            for (auto& o : pending_) sending.push_back(std::move(o));
            pending_ = std::move(sending);
            // cut short by close() once (then outcomes are retried until close gives up)
            const bool was_closing = *closing_;
            jobs_cv_.wait_for(lock, backoff(failures_++), [&] { return abandoned_ || (*closing_ && !was_closing); });
        }
        busy_ = false;
        jobs_cv_.notify_all();  // rare: let any thread try (or leave, when closing)
        return;
    }
    failures_ = 0;
    busy_ = false;
    for (auto& j : r.jobs) {
        held_[j->record().id] = j->lease();
        ready_.push_back(std::move(j));
    }
    for (const auto& o : sending) {
        // only this lease: the job may have been recovered and leased to this worker again
        const auto it = held_.find(o.item->record().id);
        if (it != held_.end() && it->second->lease == o.item->record().lease) held_.erase(it);
    }
    if (want > 0) {
        // a marker the keeper popped while this exchange ran may announce jobs it did not see
        fetch_ = r.jobs.size() == want || wake_gen_ != gen;
        bool wake_keeper = !fetch_ && !blocking_;  // nothing left: the keeper blocks on the server
        if (!fetch_ && r.next_delay >= 0) {
            const auto at = clock::now() + std::chrono::milliseconds(r.next_delay);
            if (at < delayed_at_) {
                delayed_at_ = at;
                wake_keeper = true;
            }
        }
        if (wake_keeper) waker_.notify();
    }
    // wake the others when there is something for them: jobs (one wake-up for all is cheaper
    // than a chain of single ones), outcomes to send, a fetch to lead, or (closing) the end of
    // this exchange they wait for to leave
    const bool wake = !ready_.empty() || !pending_.empty() || *closing_ || (fetch_ && idle_ > 1);
    if (wake || !sending.empty()) {
        lock.unlock();  // notify unlocked: the woken threads need the mutex at once
        if (wake) jobs_cv_.notify_all();
        if (!sending.empty()) notify_outcomes(r, sending);
        lock.lock();
    }
}

template <class T>
typename worker<T>::outcome worker<T>::run_one(std::unique_ptr<job<T>> j) {
    outcome o;
    j->decode_data();
    const auto attempt = [&] { return "attempt " + std::to_string(j->attempts_made() + 1) + ": "; };
    if (!j->has_data()) {
        o.kind = 'u';
        o.payload = j->decode_error();
        o.trace = attempt() + o.payload;
    } else {
        try {
            o.payload = handler_(*j);
            o.kind = 'c';
        } catch (const unrecoverable_error& e) {
            o.kind = 'u';
            o.payload = e.what();
            o.trace = attempt() + detail::describe_exception(e);
        } catch (const std::exception& e) {
            o.kind = 'f';
            o.payload = e.what();
            o.trace = attempt() + detail::describe_exception(e);
        } catch (...) {
            o.kind = 'f';
            o.payload = "exception of unknown type";
            o.trace = attempt() + o.payload;
        }
        if (o.kind == 'f') {
            static thread_local std::minstd_rand rng(std::random_device{}());
            const double r = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
            const backoff_policy b{static_cast<backoff_policy::kind>(j->record().backoff_kind),
                                   std::chrono::milliseconds(j->record().backoff_ms),
                                   static_cast<double>(j->record().jitter_permille) / 1000.0};
            o.retry_delay = b.delay_before(j->attempts_made() + 1, r).count();
        }
    }
    o.item = std::move(j);
    return o;
}

template <class T>
typename worker<T>::move_result worker<T>::exchange(const std::vector<outcome>& sending, std::size_t want, bool rearm,
                                                    bool alone) {
    // only the leader (busy_) gets here, so cmd_ and seq_ are its own
    if (!cmd_ || cmd_->broken()) {
        cmd_.reset();
        cmd_.emplace(core_->redis.dedicated());
    }
    const std::string token = worker_id_ + "-" + std::to_string(++seq_);
    std::vector<std::string> args;
    args.reserve(5 + sending.size() * 10);
    args.push_back(core_->job_prefix);
    args.push_back(token);
    args.push_back(std::to_string(options_.lease_duration.count()));
    args.push_back(std::to_string(want));
    args.emplace_back(rearm ? "1" : "0");
    args.push_back(std::to_string(sending.size()));
    for (const auto& o : sending) {
        const auto& rec = o.item->record();
        args.push_back(rec.id);
        args.push_back(rec.lease);
        args.emplace_back(1, o.kind);
        args.push_back(o.payload);
        args.push_back(o.trace);
        args.push_back(std::to_string(o.retry_delay));
        args.push_back(std::to_string(rec.attempts_made + 1));
        const bool done = o.kind == 'c';
        const long long keep_n = done ? rec.keep_completed_count : rec.keep_failed_count;
        const long long keep_age = done ? rec.keep_completed_age : rec.keep_failed_age;
        args.push_back(keep_n >= 0 ? std::to_string(keep_n) : std::string());
        args.push_back(keep_age > 0 ? std::to_string(keep_age) : std::string());
        args.push_back(std::to_string(rec.processed));
    }
    const bool poll = alone && options_.reply_spin.count() > 0 && reply_timing_.poll_next(seq_);
    const auto sent = clock::now();
    detail::reply_ptr r = detail::eval_raw(*cmd_, detail::queue_scripts::get().move, core_->keys, args,
                                           poll ? options_.reply_spin : std::chrono::microseconds(0));
    reply_timing_.record(poll, std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - sent));
    const detail::node n(r.get());
    const detail::origin from{"EVALSHA", core_->keys[0]};
    if (n.type() == reply_type::error) detail::throw_server_error(n, from);
    if (n.type() != reply_type::array || n.size() != 4) detail::throw_mismatch(n, "four-element array", from);
    move_result out;
    out.codes = detail::convert_reply<std::vector<long long>>(n.at(0), from);
    out.now = n.at(2).integer();
    out.next_delay = n.at(3).integer();
    const detail::node jobs = n.at(1);
    out.jobs.reserve(jobs.size() / 2);
    const std::string lease_text = std::to_string(out.now) + "|" + token;
    for (std::size_t i = 0; i + 1 < jobs.size(); i += 2) {
        detail::job_record rec;
        rec.id = std::string(jobs.at(i).str());
        detail::read_fields(jobs.at(i + 1), rec);
        rec.lease = lease_text;
        rec.state = 'a';
        rec.processed = out.now;
        auto lease = std::make_shared<detail::job_lease>();
        lease->core = core_;
        lease->lease = lease_text;
        lease->closing = closing_;
        out.jobs.push_back(std::make_unique<job<T>>(std::move(rec), std::move(lease), false));
    }
    return out;
}

template <class T>
void worker<T>::notify_outcomes(const move_result& r, std::vector<outcome>& sent) {
    for (std::size_t i = 0; i < sent.size() && i < r.codes.size(); ++i) {
        outcome& o = sent[i];
        job<T>& j = *o.item;
        auto& rec = j.record();
        const long long code = r.codes[i];
        if (code == 0) {
            report(error(errc::invalid_state,
                         core_->what() + "job " + j.id() +
                             ": lease lost (the job was recovered as stalled, or removed); its outcome was discarded"));
            continue;
        }
        ++rec.attempts_made;
        if (code == 1) {
            rec.state = 'c';
            rec.finished = r.now;
            rec.return_value = std::move(o.payload);
            call(options_.on_completed, static_cast<const job<T>&>(j));
            continue;
        }
        rec.failed_reason = o.payload;
        job_failure f;
        f.reason = std::move(o.payload);
        f.will_retry = code == 2 || code == 3;
        f.retry_in = std::chrono::milliseconds(code == 2 ? o.retry_delay : 0);
        rec.state = code == 2 ? 'd' : code == 3 ? (rec.priority > 0 ? 'p' : 'w') : 'f';
        if (code == 4) rec.finished = r.now;
        call(options_.on_failed, static_cast<const job<T>&>(j), f);
    }
}

template <class T>
void worker<T>::renew() {
    std::vector<std::string> args{core_->job_prefix, std::to_string(options_.lease_duration.count())};
    std::vector<std::shared_ptr<detail::job_lease>> leases;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        args.reserve(2 + held_.size() * 2);
        for (const auto& [id, lease] : held_) {
            if (lease->lost) continue;
            args.push_back(id);
            args.push_back(lease->lease);
            leases.push_back(lease);
        }
    }
    if (leases.empty()) return;
    const auto renewed = core_->redis.template eval<std::vector<long long>>(
        idempotent, detail::queue_scripts::get().renew, core_->keys, args);
    for (std::size_t i = 0; i < renewed.size() && i < leases.size(); ++i) {
        if (renewed[i] == 0) leases[i]->lost = true;
    }
}

template <class T>
void worker<T>::check_stalled() {
    const std::vector<std::string> args{core_->job_prefix, std::to_string(options_.stalled_interval.count()),
                                        std::to_string(options_.max_stalled_count), "1000"};
    const auto r = core_->redis.template eval<std::vector<std::vector<std::string>>>(
        idempotent, detail::queue_scripts::get().stalled, core_->keys, args);
    const stalled_jobs s = queue<T>::parse_stalled(r);
    if (!s.recovered.empty() || !s.failed.empty()) call(options_.on_stalled, s);
}

// Gives back a marker the keeper popped when no thread was idle to use it: an exchange with
// want = 0 sets it again if jobs are ready.
template <class T>
void worker<T>::refresh_marker() {
    const std::vector<std::string> args{core_->job_prefix, worker_id_ + "-refresh", "1", "0", "0", "0"};
    (void)core_->redis.template eval<std::vector<reply>>(idempotent, detail::queue_scripts::get().move, core_->keys,
                                                         args);
}

template <class T>
void worker<T>::start_block() {
    if (!block_ || block_->broken()) {
        block_.reset();
        block_.emplace(core_->redis.dedicated());
        const auto grace = std::max(core_->redis.options().command_timeout, std::chrono::milliseconds(1000));
        block_->set_timeout(options_.block_timeout + grace);
    }
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.3f", static_cast<double>(options_.block_timeout.count()) / 1000.0);
    detail::argv a;
    a.push_all("BZPOPMIN", core_->keys[7], std::string_view(seconds));
    block_->append(a);
    if (auto st = block_->flush(); !st.ok()) throw transport_error(st, "BZPOPMIN", core_->keys[7]);
    block_deadline_ = clock::now() + options_.block_timeout +
                      std::max(core_->redis.options().command_timeout, std::chrono::milliseconds(1000));
    block_pending_ = true;
    std::lock_guard<std::mutex> lock(mutex_);
    blocking_ = true;
}

// Forgets the blocking connection (a pending BZPOPMIN ends when the server sees it close).
template <class T>
void worker<T>::drop_block(bool look_again) {
    block_.reset();
    block_pending_ = false;
    std::lock_guard<std::mutex> lock(mutex_);
    blocking_ = false;
    if (look_again) {
        fetch_ = true;
        ++wake_gen_;
        rearm_ = true;  // the BZPOPMIN may have popped the marker unseen
        jobs_cv_.notify_one();
    }
}

// Reads the BZPOPMIN reply; true when it popped the marker (false: it timed out).
template <class T>
bool worker<T>::read_block() {
    block_pending_ = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        blocking_ = false;
    }
    detail::reply_ptr r;
    if (auto st = block_->read(r); !st.ok()) throw transport_error(st, "BZPOPMIN", core_->keys[7]);
    const detail::node n(r.get());
    if (n.type() == reply_type::error) detail::throw_server_error(n, {"BZPOPMIN", core_->keys[7]});
    return n.type() != reply_type::nil;
}

template <class T>
void worker<T>::keeper_loop() {
    current_worker() = this;
    auto next_renew = clock::now() + renew_interval_;
    auto next_stall = clock::now();
    int failures = 0;
    for (;;) {
        bool closing = false, abandoned = false, block = false, holding = false;
        auto delayed_at = clock::time_point::max();
        const auto now = clock::now();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            closing = *closing_;
            abandoned = abandoned_;
            if (closing && live_ == 0) break;
            if (now >= delayed_at_) {
                // a delayed job fell due: an idle thread fetches it (promoting it first)
                delayed_at_ = clock::time_point::max();
                fetch_ = true;
                ++wake_gen_;
                jobs_cv_.notify_one();
            }
            delayed_at = delayed_at_;
            holding = !held_.empty();
            block = !closing && !fetch_ && idle_ > 0 && !blocking_;
        }
        try {
            if (closing && block_pending_) {
                // abandon the BZPOPMIN (the server unblocks a closed client) and give back a
                // marker it may have popped meanwhile
                drop_block(false);
                refresh_marker();
            }
            if (!abandoned && holding && now >= next_renew) {
                renew();
                next_renew = now + renew_interval_;
            }
            if (!closing && now >= next_stall) {
                next_stall = now + options_.stalled_interval;
                check_stalled();
            }
            if (block && !block_pending_) start_block();
            failures = 0;
        } catch (const std::exception& e) {
            const auto* re = dynamic_cast<const error*>(&e);
            report(re ? *re : error(errc::invalid_state, core_->what() + e.what()));
            if (block_ && block_->broken()) drop_block(true);  // whatever happened meanwhile, look again
            // pause, cut short by close
            detail::wait_readable(-1, waker_, backoff(failures++));
            waker_.drain();
            continue;
        }

        auto until = now + std::chrono::hours(1);
        if (!abandoned && holding) until = std::min(until, next_renew);
        if (!closing) until = std::min(until, next_stall);
        until = std::min(until, delayed_at);
        if (block_pending_) until = std::min(until, block_deadline_);
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
        // a wake-up is handled first; a reply that arrived too is read on the next turn
        const auto w = detail::wait_readable(block_pending_ ? block_->fd() : -1, waker_, left + std::chrono::milliseconds(1));
        if (w == detail::wait_result::woken) waker_.drain();
        try {
            if (block_pending_ && w == detail::wait_result::readable) {
                const bool marker = read_block();
                bool give_back = false;
                {
                    std::lock_guard<std::mutex> lock(mutex_);
                    fetch_ = true;  // a marker, or a block timeout: look (this also catches what others missed)
                    ++wake_gen_;
                    if (idle_ > 0) {
                        rearm_ = rearm_ || marker;
                        jobs_cv_.notify_one();
                    } else {
                        give_back = marker;
                    }
                }
                if (give_back) refresh_marker();
            } else if (block_pending_ && clock::now() >= block_deadline_) {
                drop_block(true);
                throw error(errc::timeout, core_->what() + "BZPOPMIN got no reply within its timeout; reconnecting");
            }
        } catch (const std::exception& e) {
            const auto* re = dynamic_cast<const error*>(&e);
            report(re ? *re : error(errc::invalid_state, core_->what() + e.what()));
            drop_block(true);
            detail::wait_readable(-1, waker_, backoff(failures++));
            waker_.drain();
        }
    }
    drop_block(false);
    std::lock_guard<std::mutex> lock(mutex_);
    keeper_done_ = true;
    done_cv_.notify_all();
}

}  // namespace v0
}  // namespace redkit
