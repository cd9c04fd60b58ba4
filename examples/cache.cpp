// SPDX-License-Identifier: MIT
// Cache-aside for the storefront's featured products: the first request loads them from the
// "database", the next is served from Redis, and a price change invalidates the entry so the
// following request reloads it. The stored bytes are plain JSON, readable by a Node service.
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

void to_json(nlohmann::json& j, const product& p) { j = {{"id", p.id}, {"name", p.name}, {"price", p.price}}; }
void from_json(const nlohmann::json& j, product& p) {
    j.at("id").get_to(p.id);
    j.at("name").get_to(p.name);
    j.at("price").get_to(p.price);
}

}  // namespace storefront

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
    return 0;
} catch (const std::exception& e) {
    std::cerr << "cache example failed: " << e.what() << '\n';
    return 1;
}
