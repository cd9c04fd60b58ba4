// SPDX-License-Identifier: MIT
// Cache-aside for the storefront's featured products: the first request loads them from the
// "database", the next is served from Redis, and a price change invalidates the entry so the
// following request reloads it. The stored bytes are plain JSON, readable by a Node service.
// Then a near cache: a hot product is served from this process's memory, and a write by anyone
// else (here a plain SET, as another service would do it) drops it at once.
#include <redkit/redkit.hpp>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace storefront {

struct product {
    std::string id;
    std::string name;
    double price = 0;
};

}  // namespace storefront

// The JSON fields, named once: the cache decodes hits straight into the struct (no DOM), and
// nlohmann::json(p) / j.get<product>() work too.
template <>
struct redkit::json_fields<storefront::product> {
    static constexpr auto value =
        redkit::fields(redkit::field("id", &storefront::product::id), redkit::field("name", &storefront::product::name),
                       redkit::field("price", &storefront::product::price));
};

int main() try {
    using namespace std::chrono_literals;
    using storefront::product;
    using clock = std::chrono::steady_clock;

    redkit::cache_options options;
    options.keys = redkit::key_space("example:cache");
    redkit::cache cache(options);  // over redkit::default_client(), i.e. REDIS_URL

    int queries = 0;
    double chair_price = 349.99;
    const auto load_featured = [&] {  // the slow database query
        ++queries;
        std::this_thread::sleep_for(50ms);
        return std::vector<product>{
            {"p1", "Ergonomic Chair", chair_price}, {"p2", "Standing Desk", 599.0}, {"p3", "Monitor Arm", 89.5}};
    };
    const std::string key = redkit::make_key("products", "featured");
    cache.invalidate(key);  // start from a cold cache

    const auto timed = [&](const char* label) {
        const auto t0 = clock::now();
        const std::vector<product> featured = cache.get_or_set(key, load_featured, 10min);
        const auto ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
        std::cout << std::fixed << std::setprecision(2) << label << ": " << featured.size() << " featured products in "
                  << ms << " ms, chair at " << featured.front().price << " (database queries: " << queries << ")\n";
    };

    timed("first call (loaded from the database)");
    timed("second call (served from Redis)");

    const auto stored = redkit::default_client().command<std::string>("GET", cache.key(key));
    std::cout << "stored at " << cache.key(key) << " as JSON: " << nlohmann::json::parse(stored).dump().substr(0, 48)
              << "...\n";

    chair_price = 299.0;  // a price change in the database...
    std::cout << "price changed, invalidated: " << std::boolalpha << cache.invalidate(key) << '\n';
    timed("after invalidate (reloaded)");

    const redkit::cache_stats s = cache.stats();
    std::cout << "stats: hits=" << s.hits << " misses=" << s.misses << " loader_calls=" << s.loader_calls
              << " errors=" << s.errors << '\n';
    cache.invalidate(key);

    // The near cache: hot keys kept decoded in this process, dropped when the server says they changed.
    redkit::cache_options near_options = options;
    near_options.near.enabled = true;
    redkit::cache hot(near_options);
    for (int i = 0; i < 500 && !hot.near_stats().connected; ++i) std::this_thread::sleep_for(10ms);
    const std::string desk = redkit::make_key("product", "p2");
    // the server reports every write to the key space, ours too: a read begun before that report
    // is in keeps nothing (it could be an older value), so wait for it here
    const auto heard = hot.near_stats().reported;
    hot.set(desk, product{"p2", "Standing Desk", 599.0}, 10min);
    for (int i = 0; i < 500 && hot.near_stats().reported == heard; ++i) std::this_thread::sleep_for(1ms);
    const auto desk_price = [&] { return hot.get<product>(desk)->price; };
    std::cout << "desk: " << desk_price() << " (from Redis), " << desk_price() << " (from memory)\n";
    redkit::default_client().command<void>("SET", hot.key(desk), R"({"id":"p2","name":"Standing Desk","price":549})");
    for (int i = 0; i < 500 && hot.near_stats().invalidations == 0; ++i) std::this_thread::sleep_for(1ms);
    std::cout << "written elsewhere; desk now: " << desk_price() << '\n';
    const redkit::near_cache_stats n = hot.near_stats();
    std::cout << "near: hits=" << n.hits << " misses=" << n.misses << " invalidations=" << n.invalidations << '\n';
    hot.invalidate(desk);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "cache example failed: " << e.what() << '\n';
    return 1;
}
