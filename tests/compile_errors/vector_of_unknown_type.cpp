// SPDX-License-Identifier: MIT
// Must not compile: a container of a type without reply_traits (the message is redkit's, not an
// incomplete type deep in the container's conversion).
#include <redkit/redkit.hpp>

#include <vector>

struct product {
    int id = 0;
};

int main() {
    redkit::client redis;
    const auto all = redis.command<std::vector<product>>("MGET", "product:1", "product:2");
    return static_cast<int>(all.size());
}
