// SPDX-License-Identifier: MIT
// redkit::queue<T>: what the handle does that does not depend on T, out of line (queue.hpp).
#pragma once

#include <redkit/client.hpp>
#include <redkit/detail/epoch.hpp>
#include <redkit/error.hpp>
#include <redkit/key.hpp>
#include <redkit/pipeline.hpp>
#include <redkit/queue/detail/lua.hpp>
#include <redkit/queue/detail/model.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/detail/schedule.hpp>
#include <redkit/queue/queue.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

// A queue script with ARGV the job prefix, then `extra`.
template <class R>
R queue_eval(const queue_core& core, const script& s, std::initializer_list<std::string> extra) {
    std::vector<std::string> args{core.job_prefix};
    args.insert(args.end(), extra.begin(), extra.end());
    return core.redis.template eval<R>(s, core.keys, args);
}

// For scripts that read, or converge when run twice: a transport failure after sending may be
// retried on a fresh connection (client::eval(idempotent, ...)).
template <class R>
R queue_eval_again(const queue_core& core, const script& s, std::initializer_list<std::string> extra) {
    std::vector<std::string> args{core.job_prefix};
    args.insert(args.end(), extra.begin(), extra.end());
    return core.redis.template eval<R>(idempotent, s, core.keys, args);
}

REDKIT_DECL std::shared_ptr<queue_core> make_queue_core(client c, std::string name, const queue_options& options) {
    auto core = std::make_shared<queue_core>(std::move(c), std::move(name), options.keys);
    if (options.replicas < 0) throw std::invalid_argument("redkit: queue_options.replicas must not be negative");
    if (options.replica_timeout.count() < 0) {
        throw std::invalid_argument("redkit: queue_options.replica_timeout must not be negative");
    }
    core->replicas = options.replicas;
    core->replica_timeout = options.replica_timeout;
    return core;
}

// The add script's reply: (id, outcome) per job.
inline std::vector<added_job> added_jobs(const std::vector<reply>& r) {
    std::vector<added_job> out;
    out.reserve(r.size() / 2);
    for (std::size_t i = 0; i + 1 < r.size(); i += 2) {
        const add_outcome o = add_outcome_of(r[i + 1].integer());
        out.push_back({unescape_key_part(r[i].text()), o == add_outcome::created, o});
    }
    return out;
}

REDKIT_DECL std::vector<added_job> queue_run_add(const queue_core& core, const std::vector<std::string>& args) {
    std::vector<reply> r;
    if (core.replicas == 0) {
        r = core.redis.eval<std::vector<reply>>(extras_script<queue_lua::add>(), core.keys, args);
    } else {
        // the script and WAIT in one write on one connection: WAIT counts that connection's writes
        pipeline p(core.redis);
        p.eval(extras_script<queue_lua::add>(), core.keys, args);
        p.command("WAIT", core.replicas, core.replica_timeout.count());
        const std::vector<reply> both = p.exec();
        r = both.at(0).as<std::vector<reply>>();
        const long long acked = both.at(1).as<long long>();
        if (acked < core.replicas) {
            throw error(errc::timeout, core.what() + "add: " + std::to_string(acked) + " of " +
                                           std::to_string(core.replicas) + " replicas acknowledged within " +
                                           std::to_string(core.replica_timeout.count()) +
                                           " ms; the job is on the primary but may be lost on a failover");
        }
    }
    return added_jobs(r);
}

// The ARGV of the add script for one job.
inline std::vector<std::string> add_args(const queue_core& core, std::string_view name, std::string data,
                                         const job_options& options) {
    std::vector<std::string> args{core.job_prefix, "1"};
    args.reserve(2 + add_script_fields);
    push_add_fields(args, name, std::move(data), options);
    push_add_only_fields(args, options, job_trace_context(core));
    return args;
}

REDKIT_DECL added_job queue_add(const queue_core& core, std::string_view name, std::string data,
                                const job_options& options) {
    auto r = queue_run_add(core, add_args(core, name, std::move(data), options));
    return std::move(r.front());
}

