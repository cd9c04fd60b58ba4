// SPDX-License-Identifier: MIT
// The smallest redkit program: PING through the process-wide client configured by REDIS_URL.
#include <redkit/redkit.hpp>

#include <iostream>

int main() {
    try {
        std::cout << redkit::default_client().command<std::string>("PING") << '\n';
    } catch (const std::exception& e) {
        std::cerr << e.what() << '\n';
        return 1;
    }
}
