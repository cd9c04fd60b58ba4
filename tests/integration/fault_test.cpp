// SPDX-License-Identifier: MIT
// Faults for real: DEBUG SLEEP, CLIENT KILL, a killed and restarted redis-server, SIGPIPE, threads.
#include <redkit/redkit.hpp>

#include "support/error_log.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace {

using redkit_test::error_log;

void (*sigaction_handler())(int) {
    struct sigaction now {};
    sigaction(SIGPIPE, nullptr, &now);
    return now.sa_handler;
}

class Faults : public ::testing::Test {
protected:
    void SetUp() override {
        if (shared_server().external()) GTEST_SKIP() << "fault tests need their own redis-server";
        if (!shared_server().running()) shared_server().start();
        admin = redkit::client(shared_server().url());
        admin.command<void>("FLUSHALL");
    }

    redkit::client_options options(error_log* log = nullptr) {
        auto o = shared_server().options();
        if (log) o.on_error = log->callback();
        return o;
    }

    // Kills one connection by id and waits until the server has really dropped it.
    void kill_client(long long id) {
        EXPECT_EQ(admin.command<long long>("CLIENT", "KILL", "ID", id), 1);
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < deadline) {
            const auto list = admin.command<std::string>("CLIENT", "LIST", "ID", id);
            if (list.empty()) return;
            std::this_thread::sleep_for(1ms);
        }
        FAIL() << "connection " << id << " still listed";
    }

    redkit::client admin{redkit::client_options{}};
};

}  // namespace

TEST_F(Faults, CommandTimeoutIsPromptAndTheConnectionIsNotReused) {
    error_log log;
    auto o = options(&log);
    o.command_timeout = 200ms;
    o.pool_size = 1;
    redkit::client c(o);
    c.command<void>("SET", "k", "before");
    const auto start = std::chrono::steady_clock::now();
    try {
        c.command<void>("DEBUG", "SLEEP", "0.6");
        FAIL() << "no timeout";
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::timeout) << e.what();
        EXPECT_NE(std::string(e.what()).find("DEBUG"), std::string::npos) << e.what();
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_LT(elapsed, 590ms);  // returned at the timeout, not when the server woke
    EXPECT_EQ(log.size(), 1u) << "a timeout is reported once and never retried";
    // The late +OK of DEBUG SLEEP must not be read as the answer to the next command.
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(c.command<std::string>("GET", "k"), "before");
    c.command<void>("SET", "k", "after");
    EXPECT_EQ(c.command<std::string>("GET", "k"), "after");
}

// redkit::dedicated_connection: the one reopen and the one grace rule of the patterns' own
// connections (stream consumer, queue events, the worker, the subscriber).
TEST_F(Faults, ADedicatedConnectionReopensAfterItsConnectionWasKilled) {
    redkit::client c(options());
    redkit::dedicated_connection d(c);
    EXPECT_FALSE(d.is_open());  // opens on first use
    const auto first = d.get().command<long long>("CLIENT", "ID");
    EXPECT_TRUE(d.is_open());
    EXPECT_EQ(d.get().command<long long>("CLIENT", "ID"), first);  // kept while it works
    kill_client(first);
    EXPECT_THROW(d.get().command<void>("PING"), redkit::error);  // the kill shows on next use
    const auto second = d.get().command<long long>("CLIENT", "ID");
    EXPECT_NE(second, first);
    d.close();
    EXPECT_FALSE(d.is_open());
    EXPECT_NE(d.get().command<long long>("CLIENT", "ID"), second);
}

TEST_F(Faults, ADedicatedConnectionsGraceIsTheCommandTimeoutAndAtLeastOneSecond) {
    auto o = options();
    o.command_timeout = 200ms;
    EXPECT_EQ(redkit::dedicated_connection(redkit::client(o)).grace(), 1000ms);
    o.command_timeout = 3000ms;
    EXPECT_EQ(redkit::dedicated_connection(redkit::client(o)).grace(), 3000ms);
}

TEST_F(Faults, ABlockingCommandGetsItsReplyOrIsEndedByTheWakerWithNothingLost) {
    redkit::client c(options());
    redkit::dedicated_connection d(c, "dq");
    redkit::waker wake;
    admin.command<void>("RPUSH", "dq", "one");
    const std::optional<redkit::reply> got = d.blocking(wake, 2000ms, "BLPOP", "dq", 2);
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 2u);
    EXPECT_EQ((*got)[1].text(), "one");
    EXPECT_FALSE(d.pending());

    // nothing to pop: the waker ends the wait at once and the connection goes with it, so the
    // server unblocks the client and a value pushed afterwards stays in the list
    std::thread waker_thread([&] {
        std::this_thread::sleep_for(200ms);
        wake.notify();
    });
    const auto start = std::chrono::steady_clock::now();
    const std::optional<redkit::reply> none = d.blocking(wake, 10000ms, "BLPOP", "dq", 10);
    const auto took = std::chrono::steady_clock::now() - start;
    waker_thread.join();
    EXPECT_FALSE(none.has_value());
    EXPECT_LT(took, 5000ms);
    EXPECT_FALSE(d.is_open());
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (admin.command<std::string>("INFO", "clients").find("blocked_clients:0") == std::string::npos) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the server still blocks the closed client";
        std::this_thread::sleep_for(5ms);
    }
    admin.command<void>("RPUSH", "dq", "two");
    EXPECT_EQ(admin.command<long long>("LLEN", "dq"), 1);
}

