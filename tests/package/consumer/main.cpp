// SPDX-License-Identifier: MIT
// The smallest redkit program: PING through the process-wide client configured by REDIS_URL,
// saying which mode it was built in (header-only, or against redkit::redkit_compiled).
#include <redkit/redkit.hpp>

#include <iostream>

int main() {
    try {
        std::cout << redkit::default_client().command<std::string>("PING") << ' '
                  << (REDKIT_HEADER_ONLY ? "header-only" : "compiled") << '\n';
    } catch (const std::exception& e) {
        std::cerr << e.what() << '\n';
        return 1;
    }
}
