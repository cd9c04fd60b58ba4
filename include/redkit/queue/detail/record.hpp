// SPDX-License-Identifier: MIT
// What a queue handle, its workers and its jobs share: the queue's keys, a job's stored fields
// (and how they are read from a reply), the options check and the add script's arguments.
#pragma once

#include <redkit/client.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

/// The KEYS of every queue script, in their order (queue/detail/lua.hpp documents each).
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

/// Everything a queue handle, its workers and their jobs share.
struct queue_core {
    client redis;
    std::string name;
    std::vector<std::string> keys;  // the 10 KEYS of every queue script, in queue_key order
    std::string job_prefix;         // "<base>:job:"
    key_space space;                // where its keys are (other queues of a flow are there too)

    int replicas = 0;  // queue_options::replicas: WAIT for this many after an add
    std::chrono::milliseconds replica_timeout{1000};

    queue_core(client c, std::string queue_name, const key_space& ks)
        : redis(std::move(c)), name(std::move(queue_name)), space(ks) {
        if (name.empty()) throw std::invalid_argument("redkit: queue: name must not be empty");
        static constexpr const char* suffixes[] = {"wait",   "prioritized", "delayed", "active", "completed",
                                                   "failed", "meta",        "marker",  "id",     "stalled-check"};
        for (const char* s : suffixes) keys.push_back(ks.key("queue", hash_tag(name), s));
        job_prefix = ks.key("queue", hash_tag(name), "job") + ":";
    }

    const std::string& key(queue_key k) const noexcept { return keys[static_cast<std::size_t>(k)]; }

    /// "redkit: queue <name>: " for messages.
    std::string what() const { return "redkit: queue " + name + ": "; }
};

/// What a handler's attempt came to, as the move script reads it (ARGV "kind" of an outcome).
enum class outcome_kind : char {
    completed = 'c',
    child_completed = 'k',  // completed, and a flow's child: the script tells its parent
    failed = 'f',
    failed_for_good = 'u',
    rate_limited = 'r'
};

/// What the move script did with one outcome (its first reply element, one code per outcome).
enum class move_code : long long {
    lease_lost = 0,     ///< the lease no longer held the job: the outcome was discarded
    completed = 1,      ///< recorded as completed
    retry_delayed = 2,  ///< failed, attempts remain: in the delayed set for its backoff
    retry_now = 3,      ///< failed, attempts remain, no backoff: back in line
    failed = 4,         ///< failed for good
    rate_limited = 5,   ///< back in line without an attempt; the queue holds for the delay
};

/// The fields of a job hash as read from Redis (ids still escaped).
struct job_record {
    std::string id;  // as stored (escaped)
    std::string name, data, lease, return_value, failed_reason, trace, progress;
    std::string scheduler;                // the scheduler that made it (stored form), or empty
    long long tick = 0;                   // its tick (ms), for a scheduler's job
    std::string parent_queue, parent_id;  // a flow child's parent (id stored form), or empty
    long long pending_children = 0;       // a flow parent: children not yet finished
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
inline void read_fields(reply_view h, job_record& r) {
    const std::size_t n = h.size();
    for (std::size_t i = 0; i + 1 < n; i += 2) {
        const std::string_view f = h[i].str();
        const std::string_view v = h[i + 1].str();
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
            case 'k':
                if (f == "kids") r.pending_children = job_field_int(v);
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
                else if (f == "pqn")
                    r.parent_queue = std::string(v);
                else if (f == "pid")
                    r.parent_id = std::string(v);
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
                else if (f == "sch")
                    r.scheduler = std::string(v);
                else if (f == "stl")
                    r.stalls = static_cast<int>(job_field_int(v));
                break;
            case 't':
                if (f == "ts")
                    r.created = job_field_int(v);
                else if (f == "tr")
                    r.trace = std::string(v);
                else if (f == "tick")
                    r.tick = job_field_int(v);
                break;
            default: break;
        }
    }
}

