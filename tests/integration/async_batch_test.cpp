// SPDX-License-Identifier: MIT
// Awaitable as a whole, against real servers: a redkit::promise's future, a script
// (client::submit_eval, with its NOSCRIPT fallback), a pipeline and a transaction
// (submit() on the shared connection) and the rate limiter's async_hit(). Each completes once,
// with its own outcome, under load from many threads, a SCRIPT FLUSH and a killed server.
// Built into multiplex_tests (C++20 when the compiler has coroutines).
#include <redkit/redkit.hpp>

#include "support/error_log.hpp"
#include "support/eventually.hpp"
#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"
#include "support/watchdog.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::eventually;
using redkit_test::shared_server;

namespace {

class AsyncBatch : public redkit_test::fresh_database {
protected:
    void SetUp() override {
        fresh_database::SetUp();
        if (redis.is_cluster()) GTEST_SKIP() << "on a cluster: cluster_tests";
    }
};

// A script of this test's own (not a pattern's), so SCRIPT FLUSH makes it unknown.
const redkit::script& add_script() {
    static const redkit::script s("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    return s;
}

}  // namespace

TEST(Promise, ItsFutureGetsTheValueOrTheExceptionOnce) {
    redkit::promise<std::string> p;
    redkit::future<std::string> f = p.get_future();
    EXPECT_FALSE(f.ready());
    EXPECT_THROW((void)p.get_future(), std::future_error);
    std::thread setter([&p] {
        std::this_thread::sleep_for(20ms);
        p.set_value("done");
    });
    EXPECT_EQ(f.get(), "done");  // waits for the other thread
    setter.join();
    EXPECT_FALSE(f.valid());
    EXPECT_THROW(p.set_value("again"), std::future_error);

    redkit::promise<long long> q;
    auto g = q.get_future();
    q.set_exception(std::make_exception_ptr(std::runtime_error("loader failed")));
    ASSERT_TRUE(g.ready());
    EXPECT_THROW((void)g.get(), std::runtime_error);

    redkit::future<void> h;
    {
        redkit::promise<void> abandoned;
        h = abandoned.get_future();
    }
    try {
        h.get();
        ADD_FAILURE() << "an abandoned promise's future completed without an error";
    } catch (const std::future_error& e) {
        EXPECT_EQ(e.code(), std::future_errc::broken_promise);
    }
}

TEST(Promise, ACallbackRunsOnTheSettingThreadAndWhatItThrowsIsReportedOrRethrown) {
    redkit::promise<int> p;
    std::thread::id ran_on;
    int got = 0;
    p.get_future().then([&](redkit::future<int> f) {
        got = f.get();
        ran_on = std::this_thread::get_id();
    });
    std::thread([&p] { p.set_value(7); }).join();
    EXPECT_EQ(got, 7);
    EXPECT_NE(ran_on, std::this_thread::get_id());

    // without an error callback, the callback's exception comes out of set_value()
    redkit::promise<int> loud;
    loud.get_future().then([](redkit::future<int>) { throw std::runtime_error("callback failed"); });
    EXPECT_THROW(loud.set_value(1), redkit::error);

    redkit_test::error_log log;
    redkit::promise<int> quiet(log.callback());
    quiet.get_future().then([](redkit::future<int>) { throw std::runtime_error("callback failed"); });
    EXPECT_NO_THROW(quiet.set_value(1));
    EXPECT_TRUE(log.contains("callback failed"));
}

TEST_F(AsyncBatch, SubmitEvalRunsTheScriptAndFallsBackToEvalAfterAScriptFlush) {
    redkit::client c(shared_server().options());
    EXPECT_EQ(c.submit_eval<long long>(add_script(), {"batch:n"}, 5).get(), 5);
    c.command<void>("SCRIPT", "FLUSH");
    // EVALSHA gets NOSCRIPT; EVAL follows from the thread that read it, and loads it again
    std::vector<redkit::future<long long>> pending;
    for (int i = 0; i < 200; ++i) pending.push_back(c.submit_eval<long long>(add_script(), {"batch:n"}, 1));
    long long last = 0;
    for (auto& f : pending) last = std::max(last, f.get());
    EXPECT_EQ(last, 205);
    EXPECT_EQ(c.command<long long>("GET", "batch:n"), 205);
    EXPECT_EQ(c.command<std::vector<long long>>("SCRIPT", "EXISTS", add_script().sha1()), std::vector<long long>{1});

    // the script's own error is the future's, named by the command
    c.command<void>("SET", "batch:text", "abc");
    try {
        (void)c.submit_eval<long long>(add_script(), {"batch:text"}, 1).get();
        ADD_FAILURE() << "INCRBY of a string succeeded";
    } catch (const redkit::server_error& e) {
        EXPECT_NE(std::string(e.what()).find("EVALSHA"), std::string::npos) << e.what();
    }
}

TEST_F(AsyncBatch, APipelineSubmittedWholeGetsEveryReplyInOrderWithErrorsAsValues) {
    redkit::client c(shared_server().options());
    redkit::pipeline p(c);
    p.command("SET", "batch:a", 1).command("INCR", "batch:a").command("INCR", "batch:missing:type");
    p.command("LPUSH", "batch:a", "x").command("GET", "batch:a");
    redkit::future<std::vector<redkit::reply>> f = p.submit();
    EXPECT_EQ(p.size(), 0u);
    std::vector<redkit::reply> r = f.get();
    ASSERT_EQ(r.size(), 5u);
    EXPECT_EQ(r[1].as<long long>(), 2);
    EXPECT_EQ(r[2].as<long long>(), 1);
    EXPECT_TRUE(r[3].is_error());  // WRONGTYPE: a value, the rest ran
    EXPECT_EQ(r[4].as<std::string>(), "2");

    // empty: a ready future of no replies
    EXPECT_TRUE(p.submit().get().empty());
    // a command that would hold the shared connection is refused, and nothing is sent
    p.command("SET", "batch:refused", 1).command("BLPOP", "batch:list", 1);
    EXPECT_THROW((void)p.submit(), std::invalid_argument);
    EXPECT_EQ(c.command<long long>("EXISTS", "batch:refused"), 0);
    redkit::transaction w(c);
    w.command("WATCH", "batch:a");
    EXPECT_THROW((void)w.submit(), std::invalid_argument);
}

TEST_F(AsyncBatch, PipelinesFromManyThreadsKeepTheirRepliesTogetherAndTheirScriptsLoaded) {
    redkit::client c(shared_server().options());
    c.command<void>("SCRIPT", "FLUSH");
    constexpr int threads = 8, rounds = 200;
    std::atomic<int> wrong{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            const std::string key = "batch:t" + std::to_string(t);
            for (int i = 0; i < rounds; ++i) {
                redkit::pipeline p(c);
                p.command("ECHO", key + ":" + std::to_string(i)).eval(add_script(), {key}, 1);
                p.command("INCR", key + ":plain");
                // a plain submitted command between pipelines of other threads
                auto lone = c.submit<std::string>("ECHO", "lone" + std::to_string(i));
                const std::vector<redkit::reply> r = p.submit().get();
                if (r.size() != 3 || r[0].as<std::string>() != key + ":" + std::to_string(i) ||
                    r[1].as<long long>() != i + 1 || r[2].as<long long>() != i + 1 ||
                    lone.get() != "lone" + std::to_string(i)) {
                    ++wrong;
                }
            }
        });
    }
    for (auto& th : pool) th.join();
    EXPECT_EQ(wrong.load(), 0);
}

