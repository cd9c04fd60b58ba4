// SPDX-License-Identifier: MIT
// redkit::waker: a wake-up another thread raises, to cut short a connection's wait for a reply
// (connection::wait_reply) or a pause (sleep_for). Patterns hold one per background thread so
// that stop() and close() return promptly. Linux (an eventfd).
#pragma once

#include <redkit/core/io/wait.hpp>

#include <chrono>

namespace redkit {
inline namespace v0 {

class connection;

/// A wake-up flag: notify() from any thread (async-signal-safe); the waiting thread sees it once.
class waker {
public:
    /// Throws redkit::error(io_error) when the system has no eventfd to spare.
    waker() = default;
    waker(const waker&) = delete;
    waker& operator=(const waker&) = delete;

    /// Raises the flag: a wait in progress (or the next one) returns at once.
    void notify() noexcept { flag_.notify(); }

    /// Sleeps up to `d`; returns true, and lowers the flag, when woken.
    bool sleep_for(std::chrono::milliseconds d) {
        if (detail::wait_readable(-1, flag_, d) != detail::wait_result::woken) return false;
        flag_.drain();
        return true;
    }

private:
    friend class connection;
    detail::notifier flag_;
};

}  // namespace v0
}  // namespace redkit
