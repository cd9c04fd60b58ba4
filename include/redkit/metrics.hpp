// SPDX-License-Identifier: MIT
// redkit::metrics: an observer (observer.hpp) that counts what a client does, and renders the
// counts in the Prometheus text format for an application's own /metrics endpoint.
//
// Counted: commands by operation and outcome, with a latency histogram per operation; retries
// and redirections; connections opened, failed and closed (by reason); pool waits; the shared
// connection's writes and the commands in them; cluster map readings; Sentinel switches; cache
// calls by outcome. Counters live in per-thread
// shards of atomics (no lock, no allocation once an operation has its row), so threads that
// count do not contend; snapshot() and prometheus() add the shards up.
// Operations: the first 64 distinct names get a row each; later ones count as "other".
//
// @code
// auto seen = std::make_shared<redkit::metrics>();
// redkit::client_options o;
// o.observer = seen;
// redkit::client redis(o);
// ...
// std::string body = seen->prometheus();  // serve it with Content-Type: text/plain; version=0.0.4
// @endcode
#pragma once

#include <redkit/observer.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace redkit {
inline namespace v0 {

/// Counts a client's work; renders it as Prometheus text (see the file comment).
class metrics final : public observer {
public:
    /// Upper bounds of the latency histogram's buckets, in seconds (+Inf follows).
    static constexpr std::array<double, 13> bucket_bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                          0.05,   0.1,     0.5,    1,     5,      10};
    /// Operations that get a row of their own; more count as "other".
    static constexpr std::size_t max_operations = 64;

    /// One operation's counts.
    struct operation_counts {
        std::uint64_t ok = 0;           ///< replies that are not errors
        std::uint64_t error_reply = 0;  ///< error replies
        std::uint64_t failed = 0;       ///< no reply (timeouts, closed connections, no connection)
        double seconds = 0;             ///< total duration
        std::array<std::uint64_t, bucket_bounds.size() + 1> buckets{};  ///< per bucket (not cumulative); last: +Inf
        /// All of them, whatever their outcome.
        std::uint64_t total() const noexcept { return ok + error_reply + failed; }
    };

    /// Everything counted so far.
    struct counts {
        std::map<std::string, operation_counts> operations;  ///< by operation ("GET", "PIPELINE", "other")
        std::uint64_t retries = 0;                           ///< attempts after commands' first
        std::uint64_t moved = 0;                             ///< MOVED redirections followed
        std::uint64_t asked = 0;                             ///< ASK redirections followed
        std::uint64_t connects = 0;                          ///< connections opened
        std::uint64_t connect_failures = 0;                  ///< connection attempts that failed
        std::map<std::string, std::uint64_t> closes;         ///< connections closed, by reason ("eof", "timeout", ...)
        std::uint64_t pool_waits = 0;                        ///< callers that waited for a pooled connection
        std::uint64_t pool_exhausted = 0;                    ///< ... and got none (pool_wait_timeout)
        double pool_wait_seconds = 0;                        ///< time spent waiting
        std::uint64_t batches = 0;                           ///< writes of the shared connection
        std::uint64_t batch_commands = 0;                    ///< commands in them
        std::uint64_t cluster_maps = 0;                      ///< cluster slot map readings
        std::uint64_t cluster_map_failures = 0;              ///< ... that failed
        std::uint64_t cluster_slots_moved = 0;               ///< slots that changed primary between readings
        std::uint64_t sentinel_switches = 0;                 ///< failovers of a Sentinel deployment seen
        std::map<std::string, std::uint64_t> cache_calls;  ///< cache calls by outcome ("hit", "near_hit", "miss", ...)
        double cache_lock_wait_seconds = 0;                ///< time cache calls waited for another process's load
    };

    metrics() = default;

    /// The counts, added up over the shards (a consistent-enough view: each counter is read once).
    counts snapshot() const;

    /// The counts in the Prometheus text format (version 0.0.4), each metric named
    /// `<prefix>_...` (see docs/pages/observability.md for the list).
    std::string prometheus(std::string_view prefix = "redkit") const;

    /// The name a close_reason has in counts::closes and in the text ("eof").
    static const char* reason_name(close_reason r) noexcept;
    /// The name a cache_outcome has in counts::cache_calls and in the text ("near_hit").
    static const char* outcome_name(cache_outcome o) noexcept;

    /// `v` as a label value of the Prometheus text format: quoted, with backslash, quote and
    /// newline escaped.
    static std::string label_value(std::string_view v);

    void on_command(const command_event& e) override;
    void on_connect(const connect_event& e) override;
    void on_close(const close_event& e) override;
    void on_pool_wait(const pool_wait_event& e) override;
    void on_batch(const batch_event& e) override;
    void on_cluster_map(const cluster_map_event& e) override;
    void on_cache(const cache_event& e) override;
    void on_sentinel_switch(const sentinel_switch_event& e) override;

private:
    static constexpr std::size_t shards = 8;
    static constexpr std::size_t reasons = 8;         // close_reason's values
    static constexpr std::size_t cache_outcomes = 6;  // cache_outcome's values
    using counter = std::atomic<std::uint64_t>;

    struct op_row {
        counter ok{0}, error_reply{0}, failed{0}, nanos{0};
        std::array<counter, bucket_bounds.size() + 1> buckets{};
    };
    struct alignas(64) shard {
        std::array<op_row, max_operations + 1> ops;  // the last: "other"
        counter retries{0}, moved{0}, asked{0}, connects{0}, connect_failures{0};
        std::array<counter, reasons> closes{};
        counter pool_waits{0}, pool_exhausted{0}, pool_wait_nanos{0}, batches{0}, batch_commands{0};
        counter cluster_maps{0}, cluster_map_failures{0}, cluster_slots_moved{0};
        std::array<counter, cache_outcomes> cache_calls{};
        counter cache_lock_wait_nanos{0}, sentinel_switches{0};
    };
    // an operation's name, claimed once (0 free, 1 being written, 2 ready)
    struct name_slot {
        std::atomic<int> state{0};
        char text[32] = {};
        std::size_t size = 0;
    };

    shard& mine() noexcept {
        thread_local const std::size_t index = std::hash<std::thread::id>()(std::this_thread::get_id()) % shards;
        return shards_[index];
    }
    std::size_t row_of(std::string_view name) noexcept;

    std::unique_ptr<shard[]> shards_{new shard[shards]};
    std::array<name_slot, max_operations> names_{};
};