inline job_state state_of(char c) noexcept {
    switch (c) {
        case 'w': return job_state::waiting;
        case 'p': return job_state::prioritized;
        case 'd': return job_state::delayed;
        case 'a': return job_state::active;
        case 'c': return job_state::completed;
        case 'f': return job_state::failed;
        case 'x': return job_state::waiting_children;
        default: return job_state::unknown;
    }
}

/// A flow parent's finished children (HGETALL of "<job key>:results" or ":ignored", fields
/// "<queue name>:<stored id>"), sorted by queue then id. `make` builds one entry.
template <class Entry, class Make>
std::vector<Entry> read_children(const std::vector<std::string>& h, Make make) {
    std::vector<Entry> out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
        const std::string& ref = h[i];
        const auto colon = ref.rfind(':');  // stored ids hold no ':' (escaped)
        if (colon == std::string::npos) continue;
        out.push_back(make(ref.substr(0, colon), unescape_key_part(ref.substr(colon + 1)), h[i + 1]));
    }
    std::sort(out.begin(), out.end(),
              [](const Entry& a, const Entry& b) { return a.queue != b.queue ? a.queue < b.queue : a.id < b.id; });
    return out;
}

/// HGETALL of a flow parent's "<job key><suffix>" (":results" or ":ignored"); id as stored.
inline std::vector<std::string> children_hash(const queue_core& core, const std::string& stored_id,
                                              const char* suffix) {
    return core.redis.command<std::vector<std::string>>(idempotent, "HGETALL", core.job_prefix + stored_id + suffix);
}

inline std::vector<child_value> read_child_values(const std::vector<std::string>& h) {
    return read_children<child_value>(h, [](std::string q, std::string id, const std::string& v) {
        return child_value{std::move(q), std::move(id), nlohmann::json::parse(v, nullptr, false)};
    });
}

inline std::vector<ignored_child> read_ignored_children(const std::vector<std::string>& h) {
    return read_children<ignored_child>(h, [](std::string q, std::string id, const std::string& v) {
        return ignored_child{std::move(q), std::move(id), v};
    });
}

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

inline std::string job_field_number(long long v, bool present) { return present ? std::to_string(v) : std::string(); }

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

/// What the move script returns: a code per outcome sent (move_code), the jobs it leased (ids as
/// stored, and their fields), the server time in ms, and when the next delayed job is due (ms
/// from now; -1: none).
struct move_reply {
    std::vector<long long> codes;
    std::vector<job_record> jobs;
    long long now = 0;
    long long next_delay = -1;
    bool limited = false;  // the rate limit stopped the take short of waiting jobs
};

/// The ids a stalled-job check recovered and failed (unescaped).
inline stalled_jobs parse_stalled(const std::vector<std::vector<std::string>>& r) {
    stalled_jobs out;
    if (r.size() == 2) {
        for (const auto& id : r[0]) out.recovered.push_back(unescape_key_part(id));
        for (const auto& id : r[1]) out.failed.push_back(unescape_key_part(id));
    }
    return out;
}

}  // namespace detail

template <>
struct reply_traits<detail::move_reply> {
    static detail::move_reply convert(reply_view v) {
        if (v.type() != reply_type::array || v.size() != 5) v.mismatch("five-element array");
        detail::move_reply out;
        out.codes = v[0].as<std::vector<long long>>();
        out.now = v[2].integer();
        out.next_delay = v[3].integer();
        out.limited = v[4].integer() == 1;
        const reply_view jobs = v[1];
        out.jobs.resize(jobs.size() / 2);
        for (std::size_t i = 0; i + 1 < jobs.size(); i += 2) {
            detail::job_record& rec = out.jobs[i / 2];
            rec.id = std::string(jobs[i].str());
            detail::read_fields(jobs[i + 1], rec);
        }
        return out;
    }
};

}  // namespace v0
}  // namespace redkit
