// SPDX-License-Identifier: MIT
// cache::async_get_or_set against a real server: hits and misses as get_or_set, an awaitable
// loader waited for without a thread, one loader for a stampede of callbacks, coroutines and
// blocking callers together, the loader's exception shared, cached absence, and a server that
// goes away (served from the loader, or the error by policy). Built into multiplex_tests.
#include <redkit/redkit.hpp>

#include "support/error_log.hpp"
#include "support/eventually.hpp"
#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"
#include "support/watchdog.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::eventually;
using redkit_test::shared_server;

namespace {

class AsyncCache : public redkit_test::fresh_database {};

struct product {
    std::string name;
    int price = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(product, name, price)

// An awaitable loader: its value comes from another thread after `delay`, as a database
// client's callback would bring it.
redkit::future<product> load_later(std::atomic<int>& calls, std::chrono::milliseconds delay, std::string name) {
    ++calls;
    redkit::promise<product> p;
    redkit::future<product> f = p.get_future();
    std::thread([p = std::move(p), delay, name]() mutable {
        std::this_thread::sleep_for(delay);
        p.set_value(product{name, 42});
    }).detach();
    return f;
}

}  // namespace

TEST_F(AsyncCache, AMissLoadsStoresAndServesThenAHitIsOneGet) {
    redkit::client c(shared_server().options());
    redkit::cache products(c);
    std::atomic<int> calls{0};
    const product first = products
                              .async_get_or_set(
                                  "product:1", [&calls] { return load_later(calls, 10ms, "lamp"); }, 60s)
                              .get();
    EXPECT_EQ(first.name, "lamp");
    // stored before it was served: the blocking call and a second async call both hit
    EXPECT_EQ(products.get<product>("product:1")->name, "lamp");
    const product again = products.async_get_or_set<product>("product:1", [] { return product{"never", 0}; }).get();
    EXPECT_EQ(again.name, "lamp");
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(products.stats().loader_calls, 1u);
    EXPECT_GT(c.command<long long>("PTTL", products.key("product:1")), 0);

    // a plain loader (a value, not a future) runs on the thread that read the miss
    EXPECT_EQ(products
                  .async_get_or_set(
                      "n", [] { return 7; }, 60s)
                  .get(),
              7);
    EXPECT_EQ(products.get<int>("n"), 7);
    EXPECT_THROW((void)products.async_get_or_set(
                     "", [] { return 1; }, 60s),
                 std::invalid_argument);
    EXPECT_THROW((void)products.async_get_or_set(
                     "k", [] { return 1; }, 0ms),
                 std::invalid_argument);
}

TEST_F(AsyncCache, OneLoaderForAStampedeOfCallbacksAndBlockingCallers) {
    redkit::client c(shared_server().options());
    redkit::cache products(c);
    std::atomic<int> calls{0}, served{0}, wrong{0};
    const auto loader = [&calls] { return load_later(calls, 150ms, "chair"); };
    constexpr int callbacks = 1000, threads = 4;
    for (int i = 0; i < callbacks; ++i) {
        products.async_get_or_set("product:7", loader, 60s).then([&](redkit::future<product> f) {
            try {
                if (f.get().name != "chair") ++wrong;
            } catch (...) {
                ++wrong;
            }
            ++served;
        });
    }
    std::vector<std::thread> blocking;
    for (int t = 0; t < threads; ++t) {
        blocking.emplace_back([&] {
            // a blocking caller joins the async leader's flight (or leads, and the others join it)
            const product p = products.get_or_set<product>(
                "product:7", [&calls] { return load_later(calls, 150ms, "chair").get(); }, 60s);
            if (p.name != "chair") ++wrong;
            ++served;
        });
    }
    for (auto& t : blocking) t.join();
    ASSERT_TRUE(eventually([&] { return served.load() == callbacks + threads; }, 10s));
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(calls.load(), 1) << "the stampede ran the loader more than once";
}

TEST_F(AsyncCache, TheLoadersExceptionReachesEveryWaiterAndNothingIsCached) {
    redkit::client c(shared_server().options());
    redkit::cache products(c);
    std::atomic<int> calls{0};
    const auto failing = [&calls] {
        ++calls;
        redkit::promise<product> p;
        auto f = p.get_future();
        std::thread([p = std::move(p)]() mutable {
            std::this_thread::sleep_for(50ms);
            p.set_exception(std::make_exception_ptr(std::runtime_error("database down")));
        }).detach();
        return f;
    };
    std::vector<redkit::future<product>> pending;
    for (int i = 0; i < 50; ++i) pending.push_back(products.async_get_or_set("product:9", failing, 60s));
    for (auto& f : pending) EXPECT_THROW((void)f.get(), std::runtime_error);
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(c.command<long long>("EXISTS", products.key("product:9")), 0);
}

TEST_F(AsyncCache, CachedAbsenceIsServedWithoutTheLoader) {
    redkit::client c(shared_server().options());
    redkit::cache_options o;
    o.negative_ttl = 30s;
    redkit::cache users(c, o);
    int calls = 0;
    const auto none = [&calls] {
        ++calls;
        return std::optional<product>{};
    };
    EXPECT_FALSE(users.async_get_or_set("user:404", none, 60s).get().has_value());
    EXPECT_FALSE(users.async_get_or_set("user:404", none, 60s).get().has_value());
    EXPECT_EQ(calls, 1);
}

TEST(AsyncCacheFaults, AServerGoneServesTheLoadersValueOrTheErrorByPolicy) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "kills its own server";
    redkit_test::watchdog guard(60s, "async cache with the server gone");
    redkit_test::error_log log;
    auto o = server.options();
    o.max_retries = 0;
    o.on_error = log.callback();
    redkit::client c(o);
    redkit::cache serve_anyway(c);
    redkit::cache_options strict_options;
    strict_options.on_failure = redkit::cache_failure_policy::throw_error;
    redkit::cache strict(c, strict_options);
    ASSERT_EQ(serve_anyway
                  .async_get_or_set(
                      "k", [] { return 1; }, 60s)
                  .get(),
              1);
    server.kill();
    EXPECT_EQ(serve_anyway
                  .async_get_or_set(
                      "other", [] { return 2; }, 60s)
                  .get(),
              2);
    EXPECT_TRUE(log.contains("serving from the loader"));
    EXPECT_THROW((void)strict
                     .async_get_or_set(
                         "third", [] { return 3; }, 60s)
                     .get(),
                 redkit::error);
}

#if REDKIT_COROUTINES
#include "support/detached.hpp"

namespace {

redkit_test::detached show(redkit::cache& products, std::string id, std::atomic<int>& calls, std::atomic<int>& right,
                           std::atomic<int>& done) {
    // (named, not temporaries in the co_await expression: GCC 12 miscompiles a lambda there)
    auto loader = [&calls, id] { return load_later(calls, 20ms, "item-" + id); };
    redkit::future<product> pending = products.async_get_or_set("product:" + id, std::move(loader), 60s);
    const product p = co_await std::move(pending);
    if (p.name == "item-" + id) ++right;
    ++done;
}

}  // namespace

TEST_F(AsyncCache, CoroutinesAwaitTheCacheOneLoaderPerKey) {
    redkit::client c(shared_server().options());
    redkit::cache products(c);
    std::atomic<int> calls{0}, right{0}, done{0};
    constexpr int n = 2000, keys = 20;
    for (int i = 0; i < n; ++i) show(products, std::to_string(i % keys), calls, right, done);
    ASSERT_TRUE(eventually([&] { return done.load() == n; }, 20s));
    EXPECT_EQ(right.load(), n);
    EXPECT_EQ(calls.load(), keys);
}
#endif
