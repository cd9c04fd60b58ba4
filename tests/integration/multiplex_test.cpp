// SPDX-License-Identifier: MIT
// Many threads on one connection (client_options::multiplex) and commands in flight without
// blocking (client::submit), against real servers: every reply reaches its own caller under 64
// threads of mixed commands, a kill -9 or a SIGSTOP with thousands of commands in flight fails or
// answers each of them (none hangs, none gets another's reply), a blocking command does not stall
// the shared connection, and back-pressure bounds what is queued.
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
#include <future>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::busy_script;
using redkit_test::shared_server;

namespace {

// One pooled connection: what the shared connection spills to the pool when lightly loaded
// stays on it, so the tests can tell that the shared connection carried the rest.
redkit::client_options multiplexed(const redkit_test::redis_server& server) {
    auto o = server.options();
    o.multiplex = true;
    o.pool_size = 1;
    return o;
}

// A payload only this thread and call could expect back.
std::string payload(int thread, int call, std::size_t size) {
    std::string p = "t" + std::to_string(thread) + ":c" + std::to_string(call) + ":";
    p.resize(std::max(p.size(), size), static_cast<char>('a' + (thread + call) % 26));
    return p;
}

class Multiplex : public redkit_test::fresh_database {};

}  // namespace

TEST_F(Multiplex, SixtyFourThreadsOfMixedCommandsEachGetTheirOwnReplies) {
    redkit::client shared(multiplexed(shared_server()));
    constexpr int threads = 64;
    constexpr int calls = 300;
    std::atomic<int> mismatches{0}, done{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t));
            std::uniform_int_distribution<std::size_t> size(0, 20000);
            const std::string key = "mux:" + std::to_string(t);
            for (int c = 0; c < calls; ++c) try {
                    const std::string p = payload(t, c, size(rng));
                    switch (c % 4) {
                        case 0:
                            if (shared.command<std::string>("ECHO", p) != p) ++mismatches;
                            break;
                        case 1:
                            shared.command<void>("SET", key, p);
                            if (shared.command<std::string>("GET", key) != p) ++mismatches;
                            break;
                        case 2:
                            if (shared.command<long long>("INCR", key + ":n") != c / 4 + 1) ++mismatches;
                            break;
                        default: {
                            const auto both =
                                shared.command<std::vector<std::optional<std::string>>>("MGET", key, key + ":missing");
                            if (both.size() != 2 || both[0] != shared.command<std::string>("GET", key) || both[1]) {
                                ++mismatches;
                            }
                        }
                    }
                } catch (const std::exception& e) {
                    ADD_FAILURE() << e.what();
                    ++mismatches;
                }
            ++done;
        });
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(done.load(), threads);
    EXPECT_EQ(mismatches.load(), 0);
    EXPECT_LE(shared.open_connections(), 2u) << "64 threads took more than the shared and the one pooled connection";
}

TEST_F(Multiplex, AFewThreadsSpillToFreePooledConnections) {
    // 4 threads keep at most 4 commands in flight: too few to batch, so a caller that finds the
    // shared connection busy takes a free pooled connection instead of queueing
    auto o = multiplexed(shared_server());
    o.pool_size = 8;
    redkit::client c(o);
    std::atomic<int> mismatches{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
            for (int i = 0; i < 2000; ++i) {
                const std::string p = payload(t, i, 64);
                if (c.command<std::string>("ECHO", p) != p) ++mismatches;
            }
        });
    }
    for (auto& th : ts) th.join();
    EXPECT_EQ(mismatches.load(), 0);
    EXPECT_GE(c.open_connections(), 2u) << "nobody spilled to the pool";
    EXPECT_LE(c.open_connections(), 5u);
}

