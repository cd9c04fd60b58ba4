// SPDX-License-Identifier: MIT
// redkit::rate_limiter against a real redis-server: the naive INCR+EXPIRE bug reproduced and
// shown absent, healing of TTL-less keys, exact limits across threads and forked processes,
// burst then steady rate, retry_after against the server clock, SCRIPT FLUSH, one command per
// check on the wire, and fail open / fail closed against a killed server.
#include <redkit/rate_limit.hpp>
#include <redkit/redkit.hpp>

#include "support/error_log.hpp"
#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using redkit::rate_limiter;
using redkit_test::shared_server;
using algorithm = redkit::rate_limiter::algorithm;

namespace {

constexpr algorithm all_algorithms[] = {algorithm::fixed_window, algorithm::sliding_window, algorithm::token_bucket,
                                        algorithm::gcra};

const char* label(algorithm a) {
    switch (a) {
        case algorithm::fixed_window: return "fixed_window";
        case algorithm::sliding_window: return "sliding_window";
        case algorithm::token_bucket: return "token_bucket";
        case algorithm::gcra: return "gcra";
    }
    return "?";
}

// A limiter of `quota` units that comes back within about `period`: the window (fixed, sliding)
// or the time to refill the whole quota (token bucket, GCRA).
rate_limiter make_limiter(redkit::client c, algorithm a, const std::string& name, long long quota,
                          std::chrono::milliseconds period, redkit::rate_limit_options o = {}) {
    switch (a) {
        case algorithm::fixed_window:
            return rate_limiter::fixed_window(std::move(c), name, quota, period, std::move(o));
        case algorithm::sliding_window:
            return rate_limiter::sliding_window(std::move(c), name, quota, period, std::move(o));
        case algorithm::token_bucket:
            return rate_limiter::token_bucket(std::move(c), name, quota, redkit::rate{quota, period}, std::move(o));
        case algorithm::gcra:
            return rate_limiter::gcra(std::move(c), name, redkit::rate{quota, period}, quota, std::move(o));
    }
    throw std::logic_error("unknown algorithm");
}

// The server's clock, in microseconds.
long long server_us(redkit::client& c) {
    const auto t = c.command<std::vector<long long>>("TIME");
    return t.at(0) * 1000000 + t.at(1);
}

using redkit_test::error_log;

class RateLimit : public redkit_test::fresh_database {};

}  // namespace

TEST_F(RateLimit, FixedWindowResetsUnderSteadyTrafficWhereTheNaivePipelineLocksOut) {
    constexpr long long limit = 3;
    constexpr auto window = 100ms;
    constexpr int ticks = 100;  // one request every 10 ms for 1 s: ten windows
    const auto ours = rate_limiter::fixed_window(redis, "steady", limit, window);
    const std::string naive_key = "naive:steady";

    int naive_allowed = 0, ours_allowed = 0, ours_windows = 0;
    long long naive_count = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < ticks; ++i) {
        std::this_thread::sleep_until(start + i * 10ms);  // pacing the traffic, not synchronisation
        // The seed's limiter: INCR and EXPIRE on every request, in one pipeline.
        redkit::pipeline naive(redis);
        naive.command("INCR", naive_key).command("PEXPIRE", naive_key, window);
        naive_count = naive.exec().at(0).as<long long>();
        if (naive_count <= limit) ++naive_allowed;

        const auto r = ours.hit("client");
        if (r.allowed) {
            ++ours_allowed;
            if (r.remaining == limit - 1) ++ours_windows;
        }
        EXPECT_LE(r.reset_after, window + 1ms);
    }
    // The naive limiter re-armed the TTL on every hit: one window for the whole second, a lockout.
    EXPECT_EQ(naive_count, ticks);
    EXPECT_EQ(naive_allowed, limit);
    EXPECT_GT(redis.command<long long>("PTTL", naive_key), 0);
    // Ours started a new window about every 100 ms and let `limit` through in each.
    EXPECT_GE(ours_windows, 5);
    EXPECT_LE(ours_windows, 11);
    EXPECT_LE(ours_allowed, limit * ours_windows);
    EXPECT_GE(ours_allowed, limit * (ours_windows - 1));
}