TEST_F(AsyncBatch, ATransactionSubmittedWholeRunsAtomicallyAmongOtherCallers) {
    redkit::client c(shared_server().options());
    // each transaction writes its letter twice and reads the key: no other caller's command can
    // come between, so every read is its own letter twice
    constexpr int threads = 6, rounds = 300;
    std::atomic<int> torn{0}, done{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            const std::string letter(1, static_cast<char>('a' + t));
            for (int i = 0; i < rounds; ++i) {
                redkit::transaction tx(c);
                tx.command("SET", "batch:shared", letter).command("APPEND", "batch:shared", letter);
                tx.command("GET", "batch:shared");
                tx.submit().then([&, letter](redkit::future<std::vector<redkit::reply>> f) {
                    const auto r = f.get();
                    if (r.size() != 3 || r[2].as<std::string>() != letter + letter) ++torn;
                    ++done;
                });
            }
        });
    }
    for (auto& th : pool) th.join();
    ASSERT_TRUE(eventually([&] { return done.load() == threads * rounds; }, 20s));
    EXPECT_EQ(torn.load(), 0);

    // a command the server refuses to queue aborts all, with its error in the message
    redkit::transaction bad(c);
    bad.command("SET", "batch:never", 1).command("INCRBY", "batch:never");  // wrong arity
    try {
        (void)bad.submit().get();
        ADD_FAILURE() << "EXEC ran a transaction with a refused command";
    } catch (const redkit::server_error& e) {
        EXPECT_NE(std::string(e.what()).find("EXECABORT"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("wrong number of arguments"), std::string::npos) << e.what();
    }
    EXPECT_EQ(c.command<long long>("EXISTS", "batch:never"), 0);
}