TEST_F(Multiplex, OneThreadWithSubmittedCommandsInFlight) {
    auto o = shared_server().options();
    o.multiplex = false;  // submit shares a connection all the same
    redkit::client c(o);
    std::vector<redkit::future<long long>> incrs;
    std::vector<redkit::future<std::string>> echoes;
    for (int i = 0; i < 1000; ++i) {
        incrs.push_back(c.submit<long long>("INCR", "submitted"));
        echoes.push_back(c.submit<std::string>("ECHO", std::to_string(i)));
    }
    for (int i = 0; i < 1000; ++i) {
        EXPECT_EQ(incrs[static_cast<std::size_t>(i)].get(), i + 1);  // in order, each its own
        EXPECT_EQ(echoes[static_cast<std::size_t>(i)].get(), std::to_string(i));
    }
    auto wrong = c.submit<long long>("GET", "missing-key-is-nil");
    EXPECT_THROW(wrong.get(), redkit::error);  // nil is no integer: the error travels in the future
    c.command<void>("SET", "text", "abc");
    EXPECT_THROW(c.submit<long long>("INCR", "text").get(), redkit::server_error);
    EXPECT_THROW((void)c.submit("BLPOP", "q", 1), std::invalid_argument);
    EXPECT_THROW((void)c.submit("SUBSCRIBE", "ch"), std::invalid_argument);
    c.submit<void>("SET", "void", "ok").get();
    EXPECT_EQ(c.command<std::string>("GET", "void"), "ok");
}

TEST_F(Multiplex, ASubmittedCommandNobodyWaitsForIsSentAnyway) {
    redkit::client c(shared_server().options());
    redkit::client observer(shared_server().options());
    auto kept = c.submit<void>("SET", "unwaited", "sent");  // never waited for, never dropped
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!observer.command<std::optional<std::string>>("GET", "unwaited") &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(observer.command<std::optional<std::string>>("GET", "unwaited"), "sent");
    EXPECT_EQ(kept.wait_for(1s), std::future_status::ready);
}

TEST_F(Multiplex, AFutureIsCollectedOnceAndCanBeWaitedForWithATimeout) {
    redkit::client c(shared_server().options());
    redkit::future<std::string> none;
    EXPECT_FALSE(none.valid());
    EXPECT_THROW(none.get(), std::future_error);

    // a reply that takes 300 ms: wait_for times out before, then reports it ready
    auto slow = c.submit<long long>("EVAL", busy_script(300), 0);
    EXPECT_TRUE(slow.valid());
    EXPECT_EQ(slow.wait_for(50ms), std::future_status::timeout);
    EXPECT_FALSE(slow.ready());
    EXPECT_EQ(slow.wait_for(5s), std::future_status::ready);
    EXPECT_TRUE(slow.ready());
    EXPECT_EQ(slow.get(), 7);
    EXPECT_FALSE(slow.valid());
    EXPECT_THROW(slow.get(), std::future_error);

    // futures move; waiting from another thread than the submitter's works
    auto moved = c.submit<std::string>("ECHO", "moved");
    redkit::future<std::string> there = std::move(moved);
    EXPECT_FALSE(moved.valid());  // NOLINT(bugprone-use-after-move): moved-from state is specified
    std::string got;
    std::thread([&] { got = there.get(); }).join();
    EXPECT_EQ(got, "moved");
}

TEST_F(Multiplex, SubmittedCommandsOutliveTheClient) {
    std::vector<redkit::future<std::string>> echoes;
    {
        redkit::client c(shared_server().options());
        for (int i = 0; i < 2000; ++i) echoes.push_back(c.submit<std::string>("ECHO", std::to_string(i)));
    }  // the last copy goes: what is queued is still sent, and every future gets its reply
    for (std::size_t i = 0; i < echoes.size(); ++i) EXPECT_EQ(echoes[i].get(), std::to_string(i));
}

