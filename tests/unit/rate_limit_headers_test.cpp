// SPDX-License-Identifier: MIT
// rate_limiter::headers(): the HTTP fields of a result, without a server (the limiters are built
// over a client that never connects).
#include <redkit/rate_limit.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using redkit::rate_limiter;

TEST(RateLimitHeaders, ForADeniedResult) {
    const redkit::client redis("redis://127.0.0.1:1");  // lazy: headers() sends nothing
    const auto limiter = rate_limiter::fixed_window(redis, "api", 100, std::chrono::minutes(1));
    const auto find = [](const std::vector<redkit::http_header>& hs, const std::string& name) -> std::string {
        for (const auto& h : hs) {
            if (h.name == name) return h.value;
        }
        return "<absent>";
    };
    redkit::rate_limit_result denied{};
    denied.allowed = false;
    denied.limit = 100;
    denied.remaining = 0;
    denied.reset_after = 29001ms;
    denied.retry_after = 1500ms;
    const auto standard = limiter.headers(denied);
    EXPECT_EQ(standard.size(), 3u);
    EXPECT_EQ(find(standard, "Retry-After"), "2");
    EXPECT_EQ(find(standard, "RateLimit-Policy"), "\"api\";q=100;w=60");
    EXPECT_EQ(find(standard, "RateLimit"), "\"api\";r=0;t=30");
    EXPECT_EQ(find(standard, "RateLimit-Limit"), "<absent>");

    const auto all = limiter.headers(denied, redkit::rate_limit_headers::all);
    EXPECT_EQ(all.size(), 9u);
    EXPECT_EQ(find(all, "RateLimit-Limit"), "100");
    EXPECT_EQ(find(all, "RateLimit-Remaining"), "0");
    EXPECT_EQ(find(all, "RateLimit-Reset"), "30");
    EXPECT_EQ(find(all, "X-RateLimit-Limit"), "100");
    EXPECT_EQ(find(all, "X-RateLimit-Remaining"), "0");
    const long long unix_now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const long long x_reset = std::stoll(find(all, "X-RateLimit-Reset"));
    EXPECT_GE(x_reset, unix_now + 29);
    EXPECT_LE(x_reset, unix_now + 31);

    denied.retry_after = 1ms;
    EXPECT_EQ(find(limiter.headers(denied), "Retry-After"), "1");
    const auto quoted = rate_limiter::gcra(redis, "a\"b", redkit::per_second(2), 4);
    EXPECT_EQ(find(quoted.headers(denied), "RateLimit-Policy"), "\"a\\\"b\";q=100;w=2");
}
