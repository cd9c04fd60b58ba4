// SPDX-License-Identifier: MIT
// The cache's stored format (value + whitespace trailer) and the XFetch rule, without a server.
#include <redkit/cache.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <random>
#include <string>

using redkit::detail::append_cache_trailer;
using redkit::detail::cache_meta;
using redkit::detail::split_cache_entry;
using redkit::detail::xfetch_should_refresh;

TEST(CacheEntry, TrailerRoundTripsAndLeavesTheValueBytesIntact) {
    const std::string json = R"({"id":42,"name":"chair","price":19.5})";
    std::string stored = json;
    append_cache_trailer(stored, cache_meta{1767225600123LL, 1234567});
    EXPECT_EQ(stored.size(), json.size() + redkit::detail::cache_trailer_size);
    for (std::size_t i = json.size(); i < stored.size(); ++i) {
        const char c = stored[i];
        EXPECT_TRUE(c == ' ' || c == '\t' || c == '\n' || c == '\r') << "byte " << i;
    }
    cache_meta m;
    bool has = false;
    EXPECT_EQ(split_cache_entry(stored, m, has), json);
    EXPECT_TRUE(has);
    EXPECT_EQ(m.expiry_ms, 1767225600123LL);
    EXPECT_EQ(m.delta_us, 1234567);
}

TEST(CacheEntry, StoredBytesParseAsTheSameJson) {
    const nlohmann::json value = {{"id", 42}, {"tags", {"a", "b"}}, {"ok", true}};
    std::string stored = value.dump();
    append_cache_trailer(stored, cache_meta{1767225600123LL, 99});
    EXPECT_EQ(nlohmann::json::parse(stored), value);  // RFC 8259: whitespace may follow the value
    std::string scalar = "7";
    append_cache_trailer(scalar, cache_meta{1, 1});
    EXPECT_EQ(nlohmann::json::parse(scalar), 7);
}

TEST(CacheEntry, BytesWithoutATrailerHaveNoMetadata) {
    cache_meta m;
    bool has = true;
    EXPECT_EQ(split_cache_entry("42", m, has), "42");
    EXPECT_FALSE(has);
    const std::string padded = "{\"a\":1}" + std::string(60, ' ');  // whitespace, but no magic
    EXPECT_EQ(split_cache_entry(padded, m, has), padded);
    EXPECT_FALSE(has);
    std::string trailer_only;
    append_cache_trailer(trailer_only, cache_meta{5, 5});
    EXPECT_EQ(split_cache_entry(trailer_only, m, has), trailer_only);  // no value before it
    EXPECT_FALSE(has);
}

TEST(CacheEntry, OutOfRangeMetadataIsClamped) {
    std::string stored = "1";
    append_cache_trailer(stored, cache_meta{-5, 1LL << 50});
    cache_meta m;
    bool has = false;
    split_cache_entry(stored, m, has);
    ASSERT_TRUE(has);
    EXPECT_EQ(m.expiry_ms, 0);
    EXPECT_EQ(m.delta_us, redkit::detail::cache_max_delta_us);
}

TEST(CacheEntry, AbsentMarkerIsNotJson) {
    EXPECT_THROW(
        {
            const auto j = nlohmann::json::parse(redkit::detail::cache_absent_marker);
            static_cast<void>(j);
        },
        nlohmann::json::exception);
}

TEST(CacheEntry, XFetchAlwaysRefreshesAtExpiryAndNeverFarBeforeIt) {
    const cache_meta m{1'000'000, 10'000'000};  // expires at t = 1e6 ms, last recompute took 10 s
    EXPECT_TRUE(xfetch_should_refresh(1'000'000, m, 1.0, 1.0));
    EXPECT_TRUE(xfetch_should_refresh(1'000'001, m, 0.0, 1.0));
    // A draw of 0 is clamped to 1e-9: at most 20.7 * delta * beta early.
    const double bound_ms = 10'000.0 * -std::log(redkit::detail::cache_min_draw);
    EXPECT_FALSE(xfetch_should_refresh(1'000'000 - static_cast<long long>(bound_ms) - 1, m, 1.0, 0.0));
    EXPECT_TRUE(xfetch_should_refresh(1'000'000 - static_cast<long long>(bound_ms) + 1, m, 1.0, 0.0));
    // beta 0 or no recorded delta: never early.
    EXPECT_FALSE(xfetch_should_refresh(999'999, m, 0.0, 1e-9));
    EXPECT_FALSE(xfetch_should_refresh(999'999, cache_meta{1'000'000, 0}, 1.0, 1e-9));
}

TEST(CacheEntry, XFetchProbabilityMatchesTheFormula) {
    // P(refresh at distance r) = exp(-r / (delta * beta)).
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const cache_meta m{1'000'000, 1'000'000};  // delta 1 s
    for (const double r_ms : {100.0, 1000.0, 3000.0}) {
        int refreshed = 0;
        constexpr int n = 20000;
        for (int i = 0; i < n; ++i) {
            refreshed += xfetch_should_refresh(1'000'000 - static_cast<long long>(r_ms), m, 1.0, u(rng)) ? 1 : 0;
        }
        const double expected = std::exp(-r_ms / 1000.0);
        EXPECT_NEAR(static_cast<double>(refreshed) / n, expected, 0.02) << "distance " << r_ms << " ms";
    }
}
