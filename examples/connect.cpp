// SPDX-License-Identifier: MIT
// Connecting: the process-wide client from REDIS_URL, a client of your own, and a health check.
#include <redkit/redkit.hpp>

#include <iostream>

int main() try {
    // 1. The singleton: built on first use from REDIS_URL (default redis://127.0.0.1:6379).
    redkit::client redis = redkit::default_client();
    std::cout << "PING -> " << redis.command<std::string>("PING") << '\n';

    // 2. A client configured in code, with an error callback for connection trouble.
    redkit::client_options options = redis.options();
    options.client_name = "redkit-example";
    options.command_timeout = std::chrono::milliseconds(500);
    options.on_error = [](const redkit::error& e) { std::cerr << "redis trouble: " << e.what() << '\n'; };
    redkit::client mine(options);
    std::cout << "connection name: " << mine.command<std::string>("CLIENT", "GETNAME") << '\n';

    // 3. A readiness probe that never throws, e.g. for /healthz.
    std::cout << "reachable: " << (mine.is_reachable() ? "yes" : "no") << '\n';

    // 4. A server that is not there: a clear error, not a crash.
    redkit::client_options nowhere;
    nowhere.port = 1;  // nothing listens on port 1
    nowhere.max_retries = 0;
    std::cout << "reachable on port 1: " << (redkit::client(nowhere).is_reachable() ? "yes" : "no") << '\n';
    return 0;
} catch (const std::exception& e) {
    std::cerr << "connect example failed: " << e.what() << '\n';
    return 1;
}
