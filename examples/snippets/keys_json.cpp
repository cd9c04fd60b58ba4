// SPDX-License-Identifier: MIT
// The code of the docs' "Keys and values" page: each `//! [name]` pair marks a snippet the page
// shows. Runs without a server.
#include <redkit/redkit.hpp>

#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

//! [json_fields]
struct product {
    std::string id, name;
    double price = 0;
    std::vector<std::string> tags;
    std::optional<std::string> note;
};

template <>
struct redkit::json_fields<product> {
    static constexpr auto value =
        redkit::fields(redkit::field("id", &product::id), redkit::field("name", &product::name),
                       redkit::field("price", &product::price), redkit::field("tags", &product::tags),
                       redkit::field("note", &product::note));  // JSON names may differ from the members'
};
//! [json_fields]

struct price_tick {
    double price;
    long long at_ms;
};

//! [codec]
template <>
struct redkit::codec<price_tick> {  // 16 raw bytes instead of JSON (only C++ services read it)
    static std::string encode(const price_tick& t) { return std::string(reinterpret_cast<const char*>(&t), sizeof t); }
    static price_tick decode(std::string_view b) {
        if (b.size() != sizeof(price_tick)) throw std::invalid_argument("not a price_tick");
        price_tick t;
        std::memcpy(&t, b.data(), sizeof t);
        return t;
    }
};
//! [codec]

int main() try {
    const std::string client_ip = "::1";
    const int user_id = 123;
    //! [key_space]
    const redkit::key_space keys("shop:prod");
    keys.key("user", 123, "profile");                     // shop:prod:user:123:profile
    keys.key("rate_limit", client_ip);                    // shop:prod:rate_limit:%3A%3A1 for "::1"
    keys.key("queue", redkit::hash_tag("mail"), "wait");  // shop:prod:queue:{mail}:wait
    keys.pattern("user", user_id, redkit::wildcard);      // shop:prod:user:123:*   (for SCAN MATCH)
    //! [key_space]
    std::cout << keys.key("user", 123, "profile") << ' ' << keys.key("rate_limit", client_ip) << ' '
              << keys.key("queue", redkit::hash_tag("mail"), "wait") << ' '
              << keys.pattern("user", user_id, redkit::wildcard) << '\n';

    const std::string bytes = redkit::codec<product>::encode({"p1", "Chair", 349.99, {"office"}, std::nullopt});
    const product back = redkit::decode<product>(bytes, "product:p1");
    std::cout << bytes << " -> " << back.name << '\n';
    const price_tick tick = redkit::decode<price_tick>(redkit::codec<price_tick>::encode({1.5, 7}), "tick");
    std::cout << "tick " << tick.price << " at " << tick.at_ms << '\n';
    try {
        (void)redkit::decode<product>("{\"id\":1}", "product:p2");
    } catch (const redkit::error& e) {
        std::cout << "corrupt: " << e.what() << '\n';
    }
    return 0;
} catch (const std::exception& e) {
    std::cerr << "keys and values snippets failed: " << e.what() << '\n';
    return 1;
}