TEST_F(RateLimit, FixedWindowHealsAKeyLeftWithoutTtl) {
    const auto limiter = rate_limiter::fixed_window(redis, "heal", 5, 150ms);
    const std::string key = limiter.key("10.0.0.7");
    // A naive "INCR, then EXPIRE if the count is 1" limiter crashed between its two round trips.
    redis.command<void>("SET", key, 1000);
    ASSERT_EQ(redis.command<long long>("PTTL", key), -1);

    const auto peeked = limiter.peek("10.0.0.7");
    EXPECT_FALSE(peeked.allowed);
    EXPECT_EQ(redis.command<long long>("PTTL", key), -1) << "a peek writes nothing";

    const auto denied = limiter.hit("10.0.0.7");
    EXPECT_FALSE(denied.allowed);
    EXPECT_EQ(denied.remaining, 0);
    const auto pttl = redis.command<long long>("PTTL", key);
    EXPECT_GT(pttl, 0);
    EXPECT_LE(pttl, 150);
    EXPECT_GE(denied.retry_after, 1ms);
    EXPECT_LE(denied.retry_after, 151ms);

    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (redis.command<long long>("EXISTS", key) == 1 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(2ms);
    }
    const auto healed = limiter.hit("10.0.0.7");
    EXPECT_TRUE(healed.allowed);
    EXPECT_EQ(healed.remaining, 4);

    // Below the limit, a TTL-less key gets its TTL at the next hit too.
    const std::string other = limiter.key("10.0.0.8");
    redis.command<void>("SET", other, 1);
    EXPECT_TRUE(limiter.hit("10.0.0.8").allowed);
    EXPECT_GT(redis.command<long long>("PTTL", other), 0);
}

