// SPDX-License-Identifier: MIT
// Replies without a waiting thread (future::then, and co_await in C++20), against real servers:
// each callback runs once with its own reply or its own error, under 10,000 commands in flight, a
// kill -9, a SIGSTOP and the client's destruction; a callback that would wait for the connection
// it reads is refused, one that throws is reported, one that holds the client's last copy ends it
// safely. Built into multiplex_tests (C++20 when the compiler has coroutines).
#include <redkit/redkit.hpp>

#include "support/busy_script.hpp"
#include "support/error_log.hpp"
#include "support/eventually.hpp"
#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"
#include "support/watchdog.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::busy_script;
using redkit_test::eventually;
using redkit_test::shared_server;

namespace {

class Async : public redkit_test::fresh_database {};

// What each of n callbacks saw: its reply, or that it failed; and how often it ran.
struct outcomes {
    explicit outcomes(std::size_t n) : runs(n), values(n) {}
    std::vector<std::atomic<int>> runs;
    std::vector<std::string> values;  // "!" + what() for an error (each slot written by its own callback)
    std::atomic<std::size_t> finished{0};
    bool all_once() const {
        for (const auto& r : runs) {
            if (r.load() != 1) return false;
        }
        return true;
    }
};

// ECHO "<i>" for i in [0, n), each with a callback that records what it got.
void echo_all(const redkit::client& c, outcomes& out) {
    for (std::size_t i = 0; i < out.runs.size(); ++i) {
        c.submit<std::string>("ECHO", std::to_string(i)).then([&out, i](redkit::future<std::string> f) {
            try {
                out.values[i] = f.get();
            } catch (const redkit::error& e) {
                out.values[i] = std::string("!") + e.what();
            }
            out.runs[i].fetch_add(1);
            out.finished.fetch_add(1);
        });
    }
}

}  // namespace

TEST_F(Async, TenThousandCallbacksEachGetTheirOwnReplyWithoutAWaitingThread) {
    outcomes out(10000);
    std::vector<long long> counts(2000, -1);
    std::atomic<std::size_t> counted{0};
    redkit::client c(shared_server().options());  // after what its callbacks use: it goes first
    echo_all(c, out);
    for (std::size_t i = 0; i < counts.size(); ++i) {
        c.submit<long long>("INCR", "async:counter").then([&counts, &counted, i](redkit::future<long long> f) {
            counts[i] = f.get();
            ++counted;
        });
    }
    // nobody waits: the callbacks run on redkit's I/O thread
    ASSERT_TRUE(eventually([&] { return out.finished.load() == out.runs.size(); }, 20s));
    EXPECT_TRUE(out.all_once());
    for (std::size_t i = 0; i < out.values.size(); ++i) ASSERT_EQ(out.values[i], std::to_string(i)) << i;
    ASSERT_TRUE(eventually([&] { return counted.load() == counts.size(); }));
    for (std::size_t i = 0; i < counts.size(); ++i) EXPECT_EQ(counts[i], static_cast<long long>(i) + 1);  // in order
}

TEST_F(Async, ACallbackAttachedAfterTheReplyRunsAtOnceInsideThen) {
    std::atomic<bool> elsewhere{false};
    std::atomic<int> runs{0};
    redkit::client c(shared_server().options());
    auto f = c.submit<std::string>("ECHO", "early");
    f.wait();
    ASSERT_TRUE(f.ready());
    std::string got;
    std::thread::id ran_on;
    f.then([&](redkit::future<std::string> g) {
        EXPECT_TRUE(g.ready());
        got = g.get();
        ran_on = std::this_thread::get_id();
    });
    EXPECT_EQ(got, "early");  // before then() returned
    EXPECT_EQ(ran_on, std::this_thread::get_id());
    EXPECT_FALSE(f.valid());
    EXPECT_THROW(f.then([](redkit::future<std::string>) {}), std::future_error);

    // the callback runs on another thread when the reply comes later
    c.submit<long long>("EVAL", busy_script(50), 0).then([&](redkit::future<long long> g) {
        EXPECT_EQ(g.get(), 7);
        elsewhere = std::this_thread::get_id() != ran_on;
        ++runs;
    });
    ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
    EXPECT_TRUE(elsewhere.load());
}

