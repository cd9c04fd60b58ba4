// SPDX-License-Identifier: MIT
// The code of the docs' "Without blocking" page, its Asio part: `//! [name]` pairs mark the
// snippets. C++20 and standalone Asio; run as a test against REDIS_URL.
#include <redkit/asio.hpp>
#include <redkit/redkit.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <asio.hpp>

//! [asio]
asio::awaitable<void> show_profile(const redkit::client& redis, std::string id) {
    const std::string key = "user:" + id + ":name";
    co_await redkit::async_command<void>(redis, redkit::cmd("SET", key, "Ada", "EX", 3600), asio::use_awaitable);
    std::optional<std::string> name =
        co_await redkit::async_command<std::optional<std::string>>(redis, redkit::cmd("GET", key), asio::use_awaitable);
    std::cout << "asio: hello " << name.value_or("stranger") << '\n';  // on the io_context's thread
}
//! [asio]

//! [async_get]
asio::awaitable<void> checkout(const redkit::client& redis, const redkit::rate_limiter& limiter, std::string ip) {
    // any redkit::future (a pattern's, a pipeline's, a promise's) as an Asio operation
    const redkit::rate_limit_result decision = co_await redkit::async_get(limiter.async_hit(ip), asio::use_awaitable);
    redkit::pipeline p(redis);
    p.command("INCR", "checkouts").command("EXPIRE", "checkouts", 3600);
    const std::vector<redkit::reply> replies = co_await redkit::async_get(p.submit(), asio::use_awaitable);
    std::cout << "asio: allowed " << decision.allowed << ", " << replies.size() << " replies\n";
}
//! [async_get]

int main() try {
    const char* env = std::getenv("REDIS_URL");
    redkit::client redis(env ? env : "redis://127.0.0.1:6379");
    asio::io_context ctx;
    asio::co_spawn(ctx, show_profile(redis, "42"), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    const auto limiter = redkit::rate_limiter::fixed_window(redis, "checkout", 100, std::chrono::minutes(1));
    asio::co_spawn(ctx, checkout(redis, limiter, "10.0.0.7"), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    ctx.run();  // returns once every reply is in
    std::cout << "asio: done\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << "asio snippet failed: " << e.what() << '\n';
    return 1;
}