TEST_F(RateLimit, ExactLimitAcrossThreadsAndForkedProcesses) {
    constexpr long long limit = 50;
    constexpr int processes = 3, threads = 4, attempts = 25;  // 300 attempts for 50 units
    for (const algorithm a : all_algorithms) {
        SCOPED_TRACE(label(a));
        // Long periods: no window ends and no token is added during the test (the sliding
        // window's epoch-aligned day boundary is checked below).
        const auto period = a == algorithm::fixed_window || a == algorithm::sliding_window
                                ? std::chrono::milliseconds(std::chrono::hours(24))
                                : std::chrono::milliseconds(std::chrono::hours(24 * limit));
        const auto day_before = server_us(redis) / 86400000000LL;

        int go[2], results[2];
        ASSERT_EQ(::pipe(go), 0);
        ASSERT_EQ(::pipe(results), 0);
        std::vector<pid_t> children;
        for (int p = 0; p < processes; ++p) {
            const pid_t pid = ::fork();
            ASSERT_GE(pid, 0);
            if (pid == 0) {
                // Child: a client of its own (never the parent's connections), N threads.
                ::close(go[1]);
                ::close(results[0]);
                char byte = 0;
                if (::read(go[0], &byte, 1) != 1) ::_exit(3);
                long long allowed = 0, denied = 0, errors = 0;
                {
                    auto o = shared_server().options();
                    o.pool_size = threads;
                    redkit::rate_limit_options ro;
                    ro.on_failure = redkit::failure_policy::raise;
                    const auto limiter = make_limiter(redkit::client(o), a, "exact", limit, period, ro);
                    std::mutex m;
                    std::vector<std::thread> ts;
                    for (int t = 0; t < threads; ++t) {
                        ts.emplace_back([&] {
                            long long al = 0, de = 0, er = 0;
                            for (int i = 0; i < attempts; ++i) {
                                try {
                                    (limiter.hit("shared").allowed ? al : de) += 1;
                                } catch (...) {
                                    ++er;
                                }
                            }
                            std::lock_guard<std::mutex> lock(m);
                            allowed += al;
                            denied += de;
                            errors += er;
                        });
                    }
                    for (auto& t : ts) t.join();
                }
                char line[96];
                const int n = std::snprintf(line, sizeof line, "%lld %lld %lld\n", allowed, denied, errors);
                const bool ok = ::write(results[1], line, static_cast<std::size_t>(n)) == n;
                ::_exit(ok ? 0 : 4);
            }
            children.push_back(pid);
        }
        ::close(go[0]);
        ::close(results[1]);
        const std::string start(static_cast<std::size_t>(processes), 'g');
        ASSERT_EQ(::write(go[1], start.data(), start.size()), static_cast<ssize_t>(start.size()));  // all start at once
        ::close(go[1]);

        std::string out;
        char buf[256];
        ssize_t got = 0;
        while ((got = ::read(results[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(got));
        ::close(results[0]);
        for (const pid_t pid : children) {
            int status = 0;
            ASSERT_EQ(::waitpid(pid, &status, 0), pid);
            EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
        }

        long long allowed = 0, denied = 0, errors = 0;
        std::istringstream in(out);
        for (long long al = 0, de = 0, er = 0; in >> al >> de >> er;) {
            allowed += al;
            denied += de;
            errors += er;
        }
        EXPECT_EQ(errors, 0);
        EXPECT_EQ(allowed + denied, processes * threads * attempts);
        if (a == algorithm::sliding_window && server_us(redis) / 86400000000LL != day_before) {
            EXPECT_LE(allowed, 2 * limit) << "a day boundary passed during the test";
        } else {
            EXPECT_EQ(allowed, limit);
        }
    }
}

TEST_F(RateLimit, TokenBucketAndGcraAllowTheBurstThenTheSteadyRate) {
    constexpr long long burst = 5;
    constexpr auto interval = 40ms;  // one unit every 40 ms: 25 per second
    for (const algorithm a : {algorithm::token_bucket, algorithm::gcra}) {
        SCOPED_TRACE(label(a));
        const auto limiter = a == algorithm::token_bucket
                                 ? rate_limiter::token_bucket(redis, "burst", burst, redkit::rate{1, interval})
                                 : rate_limiter::gcra(redis, "burst", redkit::rate{1, interval}, burst);
        for (long long i = 0; i < burst; ++i) {
            const auto r = limiter.hit("client");
            ASSERT_TRUE(r.allowed) << "burst hit " << i;
            EXPECT_EQ(r.remaining, burst - 1 - i);
        }
        const auto denied = limiter.hit("client");
        ASSERT_FALSE(denied.allowed);
        EXPECT_GE(denied.retry_after, 1ms);
        EXPECT_LE(denied.retry_after, interval);

        // Then as fast as we can for 400 ms: the steady rate, no second burst.
        const long long t0 = server_us(redis);
        long long allowed = 0, t1 = t0;
        while (t1 - t0 < 400000) {
            if (limiter.hit("client").allowed) ++allowed;
            std::this_thread::sleep_for(1ms);
            t1 = server_us(redis);
        }
        const long long expected = (t1 - t0) / (interval.count() * 1000);
        EXPECT_GE(allowed, expected - 2);
        EXPECT_LE(allowed, expected + 1);
    }
}

TEST_F(RateLimit, RetryAfterIsAccurateToTheMillisecondAgainstTheServerClock) {
    constexpr long long quota = 3;
    for (const algorithm a : all_algorithms) {
        SCOPED_TRACE(label(a));
        const auto limiter = make_limiter(redis, a, "retry", quota, 150ms);
        redkit::rate_limit_result r{};
        long long t_a = 0, t_b = 0;
        for (int i = 0; i < 10; ++i) {
            t_a = server_us(redis);
            r = limiter.hit("client");
            t_b = server_us(redis);
            if (!r.allowed) break;
        }
        ASSERT_FALSE(r.allowed);
        ASSERT_GE(r.retry_after, 1ms);
        ASSERT_LE(r.retry_after, 301ms);  // the sliding window may wait for the next window
        const long long retry_us = r.retry_after.count() * 1000;
        // The quota is back at a moment A with now + retry_after - 1 ms < A <= now + retry_after
        // (whole ms, rounded up), where the script's now lies in [t_a, t_b]. One more ms of slack
        // on each side for the ms granularity of key expiry and of the sliding window.
        const long long surely_denied_before = t_a + retry_us - 2000;
        const long long surely_allowed_from = t_b + retry_us + 1000;
        int denied_near_the_end = 0;
        for (;;) {
            const long long before = server_us(redis);
            const auto p = limiter.peek("client");
            const long long after = server_us(redis);
            if (after < surely_denied_before) {
                ASSERT_FALSE(p.allowed) << "allowed " << (surely_denied_before - after) << " us too early";
                if (after >= surely_denied_before - 25000) ++denied_near_the_end;
            }
            if (before >= surely_allowed_from) {
                EXPECT_TRUE(p.allowed) << "still denied " << (before - surely_allowed_from) << " us late";
                break;
            }
            std::this_thread::sleep_for(200us);
        }
        EXPECT_GT(denied_near_the_end, 0) << "sampled densely up to the last few ms";
        EXPECT_TRUE(limiter.hit("client").allowed);
    }
}

TEST_F(RateLimit, NextCheckWorksAfterScriptFlush) {
    for (const algorithm a : all_algorithms) {
        SCOPED_TRACE(label(a));
        const auto limiter = make_limiter(redis, a, "flush", 10, std::chrono::hours(1));
        EXPECT_EQ(limiter.hit("client").remaining, 9);
        redis.command<void>("SCRIPT", "FLUSH");
        const auto r = limiter.hit("client");
        EXPECT_TRUE(r.allowed);
        EXPECT_EQ(r.remaining, 8) << "the state survived; only the script cache was emptied";
        EXPECT_EQ(limiter.hit("client").remaining, 7);
    }
}

TEST_F(RateLimit, EachCheckIsExactlyOneCommandOnTheWire) {
    // What each script may call inside the server; anything else would be an extra round trip.
    const std::map<algorithm, std::vector<std::string>> inner = {
        {algorithm::fixed_window, {"incrby", "pttl", "pexpire", "get"}},
        {algorithm::sliding_window, {"time", "hmget", "hset", "pexpire"}},
        {algorithm::token_bucket, {"time", "hmget", "hset", "pexpire"}},
        {algorithm::gcra, {"time", "get", "set"}},
    };
    auto o = shared_server().options();
    o.pool_size = 1;
    redkit::client checker(o);
    for (const algorithm a : all_algorithms) {
        SCOPED_TRACE(label(a));
        const auto limiter = make_limiter(checker, a, "wire", 1000, std::chrono::hours(1));
        (void)limiter.hit("client");  // the script is loaded now (on a cluster: on this key's node)
        redis.command<void>("CONFIG", "RESETSTAT");
        constexpr int hits = 20, peeks = 5;
        for (int i = 0; i < hits; ++i) EXPECT_TRUE(limiter.hit("client").allowed);  // 1 + 20 of 1000
        for (int i = 0; i < peeks; ++i) EXPECT_TRUE(limiter.peek("client").allowed);

        auto calls = redkit_test::command_stats(redis);
        EXPECT_EQ(calls["evalsha"], hits + peeks);
        EXPECT_EQ(calls.count("eval"), 0u);
        for (const auto& [command, n] : calls) {
            if (command == "evalsha" || command.rfind("config", 0) == 0 || command == "info")
                continue;  // config|resetstat
            const auto& allowed = inner.at(a);
            EXPECT_TRUE(std::find(allowed.begin(), allowed.end(), command) != allowed.end())
                << command << " was sent " << n << " times";
            EXPECT_LE(n, hits + peeks) << command;
        }
    }
}

TEST_F(RateLimit, FailOpenAndFailClosedWhenTheServerIsKilled) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "needs a server of its own to kill";
    error_log log;
    auto o = server.options();
    o.max_retries = 0;
    o.connect_timeout = 200ms;
    o.command_timeout = 500ms;
    o.on_error = log.callback();
    redkit::client c(o);

    redkit::rate_limit_options open_o, closed_o, raise_o;
    closed_o.on_failure = redkit::failure_policy::fail_closed;
    closed_o.fail_closed_retry_after = 250ms;
    raise_o.on_failure = redkit::failure_policy::raise;
    const auto open = rate_limiter::gcra(c, "open", redkit::per_second(10), 10, open_o);
    const auto closed = rate_limiter::gcra(c, "closed", redkit::per_second(10), 10, closed_o);
    const auto raising = rate_limiter::gcra(c, "raise", redkit::per_second(10), 10, raise_o);

    const auto before = open.hit("client");
    EXPECT_TRUE(before.allowed);
    EXPECT_FALSE(before.fallback);
    EXPECT_TRUE(closed.hit("client").allowed);

    server.kill();
    const auto o1 = open.hit("client");
    EXPECT_TRUE(o1.allowed);
    EXPECT_TRUE(o1.fallback);
    EXPECT_EQ(o1.limit, 10);
    const auto c1 = closed.hit("client");
    EXPECT_FALSE(c1.allowed);
    EXPECT_TRUE(c1.fallback);
    EXPECT_EQ(c1.retry_after, 250ms);
    EXPECT_EQ(closed.headers(c1).at(0).name, "Retry-After");
    try {
        (void)raising.hit("client");
        FAIL() << "failure_policy::raise must throw";
    } catch (const redkit::error& e) {
        EXPECT_TRUE(e.is_transport()) << e.what();
    }
    EXPECT_TRUE(log.contains("rate_limiter open: no decision from redis"));
    EXPECT_TRUE(log.contains("failing open"));
    EXPECT_TRUE(log.contains("failing closed"));

    server.start();  // a fresh, empty server on the same port
    const auto after = closed.hit("client");
    EXPECT_TRUE(after.allowed);
    EXPECT_FALSE(after.fallback);
    EXPECT_EQ(after.remaining, 9);
}

TEST_F(RateLimit, BadConfigurationThrowsNamingTheField) {
    const auto expect_invalid = [](const std::function<void()>& f, const std::string& field) {
        try {
            f();
            ADD_FAILURE() << "no std::invalid_argument for " << field;
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
        }
    };
    redkit::client c = redis;
    expect_invalid([&] { (void)rate_limiter::fixed_window(c, "x", 0, 1s); }, "limit");
    expect_invalid([&] { (void)rate_limiter::fixed_window(c, "x", 10, 0ms); }, "window");
    expect_invalid([&] { (void)rate_limiter::fixed_window(c, "", 10, 1s); }, "name");
    expect_invalid([&] { (void)rate_limiter::sliding_window(c, "x", -1, 1s); }, "limit");
    expect_invalid([&] { (void)rate_limiter::sliding_window(c, "x", 10, -5ms); }, "window");
    expect_invalid([&] { (void)rate_limiter::sliding_window(c, "x", 1LL << 40, std::chrono::hours(24)); },
                   "limit * window");
    expect_invalid([&] { (void)rate_limiter::token_bucket(c, "x", 0, redkit::per_second(1)); }, "capacity");
    expect_invalid([&] { (void)rate_limiter::token_bucket(c, "x", 10, redkit::per_second(0)); }, "refill.count");
    expect_invalid([&] { (void)rate_limiter::token_bucket(c, "x", 10, redkit::rate{1, 0ms}); }, "refill.period");
    expect_invalid([&] { (void)rate_limiter::token_bucket(c, "x", 10, redkit::rate{2000, 1ms}); }, "refill");
    expect_invalid([&] { (void)rate_limiter::gcra(c, "x", redkit::per_second(10), 0); }, "burst");
    expect_invalid([&] { (void)rate_limiter::gcra(c, "x", redkit::per_minute(-3), 5); }, "sustained.count");
    redkit::rate_limit_options bad;
    bad.fail_closed_retry_after = -1ms;
    expect_invalid([&] { (void)rate_limiter::gcra(c, "x", redkit::per_second(10), 5, bad); },
                   "fail_closed_retry_after");

    const auto fixed = rate_limiter::fixed_window(c, "x", 10, 1s);
    const auto bucket = rate_limiter::token_bucket(c, "x", 3, redkit::per_second(1));
    const auto cell = rate_limiter::gcra(c, "x", redkit::per_second(1), 4);
    expect_invalid([&] { (void)fixed.hit("id", -1); }, "cost");
    expect_invalid([&] { (void)fixed.hit("id", 11); }, "exceeds the limit 10");
    expect_invalid([&] { (void)bucket.hit("id", 4); }, "exceeds the capacity 3");
    expect_invalid([&] { (void)cell.peek("id", 5); }, "exceeds the burst 4");
    expect_invalid([&] { (void)fixed.hit(""); }, "identifier");
    expect_invalid([&] { (void)fixed.reset(""); }, "identifier");
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 0) << "bad input wrote nothing";
}

TEST_F(RateLimit, IdentifierIsEscapedAndIsTheHashTag) {
    redkit::rate_limit_options o;
    o.keys = redkit::key_space("shop:test");
    const auto limiter = rate_limiter::fixed_window(redis, "api", 2, std::chrono::hours(1), o);
    const std::string hostile = "10.0.0.1:admin}{x";
    EXPECT_EQ(limiter.key(hostile), "shop:test:api:fixed:{10.0.0.1%3Aadmin%7D%7Bx}");
    EXPECT_EQ(limiter.key(hostile), o.keys.key("api", "fixed", redkit::hash_tag(hostile)));
    EXPECT_EQ(limiter.key("::1"), "shop:test:api:fixed:{%3A%3A1}");

    EXPECT_TRUE(limiter.hit(hostile).allowed);
    EXPECT_TRUE(limiter.hit(hostile).allowed);
    EXPECT_FALSE(limiter.hit(hostile).allowed);
    EXPECT_EQ(redis.command<long long>("EXISTS", "shop:test:api:fixed:{10.0.0.1%3Aadmin%7D%7Bx}"), 1);
    // Neither a prefix of the hostile id nor a glob character shares its state.
    EXPECT_EQ(limiter.hit("10.0.0.1").remaining, 1);
    EXPECT_EQ(limiter.hit("*").remaining, 1);
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 3);
}