REDKIT_DECL future<added_job> queue_async_add(const queue_core& core, std::string_view name, std::string data,
                                              const job_options& options) {
    if (core.replicas > 0) {
        throw std::invalid_argument(core.what() +
                                    "async_add: the queue waits for replicas (WAIT), which would hold up the "
                                    "shared connection; use add()");
    }
    future<std::vector<reply>> sent = client_access::submit_lasting_eval<std::vector<reply>>(
        core.redis, extras_script<queue_lua::add>(), core.keys, add_args(core, name, std::move(data), options));
    const auto first = [](future<std::vector<reply>> f) { return std::move(added_jobs(f.get()).front()); };
    const std::shared_ptr<observer>& to = core.redis.options().observer;
    if (!to) return chain<added_job>(std::move(sent), first, core.redis.options().on_error);
    // observed: the queue's and the job's names are kept for the added step (copied only then)
    return chain<added_job>(
        std::move(sent),
        [first, to, queue = core.name, job = std::string(name)](future<std::vector<reply>> f) {
            added_job a = first(std::move(f));
            if (a.created) observe_added(to.get(), queue, a.id, job);
            return a;
        },
        core.redis.options().on_error);
}

REDKIT_DECL added_flow queue_add_flow(const queue_core& core, const flow_job& root) {
    if (!root.queue.empty() && root.queue != core.name) {
        throw std::invalid_argument("redkit: add_flow: the root job goes to this queue (" + core.name + "), not to '" +
                                    root.queue + "'");
    }
    struct node {
        const flow_job* job;
        std::string queue;
        std::size_t parent;  // 1-based index, 0 for the root
        std::vector<std::size_t> children;
    };
    std::vector<node> nodes{{&root, core.name, 0, {}}};
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
        validate_job_options(n.job->options);
        refuse_add_only_options(n.job->options, "add_flow");
        const std::string& id = n.job->options.job_id;
        if (!id.empty()) {
            if (!custom.emplace(n.queue, id).second) {
                throw std::invalid_argument("redkit: add_flow: job '" + id + "' of queue " + n.queue +
                                            " appears twice in the flow (a cycle or a duplicate)");
            }
        }
        bases.push_back(core.space.key(queue_model::root, hash_tag(n.queue), queue_model::job));
        bases.back().resize(bases.back().size() - queue_model::job.size());  // "<prefix>queue:{name}:"
        if (core.redis.is_cluster() && key_slot(bases.back()) != key_slot(bases.front())) {
            throw std::invalid_argument(
                "redkit: add_flow: on Redis Cluster a flow's queues must share a slot: " + n.queue + " and " +
                core.name + " do not (use one queue, or a single server or Sentinel)");
        }
    }
    std::vector<std::string> args{core.job_prefix, std::to_string(nodes.size())};
    args.reserve(2 + nodes.size() * 19);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const node& n = nodes[i];
        args.push_back(bases[i]);
        args.push_back(std::to_string(n.parent));
        args.emplace_back(n.job->on_failure == on_child_failure::ignore ? "i" : "f");
        args.push_back(n.queue);
        args.push_back(std::to_string(n.children.size()));
        push_add_fields(args, n.job->name, n.job->data.dump(), n.job->options);
    }
    // not idempotent: a resend after a lost reply would add a second flow (or fail on custom ids)
    const auto ids = core.redis.eval<std::vector<std::string>>(extras_script<queue_lua::add_flow>(), core.keys, args);
    if (ids.size() != nodes.size()) throw error(errc::type_mismatch, core.what() + "add_flow: unexpected reply");
    const auto build = [&](const auto& self, std::size_t i) -> added_flow {
        added_flow out{nodes[i].queue, unescape_key_part(ids[i]), {}};
        for (std::size_t c : nodes[i].children) out.children.push_back(self(self, c));
        return out;
    };
    return build(build, 0);
}

REDKIT_DECL std::optional<job_record> queue_get_job(const queue_core& core, std::string_view id) {
    const std::string stored = escape_key_part(id);
    const auto r = queue_eval_again<std::vector<reply>>(core, queue_script<queue_lua::get>(), {stored});
    if (r.size() < 2 || r[0].size() == 0) return std::nullopt;
    job_record rec;
    rec.id = stored;
    read_fields(r[0], rec);
    if (r.size() > 2 && !r[2].is_nil()) rec.due = job_field_int(r[2].text());
    if (!r[1].is_nil()) {
        rec.state = queue_model::state_letter::active;
        rec.lease = r[1].text();
        rec.processed = job_field_int(rec.lease.substr(0, rec.lease.find('|')));
    }
    return rec;
}