// ---- implementation ----

inline std::size_t metrics::row_of(std::string_view name) noexcept {
    if (name.empty() || name.size() >= sizeof(name_slot::text)) return max_operations;
    std::size_t h = std::hash<std::string_view>()(name) % max_operations;
    for (std::size_t probe = 0; probe < max_operations; ++probe, h = (h + 1) % max_operations) {
        name_slot& s = names_[h];
        int state = s.state.load(std::memory_order_acquire);
        if (state == 0 && s.state.compare_exchange_strong(state, 1, std::memory_order_acq_rel)) {
            name.copy(s.text, name.size());
            s.size = name.size();
            s.state.store(2, std::memory_order_release);
            return h;
        }
        while (state == 1) state = s.state.load(std::memory_order_acquire);  // being named: a moment
        if (std::string_view(s.text, s.size) == name) return h;
    }
    return max_operations;
}

inline void metrics::on_command(const command_event& e) {
    shard& s = mine();
    op_row& row = s.ops[row_of(e.operation)];
    switch (e.outcome) {
        case command_outcome::ok: row.ok.fetch_add(1, std::memory_order_relaxed); break;
        case command_outcome::error_reply: row.error_reply.fetch_add(1, std::memory_order_relaxed); break;
        case command_outcome::failed: row.failed.fetch_add(1, std::memory_order_relaxed); break;
    }
    const auto nanos = static_cast<std::uint64_t>(std::max<std::int64_t>(0, e.duration.count()));
    row.nanos.fetch_add(nanos, std::memory_order_relaxed);
    const double seconds = static_cast<double>(nanos) * 1e-9;
    std::size_t b = 0;
    while (b < bucket_bounds.size() && seconds > bucket_bounds[b]) ++b;
    row.buckets[b].fetch_add(1, std::memory_order_relaxed);
    if (e.retries > 0) s.retries.fetch_add(static_cast<std::uint64_t>(e.retries), std::memory_order_relaxed);
    if (e.moved > 0) s.moved.fetch_add(static_cast<std::uint64_t>(e.moved), std::memory_order_relaxed);
    if (e.asked > 0) s.asked.fetch_add(static_cast<std::uint64_t>(e.asked), std::memory_order_relaxed);
}