TEST(AsyncBatchConstruction, APipelineConnectsAtItsFirstExecNotWhenMade) {
    redkit::client_options o;
    o.port = 1;  // nothing listens
    o.max_retries = 0;
    o.connect_timeout = 200ms;
    redkit::client c(o);
    redkit::pipeline p(c);  // borrows nothing yet
    p.command("PING");
    EXPECT_THROW((void)p.exec(), redkit::error);
    redkit::transaction tx(c);
    tx.command("PING");
    EXPECT_THROW((void)tx.submit().get(), redkit::error);  // the shared connection cannot connect
}

TEST_F(AsyncBatch, AsyncHitDecidesAsHitDoesForManyCallers) {
    redkit::client c(shared_server().options());
    const auto limiter = redkit::rate_limiter::fixed_window(c, "batch-api", 50, 60s);
    std::vector<redkit::future<redkit::rate_limit_result>> pending;
    for (int i = 0; i < 80; ++i) pending.push_back(limiter.async_hit("10.0.0.1"));
    int allowed = 0;
    for (auto& f : pending) allowed += f.get().allowed ? 1 : 0;
    EXPECT_EQ(allowed, 50);
    EXPECT_FALSE(limiter.hit("10.0.0.1").allowed);  // the same state as the blocking call's
    EXPECT_THROW((void)limiter.async_hit("10.0.0.1", 51), std::invalid_argument);
    EXPECT_THROW((void)limiter.async_hit(""), std::invalid_argument);

    // after SCRIPT FLUSH the pattern's script is loaded again on the way
    c.command<void>("SCRIPT", "FLUSH");
    const auto bucket = redkit::rate_limiter::token_bucket(c, "batch-bucket", 3, redkit::per_minute(1));
    int ok = 0;
    for (int i = 0; i < 5; ++i) ok += bucket.async_hit("u1").get().allowed ? 1 : 0;
    EXPECT_EQ(ok, 3);
}

TEST_F(AsyncBatch, AsyncAddAddsJobsAsAddDoesWithDeduplication) {
    redkit::client c(shared_server().options());
    redkit::queue<nlohmann::json> q(c, "batch-jobs");
    std::vector<redkit::future<redkit::added_job>> pending;
    for (int i = 0; i < 300; ++i) {
        redkit::job_options o;
        o.deduplication.id = "order-" + std::to_string(i % 100);  // each id three times
        pending.push_back(q.async_add("ship", nlohmann::json{{"n", i}}, o));
    }
    int created = 0, deduplicated = 0;
    for (auto& f : pending) {
        const redkit::added_job job = f.get();
        EXPECT_FALSE(job.id.empty());
        if (job.created) ++created;
        if (job.outcome == redkit::add_outcome::deduplicated) ++deduplicated;
    }
    EXPECT_EQ(created, 100);
    EXPECT_EQ(deduplicated, 200);
    EXPECT_EQ(q.counts().waiting, 100);
    // the job is what add() would have stored
    const auto first = q.async_add("ship", nlohmann::json{{"n", -1}}).get();
    const auto stored = q.get_job(first.id);
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(stored->name(), "ship");
    redkit::job_options bad;
    bad.attempts = 0;
    EXPECT_THROW((void)q.async_add("ship", nlohmann::json{}, bad), std::invalid_argument);
    redkit::queue_options waits;
    waits.replicas = 1;
    redkit::queue<nlohmann::json> replicated(c, "batch-replicated", waits);
    EXPECT_THROW((void)replicated.async_add("ship", nlohmann::json{}), std::invalid_argument);
}

