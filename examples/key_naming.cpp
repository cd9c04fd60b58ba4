// SPDX-License-Identifier: MIT
// Key naming: type:id:field, a prefix per app and environment, hash tags, safe SCAN patterns.
#include <redkit/redkit.hpp>

#include <iostream>

int main() try {
    const redkit::key_space keys("shop:dev");
    std::cout << keys.key("user", 123, "profile") << '\n';
    std::cout << keys.key("products", "featured") << '\n';

    // Untrusted input cannot forge separators or hash tags.
    const std::string hostile_id = "123:admin{x}";
    std::cout << keys.key("user", hostile_id, "profile") << '\n';

    // Keys that one script must touch together share a hash tag (one cluster slot).
    std::cout << keys.key("queue", redkit::hash_tag("welcome-mail"), "wait") << '\n';

    // SCAN patterns escape glob characters in user input: "*" matches only a literal "*".
    std::cout << keys.pattern("user", "*", redkit::wildcard) << '\n';

    redkit::client redis = redkit::default_client();
    redis.command<void>("SET", keys.key("user", 1, "profile"), "{}");
    redis.command<void>("SET", keys.key("user", 2, "profile"), "{}");
    int found = 0;
    for (const auto& key : redis.scan(keys.pattern("user", redkit::wildcard), 100)) {
        (void)key;
        ++found;
    }
    std::cout << "SCAN found " << found << " profiles\n";
    redis.command<void>("DEL", keys.key("user", 1, "profile"), keys.key("user", 2, "profile"));
    return 0;
} catch (const std::exception& e) {
    std::cerr << "key naming example failed: " << e.what() << '\n';
    return 1;
}