inline void metrics::on_connect(const connect_event& e) {
    (e.ok ? mine().connects : mine().connect_failures).fetch_add(1, std::memory_order_relaxed);
}

inline void metrics::on_close(const close_event& e) {
    mine().closes[static_cast<std::size_t>(e.reason) % reasons].fetch_add(1, std::memory_order_relaxed);
}

inline void metrics::on_pool_wait(const pool_wait_event& e) {
    shard& s = mine();
    s.pool_waits.fetch_add(1, std::memory_order_relaxed);
    if (e.exhausted) s.pool_exhausted.fetch_add(1, std::memory_order_relaxed);
    s.pool_wait_nanos.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, e.waited.count())),
                                std::memory_order_relaxed);
}

inline void metrics::on_batch(const batch_event& e) {
    shard& s = mine();
    s.batches.fetch_add(1, std::memory_order_relaxed);
    s.batch_commands.fetch_add(e.commands, std::memory_order_relaxed);
}

inline void metrics::on_cluster_map(const cluster_map_event& e) {
    shard& s = mine();
    s.cluster_maps.fetch_add(1, std::memory_order_relaxed);
    if (!e.ok) s.cluster_map_failures.fetch_add(1, std::memory_order_relaxed);
    s.cluster_slots_moved.fetch_add(e.slots_moved, std::memory_order_relaxed);
}

inline void metrics::on_cache(const cache_event& e) {
    shard& s = mine();
    s.cache_calls[static_cast<std::size_t>(e.outcome) % cache_outcomes].fetch_add(1, std::memory_order_relaxed);
    if (e.lock_waited.count() > 0) {
        s.cache_lock_wait_nanos.fetch_add(static_cast<std::uint64_t>(e.lock_waited.count()), std::memory_order_relaxed);
    }
}

inline void metrics::on_sentinel_switch(const sentinel_switch_event&) {
    mine().sentinel_switches.fetch_add(1, std::memory_order_relaxed);
}

inline const char* metrics::outcome_name(cache_outcome o) noexcept {
    switch (o) {
        case cache_outcome::hit: return "hit";
        case cache_outcome::near_hit: return "near_hit";
        case cache_outcome::miss: return "miss";
        case cache_outcome::waited: return "waited";
        case cache_outcome::stale: return "stale";
        case cache_outcome::failed: return "failed";
    }
    return "other";
}

inline const char* metrics::reason_name(close_reason r) noexcept {
    switch (r) {
        case close_reason::closed: return "closed";
        case close_reason::timeout: return "timeout";
        case close_reason::eof: return "eof";
        case close_reason::error: return "error";
        case close_reason::idle_check: return "idle_check";
        case close_reason::moved: return "moved";
        case close_reason::failover: return "failover";
        case close_reason::setup: return "setup";
    }
    return "other";
}

inline std::string metrics::label_value(std::string_view v) {
    std::string q = "\"";
    for (const char ch : v) {
        if (ch == '\\' || ch == '"') {
            q += '\\';
            q += ch;
        } else if (ch == '\n') {
            q += "\\n";
        } else {
            q += ch;
        }
    }
    return q + "\"";
}

