// SPDX-License-Identifier: MIT
// Rate-limit workloads: one check per operation on one connection, for each algorithm, redkit's
// rate_limiter::hit next to a hand-written raw-hiredis EVALSHA of the same script text with the
// same key and arguments (the key built per request, as a real limiter must; the reply's five
// integers read). Limits are high, so every check is allowed: this measures the allowed path,
// which is the common one (a denied check runs the same script minus its writes). The token
// bucket and GCRA refill at 1000 per second, slower than the checks arrive, so their state stays
// in Redis between checks as it does under real load. The key is deleted before each repetition.
#include <redkit/rate_limit.hpp>
#include <redkit/rate_limit/detail/lua.hpp>

#include "bench.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace redkit_bench {
namespace {

struct rate_limit_state {
    std::unique_ptr<redkit::client> one;  // a pool of one connection
    redisContext* raw = nullptr;
    ~rate_limit_state() {
        if (raw) redisFree(raw);
    }
};

// The baseline: what a careful engineer writes with hiredis alone.
struct raw_limiter {
    std::string sha;
    std::string key_prefix;  // "...:{"
    std::string limit, param;

    bool hit(redisContext* c, const std::string& identifier) const {
        const std::string key = key_prefix + identifier + "}";
        const char* argv[] = {"EVALSHA", sha.c_str(), "1", key.c_str(), limit.c_str(), param.c_str(), "1", "0"};
        const size_t lens[] = {7, sha.size(), 1, key.size(), limit.size(), param.size(), 1, 1};
        auto* r = static_cast<redisReply*>(redisCommandArgv(c, 8, argv, lens));
        if (!r) throw std::runtime_error("raw EVALSHA failed");
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
            freeReplyObject(r);
            throw std::runtime_error("raw EVALSHA: unexpected reply");
        }
        long long values[5];
        for (std::size_t i = 0; i < 5; ++i) {
            if (r->element[i]->type != REDIS_REPLY_INTEGER) {
                freeReplyObject(r);
                throw std::runtime_error("raw EVALSHA: non-integer element");
            }
            values[i] = r->element[i]->integer;
        }
        freeReplyObject(r);
        sink = sink + static_cast<std::size_t>(values[2] & 1) + static_cast<std::size_t>(values[3] & 1);
        return values[0] == 1;
    }
};

raw_limiter make_raw(redisContext* c, std::string_view source, const redkit::rate_limiter& limiter, long long param) {
    redisReply* r = raw_command(c, {"SCRIPT", "LOAD", std::string(source)});
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        throw std::runtime_error("raw SCRIPT LOAD failed");
    }
    raw_limiter out;
    out.sha.assign(r->str, r->len);
    freeReplyObject(r);
    const std::string probe = limiter.key("x");
    out.key_prefix = probe.substr(0, probe.size() - 2);  // the same key layout, minus "x}"
    out.limit = std::to_string(limiter.limit());
    out.param = std::to_string(param);
    return out;
}

void add_rate_limit(context& ctx, std::vector<workload>& out) {
    using namespace std::chrono_literals;
    auto st = std::make_shared<rate_limit_state>();
    auto one = ctx.base;
    one.pool_size = 1;
    st->one = std::make_unique<redkit::client>(one);
    st->raw = raw_connect(ctx.base);
    const std::string id = "203.0.113.7";
    redkit::rate_limit_options o;
    o.on_failure = redkit::failure_policy::raise;  // a failure must not pass for a fast "allowed"

    struct spec {
        const char* workload;
        std::string_view source;
        redkit::rate_limiter limiter;
        long long param;  // ARGV[2]: window ms, or us per unit (1000 at 1000 per second)
    };
    // High limits: every check is allowed for the whole run.
    const spec specs[] = {
        {"rate_limit_fixed", redkit::detail::rate_limit_lua::fixed_window,
         redkit::rate_limiter::fixed_window(*st->one, "bench", 1LL << 40, std::chrono::hours(1), o), 3600000},
        {"rate_limit_sliding", redkit::detail::rate_limit_lua::sliding_window,
         redkit::rate_limiter::sliding_window(*st->one, "bench", 100000000, std::chrono::hours(1), o), 3600000},
        {"rate_limit_token_bucket", redkit::detail::rate_limit_lua::token_bucket,
         redkit::rate_limiter::token_bucket(*st->one, "bench", 1000000000, redkit::per_second(1000), o), 1000},
        {"rate_limit_gcra", redkit::detail::rate_limit_lua::gcra,
         redkit::rate_limiter::gcra(*st->one, "bench", redkit::per_second(1000), 1000000000, o), 1000},
    };
    for (const spec& s : specs) {
        const raw_limiter raw = make_raw(st->raw, s.source, s.limiter, s.param);
        const redkit::rate_limiter limiter = s.limiter;
        const std::string key = limiter.key(id);
        if (!raw.hit(st->raw, id))
            throw std::runtime_error(std::string(s.workload) + ": the baseline check was denied");
        if (!limiter.hit(id).allowed)
            throw std::runtime_error(std::string(s.workload) + ": the redkit check was denied");
        out.push_back({s.workload,
                       2000 * ctx.scale,
                       {{"hiredis",
                         [st, raw, id](long long n) {
                             for (long long i = 0; i < n; ++i) {
                                 if (!raw.hit(st->raw, id)) throw std::runtime_error("baseline check denied");
                             }
                         }},
                        {"redkit",
                         [limiter, id](long long n) {
                             for (long long i = 0; i < n; ++i) {
                                 const redkit::rate_limit_result r = limiter.hit(id);
                                 if (!r.allowed) throw std::runtime_error("redkit check denied");
                                 sink = sink + static_cast<std::size_t>(r.remaining & 1) +
                                        static_cast<std::size_t>(r.reset_after.count() & 1);
                             }
                         }}},
                       [st, key] {
                           freeReplyObject(raw_command(st->raw, {"DEL", key}));
                       }});
    }
}

const registrar reg(20, "rate_limit", &add_rate_limit);

}  // namespace
}  // namespace redkit_bench