REDKIT_DECL job_counts queue_counts(const queue_core& core) {
    const auto v = queue_eval_again<std::vector<long long>>(core, queue_script<queue_lua::counts>(), {});
    return {v.at(0), v.at(1), v.at(2), v.at(3), v.at(4), v.at(5), v.at(6), v.at(7), v.at(8)};
}

REDKIT_DECL void queue_pause(const queue_core& core, bool paused) {
    queue_eval_again<long long>(core, queue_script<queue_lua::pause>(), {paused ? "1" : "0"});
}

REDKIT_DECL bool queue_is_paused(const queue_core& core) {
    return core.redis.command<long long>(idempotent, "HEXISTS", core.key(queue_key::meta),
                                         queue_model::meta_field::paused) == 1;
}

REDKIT_DECL bool queue_retry(const queue_core& core, std::string_view id) {
    return queue_eval_again<long long>(core, extras_script<queue_lua::retry>(), {escape_key_part(id), "0"}) == 1;
}

REDKIT_DECL std::size_t queue_retry_failed(const queue_core& core) {
    std::size_t total = 0;
    for (;;) {
        const auto n = queue_eval<long long>(core, extras_script<queue_lua::retry>(), {"", "1000"});
        total += static_cast<std::size_t>(n);
        if (n < 1000) return total;
    }
}

REDKIT_DECL remove_result queue_remove(const queue_core& core, std::string_view id) {
    const auto r = queue_eval_again<long long>(core, extras_script<queue_lua::remove>(), {escape_key_part(id)});
    return r == 1 ? remove_result::removed : r == 0 ? remove_result::not_found : remove_result::active;
}

REDKIT_DECL cancel_result queue_cancel(const queue_core& core, std::string_view id, std::string_view reason,
                                       after_cancel then) {
    if (reason.size() > 1024) throw std::invalid_argument("redkit: queue::cancel: reason must be at most 1024 bytes");
    const auto r = queue_eval_again<long long>(
        core, extras_script<queue_lua::cancel>(),
        {escape_key_part(id), then == after_cancel::retry ? "1" : "0", std::string(reason)});
    return r == 1 ? cancel_result::requested : r == 2 ? cancel_result::not_running : cancel_result::not_found;
}

REDKIT_DECL std::size_t queue_drain(const queue_core& core, bool include_delayed) {
    std::size_t total = 0;
    for (;;) {
        const auto n =
            queue_eval<long long>(core, queue_script<queue_lua::drain>(), {include_delayed ? "1" : "0", "1000"});
        total += static_cast<std::size_t>(n);
        if (n < 1000) return total;
    }
}

REDKIT_DECL std::size_t queue_clean(const queue_core& core, job_state state, std::chrono::milliseconds grace) {
    if (state != job_state::completed && state != job_state::failed)
        throw std::invalid_argument("redkit: queue::clean: state must be completed or failed");
    if (grace.count() < 0) throw std::invalid_argument("redkit: queue::clean: grace must not be negative");
    const std::string which = state == job_state::completed ? "c" : "f";
    std::size_t total = 0;
    for (;;) {
        const auto n = queue_eval<long long>(core, extras_script<queue_lua::clean>(),
                                             {which, std::to_string(grace.count()), "1000"});
        total += static_cast<std::size_t>(n);
        if (n < 1000) return total;
    }
}

REDKIT_DECL bool queue_obliterate(const queue_core& core, bool force) {
    for (;;) {
        const auto r = queue_eval_again<std::vector<long long>>(core, extras_script<queue_lua::obliterate>(),
                                                                {force ? "1" : "0", "1000"});
        if (r.at(0) < 0) return false;
        if (r.at(1) == 1) return true;
    }
}

REDKIT_DECL long long queue_workers(const queue_core& core) {
    return queue_eval_again<long long>(core, queue_script<queue_lua::workers>(), {"", ""});
}

REDKIT_DECL stalled_jobs queue_check_stalled(const queue_core& core, int max_stalled_count) {
    if (max_stalled_count < 0)
        throw std::invalid_argument("redkit: check_stalled: max_stalled_count must not be negative");
    using ids = std::vector<std::vector<std::string>>;
    stalled_jobs s = parse_stalled(queue_eval_again<ids>(core, extras_script<queue_lua::stalled>(),
                                                         {"0", std::to_string(max_stalled_count), "1000"}));
    observe_stalled(core, s);
    return s;
}