TEST_F(Multiplex, ABlockingCommandDoesNotStallTheSharedConnection) {
    auto o = multiplexed(shared_server());
    o.command_timeout = 5s;  // longer than BLPOP's own 1 s, or BLPOP's reply could time out under load
    redkit::client shared(o);
    std::atomic<bool> blocking{true};
    std::atomic<long long> during{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
        ts.emplace_back([&] {
            while (blocking.load()) {
                (void)shared.command<std::optional<std::string>>("GET", "k");
                ++during;
            }
        });
    }
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::vector<std::string>> got;
    try {
        got = shared.command<std::optional<std::vector<std::string>>>("BLPOP", "never-filled", 1);
    } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
    }
    const auto took = std::chrono::steady_clock::now() - start;
    const long long served = during.load();
    blocking = false;
    for (auto& t : ts) t.join();
    EXPECT_FALSE(got.has_value());
    EXPECT_GE(took, 900ms);
    EXPECT_GT(served, 1000) << "the GETs stalled behind BLPOP";
    EXPECT_EQ(shared.open_connections(), 2u) << "BLPOP took a pooled connection of its own, the rest shared one";
}

TEST(MultiplexFaults, ACommandQueuedPastItsTimeoutFailsUnsent) {
    // plain TCP: over TLS the server decrypts both scripts below at once and answers them together
    redkit_test::redis_server server({}, redkit_test::tls_mode::off);
    if (server.external()) GTEST_SKIP() << "needs a plain-TCP server of its own";
    auto o = multiplexed(server);
    o.command_timeout = 400ms;
    o.max_retries = 0;
    redkit::client shared(o);
    auto held = shared.borrow();  // the pool's one connection: the SET below cannot spill to it
    // A 200 ms script first, alone in its batch (the shared connection opens once the I/O thread
    // took it): the two scripts after it queue behind it and go out together in the next batch,
    // however slowly this thread submits them (under TSan on a busy machine, two submits were
    // once too far apart for the I/O thread's 100 us look to take them together).
    ASSERT_EQ(shared.open_connections(), 1u);
    auto zero = shared.submit<long long>("EVAL", busy_script(200), 0);
    (void)redkit_test::eventually([&] { return shared.open_connections() >= 2; }, 5s, 1ms);
    ASSERT_EQ(shared.open_connections(), 2u) << "the I/O thread never took the first script";
    // Then two scripts of 300 ms in one batch, the first with a 64 KiB argument: the server reads
    // it alone, runs it and answers before it reads the second (commands read together would be
    // answered together, at 600 ms). Each reply then comes within the timeout of the read before
    // it, so both succeed, but the batch holds the connection from 200 ms to 800 ms.
    auto first = shared.submit<long long>("EVAL", busy_script(300), 0, std::string(64 * 1024, 'p'));
    auto second = shared.submit<long long>("EVAL", busy_script(300), 0);
    EXPECT_EQ(zero.get(), 7);
    // 100 ms on, the batch of two is under way: a SET queued now (deadline at 700 ms) waits for
    // its end (800 ms) and must fail unsent.
    std::this_thread::sleep_for(100ms);
    const auto start = std::chrono::steady_clock::now();
    try {
        shared.command<void>("SET", "queued-too-long", "x");
        ADD_FAILURE() << "the SET should have timed out in the queue";
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::timeout);
        EXPECT_NE(std::string(e.what()).find("in the queue"), std::string::npos) << e.what();
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, 400ms);
    EXPECT_LT(waited, 2s);
    EXPECT_EQ(first.get(), 7);
    EXPECT_EQ(second.get(), 7);
    redkit::client observer(server.options());
    EXPECT_EQ(observer.command<std::optional<std::string>>("GET", "queued-too-long"), std::nullopt);  // never sent
    EXPECT_EQ(shared.command<std::string>("ECHO", "after"), "after");  // the connection is fine
}

