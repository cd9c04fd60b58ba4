// SPDX-License-Identifier: MIT
// What a queue handle, its workers and its jobs share: the queue's keys, a job's stored fields
// (and how they are read from a reply), the options check and the add script's arguments.
#pragma once

#include <redkit/client.hpp>
#include <redkit/config.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/detail/cancel.hpp>
#include <redkit/queue/detail/model.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

/// Everything a queue handle, its workers and their jobs share.
struct queue_core {
    client redis;
    std::string name;
    std::vector<std::string> keys;  // the 10 KEYS of every queue script, in queue_key order
    std::string job_prefix;         // "<base>:job:"
    key_space space;                // where its keys are (other queues of a flow are there too)

    int replicas = 0;  // queue_options::replicas: WAIT for this many after an add
    std::chrono::milliseconds replica_timeout{1000};

    REDKIT_DECL queue_core(client c, std::string queue_name, const key_space& ks);

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
    long long due = 0;  // a delayed job: its score in the delayed zset (due ms), read by list and get
    int backoff_kind = 0;
    long long backoff_ms = 0, jitter_permille = 0;
    long long keep_completed_count = -1, keep_completed_age = 0, keep_failed_count = -1, keep_failed_age = 0;
    long long timeout_ms = 0;   // job_options::timeout (0: none)
    std::string dedup_id;       // its deduplication key (stored form), or empty
    std::string group;          // its group (stored form), or empty
    std::string trace_context;  // what observer::job_trace_context gave when it was added, or empty
};

REDKIT_DECL long long job_field_int(std::string_view s) noexcept;

/// Fills a record from an HGETALL array (a node over the reply).
REDKIT_DECL void read_fields(reply_view h, job_record& r);

REDKIT_DECL job_state state_of(char c) noexcept;

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

/// HGETALL of a flow parent's "<job key><suffix>" (queue_model::results or ::ignored); id as stored.
REDKIT_DECL std::vector<std::string> children_hash(const queue_core& core, const std::string& stored_id,
                                                   std::string_view suffix);

REDKIT_DECL std::vector<child_value> read_child_values(const std::vector<std::string>& h);

REDKIT_DECL std::vector<ignored_child> read_ignored_children(const std::vector<std::string>& h);

/// A worker's hold on one job: what update_progress needs, and whether the lease was lost.
struct job_lease {
    std::shared_ptr<queue_core> core;
    std::string lease;  // "<taken ms>|<token>", as in the queue's active zset ("<id>:<lease>")
    std::atomic<bool> lost{false};
    std::shared_ptr<const std::atomic<bool>> closing;
    std::shared_ptr<cancel_state> cancel = std::make_shared<cancel_state>();
    // job_options::timeout: 0 none; else the attempt is cancelled at timeout_at (steady clock
    // nanoseconds since its epoch; set when the handler starts, read by the keeper)
    long long timeout_ms = 0;
    std::atomic<long long> timeout_at{0};
};

/// Tells an observer (if any) of a job's step (observer::on_job); stage started goes to
/// on_job_start, whose context it returns.
inline std::shared_ptr<void> observe_job(observer* to, job_event& e) noexcept {
    if (to == nullptr) return nullptr;
    if (e.stage == job_stage::started) return observe_for(to, &observer::on_job_start, e);
    observe(to, &observer::on_job, e);
    return nullptr;
}

/// observe_job for a job queue::add or add_bulk created.
inline void observe_added(observer* to, std::string_view queue, std::string_view id, std::string_view name) noexcept {
    if (to == nullptr) return;
    job_event e;
    e.queue = queue;
    e.id = id;
    e.name = name;
    observe_job(to, e);
}

/// Tells the queue's client's observer (if any) of the jobs a stalled-job check recovered
/// (stalled) or failed (failed, reason "stalled").
inline void observe_stalled(const queue_core& core, const stalled_jobs& s) noexcept {
    observer* to = core.redis.options().observer.get();
    if (to == nullptr) return;
    for (const auto* ids : {&s.recovered, &s.failed}) {
        for (const std::string& id : *ids) {
            job_event e;
            e.queue = core.name;
            e.id = id;
            e.stage = ids == &s.recovered ? job_stage::stalled : job_stage::failed;
            if (e.stage == job_stage::failed) e.reason = "stalled";
            observe_job(to, e);
        }
    }
}

/// The job's event for a step of an attempt (job_event's fields from its record).
inline job_event attempt_event(const queue_core& core, job_stage stage, std::string_view id, const job_record& rec,
                               int attempt) noexcept {
    job_event e;
    e.queue = core.name;
    e.id = id;
    e.name = rec.name;
    e.stage = stage;
    e.attempt = attempt;
    e.trace_context = rec.trace_context;
    return e;
}

/// What the queue's client's observer gives as the caller's trace context for jobs it adds
/// (observer::job_trace_context; at most 512 bytes are kept, a longer one is dropped).
REDKIT_DECL std::string job_trace_context(const queue_core& core) noexcept;

REDKIT_DECL bool is_generated_id(std::string_view s) noexcept;

/// Checks job options; throws std::invalid_argument naming the field.
REDKIT_DECL void validate_job_options(const job_options& o);

inline std::string job_field_number(long long v, bool present) { return present ? std::to_string(v) : std::string(); }

/// Appends the 14 add fields of one job (the add, add_flow and scheduler scripts read them).
REDKIT_DECL void push_add_fields(std::vector<std::string>& out, std::string_view name, std::string data,
                                 const job_options& o);

/// The add script's fields per job: the 14 add fields, then the 5 of push_add_only_fields.
inline constexpr std::size_t add_script_fields = 19;

/// Appends the add script's 5 fields only add and add_bulk take: the deduplication key (stored
/// form), its TTL ms, its flags, the group (stored form), and the caller's trace context.
REDKIT_DECL void push_add_only_fields(std::vector<std::string>& out, const job_options& o,
                                      std::string_view trace_context);

/// Throws std::invalid_argument when the options ask for deduplication or a group: `caller`
/// (add_flow, upsert_scheduler) does not take them.
REDKIT_DECL void refuse_add_only_options(const job_options& o, const char* caller);

/// The add script's code for one job (1 created, 0 exists, 2 deduplicated, 3 debounced).
REDKIT_DECL add_outcome add_outcome_of(long long code) noexcept;

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
REDKIT_DECL stalled_jobs parse_stalled(const std::vector<std::vector<std::string>>& r);

}  // namespace detail

template <>
struct reply_traits<detail::move_reply> {
    REDKIT_DECL static detail::move_reply convert(reply_view v);
};

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/queue/detail/impl/record.ipp>
#endif
