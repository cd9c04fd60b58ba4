// SPDX-License-Identifier: MIT
// Rate limiting: an HTTP-handler-shaped function that answers 429 with Retry-After and the
// RateLimit headers, a per-IP fixed window (100 per minute, the 101st call gets 429), a GCRA
// login limiter, weighted costs on a token bucket, and what happens when Redis is down.
#include <redkit/rate_limit.hpp>
#include <redkit/redkit.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct http_request {
    std::string client_ip;
    std::string path;
};

struct http_response {
    int status = 200;
    std::vector<redkit::http_header> headers;
    std::string body;
};

// The shape of a handler in any HTTP framework: check the limiter first, then do the work.
http_response handle(const redkit::rate_limiter& per_ip, const http_request& request) {
    const redkit::rate_limit_result r = per_ip.hit(request.client_ip);
    http_response response;
    response.headers = per_ip.headers(r);  // Retry-After (when denied), RateLimit-Policy, RateLimit
    if (!r.allowed) {
        response.status = 429;
        response.body = "Too Many Requests";
        return response;
    }
    response.body = "products for " + request.path;
    return response;
}

void print(const http_response& response) {
    std::cout << "  HTTP " << response.status << (response.status == 429 ? " Too Many Requests" : " OK") << '\n';
    for (const auto& h : response.headers) std::cout << "  " << h.name << ": " << h.value << '\n';
}

}  // namespace

int main() try {
    redkit::client redis = redkit::default_client();
    redkit::rate_limit_options options;
    options.keys = redkit::key_space("example:rate_limit");

    // The storefront's per-IP limit: 100 requests per minute.
    const auto per_ip = redkit::rate_limiter::fixed_window(redis, "storefront", 100, 1min, options);
    per_ip.reset("203.0.113.7");
    per_ip.reset("198.51.100.4");
    int ok = 0;
    for (int i = 0; i < 100; ++i) ok += handle(per_ip, {"203.0.113.7", "/products"}).status == 200;
    std::cout << "calls 1-100 from 203.0.113.7: " << ok << " x 200\n";
    const http_response limited = handle(per_ip, {"203.0.113.7", "/products"});
    std::cout << "call 101:\n";
    print(limited);
    std::cout << "other IP: " << handle(per_ip, {"198.51.100.4", "/products"}).status << '\n';
    std::cout << "key: " << per_ip.key("203.0.113.7") << '\n';

    // Logins: GCRA, a burst of 5 then one every 2 s; denied attempts are not charged.
    const auto login = redkit::rate_limiter::gcra(redis, "login", redkit::rate{1, 2s}, 5, options);
    login.reset("user:ada");
    int allowed = 0;
    redkit::rate_limit_result r{};
    while ((r = login.hit("user:ada")).allowed) ++allowed;
    std::cout << "gcra login: " << allowed << " allowed, then 429, retry in " << r.retry_after.count() << " ms\n";

    // An export API on a token bucket: requests cost what they weigh.
    const auto exports = redkit::rate_limiter::token_bucket(redis, "export", 100, redkit::per_second(10), options);
    exports.reset("team:7");
    const auto big = exports.hit("team:7", 80);
    const auto too_big = exports.peek("team:7", 30);
    std::cout << "token bucket: cost 80 -> remaining " << big.remaining << "; a cost of 30 would wait "
              << too_big.retry_after.count() << " ms\n";

    // Redis unreachable: the caller chooses. Both report to the client's error callback.
    redkit::client_options down;
    down.port = 1;
    down.max_retries = 0;
    down.connect_timeout = 200ms;
    down.on_error = [](const redkit::error& e) {
        if (std::string(e.what()).find("rate_limiter") != std::string::npos)
            std::cout << "  on_error: " << e.what() << '\n';
    };
    redkit::client unreachable(down);
    redkit::rate_limit_options closed = options;
    closed.on_failure = redkit::failure_policy::fail_closed;
    const auto open_limiter = redkit::rate_limiter::fixed_window(unreachable, "storefront", 100, 1min, options);
    const auto closed_limiter = redkit::rate_limiter::fixed_window(unreachable, "storefront", 100, 1min, closed);
    const int open_status = handle(open_limiter, {"203.0.113.7", "/"}).status;
    std::cout << "redis unreachable, fail open: " << open_status << '\n';
    const int closed_status = handle(closed_limiter, {"203.0.113.7", "/"}).status;
    std::cout << "redis unreachable, fail closed: " << closed_status << '\n';

    per_ip.reset("203.0.113.7");
    per_ip.reset("198.51.100.4");
    login.reset("user:ada");
    exports.reset("team:7");
    return 0;
} catch (const std::exception& e) {
    std::cerr << "rate limit example failed: " << e.what() << '\n';
    return 1;
}