TEST_F(AsyncBatch, SessionsAreCreatedReadUpdatedAndRevokedWithoutWaiting) {
    redkit::client c(shared_server().options());
    redkit::session_store<> sessions(c);
    const std::string token = sessions.async_create("42", {{"device", "Firefox"}}).get();
    ASSERT_FALSE(token.empty());
    const auto s = sessions.async_get(token).get();
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->user_id, "42");
    EXPECT_EQ(s->data.at("device"), "Firefox");
    EXPECT_EQ(sessions.get(token)->id, s->id);  // the blocking call sees the same session
    EXPECT_TRUE(sessions.async_touch(token).get());
    EXPECT_TRUE(sessions.async_peek(token).get().has_value());

    const auto updated = sessions.async_update(token, {{"device", "Safari"}}, s->version).get();
    EXPECT_EQ(updated.status, redkit::update_status::updated);
    const auto stale = sessions.async_update(token, {{"device", "Lynx"}}, s->version).get();
    EXPECT_EQ(stale.status, redkit::update_status::conflict);
    ASSERT_TRUE(stale.current.has_value());
    EXPECT_EQ(stale.current->data.at("device"), "Safari");  // the newer data, for a retry

    // many at once: each its own session
    std::vector<redkit::future<std::string>> made;
    for (int i = 0; i < 100; ++i) made.push_back(sessions.async_create("user-" + std::to_string(i)));
    std::vector<redkit::future<std::optional<redkit::session_store<>::session_type>>> read;
    for (auto& f : made) read.push_back(sessions.async_get(f.get()));
    for (int i = 0; i < 100; ++i) {
        const auto got = read[static_cast<std::size_t>(i)].get();
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(got->user_id, "user-" + std::to_string(i));
    }

    EXPECT_TRUE(sessions.async_revoke(token).get());
    EXPECT_FALSE(sessions.async_get(token).get().has_value());  // revoked: at once
    EXPECT_FALSE(sessions.async_revoke(token).get());
    auto malformed = sessions.async_get("not a token");
    EXPECT_TRUE(malformed.ready());  // nothing sent
    EXPECT_FALSE(malformed.get().has_value());
    EXPECT_THROW((void)sessions.async_create(""), std::invalid_argument);
}

TEST(AsyncBatchFaults, AKilledServerGivesAsyncHitItsFallbackAndFailsAPendingTransaction) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "kills its own server";
    redkit_test::watchdog guard(60s, "kill -9 under async hits");
    redkit_test::error_log log;
    auto o = server.options();
    o.max_retries = 0;
    o.on_error = log.callback();
    redkit::client c(o);
    redkit::rate_limit_options open_policy;  // fail open, the default
    const auto open = redkit::rate_limiter::fixed_window(c, "faults", 5, 60s, open_policy);
    redkit::rate_limit_options raise_policy;
    raise_policy.on_failure = redkit::rate_limit_failure_policy::raise;
    const auto strict = redkit::rate_limiter::fixed_window(c, "faults", 5, 60s, raise_policy);
    ASSERT_TRUE(open.async_hit("x").get().allowed);
    server.kill();
    const auto fallback = open.async_hit("x").get();
    EXPECT_TRUE(fallback.allowed);
    EXPECT_TRUE(fallback.fallback);
    EXPECT_THROW((void)strict.async_hit("x").get(), redkit::error);
    EXPECT_TRUE(log.contains("failing open"));
    redkit::transaction tx(c);
    tx.command("INCR", "faults:n");
    EXPECT_THROW((void)tx.submit().get(), redkit::error);
    server.start();
    ASSERT_TRUE(eventually([&] {
        try {
            return open.async_hit("y").get().fallback == false;
        } catch (...) {
            return false;
        }
    }));
}

#if REDKIT_COROUTINES
#include "support/detached.hpp"

namespace {

redkit_test::detached checkout(const redkit::client& c, const redkit::rate_limiter& limiter, int i,
                               std::atomic<int>& allowed, std::atomic<int>& right, std::atomic<int>& done) {
    const redkit::rate_limit_result decision = co_await limiter.async_hit("co-client");
    if (decision.allowed) {
        ++allowed;
        redkit::transaction tx(c);
        tx.command("INCR", "batch:co:orders").command("RPUSH", "batch:co:log", i);
        const std::vector<redkit::reply> r = co_await tx.submit();
        if (r.size() == 2 && r[0].as<long long>() > 0 && r[1].as<long long>() > 0) ++right;
    }
    ++done;
}

}  // namespace

TEST_F(AsyncBatch, CoroutinesAwaitTheLimiterAndTransactions) {
    redkit::client c(shared_server().options());
    const auto limiter = redkit::rate_limiter::sliding_window(c, "batch-co", 300, 60s);
    std::atomic<int> allowed{0}, right{0}, done{0};
    constexpr int n = 1000;
    for (int i = 0; i < n; ++i) checkout(c, limiter, i, allowed, right, done);
    ASSERT_TRUE(eventually([&] { return done.load() == n; }, 20s));
    EXPECT_EQ(allowed.load(), 300);
    EXPECT_EQ(right.load(), 300);
    EXPECT_EQ(c.command<long long>("GET", "batch:co:orders"), 300);
    EXPECT_EQ(c.command<long long>("LLEN", "batch:co:log"), 300);
}
#endif
