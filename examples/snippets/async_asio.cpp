// SPDX-License-Identifier: MIT
// The code of the docs' "Without blocking" page, its Asio part: `//! [name]` pairs mark the
// snippets. C++20 and standalone Asio; run as a test against REDIS_URL.
#include <redkit/asio.hpp>
#include <redkit/redkit.hpp>

#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

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

int main() try {
    const char* env = std::getenv("REDIS_URL");
    redkit::client redis(env ? env : "redis://127.0.0.1:6379");
    asio::io_context ctx;
    asio::co_spawn(ctx, show_profile(redis, "42"), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    ctx.run();  // returns once every reply is in
    std::cout << "asio: done\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << "asio snippet failed: " << e.what() << '\n';
    return 1;
}