TEST_F(RateLimit, CostIsWeighted) {
    for (const algorithm a : all_algorithms) {
        SCOPED_TRACE(label(a));
        const auto limiter = make_limiter(redis, a, "cost", 10, std::chrono::hours(1));
        EXPECT_EQ(limiter.hit("client", 4).remaining, 6);
        const auto all_left = limiter.hit("client", 6);
        EXPECT_TRUE(all_left.allowed);
        EXPECT_EQ(all_left.remaining, 0);
        EXPECT_FALSE(limiter.hit("client", 1).allowed);
        EXPECT_EQ(limiter.hit("other", 10).remaining, 0) << "a cost equal to the limit is allowed";
        const auto free = limiter.hit("client", 0);
        EXPECT_EQ(free.remaining, 0) << "cost 0 is a peek";
        EXPECT_TRUE(free.allowed);
    }
}

TEST_F(RateLimit, PeekDoesNotConsume) {
    for (const algorithm a : all_algorithms) {
        SCOPED_TRACE(label(a));
        const auto limiter = make_limiter(redis, a, "peek", 5, std::chrono::hours(1));
        for (int i = 0; i < 10; ++i) {
            const auto p = limiter.peek("client", 2);
            EXPECT_TRUE(p.allowed);
            EXPECT_EQ(p.remaining, 5);
        }
        EXPECT_EQ(redis.command<long long>("EXISTS", limiter.key("client")), 0) << "a peek creates nothing";
        EXPECT_EQ(limiter.hit("client", 4).remaining, 1);
        EXPECT_EQ(limiter.peek("client").remaining, 1);
        EXPECT_TRUE(limiter.peek("client").allowed);
        const auto too_much = limiter.peek("client", 2);
        EXPECT_FALSE(too_much.allowed);
        EXPECT_GE(too_much.retry_after, 1ms);
        EXPECT_EQ(limiter.hit("client").remaining, 0);
    }
}