inline metrics::counts metrics::snapshot() const {
    counts out;
    const auto sum = [&](auto member) {
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < shards; ++i) n += (shards_[i].*member).load(std::memory_order_relaxed);
        return n;
    };
    for (std::size_t row = 0; row <= max_operations; ++row) {
        std::string name = "other";
        if (row < max_operations) {
            const name_slot& s = names_[row];
            if (s.state.load(std::memory_order_acquire) != 2) continue;
            name.assign(s.text, s.size);
        }
        operation_counts c;
        std::uint64_t nanos = 0;
        for (std::size_t i = 0; i < shards; ++i) {
            const op_row& r = shards_[i].ops[row];
            c.ok += r.ok.load(std::memory_order_relaxed);
            c.error_reply += r.error_reply.load(std::memory_order_relaxed);
            c.failed += r.failed.load(std::memory_order_relaxed);
            nanos += r.nanos.load(std::memory_order_relaxed);
            for (std::size_t b = 0; b < c.buckets.size(); ++b)
                c.buckets[b] += r.buckets[b].load(std::memory_order_relaxed);
        }
        c.seconds = static_cast<double>(nanos) * 1e-9;
        if (c.total() > 0) out.operations[name] = c;
    }
    out.retries = sum(&shard::retries);
    out.moved = sum(&shard::moved);
    out.asked = sum(&shard::asked);
    out.connects = sum(&shard::connects);
    out.connect_failures = sum(&shard::connect_failures);
    for (std::size_t k = 0; k < reasons; ++k) {
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < shards; ++i) n += shards_[i].closes[k].load(std::memory_order_relaxed);
        if (n > 0) out.closes[reason_name(static_cast<close_reason>(k))] = n;
    }
    out.pool_waits = sum(&shard::pool_waits);
    out.pool_exhausted = sum(&shard::pool_exhausted);
    out.pool_wait_seconds = static_cast<double>(sum(&shard::pool_wait_nanos)) * 1e-9;
    out.batches = sum(&shard::batches);
    out.batch_commands = sum(&shard::batch_commands);
    out.cluster_maps = sum(&shard::cluster_maps);
    out.cluster_map_failures = sum(&shard::cluster_map_failures);
    out.cluster_slots_moved = sum(&shard::cluster_slots_moved);
    out.sentinel_switches = sum(&shard::sentinel_switches);
    for (std::size_t k = 0; k < cache_outcomes; ++k) {
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < shards; ++i) n += shards_[i].cache_calls[k].load(std::memory_order_relaxed);
        if (n > 0) out.cache_calls[outcome_name(static_cast<cache_outcome>(k))] = n;
    }
    out.cache_lock_wait_seconds = static_cast<double>(sum(&shard::cache_lock_wait_nanos)) * 1e-9;
    return out;
}

