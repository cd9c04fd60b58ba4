// Compile-time probe: a small service file, the client, a cache of a struct and a rate limiter
// (scripts/compile-times).
#include <redkit/cache.hpp>
#include <redkit/client.hpp>
#include <redkit/json_fields.hpp>
#include <redkit/rate_limit.hpp>

#include <chrono>
#include <string>
#include <vector>

struct product {
    std::string id, name;
    double price = 0;
    std::vector<std::string> tags;
};
template <>
struct redkit::json_fields<product> {
    static constexpr auto value =
        redkit::fields(redkit::field("id", &product::id), redkit::field("name", &product::name),
                       redkit::field("price", &product::price), redkit::field("tags", &product::tags));
};

int main() {
    redkit::client redis("redis://127.0.0.1:6379");
    redkit::cache products(redis);
    auto limiter = redkit::rate_limiter::fixed_window(redis, "api", 100, std::chrono::minutes(1));
    if (!limiter.hit("client-1").allowed) return 1;
    const product p = products.get_or_set<product>(
        "product:1",
        [] {
            return product{"1", "Desk", 10.0, {"office"}};
        },
        std::chrono::minutes(10));
    return p.price > 0 ? 0 : 1;
}
