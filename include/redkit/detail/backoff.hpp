// SPDX-License-Identifier: MIT
// The one backoff of the library's own retries (a client's retried request, a subscriber's
// reconnect, a worker's pause after a failure): delays doubling from an initial value up to a
// cap, each drawn at random from [d/2, d] so that clients failing together do not retry together.
// (A job's retry delay is the public backoff_policy of the queue; it is not this.)
#pragma once

#include <algorithm>
#include <chrono>
#include <random>

namespace redkit {
inline namespace v0 {
namespace detail {

class backoff {
public:
    backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max) noexcept
        : initial_(initial), max_(std::max(initial, max)), next_(initial) {}

    /// The delay before retry number `attempt` (0 for the first), drawn in [d/2, d] with
    /// d = min(initial * 2^attempt, max).
    static std::chrono::milliseconds draw(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                                          int attempt) {
        long long d = initial.count();
        for (int i = 0; i < attempt && d < max.count(); ++i) d *= 2;
        return jittered(std::min<long long>(d, max.count()));
    }

    /// The next delay of this sequence; doubles the one after it.
    std::chrono::milliseconds next() {
        const auto d = jittered(next_.count());
        next_ = std::min(next_ * 2, max_);
        return d;
    }

    /// Starts over from the initial delay (after a success).
    void reset() noexcept { next_ = initial_; }

private:
    static std::chrono::milliseconds jittered(long long d) {
        if (d <= 0) return std::chrono::milliseconds(0);
        thread_local std::minstd_rand rng(std::random_device{}());
        return std::chrono::milliseconds(std::uniform_int_distribution<long long>(d / 2, d)(rng));
    }

    std::chrono::milliseconds initial_, max_, next_;
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
