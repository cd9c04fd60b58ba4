// SPDX-License-Identifier: MIT
// redkit/asio.hpp against real servers: 10,000 coroutines on one io_context thread with mixed
// commands, each reply its own and each completion on the coroutine's thread; the completion
// tokens (use_awaitable, use_future, deferred, a callback bound to a strand); cancellation before
// the write (the command never runs) and after it (the reply is discarded, the connection stays in
// sync); a server killed with thousands of operations pending. Built into multiplex_tests when
// standalone Asio is found.
#include <redkit/asio.hpp>
#include <redkit/redkit.hpp>

#include "support/busy_script.hpp"
#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"
#include "support/watchdog.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <system_error>
#include <thread>

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>

using namespace std::chrono_literals;
using redkit_test::busy_script;
using redkit_test::shared_server;

namespace {

class Asio : public redkit_test::fresh_database {};

struct tally {
    int ok = 0, wrong = 0, elsewhere = 0;  // touched only on the io_context's one thread
};

asio::awaitable<void> mixed(const redkit::client& c, int i, tally& t, std::thread::id home) {
    const std::string key = "asio:" + std::to_string(i), value = "v" + std::to_string(i);
    co_await redkit::async_command<void>(c, redkit::cmd("SET", key, value), asio::use_awaitable);
    if (std::this_thread::get_id() != home) ++t.elsewhere;
    const auto got =
        co_await redkit::async_command<std::optional<std::string>>(c, redkit::cmd("GET", key), asio::use_awaitable);
    const auto echoed =
        co_await redkit::async_command<std::string>(c, redkit::cmd("ECHO", std::to_string(i)), asio::use_awaitable);
    const long long n =
        co_await redkit::async_command<long long>(c, redkit::cmd("INCR", "asio:count"), asio::use_awaitable);
    if (std::this_thread::get_id() != home) ++t.elsewhere;
    (got == value && echoed == std::to_string(i) && n > 0 ? t.ok : t.wrong)++;
}

}  // namespace

