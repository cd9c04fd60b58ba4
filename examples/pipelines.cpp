// SPDX-License-Identifier: MIT
// Pipelines (many commands, one round trip) and transactions (MULTI/EXEC).
#include <redkit/redkit.hpp>

#include <iostream>

int main() try {
    redkit::client redis = redkit::default_client();
    const redkit::key_space keys("example:pipelines");

    redkit::pipeline p(redis);
    for (int i = 1; i <= 100; ++i) p.command("SET", keys.key("item", i), i * i);
    p.command("GET", keys.key("item", 12));
    const auto replies = p.exec();
    std::cout << "pipeline: " << replies.size()
              << " replies in one round trip, item:12 = " << replies.back().as<long long>() << '\n';

    redkit::transaction tx(redis);
    tx.command("INCRBY", keys.key("stock"), 10)
        .command("DECRBY", keys.key("stock"), 3)
        .command("GET", keys.key("stock"));
    const auto results = tx.exec();
    std::cout << "transaction: stock = " << results.at(2).as<long long>() << " (atomically)\n";

    std::size_t deleted = 0;
    for (const std::string& key : redis.scan(keys.pattern(redkit::wildcard), 200)) {
        deleted += static_cast<std::size_t>(redis.command<long long>("UNLINK", key));
    }
    std::cout << "cleaned up " << deleted << " keys with SCAN\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << "pipelines example failed: " << e.what() << '\n';
    return 1;
}
