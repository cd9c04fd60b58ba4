// SPDX-License-Identifier: MIT
// Must not compile: command<T> of a type without reply_traits. The test checks that the first
// error is redkit's, naming the accepted types and the way to add one.
#include <redkit/redkit.hpp>

struct product {
    int id = 0;
};

int main() {
    redkit::client redis;
    const product p = redis.command<product>("GET", "product:1");
    return p.id;
}