TEST_F(Asio, TenThousandCoroutinesOnOneThreadEachGetTheirOwnReplies) {
    redkit::client c(shared_server().options());
    asio::io_context ctx;
    tally t;
    constexpr int n = 10000;
    for (int i = 0; i < n; ++i) {
        asio::co_spawn(ctx, mixed(c, i, t, std::this_thread::get_id()), [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    }
    ctx.run();  // returns once every operation has completed: each counts as work until then
    EXPECT_EQ(t.ok, n);
    EXPECT_EQ(t.wrong, 0);
    EXPECT_EQ(t.elsewhere, 0) << "a completion ran off the coroutine's thread";
    EXPECT_EQ(c.command<long long>("GET", "asio:count"), n);
}

TEST_F(Asio, EveryCompletionTokenWorksAndErrorsArriveAsExceptions) {
    redkit::client c(shared_server().options());
    c.command<void>("SET", "asio:text", "abc");

    // use_future, with no io_context at all (the system executor runs the handler)
    std::future<std::string> f = redkit::async_command<std::string>(c, redkit::cmd("ECHO", "future"), asio::use_future);
    EXPECT_EQ(f.get(), "future");
    auto bad = redkit::async_command<long long>(c, redkit::cmd("INCR", "asio:text"), asio::use_future);
    EXPECT_THROW(bad.get(), redkit::server_error);

    asio::io_context ctx;
    auto strand = asio::make_strand(ctx);
    bool in_strand = false;
    std::string via_callback;
    std::exception_ptr refused;
    // a plain callback bound to a strand
    redkit::async_command<std::string>(c, redkit::cmd("ECHO", "callback"),
                                       asio::bind_executor(strand, [&](std::exception_ptr e, std::string v) {
                                           in_strand = strand.running_in_this_thread() && !e;
                                           via_callback = v;
                                       }));
    // deferred: nothing is sent until the operation is launched
    auto later =
        redkit::async_command<long long>(c, redkit::cmd("INCR", "asio:deferred"), asio::experimental::deferred);
    EXPECT_FALSE(c.command<std::optional<std::string>>("GET", "asio:deferred").has_value());
    long long deferred_value = 0;
    std::move(later)(asio::bind_executor(ctx, [&](std::exception_ptr e, long long v) {
        if (!e) deferred_value = v;
    }));
    // a blocking command is refused through the handler
    redkit::async_command<std::optional<std::string>>(
        c, redkit::cmd("BLPOP", "asio:list", 1),
        asio::bind_executor(ctx, [&](std::exception_ptr e, auto) { refused = e; }));
    ctx.run();
    EXPECT_TRUE(in_strand);
    EXPECT_EQ(via_callback, "callback");
    EXPECT_EQ(deferred_value, 1);
    ASSERT_TRUE(refused);
    EXPECT_THROW(std::rethrow_exception(refused), std::invalid_argument);
}

TEST_F(Asio, ACommandCancelledBeforeItsWriteNeverRuns) {
    redkit::client c(shared_server().options());
    asio::io_context ctx;
    // the shared connection waits for this reply: what is sent next stays queued meanwhile
    auto busy = c.submit<long long>("EVAL", busy_script(600), 0);
    std::this_thread::sleep_for(50ms);
    asio::cancellation_signal cancel;
    std::error_code got;
    auto completed_after = std::chrono::steady_clock::duration::max();
    const auto start = std::chrono::steady_clock::now();
    redkit::async_command<void>(
        c, redkit::cmd("SET", "asio:withdrawn", "ran"),
        asio::bind_cancellation_slot(cancel.slot(), asio::bind_executor(ctx, [&](std::exception_ptr e) {
                                         completed_after = std::chrono::steady_clock::now() - start;
                                         try {
                                             if (e) std::rethrow_exception(e);
                                         } catch (const std::system_error& s) {
                                             got = s.code();
                                         }
                                     })));
    asio::steady_timer timer(ctx, 50ms);
    timer.async_wait([&](std::error_code) { cancel.emit(asio::cancellation_type::terminal); });
    ctx.run();
    EXPECT_EQ(got, asio::error::operation_aborted);
    EXPECT_LT(completed_after, 400ms) << "the cancellation waited for the reply ahead of it";
    EXPECT_EQ(busy.get(), 7);
    EXPECT_FALSE(c.command<std::optional<std::string>>("GET", "asio:withdrawn").has_value())
        << "a command withdrawn before its write ran";
    EXPECT_EQ(c.command<std::string>("ECHO", "in sync"), "in sync");
}

TEST_F(Asio, ACommandCancelledAfterItsWriteHasItsReplyDiscarded) {
    using namespace asio::experimental::awaitable_operators;
    redkit::client c(shared_server().options());
    asio::io_context ctx;
    bool timed_out = false;
    std::string after;
    auto start = std::chrono::steady_clock::now();
    auto elapsed = std::chrono::steady_clock::duration::zero();
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, 60ms);
            // the first to finish cancels the other: the script's reply is 300 ms away
            auto winner = co_await (
                redkit::async_command<long long>(c, redkit::cmd("EVAL", busy_script(300), 0), asio::use_awaitable) ||
                timer.async_wait(asio::use_awaitable));
            elapsed = std::chrono::steady_clock::now() - start;
            timed_out = winner.index() == 1;
            // the script's reply comes later and is read and dropped: the next reply is this one's
            after = co_await redkit::async_command<std::string>(c, redkit::cmd("ECHO", "after"), asio::use_awaitable);
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    ctx.run();
    EXPECT_TRUE(timed_out);
    EXPECT_LT(elapsed, 250ms);
    EXPECT_EQ(after, "after");
}

TEST_F(Asio, AsyncGetAwaitsAnyFutureAndACancelledOneDropsItsLateOutcome) {
    redkit::client c(shared_server().options());
    asio::io_context ctx;
    const auto limiter = redkit::rate_limiter::fixed_window(c, "asio-get", 2, 60s);
    int allowed = 0;
    std::size_t replies = 0;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 3; ++i) {
                const auto d = co_await redkit::async_get(limiter.async_hit("ip"), asio::use_awaitable);
                allowed += d.allowed ? 1 : 0;
            }
            redkit::transaction tx(c);
            tx.command("SET", "asio:get", 1).command("INCR", "asio:get");
            const auto r = co_await redkit::async_get(tx.submit(), asio::use_awaitable);
            replies = r.size();
            EXPECT_EQ(r.at(1).as<long long>(), 2);
        },
        asio::detached);
    ctx.run();
    EXPECT_EQ(allowed, 2);
    EXPECT_EQ(replies, 2u);

    // a promise's future, cancelled: the handler runs at once; the value set later is dropped
    asio::io_context ctx2;
    redkit::promise<std::string> p;
    asio::cancellation_signal cancel;
    std::error_code got;
    redkit::async_get(
        p.get_future(),
        asio::bind_cancellation_slot(cancel.slot(), asio::bind_executor(ctx2, [&](std::exception_ptr e, std::string) {
                                         try {
                                             if (e) std::rethrow_exception(e);
                                         } catch (const std::system_error& s) {
                                             got = s.code();
                                         }
                                     })));
    asio::post(ctx2, [&] { cancel.emit(asio::cancellation_type::terminal); });
    ctx2.run();
    EXPECT_EQ(got, asio::error::operation_aborted);
    p.set_value("late");  // nobody waits any more: nothing runs, nothing breaks
}

TEST(AsioFaults, AKilledServerCompletesEveryPendingOperation) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "kills its own server";
    redkit_test::watchdog guard(60s, "kill -9 with Asio operations pending");
    auto o = server.options();
    o.max_retries = 0;
    redkit::client c(o);
    asio::io_context ctx;
    int answered = 0, failed = 0, wrong = 0;
    auto busy = c.submit<long long>("EVAL", busy_script(2000), 0);  // the echoes wait in flight
    constexpr int n = 3000;
    for (int i = 0; i < n; ++i) {
        redkit::async_command<std::string>(c, redkit::cmd("ECHO", std::to_string(i)),
                                           asio::bind_executor(ctx, [&, i](std::exception_ptr e, std::string v) {
                                               if (e) {
                                                   ++failed;
                                               } else {
                                                   (v == std::to_string(i) ? answered : wrong)++;
                                               }
                                           }));
    }
    std::this_thread::sleep_for(100ms);
    server.kill();
    ctx.run();  // returns: every operation completed
    EXPECT_EQ(failed + answered + wrong, n);
    EXPECT_EQ(wrong, 0);
    EXPECT_EQ(failed, n);
    EXPECT_THROW(busy.get(), redkit::error);
    server.start();
    std::string back;
    ctx.restart();
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            for (int attempt = 0; attempt < 50 && back.empty(); ++attempt) {
                try {
                    back = co_await redkit::async_command<std::string>(c, redkit::cmd("ECHO", "back"),
                                                                       asio::use_awaitable);
                } catch (const redkit::error&) {
                }
                asio::steady_timer pause(co_await asio::this_coro::executor, 50ms);
                if (back.empty()) co_await pause.async_wait(asio::use_awaitable);
            }
        },
        asio::detached);
    ctx.run();
    EXPECT_EQ(back, "back");
}