// The list script for state letter `letter` (and, for a group's line, the group's stored name).
inline long long list_jobs(const queue_core& core, job_state state, char letter, std::string group, std::size_t offset,
                           std::size_t count, bool newest_first, std::vector<job_record>& out) {
    const auto r = queue_eval_again<reply>(core, queue_script<queue_lua::list>(),
                                           {std::string(1, letter), std::to_string(offset), std::to_string(count),
                                            newest_first ? "1" : "0", std::move(group)});
    const long long total = r[0].integer();
    const reply& items = r[1];
    for (std::size_t i = 0; i + 2 < items.size(); i += 3) {
        job_record rec;
        rec.id = items[i].text();
        read_fields(items[i + 1], rec);
        if (rec.state == 0) continue;  // removed between the listing and the read
        if (state == job_state::active) {
            rec.state = queue_model::state_letter::active;
            rec.lease = items[i + 2].text();
            rec.processed = job_field_int(rec.lease.substr(0, rec.lease.find('|')));
        } else if (state == job_state::delayed && !items[i + 2].is_nil()) {
            rec.due = job_field_int(items[i + 2].text());
        }
        out.push_back(std::move(rec));
    }
    return total;
}

REDKIT_DECL long long queue_jobs(const queue_core& core, job_state state, std::size_t offset, std::size_t count,
                                 bool newest_first, std::vector<job_record>& out) {
    const auto index = static_cast<std::size_t>(state);
    if (index >= std::size(queue_model::state_letters))
        throw std::invalid_argument("redkit: queue::jobs: state must be a real state");
    if (count > 1000) throw std::invalid_argument("redkit: queue::jobs: count must be at most 1000");
    if (count == 0) return 0;
    return list_jobs(core, state, queue_model::state_letters[index], std::string(), offset, count, newest_first, out);
}

REDKIT_DECL long long queue_group_jobs(const queue_core& core, std::string_view group, std::size_t offset,
                                       std::size_t count, bool newest_first, std::vector<job_record>& out) {
    if (group.empty()) throw std::invalid_argument("redkit: queue::group_jobs: group must not be empty");
    if (count > 1000) throw std::invalid_argument("redkit: queue::group_jobs: count must be at most 1000");
    if (count == 0) return 0;
    return list_jobs(core, job_state::waiting, queue_model::state_letter::grouped, escape_key_part(group), offset,
                     count, newest_first, out);
}

inline std::string group_name_checked(std::string_view group, const char* caller) {
    if (group.empty() || group.size() > 512) {
        throw std::invalid_argument(std::string("redkit: queue::") + caller +
                                    ": group must be 1 to 512 bytes (job_options::group)");
    }
    return escape_key_part(group);
}

inline group_info read_group(const reply& items, std::size_t i) {
    group_info g;
    g.name = unescape_key_part(items[i].text());
    g.waiting = items[i + 1].integer();
    g.active = items[i + 2].integer();
    g.paused = !items[i + 3].text().empty();
    if (!items[i + 4].is_nil()) g.concurrency = job_field_int(items[i + 4].text());
    if (!items[i + 5].is_nil()) {
        g.held_until =
            std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::milliseconds(job_field_int(items[i + 5].text()))));
    }
    return g;
}

inline void group_setting(const queue_core& core, std::initializer_list<std::string> args) {
    queue_eval_again<long long>(core, queue_script<queue_lua::group>(), args);
}

REDKIT_DECL group_page queue_groups(const queue_core& core, std::size_t offset, std::size_t count) {
    if (count > 1000) throw std::invalid_argument("redkit: queue::groups: count must be at most 1000");
    const auto r = queue_eval_again<reply>(core, queue_script<queue_lua::groups>(),
                                           {std::string(), std::to_string(offset), std::to_string(count)});
    group_page page;
    page.total = r[0].integer();
    if (!r[1].is_nil()) page.concurrency = job_field_int(r[1].text());
    if (!r[2].is_nil() && !r[3].is_nil()) {
        page.rate_limit =
            queue_rate_limit{job_field_int(r[2].text()), std::chrono::milliseconds(job_field_int(r[3].text()))};
    }
    const reply& items = r[4];
    for (std::size_t i = 0; i + 5 < items.size(); i += 6) page.groups.push_back(read_group(items, i));
    return page;
}

