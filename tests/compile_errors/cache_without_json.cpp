// SPDX-License-Identifier: MIT
// Must not compile: caching a struct that has no JSON support (no json_fields, no to_json /
// from_json). The message names the three ways to give it one.
#include <redkit/redkit.hpp>

#include <chrono>

struct product {
    int id = 0;
};

int main() {
    redkit::cache products;
    const product p = products.get_or_set<product>(
        "product:1", [] { return product{1}; }, std::chrono::minutes(1));
    return p.id;
}