TEST_F(Async, ErrorsReachTheCallbackAsGetThrowsThem) {
    std::atomic<int> server_errors{0}, conversion_errors{0};
    redkit::client c(shared_server().options());
    c.command<void>("SET", "async:text", "abc");
    c.submit<long long>("INCR", "async:text").then([&](redkit::future<long long> f) {
        try {
            (void)f.get();
        } catch (const redkit::server_error& e) {
            if (std::string(e.what()).find("not an integer") != std::string::npos) ++server_errors;
        }
    });
    c.submit<long long>("GET", "async:missing").then([&](redkit::future<long long> f) {
        try {
            (void)f.get();
        } catch (const redkit::error&) {
            ++conversion_errors;  // nil is no integer
        }
    });
    ASSERT_TRUE(eventually([&] { return server_errors.load() + conversion_errors.load() == 2; }));
    EXPECT_EQ(server_errors.load(), 1);
    EXPECT_EQ(conversion_errors.load(), 1);
}

TEST_F(Async, ACallbackThatThrowsIsReportedAndTheConnectionGoesOn) {
    redkit_test::error_log log;
    std::atomic<int> later{0};
    auto o = shared_server().options();
    o.on_error = log.callback();
    redkit::client c(o);
    c.submit<std::string>("ECHO", "x").then([](redkit::future<std::string>) {
        throw std::runtime_error("callback failed on purpose");
    });
    ASSERT_TRUE(eventually([&] { return log.contains("callback failed on purpose"); }));
    EXPECT_TRUE(log.contains("completion callback threw"));
    c.submit<std::string>("ECHO", "after").then([&](redkit::future<std::string> f) {
        if (f.get() == "after") ++later;
    });
    ASSERT_TRUE(eventually([&] { return later.load() == 1; }));

    // inside then() (the reply was in), the callback's exception reaches then()'s caller
    auto ready = c.submit<std::string>("ECHO", "y");
    ready.wait();
    EXPECT_THROW(ready.then([](redkit::future<std::string>) { throw std::logic_error("inline"); }), std::logic_error);
}

TEST_F(Async, ACallbackMayChainCommandsButNotWaitForTheConnectionItReads) {
    std::atomic<int> refused{0}, chained{0};
    redkit::client c(shared_server().options());
    c.submit<std::string>("ECHO", "first").then([&](redkit::future<std::string> f) {
        EXPECT_EQ(f.get(), "first");
        // waiting here would wait for this very thread to read the reply
        try {
            (void)c.submit<std::string>("ECHO", "waited").get();
        } catch (const redkit::error& e) {
            if (e.kind() == redkit::errc::invalid_state) ++refused;
        }
        try {
            (void)c.command<std::string>("ECHO", "blocking");
        } catch (const redkit::error& e) {
            if (e.kind() == redkit::errc::invalid_state) ++refused;
        }
        // sending more is fine: its callback runs later
        c.submit<std::string>("ECHO", "second").then([&](redkit::future<std::string> g) {
            if (g.get() == "second") ++chained;
        });
    });
    ASSERT_TRUE(eventually([&] { return chained.load() == 1; }));
    EXPECT_EQ(refused.load(), 2);
    EXPECT_EQ(c.command<std::string>("ECHO", "still fine"), "still fine");
}

TEST_F(Async, CallbacksPendingWhenTheClientGoesRunBeforeItsDestructorReturns) {
    outcomes out(3000);
    {
        redkit::client c(shared_server().options());
        echo_all(c, out);
    }  // the queue is sent, every reply read, every callback run
    EXPECT_EQ(out.finished.load(), out.runs.size());
    EXPECT_TRUE(out.all_once());
    for (std::size_t i = 0; i < out.values.size(); ++i) ASSERT_EQ(out.values[i], std::to_string(i)) << i;
}

TEST_F(Async, ACallbackMayHoldTheClientsLastCopy) {
    std::atomic<int> ran{0};
    {
        redkit::client c(shared_server().options());
        // the reply comes after this scope's copy is gone
        c.submit<long long>("EVAL", busy_script(200), 0).then([c, &ran](redkit::future<long long> f) {
            if (f.get() == 7) ++ran;
            (void)c.options();  // the copy goes when this callback does, on the I/O thread
        });
    }
    ASSERT_TRUE(eventually([&] { return ran.load() == 1; }));
    std::this_thread::sleep_for(200ms);  // the I/O thread is stopped by another (detached) thread
    redkit::client again(shared_server().options());
    EXPECT_EQ(again.command<std::string>("ECHO", "ok"), "ok");
}