REDKIT_DECL std::optional<group_info> queue_group(const queue_core& core, std::string_view group) {
    const auto r = queue_eval_again<reply>(core, queue_script<queue_lua::groups>(),
                                           {group_name_checked(group, "group"), "0", "0"});
    const reply& items = r[4];
    if (items.size() < 6) return std::nullopt;
    return read_group(items, 0);
}

REDKIT_DECL void queue_pause_group(const queue_core& core, std::string_view group, bool paused) {
    group_setting(core, {paused ? "p" : "r", group_name_checked(group, paused ? "pause_group" : "resume_group")});
}

REDKIT_DECL void queue_set_group_concurrency(const queue_core& core, std::string_view group, long long n) {
    if (n < 0 || n > 100000) {
        throw std::invalid_argument("redkit: queue::set_group_concurrency: n must be in [0, 100000] (0: no limit)");
    }
    group_setting(core, {"c", group.empty() ? std::string() : group_name_checked(group, "set_group_concurrency"),
                         n == 0 ? std::string() : std::to_string(n)});
}

REDKIT_DECL void queue_set_group_rate_limit(const queue_core& core, long long max, std::chrono::milliseconds per) {
    if (max < 1 || max > 100000)
        throw std::invalid_argument("redkit: set_group_rate_limit: max must be in [1, 100000]");
    if (per.count() < 1 || per > std::chrono::hours(24))
        throw std::invalid_argument("redkit: set_group_rate_limit: per must be in [1 ms, 24 h]");
    group_setting(core, {"l", std::string(), std::to_string(max), std::to_string(per.count())});
}

REDKIT_DECL void queue_remove_group_rate_limit(const queue_core& core) {
    group_setting(core, {"l", std::string(), std::string(), std::string()});
}

REDKIT_DECL bool queue_add_log(const queue_core& core, std::string_view id, std::string_view line, std::size_t keep) {
    if (keep == 0) throw std::invalid_argument("redkit: queue::add_log: keep must be positive");
    return queue_eval<long long>(core, queue_script<queue_lua::log>(),
                                 {escape_key_part(id), std::string(line), std::to_string(keep), std::string()}) >= 0;
}

REDKIT_DECL job_logs queue_logs(const queue_core& core, std::string_view id, std::size_t offset, std::size_t count) {
    const auto r = queue_eval_again<reply>(core, queue_script<queue_lua::logs>(),
                                           {escape_key_part(id), std::to_string(offset), std::to_string(count)});
    job_logs out;
    out.total = r[0].integer();
    for (const auto& line : r[1].elements()) out.lines.push_back(line.text());
    return out;
}

REDKIT_DECL std::vector<minute_counts> queue_metrics(const queue_core& core, std::chrono::minutes span) {
    if (span.count() < 1 || span.count() > 1440)
        throw std::invalid_argument("redkit: queue::metrics: span must be in [1, 1440] minutes");
    const auto r = queue_eval_again<std::vector<long long>>(core, queue_script<queue_lua::metrics>(),
                                                            {std::to_string(span.count())});
    std::vector<minute_counts> out;
    for (std::size_t i = 1; i + 1 < r.size(); i += 2) {
        out.push_back({from_epoch_ms(r[0] + static_cast<long long>(i / 2) * 60000), r[i], r[i + 1]});
    }
    return out;
}

REDKIT_DECL void queue_set_events(const queue_core& core, std::size_t max_len) {
    if (max_len > 100000000) throw std::invalid_argument("redkit: set_events: max_len must be at most 10^8");
    queue_eval_again<long long>(core, extras_script<queue_lua::events>(),
                                {max_len == 0 ? std::string() : std::to_string(max_len)});
}

REDKIT_DECL bool queue_events_enabled(const queue_core& core) {
    return core.redis.command<long long>(idempotent, "HEXISTS", core.key(queue_key::meta),
                                         queue_model::meta_field::evmax) == 1;
}

