// SPDX-License-Identifier: MIT
// Test helper: waits for a condition that another thread or process brings about.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace redkit_test {

/// Polls pred() every `every` until it holds (true) or `limit` passes (pred()'s last answer).
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = std::chrono::seconds(10),
                       std::chrono::milliseconds every = std::chrono::milliseconds(2)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(every);
    }
    return pred();
}

}  // namespace redkit_test
