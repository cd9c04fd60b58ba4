// SPDX-License-Identifier: MIT
// Commands with typed replies, errors that say what went wrong, and Lua scripts.
#include <redkit/redkit.hpp>

#include <iostream>
#include <optional>
#include <unordered_map>

int main() try {
    redkit::client redis = redkit::default_client();
    const redkit::key_space keys("example:commands");
    const std::string user = keys.key("user", 42);

    redis.command<void>("DEL", user, keys.key("visits"));
    redis.command<void>("HSET", user, "name", "Ada", "plan", "pro");
    auto profile = redis.command<std::unordered_map<std::string, std::string>>("HGETALL", user);
    std::cout << "HGETALL " << user << " -> name=" << profile["name"] << " plan=" << profile["plan"] << '\n';

    const long long visits = redis.command<long long>("INCR", keys.key("visits"));
    std::cout << "INCR visits -> " << visits << '\n';

    std::optional<std::string> missing = redis.command<std::optional<std::string>>("GET", keys.key("nothing"));
    std::cout << "GET of a missing key -> " << (missing ? *missing : "(nil)") << '\n';

    try {
        redis.command<std::string>("GET", user);  // a hash, not a string
    } catch (const redkit::server_error& e) {
        std::cout << "server error, prefix " << e.prefix() << ": " << e.what() << '\n';
    }

    static const redkit::script clamp_incr(R"lua(
        local v = redis.call('INCR', KEYS[1])
        if v > tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) return tonumber(ARGV[1]) end
        return v
    )lua");
    long long clamped = 0;
    for (int i = 0; i < 5; ++i) clamped = redis.eval<long long>(clamp_incr, {keys.key("clamped")}, 3);
    std::cout << "script (EVALSHA) clamped counter -> " << clamped << '\n';
    redis.command<void>("DEL", keys.key("clamped"));
    return 0;
} catch (const std::exception& e) {
    std::cerr << "commands example failed: " << e.what() << '\n';
    return 1;
}