REDKIT_DECL schedule queue_check_scheduler(std::string_view id, const scheduler_options& when,
                                           const job_options& options) {
    if (id.empty()) throw std::invalid_argument("redkit: upsert_scheduler: id must not be empty");
    if (id.size() > 256) throw std::invalid_argument("redkit: upsert_scheduler: id must be at most 256 bytes");
    validate_job_options(options);
    refuse_add_only_options(options, "upsert_scheduler");
    if (options.delay.count() != 0 || !options.job_id.empty()) {
        throw std::invalid_argument(
            "redkit: upsert_scheduler: job_options.delay and job_id must be unset (the scheduler sets them)");
    }
    return schedule(when);
}

REDKIT_DECL std::chrono::system_clock::time_point queue_upsert_scheduler(const queue_core& core, std::string_view id,
                                                                         schedule s, std::string_view job_name,
                                                                         std::string data, const job_options& options) {
    const std::string spec = s.spec();
    const auto t = core.redis.command<std::vector<long long>>(idempotent, "TIME");
    const long long now = t.at(0) * 1000 + t.at(1) / 1000;
    const long long first = s.first_tick(now);
    std::vector<std::string> fields;
    push_add_fields(fields, job_name, std::move(data), options);
    // the 14 add fields, less custom id (0) and delay (3), are the 12 template fields
    std::vector<std::string> args{core.job_prefix, escape_key_part(id), spec, std::to_string(s.anchor),
                                  std::to_string(first)};
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i != 0 && i != 3) args.push_back(std::move(fields[i]));
    }
    const auto r = core.redis.eval<std::vector<long long>>(idempotent, extras_script<queue_lua::scheduler_upsert>(),
                                                           core.keys, args);
    return from_epoch_ms(r.at(0));
}

REDKIT_DECL bool queue_remove_scheduler(const queue_core& core, std::string_view id) {
    return queue_eval_again<long long>(core, extras_script<queue_lua::scheduler_remove>(), {escape_key_part(id)}) == 1;
}

// Schedulers as listed: `one` (a stored id) or, when empty, `count` from `offset`.
inline std::vector<scheduler_info> queue_list_schedulers(const queue_core& core, const std::string& one,
                                                         std::size_t offset, std::size_t count) {
    const auto r = queue_eval_again<reply>(core, extras_script<queue_lua::scheduler_list>(),
                                           {one, std::to_string(offset), std::to_string(count)});
    std::vector<scheduler_info> out;
    for (std::size_t i = 0; i + 1 < r.size(); i += 2) out.push_back(read_scheduler(r[i].text(), r[i + 1]));
    return out;
}

REDKIT_DECL std::optional<scheduler_info> queue_get_scheduler(const queue_core& core, std::string_view id) {
    auto v = queue_list_schedulers(core, escape_key_part(id), 0, 1);
    if (v.empty()) return std::nullopt;
    return std::move(v.front());
}

REDKIT_DECL std::vector<scheduler_info> queue_schedulers(const queue_core& core, std::size_t offset,
                                                         std::size_t count) {
    return queue_list_schedulers(core, std::string(), offset, count);
}

REDKIT_DECL void queue_set_rate_limit(const queue_core& core, long long max, std::chrono::milliseconds per) {
    if (max < 1 || max > 100000) throw std::invalid_argument("redkit: set_rate_limit: max must be in [1, 100000]");
    if (per.count() < 1 || per > std::chrono::hours(24))
        throw std::invalid_argument("redkit: set_rate_limit: per must be in [1 ms, 24 h]");
    queue_eval_again<long long>(core, extras_script<queue_lua::limit>(),
                                {std::to_string(max), std::to_string(per.count())});
}

REDKIT_DECL void queue_remove_rate_limit(const queue_core& core) {
    queue_eval_again<long long>(core, extras_script<queue_lua::limit>(), {"", ""});
}

REDKIT_DECL std::optional<queue_rate_limit> queue_get_rate_limit(const queue_core& core) {
    const auto r = queue_eval_again<std::vector<reply>>(core, extras_script<queue_lua::limit_info>(), {});
    if (r.size() != 3 || r[0].is_nil()) return std::nullopt;
    return queue_rate_limit{job_field_int(r[0].text()), std::chrono::milliseconds(job_field_int(r[1].text()))};
}

REDKIT_DECL std::chrono::milliseconds queue_rate_limit_wait(const queue_core& core) {
    const auto r = queue_eval_again<std::vector<reply>>(core, extras_script<queue_lua::limit_info>(), {});
    return std::chrono::milliseconds(r.size() == 3 ? r[2].integer() : 0);
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