TEST_F(Faults, ABlockingCommandWithoutAReplyPastItsBlockAndGraceTimesOutAndCloses) {
    auto o = options();
    o.command_timeout = 200ms;  // grace: 1 s
    redkit::client c(o);
    redkit::dedicated_connection d(c, "never");
    redkit::waker wake;
    // the server blocks forever (timeout 0) though the caller said 100 ms: the reply is overdue
    // at 100 ms + 1 s
    const auto start = std::chrono::steady_clock::now();
    try {
        (void)d.blocking(wake, 100ms, "BLPOP", "never", 0);
        FAIL() << "no timeout";
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::timeout) << e.what();
        EXPECT_NE(std::string(e.what()).find("BLPOP never"), std::string::npos) << e.what();
    }
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GE(took, 1100ms);
    EXPECT_LT(took, 3000ms);
    EXPECT_FALSE(d.is_open());
    // and without a waker: the same rule through the socket's timeout
    try {
        (void)d.blocking(100ms, "BLPOP", "never", 0);
        FAIL() << "no timeout";
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::timeout) << e.what();
    }
    EXPECT_FALSE(d.is_open());
    // a reply read in time leaves it open for the next command
    admin.command<void>("RPUSH", "never", "x");
    const redkit::reply r = d.blocking(1000ms, "BLPOP", "never", 1);
    EXPECT_EQ(r[1].text(), "x");
    EXPECT_TRUE(d.is_open());
}

TEST_F(Faults, SpinningReadHandsOverToASleepingReadAndSeesAKill) {
    redkit::connection c(options());
    // a reply later than the polling: the read polls for 200 us, then sleeps until it comes
    c.set_read_spin(200us);
    EXPECT_EQ(c.command<std::string>("DEBUG", "SLEEP", "0.05"), "OK");
    // a reply within the polling
    c.set_read_spin(5000us);
    EXPECT_EQ(c.command<std::string>("PING"), "PONG");
    // the connection killed while the read polls: an error at once, not a wait for the spin
    const auto id = c.command<long long>("CLIENT", "ID");
    c.set_read_spin(2s);
    std::thread killer([&] {
        std::this_thread::sleep_for(50ms);
        kill_client(id);
    });
    const auto start = std::chrono::steady_clock::now();
    try {
        c.command("BLPOP", "never-filled", "5");
        ADD_FAILURE() << "no error";
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::connection_closed) << e.what();
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    killer.join();
    EXPECT_TRUE(c.broken());
    EXPECT_LT(elapsed, 1500ms);  // the hang-up ended the polling
}

TEST_F(Faults, KilledPooledConnectionIsReplacedBeforeAnyWrite) {
    error_log log;
    auto o = options(&log);
    o.pool_size = 1;
    o.idle_check_after = 0ms;  // check on every reuse, however short the idle time
    redkit::client c(o);
    const auto id = c.command<long long>("CLIENT", "ID");
    kill_client(id);
    // INCR is not retry-safe; it still succeeds because the dead connection is caught idle.
    EXPECT_EQ(c.command<long long>("INCR", "counter"), 1);
    EXPECT_NE(c.command<long long>("CLIENT", "ID"), id);
    EXPECT_GE(log.size(), 1u);
    EXPECT_EQ(admin.command<long long>("GET", "counter"), 1);
}