TEST_F(RateLimit, OnlyTheFixedWindowChargesDeniedRequests) {
    for (const algorithm a : all_algorithms) {
        SCOPED_TRACE(label(a));
        const auto limiter = make_limiter(redis, a, "denied", 3, std::chrono::hours(1));
        const std::string key = limiter.key("client");
        for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.hit("client").allowed);
        const auto first = limiter.hit("client");
        ASSERT_FALSE(first.allowed);
        const auto state = redis.command<std::string>("DUMP", key);
        const auto pttl = redis.command<long long>("PTTL", key);
        redkit::rate_limit_result last{};
        for (int i = 0; i < 10; ++i) last = limiter.hit("client");
        EXPECT_FALSE(last.allowed);
        EXPECT_LE(last.retry_after, first.retry_after) << "denials never push the next allowed moment out";
        EXPECT_LE(redis.command<long long>("PTTL", key), pttl) << "denials never extend the state's life";
        if (a == algorithm::fixed_window) {
            EXPECT_EQ(redis.command<long long>("GET", key), 3 + 11) << "the fixed window counts attempts";
        } else {
            EXPECT_EQ(redis.command<std::string>("DUMP", key), state) << "denials wrote nothing";
        }
    }
}

TEST_F(RateLimit, SlidingWindowWeighsThePreviousWindow) {
    constexpr long long limit = 10;
    constexpr long long window_ms = 300;
    const auto limiter = rate_limiter::sliding_window(redis, "slide", limit, std::chrono::milliseconds(window_ms));
    // Start early in a window (windows are aligned to the server clock) so the hits share one.
    while (server_us(redis) / 1000 % window_ms > 50) std::this_thread::sleep_for(1ms);
    const long long index = server_us(redis) / 1000 / window_ms;
    for (long long i = 0; i < limit; ++i) ASSERT_TRUE(limiter.hit("client").allowed);
    EXPECT_FALSE(limiter.hit("client").allowed);
    ASSERT_EQ(server_us(redis) / 1000 / window_ms, index) << "the hits crossed a window boundary";
    // Halfway through the next window, about half of the previous window still counts.
    while (server_us(redis) / 1000 < (index + 1) * window_ms + window_ms / 2) std::this_thread::sleep_for(1ms);
    const long long t_a = server_us(redis) / 1000 % window_ms;
    long long allowed = 0;
    while (limiter.hit("client").allowed) ++allowed;
    const long long t_b = server_us(redis) / 1000 % window_ms;
    ASSERT_GE(t_b, t_a) << "the burst crossed a window boundary";
    // allowed == limit - ceil(limit * (window - elapsed) / window) for some elapsed in [t_a, t_b]
    const long long most = limit - (limit * (window_ms - t_b) + window_ms - 1) / window_ms;
    const long long least = limit - (limit * (window_ms - t_a) + window_ms - 1) / window_ms;
    EXPECT_GE(allowed, least);
    EXPECT_LE(allowed, most);
    EXPECT_GT(allowed, 0);
    EXPECT_LT(allowed, limit);
}

