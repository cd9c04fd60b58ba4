// SPDX-License-Identifier: MIT
// The code of the docs' "Without blocking" page: each `//! [name]` pair marks a snippet the page
// shows. C++20 (for co_await); run as a test against REDIS_URL.
#include <redkit/redkit.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// The least a coroutine type needs, for the snippet: starts at once, nobody awaits it. Any
// coroutine type can co_await a redkit::future.
struct fire_and_forget {
    struct promise_type {
        fire_and_forget get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
};

std::atomic<int> finished{0}, succeeded{0};

//! [co_await]
fire_and_forget greet(const redkit::client& redis, std::string id) {
    try {
        co_await redis.submit<void>("SET", "user:" + id + ":name", "Ada");
        auto name = co_await redis.submit<std::optional<std::string>>("GET", "user:" + id + ":name");
        std::cout << "coroutine: hello " << name.value_or("stranger") << '\n';
        ++succeeded;
    } catch (const redkit::error& e) {  // a server error, a timeout, a connection that failed
        std::cout << "coroutine: " << e.what() << '\n';
    }
    ++finished;
}
//! [co_await]

//! [whole]
fire_and_forget place_order(const redkit::client& redis, const redkit::rate_limiter& limiter, std::string user) {
    try {
        const redkit::rate_limit_result decision = co_await limiter.async_hit(user);
        if (!decision) {
            std::cout << "order: slow down, retry in " << decision.retry_after.count() << " ms\n";
        } else {
            redkit::transaction tx(redis);  // MULTI ... EXEC in one write on the shared connection
            tx.command("INCR", "orders:count").command("LPUSH", "orders:recent", user);
            const std::vector<redkit::reply> done = co_await tx.submit();
            std::cout << "order: number " << done[0].as<long long>() << '\n';
            ++succeeded;
        }
    } catch (const redkit::error& e) {
        std::cout << "order: " << e.what() << '\n';
    }
    ++finished;
}
//! [whole]

//! [cache]
// An awaitable loader: the database's callback completes the promise; no thread waits meanwhile.
redkit::future<std::string> load_title(std::string id) {
    redkit::promise<std::string> p;
    redkit::future<std::string> title = p.get_future();
    std::thread([p = std::move(p), id]() mutable { p.set_value("Desk lamp #" + id); }).detach();  // the database
    return title;
}

fire_and_forget show_product(redkit::cache& products, std::string id) {
    try {
        auto loader = [id] { return load_title(id); };  // named: see "Compiler notes"
        const std::string title =
            co_await products.async_get_or_set("product:" + id, std::move(loader), std::chrono::minutes(10));
        std::cout << "cache: " << title << '\n';
        ++succeeded;
    } catch (const std::exception& e) {  // the loader's exception, or Redis's with throw_error
        std::cout << "cache: " << e.what() << '\n';
    }
    ++finished;
}
//! [cache]

int main() try {
    const char* env = std::getenv("REDIS_URL");
    redkit::client redis(env ? env : "redis://127.0.0.1:6379");
    redis.command<void>("SET", "visits", 41);

    //! [then]
    redis.submit<long long>("INCR", "visits").then([](redkit::future<long long> f) {
        try {
            std::cout << "callback: visit number " << f.get() << '\n';
            ++succeeded;
        } catch (const redkit::error& e) {
            std::cout << "callback: " << e.what() << '\n';
        }
        ++finished;
    });
    //! [then]

    greet(redis, "42");
    redis.command<void>("SET", "orders:count", 6);
    const auto limiter = redkit::rate_limiter::fixed_window(redis, "orders", 10, std::chrono::minutes(1));
    (void)limiter.reset("user-42");
    place_order(redis, limiter, "user-42");
    redkit::cache products(redis);
    (void)products.invalidate("product:7");
    show_product(products, "7");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (finished.load() < 4 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::cout << "all done: " << (succeeded.load() == 4) << '\n';
    return succeeded.load() == 4 ? 0 : 1;
} catch (const std::exception& e) {
    std::cerr << "async snippets failed: " << e.what() << '\n';
    return 1;
}