inline std::string metrics::prometheus(std::string_view prefix) const {
    const counts c = snapshot();
    const std::string p(prefix);
    std::string out;
    const auto number = [](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.9g", v);
        return std::string(buf);
    };
    const auto head = [&](const char* name, const char* type, const char* help) {
        out += "# HELP " + p + "_" + name + " " + help + "\n# TYPE " + p + "_" + name + " " + type + "\n";
    };
    const auto line = [&](const std::string& name, const std::string& labels, const std::string& value) {
        out += p + "_" + name + (labels.empty() ? "" : "{" + labels + "}") + " " + value + "\n";
    };
    // operation names come from the application's commands: escape them as label values
    const auto quoted = &metrics::label_value;

    head("commands_total", "counter", "Commands (and whole pipelines and transactions) by operation and outcome.");
    for (const auto& [op, n] : c.operations) {
        const std::string o = "operation=" + quoted(op);
        line("commands_total", o + ",outcome=\"ok\"", std::to_string(n.ok));
        line("commands_total", o + ",outcome=\"error_reply\"", std::to_string(n.error_reply));
        line("commands_total", o + ",outcome=\"failed\"", std::to_string(n.failed));
    }
    head("command_duration_seconds", "histogram", "How long commands took, retries and redirections included.");
    for (const auto& [op, n] : c.operations) {
        const std::string o = "operation=" + quoted(op);
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < bucket_bounds.size(); ++b) {
            cumulative += n.buckets[b];
            line("command_duration_seconds_bucket", o + ",le=\"" + number(bucket_bounds[b]) + "\"",
                 std::to_string(cumulative));
        }
        line("command_duration_seconds_bucket", o + ",le=\"+Inf\"", std::to_string(n.total()));
        line("command_duration_seconds_sum", o, number(n.seconds));
        line("command_duration_seconds_count", o, std::to_string(n.total()));
    }
    head("command_retries_total", "counter", "Attempts after a command's first (the retry rule, failover waits).");
    line("command_retries_total", "", std::to_string(c.retries));
    head("redirections_total", "counter", "MOVED and ASK redirections followed (Redis Cluster).");
    line("redirections_total", "kind=\"moved\"", std::to_string(c.moved));
    line("redirections_total", "kind=\"ask\"", std::to_string(c.asked));
    head("connections_opened_total", "counter", "Connections opened (setup included).");
    line("connections_opened_total", "", std::to_string(c.connects));
    head("connection_failures_total", "counter", "Connection attempts that failed.");
    line("connection_failures_total", "", std::to_string(c.connect_failures));
    // a counter by a label whose every value is written, 0 when not counted
    const auto by_label = [&](const char* metric, const char* label, std::size_t values, auto name_of,
                              const std::map<std::string, std::uint64_t>& counted) {
        for (std::size_t k = 0; k < values; ++k) {
            const char* name = name_of(k);
            const auto found = counted.find(name);
            line(metric, std::string(label) + "=\"" + name + "\"",
                 std::to_string(found == counted.end() ? 0 : found->second));
        }
    };
    head("connections_closed_total", "counter", "Connections closed, by reason.");
    by_label(
        "connections_closed_total", "reason", reasons,
        [](std::size_t k) { return reason_name(static_cast<close_reason>(k)); }, c.closes);
    head("pool_waits_total", "counter", "Callers that waited for a pooled connection.");
    line("pool_waits_total", "", std::to_string(c.pool_waits));
    head("pool_exhausted_total", "counter", "Waits that ended without a connection (pool_wait_timeout).");
    line("pool_exhausted_total", "", std::to_string(c.pool_exhausted));
    head("pool_wait_seconds_total", "counter", "Time spent waiting for a pooled connection.");
    line("pool_wait_seconds_total", "", number(c.pool_wait_seconds));
    head("shared_writes_total", "counter", "Writes of the shared (multiplexed) connection.");
    line("shared_writes_total", "", std::to_string(c.batches));
    head("shared_write_commands_total", "counter", "Commands in those writes.");
    line("shared_write_commands_total", "", std::to_string(c.batch_commands));
    head("cluster_map_reads_total", "counter", "Readings of the cluster's slot map, by outcome.");
    line("cluster_map_reads_total", "outcome=\"ok\"", std::to_string(c.cluster_maps - c.cluster_map_failures));
    line("cluster_map_reads_total", "outcome=\"failed\"", std::to_string(c.cluster_map_failures));
    head("cluster_slots_moved_total", "counter", "Slots that changed primary between two map readings.");
    line("cluster_slots_moved_total", "", std::to_string(c.cluster_slots_moved));
    head("sentinel_switches_total", "counter", "Failovers of a Sentinel deployment: its primary changed.");
    line("sentinel_switches_total", "", std::to_string(c.sentinel_switches));
    head("cache_calls_total", "counter", "Cache calls (get, get_or_set) by how they were answered.");
    by_label(
        "cache_calls_total", "outcome", cache_outcomes,
        [](std::size_t k) { return outcome_name(static_cast<cache_outcome>(k)); }, c.cache_calls);
    head("cache_lock_wait_seconds_total", "counter", "Time cache calls waited for another process's load (lock).");
    line("cache_lock_wait_seconds_total", "", number(c.cache_lock_wait_seconds));
    return out;
}

}  // namespace v0
}  // namespace redkit
