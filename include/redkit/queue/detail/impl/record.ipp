// SPDX-License-Identifier: MIT
// The queue's shared state and a job's stored fields: out-of-line definitions (record.hpp).
#pragma once

#include <redkit/client.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/detail/model.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL queue_core::queue_core(client c, std::string queue_name, const key_space& ks)
    : redis(std::move(c)), name(std::move(queue_name)), space(ks) {
    if (name.empty()) throw std::invalid_argument("redkit: queue: name must not be empty");
    for (const std::string_view s : queue_model::key_suffixes)
        keys.push_back(ks.key(queue_model::root, hash_tag(name), s));
    job_prefix = ks.key(queue_model::root, hash_tag(name), queue_model::job) + ":";
}

REDKIT_DECL long long job_field_int(std::string_view s) noexcept {
    long long v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

REDKIT_DECL void read_fields(reply_view h, job_record& r) {
    namespace jf = queue_model::job_field;
    const std::size_t n = h.size();
    for (std::size_t i = 0; i + 1 < n; i += 2) {
        const std::string_view f = h[i].str();
        const std::string_view v = h[i + 1].str();
        if (f.empty()) continue;
        // by first letter: a take reads every field of every job it leases, so one or two compares each
        switch (f[0]) {
            case 'a':
                if (f == jf::att) r.attempts = static_cast<int>(job_field_int(v));
                break;
            case 'b':
                if (f == jf::bo)
                    r.backoff_kind = static_cast<int>(job_field_int(v));
                else if (f == jf::bd)
                    r.backoff_ms = job_field_int(v);
                else if (f == jf::bj)
                    r.jitter_permille = job_field_int(v);
                break;
            case 'd':
                if (f == jf::data)
                    r.data = std::string(v);
                else if (f == jf::delay)
                    r.delay = job_field_int(v);
                else if (f == jf::de)
                    r.dedup_id = std::string(v);
                break;
            case 'g':
                if (f == jf::grp) r.group = std::string(v);
                break;
            case 'f':
                if (f == jf::fr)
                    r.failed_reason = std::string(v);
                else if (f == jf::ft)
                    r.finished = job_field_int(v);
                break;
            case 'k':
                if (f == jf::kids) r.pending_children = job_field_int(v);
                break;
            case 'm':
                if (f == jf::made) r.attempts_made = static_cast<int>(job_field_int(v));
                break;
            case 'n':
                if (f == jf::name) r.name = std::string(v);
                break;
            case 'p':
                if (f == jf::prio)
                    r.priority = static_cast<int>(job_field_int(v));
                else if (f == jf::pt)
                    r.processed = job_field_int(v);
                else if (f == jf::prog)
                    r.progress = std::string(v);
                else if (f == jf::pqn)
                    r.parent_queue = std::string(v);
                else if (f == jf::pid)
                    r.parent_id = std::string(v);
                break;
            case 'r':
                if (f == jf::rv)
                    r.return_value = std::string(v);
                else if (f == jf::rcn)
                    r.keep_completed_count = job_field_int(v);
                else if (f == jf::rca)
                    r.keep_completed_age = job_field_int(v);
                else if (f == jf::rfn)
                    r.keep_failed_count = job_field_int(v);
                else if (f == jf::rfa)
                    r.keep_failed_age = job_field_int(v);
                break;
            case 's':
                if (f == jf::st)
                    r.state = v.empty() ? '\0' : v[0];
                else if (f == jf::sch)
                    r.scheduler = std::string(v);
                else if (f == jf::stl)
                    r.stalls = static_cast<int>(job_field_int(v));
                break;
            case 't':
                if (f == jf::ts)
                    r.created = job_field_int(v);
                else if (f == jf::tr)
                    r.trace = std::string(v);
                else if (f == jf::tick)
                    r.tick = job_field_int(v);
                else if (f == jf::to)
                    r.timeout_ms = job_field_int(v);
                else if (f == jf::tc)
                    r.trace_context = std::string(v);
                break;
            default: break;
        }
    }
}

REDKIT_DECL job_state state_of(char c) noexcept {
    if (c == queue_model::state_letter::grouped) return job_state::waiting;
    for (std::size_t i = 0; i < std::size(queue_model::state_letters); ++i) {
        if (queue_model::state_letters[i] == c) return static_cast<job_state>(i);
    }
    return job_state::unknown;
}

REDKIT_DECL std::vector<std::string> children_hash(const queue_core& core, const std::string& stored_id,
                                                   std::string_view suffix) {
    return core.redis.command<std::vector<std::string>>(idempotent, "HGETALL",
                                                        core.job_prefix + stored_id + std::string(suffix));
}

REDKIT_DECL std::vector<child_value> read_child_values(const std::vector<std::string>& h) {
    return read_children<child_value>(h, [](std::string q, std::string id, const std::string& v) {
        return child_value{std::move(q), std::move(id), nlohmann::json::parse(v, nullptr, false)};
    });
}

REDKIT_DECL std::vector<ignored_child> read_ignored_children(const std::vector<std::string>& h) {
    return read_children<ignored_child>(h, [](std::string q, std::string id, const std::string& v) {
        return ignored_child{std::move(q), std::move(id), v};
    });
}

REDKIT_DECL bool is_generated_id(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

REDKIT_DECL void validate_job_options(const job_options& o) {
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
    if (o.timeout.count() < 0 || o.timeout > std::chrono::hours(24))
        throw std::invalid_argument("redkit: job_options.timeout must be in [0, 24 h]");
    const deduplication_options& d = o.deduplication;
    if (d.id.empty()) {
        if (d.ttl.count() != 0 || d.extend || d.replace) {
            throw std::invalid_argument(
                "redkit: job_options.deduplication.id must not be empty when ttl, extend or replace is set");
        }
    } else {
        if (d.id.size() > 512)
            throw std::invalid_argument("redkit: job_options.deduplication.id must be at most 512 bytes");
        if (d.ttl.count() < 0 || d.ttl > std::chrono::hours(24))
            throw std::invalid_argument("redkit: job_options.deduplication.ttl must be in [0, 24 h]");
        if ((d.extend || d.replace) && (d.ttl.count() == 0 || o.delay.count() == 0)) {
            throw std::invalid_argument(
                "redkit: job_options.deduplication.extend and replace (debounce) need a positive "
                "deduplication.ttl and a positive delay");
        }
    }
    if (o.group.size() > 512) throw std::invalid_argument("redkit: job_options.group must be at most 512 bytes");
    if (!o.group.empty() && o.priority > 0) {
        throw std::invalid_argument(
            "redkit: job_options.priority must be 0 with a group (a group's jobs run in the order added)");
    }
    if (!o.job_id.empty()) {
        if (o.job_id.size() > 512) throw std::invalid_argument("redkit: job_options.job_id must be at most 512 bytes");
        if (is_generated_id(o.job_id)) {
            throw std::invalid_argument(
                "redkit: job_options.job_id must not be an integer (integers are generated ids)");
        }
    }
}

REDKIT_DECL void push_add_fields(std::vector<std::string>& out, std::string_view name, std::string data,
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
    out.push_back(job_field_number(o.timeout.count(), o.timeout.count() > 0));
}

REDKIT_DECL void push_add_only_fields(std::vector<std::string>& out, const job_options& o,
                                      std::string_view trace_context) {
    const deduplication_options& d = o.deduplication;
    out.push_back(d.id.empty() ? std::string() : escape_key_part(d.id));
    out.push_back(job_field_number(d.ttl.count(), d.ttl.count() > 0));
    std::string flags;
    if (d.extend) flags += 'e';
    if (d.replace) flags += 'r';
    out.push_back(std::move(flags));
    out.push_back(o.group.empty() ? std::string() : escape_key_part(o.group));
    out.emplace_back(trace_context);
}

REDKIT_DECL std::string job_trace_context(const queue_core& core) noexcept {
    observer* to = core.redis.options().observer.get();
    if (to == nullptr) return {};
    try {
        std::string tc = to->job_trace_context();
        if (tc.size() > 512) tc.clear();
        return tc;
    } catch (...) {
        return {};
    }
}

REDKIT_DECL void refuse_add_only_options(const job_options& o, const char* caller) {
    const deduplication_options& d = o.deduplication;
    if (!d.id.empty() || d.ttl.count() != 0 || d.extend || d.replace) {
        throw std::invalid_argument(std::string("redkit: ") + caller +
                                    ": job_options.deduplication must be unset (only add and add_bulk take it)");
    }
    if (!o.group.empty()) {
        throw std::invalid_argument(std::string("redkit: ") + caller +
                                    ": job_options.group must be empty (only add and add_bulk take it)");
    }
}

REDKIT_DECL add_outcome add_outcome_of(long long code) noexcept {
    switch (code) {
        case 1: return add_outcome::created;
        case 2: return add_outcome::deduplicated;
        case 3: return add_outcome::debounced;
        default: return add_outcome::exists;
    }
}

REDKIT_DECL stalled_jobs parse_stalled(const std::vector<std::vector<std::string>>& r) {
    stalled_jobs out;
    if (r.size() == 2) {
        for (const auto& id : r[0]) out.recovered.push_back(unescape_key_part(id));
        for (const auto& id : r[1]) out.failed.push_back(unescape_key_part(id));
    }
    return out;
}

}  // namespace detail

REDKIT_DECL detail::move_reply reply_traits<detail::move_reply>::convert(reply_view v) {
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

}  // namespace v0
}  // namespace redkit