TEST(MultiplexFaults, AKilledServerFailsOrAnswersEveryCommandAndTheClientRecovers) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "kills its own server";
    redkit_test::watchdog guard(60s, "kill -9 with commands in flight");
    auto o = multiplexed(server);
    o.max_retries = 0;
    redkit::client shared(o);
    std::atomic<bool> running{true};
    std::atomic<long long> ok{0}, failed{0}, mismatches{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 32; ++t) {
        ts.emplace_back([&, t] {
            for (int c = 0; running.load(); ++c) {
                const std::string p = payload(t, c, 64);
                try {
                    if (shared.command<std::string>("ECHO", p) != p) ++mismatches;
                    ++ok;
                } catch (const redkit::error&) {
                    ++failed;
                }
            }
        });
    }
    std::vector<redkit::future<std::string>> submitted;
    std::this_thread::sleep_for(200ms);
    for (int i = 0; i < 5000; ++i) submitted.push_back(shared.submit<std::string>("ECHO", std::to_string(i)));
    server.kill();
    std::size_t failed_futures = 0;
    for (std::size_t i = 0; i < submitted.size(); ++i) {
        try {
            EXPECT_EQ(submitted[i].get(), std::to_string(i));
        } catch (const redkit::error&) {
            ++failed_futures;
        }
    }
    std::this_thread::sleep_for(200ms);
    server.start();
    const long long ok_before = ok.load();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (ok.load() < ok_before + 1000 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    running = false;
    for (auto& t : ts) t.join();
    EXPECT_EQ(mismatches.load(), 0);
    EXPECT_GT(failed.load() + static_cast<long long>(failed_futures), 0) << "the kill went unnoticed";
    EXPECT_GE(ok.load(), ok_before + 1000) << "the client did not recover";
    EXPECT_EQ(shared.command<std::string>("ECHO", "back"), "back");
}

TEST(MultiplexFaults, AStoppedServerTimesOutEveryCommandAndBackPressureBoundsTheQueue) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "stops its own server";
    redkit_test::watchdog guard(60s, "SIGSTOP with commands in flight");
    auto o = multiplexed(server);
    o.command_timeout = 300ms;
    o.connect_timeout = 300ms;  // the commands queued behind the first timeout wait for a new
                                // connection, whose TLS handshake the stopped server never answers
    o.pool_wait_timeout = 50ms;
    o.max_retries = 0;
    redkit::client shared(o);
    EXPECT_EQ(shared.command<std::string>("PING"), "PONG");
    server.pause();
    std::vector<std::thread> ts;
    std::atomic<long long> timeouts{0}, closed{0}, other{0};
    std::atomic<long long> slowest_ms{0};
    for (int t = 0; t < 16; ++t) {
        ts.emplace_back([&] {
            const auto start = std::chrono::steady_clock::now();
            try {
                (void)shared.command<std::string>("PING");
                ++other;
            } catch (const redkit::error& e) {
                (e.kind() == redkit::errc::timeout             ? timeouts
                 : e.kind() == redkit::errc::connection_closed ? closed
                                                               : other)++;
            }
            const auto ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
            if (ms > slowest_ms.load()) slowest_ms = ms;
        });
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(other.load(), 0);
    EXPECT_GE(timeouts.load(), 1);  // the command whose reply was awaited, and those still queued
    EXPECT_EQ(timeouts.load() + closed.load(), 16);
    EXPECT_LT(slowest_ms.load(), 1500) << "a command waited far longer than its timeout";

    // far more than the queue holds: the excess waits pool_wait_timeout, then fails unsent
    std::vector<redkit::future<std::string>> flood;
    for (int i = 0; i < 10000; ++i) flood.push_back(shared.submit<std::string>("PING"));
    long long exhausted = 0;
    for (auto& f : flood) {
        try {
            (void)f.get();
        } catch (const redkit::error& e) {
            if (e.kind() == redkit::errc::pool_exhausted) ++exhausted;
        }
    }
    EXPECT_GT(exhausted, 0) << "nothing bounded the queue";
    server.resume();
    EXPECT_EQ(shared.command<std::string>("ECHO", "again"), "again");
}