TEST_F(Faults, RetryRuleSeparatesReadsFromWrites) {
    error_log log;
    auto o = options(&log);
    o.multiplex = false;  // the killed connection must be the one INCR and GET use
    o.pool_size = 1;
    o.idle_check_after = std::chrono::hours(1);  // skip the idle check: the write hits a dead socket
    redkit::client c(o);
    c.command<void>("SET", "counter", 10);

    kill_client(c.command<long long>("CLIENT", "ID"));
    try {
        c.command<long long>("INCR", "counter");
        FAIL() << "a write that may have been sent must not be retried";
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::connection_closed) << e.what();
    }
    EXPECT_EQ(admin.command<long long>("GET", "counter"), 10);

    kill_client(c.command<long long>("CLIENT", "ID"));
    EXPECT_EQ(c.command<long long>("GET", "counter"), 10);  // read-only: retried transparently

    kill_client(c.command<long long>("CLIENT", "ID"));
    c.command<void>(redkit::idempotent, "SET", "counter", 20);  // marked idempotent: retried
    EXPECT_EQ(admin.command<long long>("GET", "counter"), 20);

    static const redkit::script set_to("redis.call('SET', KEYS[1], ARGV[1]) return 1");
    kill_client(c.command<long long>("CLIENT", "ID"));
    EXPECT_THROW(c.eval<long long>(set_to, {"counter"}, 30), redkit::error);  // a script is a write by default
    kill_client(c.command<long long>("CLIENT", "ID"));
    EXPECT_EQ(c.eval<long long>(redkit::idempotent, set_to, {"counter"}, 40), 1);  // marked idempotent: retried
    EXPECT_EQ(admin.command<long long>("GET", "counter"), 40);
}

TEST_F(Faults, ServerRestartMidLoopRecoversByItself) {
    error_log log;
    auto o = options(&log);
    o.max_retries = 5;
    o.retry_backoff = 20ms;
    redkit::client c(o);
    static const redkit::script bump("return redis.call('INCR', KEYS[1])");
    int failures = 0;
    int successes_after_restart = 0;
    for (int i = 0; i < 200; ++i) {
        if (i == 100) shared_server().restart();  // the data set is gone: persistence is off
        try {
            c.eval<long long>(bump, {"loop"});
            if (i > 100) ++successes_after_restart;
        } catch (const redkit::error& e) {
            ++failures;
            EXPECT_TRUE(e.is_transport()) << e.what();
        }
    }
    EXPECT_LE(failures, 1);  // at most the one request in flight when the server went away
    EXPECT_EQ(successes_after_restart, 99);
    EXPECT_GE(log.size(), 1u);
    EXPECT_GE(c.command<long long>("GET", "loop"), 99);  // and the script was reloaded after the restart
}

TEST_F(Faults, ServerDownFailsAfterBoundedRetries) {
    error_log log;
    auto o = options(&log);
    o.port = redkit_test::free_loopback_port();
    o.max_retries = 3;
    o.retry_backoff = 10ms;
    redkit::client c(o);
    const auto start = std::chrono::steady_clock::now();
    try {
        c.command<std::string>("GET", "k");
        FAIL();
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::connect_failed) << e.what();
        EXPECT_NE(std::string(e.what()).find("GET k"), std::string::npos) << e.what();
    }
    EXPECT_EQ(log.size(), 4u);  // 1 attempt + 3 retries, each reported
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_FALSE(c.is_reachable());
}

TEST_F(Faults, ConnectErrorsNameTheCommandOnce) {
    auto o = options();
    o.port = redkit_test::free_loopback_port();  // nobody listens there
    o.max_retries = 0;
    redkit::client c(o);
    try {
        c.command<std::string>("GET", "k");
        FAIL();
    } catch (const redkit::error& e) {
        const std::string what = e.what();
        EXPECT_EQ(what.rfind("redkit: GET k: connect 127.0.0.1:" + std::to_string(o.port) + ": ", 0), 0u) << what;
        EXPECT_EQ(what.find("redkit:", 1), std::string::npos) << what;
    }
}

TEST(SetupFaults, ASetupThatTimesOutIsATimeoutAndIsNotRetried) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "stops its own server";
    for (const char* setup : {"db", "password", "client_name"}) {
        SCOPED_TRACE(setup);
        error_log log;
        auto o = server.options();
        o.command_timeout = 300ms;
        o.connect_timeout = 300ms;  // bounds a TLS handshake (REDKIT_TEST_TLS=1)
        o.max_retries = 2;
        o.retry_backoff = 10ms;
        o.on_error = log.callback();
        if (std::string(setup) == "db") o.db = 1;
        if (std::string(setup) == "password") o.password = "anything";  // never read: the server is stopped
        if (std::string(setup) == "client_name") o.client_name = "setup-timeout";
        redkit::client c(o);
        server.pause();  // connects still succeed (the kernel's backlog); the setup's replies never come
        auto start = std::chrono::steady_clock::now();
        try {
            c.command<std::optional<std::string>>("GET", "k");  // read-only: retried if it were allowed
            ADD_FAILURE() << "no error";
        } catch (const redkit::error& e) {
            EXPECT_EQ(e.kind(), redkit::errc::timeout) << e.what();
            EXPECT_NE(std::string(e.what()).find("GET k"), std::string::npos) << e.what();
        }
        EXPECT_LT(std::chrono::steady_clock::now() - start, 550ms) << "retried (one timeout is 300 ms)";
        EXPECT_EQ(log.size(), 1u);
        start = std::chrono::steady_clock::now();
        EXPECT_FALSE(c.is_reachable());
        EXPECT_LT(std::chrono::steady_clock::now() - start, 550ms);
        server.resume();
        if (std::string(setup) != "password") {
            EXPECT_TRUE(c.is_reachable());
        }
    }
}

