// SPDX-License-Identifier: MIT
// Must not compile: future<T>::then with a callback that does not take the future. The test
// checks that the first error is redkit's, naming the signature it needs.
#include <redkit/redkit.hpp>

#include <string>

int main() {
    redkit::client redis;
    redis.submit<std::string>("GET", "user:42:name").then([](const std::string& name) { (void)name; });
    return 0;
}