TEST_F(RateLimit, ResetForgetsOneIdentifier) {
    for (const algorithm a : all_algorithms) {
        SCOPED_TRACE(label(a));
        const auto limiter = make_limiter(redis, a, "reset", 2, std::chrono::hours(1));
        for (const char* id : {"a", "b"}) {
            EXPECT_TRUE(limiter.hit(id, 2).allowed);
            EXPECT_FALSE(limiter.hit(id).allowed);
        }
        EXPECT_TRUE(limiter.reset("a"));
        EXPECT_FALSE(limiter.reset("a"));
        EXPECT_FALSE(limiter.reset("never-seen"));
        EXPECT_EQ(limiter.hit("a").remaining, 1);
        EXPECT_FALSE(limiter.hit("b").allowed);
    }
}

TEST_F(RateLimit, StorefrontPerIpTheHundredAndFirstCallGets429) {
    const auto per_ip = rate_limiter::fixed_window(redis, "storefront", 100, std::chrono::minutes(1));
    for (int i = 1; i <= 100; ++i) ASSERT_TRUE(per_ip.hit("203.0.113.9").allowed) << "call " << i;
    const auto r = per_ip.hit("203.0.113.9");
    EXPECT_FALSE(r.allowed);
    EXPECT_EQ(r.limit, 100);
    EXPECT_EQ(r.remaining, 0);
    EXPECT_GT(r.retry_after, 59s);
    EXPECT_LE(r.retry_after, 60001ms);
    EXPECT_TRUE(per_ip.hit("203.0.113.10").allowed) << "another IP has its own quota";
}