TEST(AsyncFaults, AKilledServerRunsEveryCallbackOnceWithItsReplyOrAnError) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "kills its own server";
    redkit_test::watchdog guard(60s, "kill -9 with callbacks pending");
    outcomes out(5000);
    std::atomic<int> back{0}, busy_ran{0};
    auto o = server.options();
    o.max_retries = 0;
    redkit::client c(o);
    ASSERT_EQ(c.command<std::string>("ECHO", "up"), "up");
    // the server is kept busy: the echoes are surely in flight when it dies
    c.submit<long long>("EVAL", busy_script(2000), 0).then([&](redkit::future<long long> f) {
        try {
            (void)f.get();
        } catch (const redkit::error&) {
        }
        ++busy_ran;
    });
    echo_all(c, out);
    std::this_thread::sleep_for(100ms);
    server.kill();
    ASSERT_TRUE(eventually([&] { return out.finished.load() == out.runs.size(); }, 20s))
        << out.finished.load() << " of " << out.runs.size() << " callbacks ran";
    EXPECT_TRUE(out.all_once());
    EXPECT_TRUE(eventually([&] { return busy_ran.load() == 1; }));
    std::size_t failed = 0;
    for (std::size_t i = 0; i < out.values.size(); ++i) {
        if (!out.values[i].empty() && out.values[i][0] == '!') {
            ++failed;
        } else {
            ASSERT_EQ(out.values[i], std::to_string(i)) << i;  // never another's reply
        }
    }
    EXPECT_EQ(failed, out.runs.size()) << "replies from a server that was busy until it died";
    server.start();
    ASSERT_TRUE(eventually([&] {
        c.submit<std::string>("ECHO", "back").then([&](redkit::future<std::string> f) {
            try {
                if (f.get() == "back") ++back;
            } catch (const redkit::error&) {
            }
        });
        return eventually([&] { return back.load() > 0; }, 300ms);
    }));
}

namespace {
// A client of `server` whose shared connection has found the server gone (after kill()).
redkit::client_options down_options(const redkit_test::redis_server& server, int retries,
                                    std::chrono::milliseconds backoff) {
    auto o = server.options();
    o.max_retries = retries;
    o.retry_backoff = backoff;
    o.retry_backoff_max = backoff;
    return o;
}
void notice_the_kill(const redkit::client& c) {
    try {
        (void)c.submit<std::string>("ECHO", "probe").get();  // in flight or refused: fails
    } catch (const redkit::error&) {
    }
}
}  // namespace

TEST(AsyncFaults, CallbacksOfCommandsNotSentWhileTheServerIsDownAreSentOnceItIsBack) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "kills its own server";
    redkit_test::watchdog guard(60s, "callbacks waiting for a restart");
    redkit::client c(down_options(server, 40, 25ms));
    ASSERT_EQ(c.command<std::string>("ECHO", "up"), "up");
    server.kill();
    notice_the_kill(c);
    // a plain future is not sent again: its get() fails at once, as documented
    EXPECT_THROW((void)c.submit<std::string>("ECHO", "plain").get(), redkit::error);
    outcomes out(300);
    echo_all(c, out);  // the connection cannot be opened: each is sent again after a backoff
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(out.finished.load(), 0u) << "a callback ran while the server was down: " << out.values[0];
    server.start();
    ASSERT_TRUE(eventually([&] { return out.finished.load() == out.runs.size(); }, 20s))
        << out.finished.load() << " of " << out.runs.size() << " callbacks ran";
    EXPECT_TRUE(out.all_once());
    for (std::size_t i = 0; i < out.values.size(); ++i) ASSERT_EQ(out.values[i], std::to_string(i)) << i;
}

TEST(AsyncFaults, CallbacksNotSentFailAfterTheirRetriesOrWhenTheClientGoes) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "kills its own server";
    redkit_test::watchdog guard(60s, "callbacks with the server down");
    outcomes bounded(100), pending(100);
    {
        redkit::client c(down_options(server, 3, 20ms));
        ASSERT_EQ(c.command<std::string>("ECHO", "up"), "up");
        server.kill();
        notice_the_kill(c);
        const auto started = std::chrono::steady_clock::now();
        echo_all(c, bounded);
        ASSERT_TRUE(eventually([&] { return bounded.finished.load() == bounded.runs.size(); }, 10s));
        EXPECT_LT(std::chrono::steady_clock::now() - started, 3s) << "3 retries of 20 ms took that long";
        EXPECT_TRUE(bounded.all_once());
        for (const auto& v : bounded.values) ASSERT_EQ(v.rfind("!", 0), 0u) << v;  // each failed
    }
    {
        redkit::client c(down_options(server, 1000, 200ms));
        notice_the_kill(c);
        echo_all(c, pending);
    }  // the destructor returns after the last callback ran
    EXPECT_EQ(pending.finished.load(), pending.runs.size());
    EXPECT_TRUE(pending.all_once());
}

