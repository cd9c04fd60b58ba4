// SPDX-License-Identifier: MIT
// Test helper (C++20): the least coroutine type. It starts at once and nobody awaits it; what it
// throws ends the program.
#pragma once

#include <coroutine>
#include <exception>

namespace redkit_test {

struct detached {
    struct promise_type {
        detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
};

}  // namespace redkit_test