TEST_F(RateLimit, HeadersOfARealAllowedResult) {
    const auto limiter = rate_limiter::fixed_window(redis, "api", 100, std::chrono::minutes(1));
    const auto find = [](const std::vector<redkit::http_header>& hs, const std::string& name) -> std::string {
        for (const auto& h : hs) {
            if (h.name == name) return h.value;
        }
        return "<absent>";
    };
    const auto real = limiter.hit("client");
    const auto allowed =
        limiter.headers(real, redkit::rate_limit_headers::ietf_legacy | redkit::rate_limit_headers::retry_after);
    EXPECT_EQ(find(allowed, "Retry-After"), "<absent>");
    EXPECT_EQ(find(allowed, "RateLimit-Remaining"), "99");
    EXPECT_EQ(find(allowed, "RateLimit-Reset"), "61") << "60 s + the 1 ms the key lives at PTTL 0, rounded up";
}

// client_options::observer sees each decision: hits, peeks and async hits, allowed or denied,
// with the identifier only when observe_keys asks for it.
TEST_F(RateLimit, EveryDecisionReachesTheObserver) {
    struct decisions : redkit::observer {
        void on_rate_limit(const redkit::rate_limit_event& e) override {
            std::lock_guard<std::mutex> lock(mutex);
            seen.push_back({std::string(e.limiter), std::string(e.identifier), e.allowed, e.peek, e.remaining});
        }
        struct decision {
            std::string limiter, identifier;
            bool allowed, peek;
            long long remaining;
        };
        std::vector<decision> taken() {  // what was seen so far, forgotten here
            std::lock_guard<std::mutex> lock(mutex);
            return std::exchange(seen, {});
        }
        std::mutex mutex;
        std::vector<decision> seen;
    };
    const auto watched = std::make_shared<decisions>();
    auto options = redis.options();
    options.observer = watched;
    options.observe_keys = true;
    const auto api = rate_limiter::fixed_window(redkit::client(options), "api", 3, 10s);
    for (int i = 0; i < 5; ++i) (void)api.hit("203.0.113.7");
    (void)api.peek("203.0.113.7");
    EXPECT_FALSE(api.async_hit("203.0.113.7").get().allowed);

    const auto seen = watched->taken();
    ASSERT_EQ(seen.size(), 7U);
    int allowed = 0;
    for (std::size_t i = 0; i < 5; ++i) {
        const auto& d = seen[i];
        EXPECT_EQ(d.limiter, "api");
        EXPECT_EQ(d.identifier, "203.0.113.7");
        EXPECT_FALSE(d.peek);
        allowed += d.allowed ? 1 : 0;
        EXPECT_EQ(d.allowed, i < 3);
    }
    EXPECT_EQ(allowed, 3);
    EXPECT_EQ(seen[2].remaining, 0);
    EXPECT_TRUE(seen[5].peek);
    EXPECT_FALSE(seen[6].peek);
    EXPECT_FALSE(seen[6].allowed);

    // without observe_keys: who was checked stays out
    options.observe_keys = false;
    const auto quiet = rate_limiter::fixed_window(redkit::client(options), "login", 1, 10s);
    (void)quiet.hit("user-42");
    const auto later = watched->taken();
    ASSERT_EQ(later.size(), 1U);
    EXPECT_EQ(later[0].identifier, "");
    EXPECT_TRUE(later[0].allowed);
}