TEST(AsyncFaults, AStoppedServerFailsEveryPendingCallbackWithinItsTimeout) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "stops its own server";
    redkit_test::watchdog guard(60s, "SIGSTOP with callbacks pending");
    outcomes out(2000);
    auto o = server.options();
    o.max_retries = 0;
    o.command_timeout = 300ms;
    o.connect_timeout = 300ms;  // what queued behind the first timeout waits for a new connection
    redkit::client c(o);
    ASSERT_EQ(c.command<std::string>("ECHO", "up"), "up");
    server.pause();
    const auto sent = std::chrono::steady_clock::now();
    echo_all(c, out);
    ASSERT_TRUE(eventually([&] { return out.finished.load() == out.runs.size(); }, 20s))
        << out.finished.load() << " of " << out.runs.size() << " callbacks ran";
    const auto took = std::chrono::steady_clock::now() - sent;
    EXPECT_TRUE(out.all_once());
    for (const auto& v : out.values) ASSERT_EQ(v.substr(0, 1), "!") << v;  // none answered
    // each is bounded by its timeout: in the queue, or its reply's wait (one at a time)
    EXPECT_LT(took, 5s);

    // more than the queue holds, with no wait for room: the excess fails unsent, and its
    // callbacks run all the same
    o.pool_wait_timeout = 0ms;
    constexpr std::size_t queue_limit = 8192;  // the multiplexer's max_in_flight
    outcomes flood(queue_limit + 500);
    {
        redkit::client full(o);
        echo_all(full, flood);
        ASSERT_TRUE(eventually([&] { return flood.finished.load() == flood.runs.size(); }, 20s))
            << flood.finished.load() << " of " << flood.runs.size() << " callbacks ran";
    }
    EXPECT_TRUE(flood.all_once());
    std::size_t exhausted = 0;
    for (const auto& v : flood.values) exhausted += v.find("in flight for longer than pool_wait_timeout") != v.npos;
    EXPECT_GT(exhausted, 0U) << "nothing bounded the queue";
    server.resume();
}

#if REDKIT_COROUTINES
#include "support/detached.hpp"

namespace {

using redkit_test::detached;

detached set_then_get(const redkit::client& c, std::string key, std::string value, std::atomic<int>& right,
                      std::atomic<int>& done) {
    co_await c.submit<void>("SET", key, value);
    const std::string back = co_await c.submit<std::string>("GET", key);
    if (back == value) ++right;
    ++done;
}

detached await_failure(const redkit::client& c, std::atomic<int>& caught) {
    try {
        (void)co_await c.submit<long long>("INCR", "async:co:text");
    } catch (const redkit::server_error&) {
        ++caught;
    }
}

detached await_ready(redkit::future<std::string> f, std::thread::id& resumed_on, std::string& got) {
    got = co_await std::move(f);
    resumed_on = std::this_thread::get_id();
}

}  // namespace

TEST_F(Async, ThousandsOfCoroutinesAwaitTheirOwnReplies) {
    std::atomic<int> right{0}, done{0};
    redkit::client c(shared_server().options());
    constexpr int n = 2000;
    for (int i = 0; i < n; ++i) set_then_get(c, "async:co:" + std::to_string(i), "v" + std::to_string(i), right, done);
    ASSERT_TRUE(eventually([&] { return done.load() == n; }, 20s));
    EXPECT_EQ(right.load(), n);
    EXPECT_EQ(c.command<std::string>("GET", "async:co:1999"), "v1999");
}

TEST_F(Async, CoAwaitThrowsTheCommandsErrorAndDoesNotSuspendOnAReadyReply) {
    std::atomic<int> caught{0};
    redkit::client c(shared_server().options());
    c.command<void>("SET", "async:co:text", "abc");
    await_failure(c, caught);
    ASSERT_TRUE(eventually([&] { return caught.load() == 1; }));

    auto f = c.submit<std::string>("ECHO", "ready");
    f.wait();
    std::thread::id resumed_on;
    std::string got;
    await_ready(std::move(f), resumed_on, got);
    EXPECT_EQ(got, "ready");  // ran to its end inside the call
    EXPECT_EQ(resumed_on, std::this_thread::get_id());
}
#endif