TEST_F(Faults, KilledServerNeverRaisesSigpipe) {
    // Leave SIGPIPE at its default (terminate) and ask redkit not to touch it: writes to the
    // dead socket must still not kill this process. The disposition found is put back at the
    // end: the tests after this one run with the process's policy (SIG_IGN, set once by the
    // first client), as a program would.
    struct restore_sigpipe {
        void (*was)(int) = std::signal(SIGPIPE, SIG_DFL);
        ~restore_sigpipe() { std::signal(SIGPIPE, was); }
    } restore;
    auto o = options();
    o.ignore_sigpipe = false;
    o.pool_size = 1;
    o.max_retries = 0;
    o.idle_check_after = std::chrono::hours(1);
    redkit::client c(o);
    c.ping();
    shared_server().kill();
    const std::string big(4 << 20, 'x');
    for (int i = 0; i < 3; ++i) {
        EXPECT_THROW(c.command<void>("SET", "big", big), redkit::error);
    }
    struct sigaction now {};
    sigaction(SIGPIPE, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_DFL) << "redkit changed the disposition although asked not to";
    shared_server().start();
    EXPECT_NO_THROW(c.ping());
}

TEST(Sigpipe, DefaultModeIgnoresItOnlyWhenItIsTheDefault) {
    // The policy runs once per process, at its first connection, so check it in fresh processes
    // (threadsafe death tests re-execute this binary). The policy applies before connecting, so
    // no server is needed: the connect fails and is caught.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    redkit::client_options o;
    o.port = redkit_test::free_loopback_port();
    EXPECT_EXIT(
        {
            std::signal(SIGPIPE, SIG_DFL);
            try {
                redkit::connection conn(o);
            } catch (const redkit::error&) {
            }
            struct sigaction now {};
            sigaction(SIGPIPE, nullptr, &now);
            std::_Exit(now.sa_handler == SIG_IGN ? 0 : 3);
        },
        ::testing::ExitedWithCode(0), "");
    EXPECT_EXIT(
        {
            std::signal(SIGPIPE, [](int) {});  // the application's own handler is left alone
            const auto mine = sigaction_handler();
            try {
                redkit::connection conn(o);
            } catch (const redkit::error&) {
            }
            std::_Exit(sigaction_handler() == mine ? 0 : 3);
        },
        ::testing::ExitedWithCode(0), "");
}

TEST_F(Faults, PoolExhaustionIsAClearError) {
    auto o = options();
    o.pool_size = 1;
    o.pool_wait_timeout = 100ms;
    o.multiplex = false;
    redkit::client c(o);
    redkit::lease holder = c.borrow();  // holds the only connection
    try {
        c.command<std::string>("PING");
        FAIL();
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::pool_exhausted) << e.what();
    }

    // multiplexed, commands share a connection of their own: only those that may not share
    // wait for the pool
    o.multiplex = true;
    redkit::client m(o);
    redkit::lease held = m.borrow();
    EXPECT_EQ(m.command<std::string>("PING"), "PONG");
    try {
        m.command<void>("BLPOP", "nothing", 1);
        FAIL();
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::pool_exhausted) << e.what();
    }
}

TEST_F(Faults, EightThreadsHammerTheSingleton) {
    auto o = options();
    o.pool_size = 4;  // fewer connections than threads: they queue for the pool
    redkit::set_default_client(redkit::client(o));
    constexpr int threads = 8;
    constexpr int per_thread = 1500;
    std::vector<std::future<long long>> done;
    for (int t = 0; t < threads; ++t) {
        done.push_back(std::async(std::launch::async, [t] {
            long long last = 0;
            const std::string mine = redkit::make_key("thread", t);
            for (int i = 0; i < per_thread; ++i) {
                redkit::client c = redkit::default_client();
                c.command<long long>("INCR", "shared");
                last = c.command<long long>("INCR", mine);
                if (i % 100 == 0) {
                    redkit::pipeline p(c);
                    p.command("GET", mine).command("GET", "shared");
                    const auto r = p.exec();
                    if (r.at(0).as<long long>() != last) return -1LL;
                }
            }
            return last;
        }));
    }
    for (auto& f : done) {
        ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
        EXPECT_EQ(f.get(), per_thread);
    }
    EXPECT_EQ(admin.command<long long>("GET", "shared"), threads * per_thread);
    EXPECT_LE(redkit::default_client().open_connections(), 5u);  // the pool's 4 and the shared one
    redkit::reset_default_client();
}
