// SPDX-License-Identifier: MIT
// The choice a worker's leader makes before each round trip: poll for the reply, or sleep in
// read() (worker_options::reply_spin). Pure logic, unit-tested with scripted times.
#pragma once

#include <redkit/config.hpp>

#include <chrono>

namespace redkit {
inline namespace v0 {
namespace detail {

/// Whether a worker's leader should poll for its next reply (worker_options::reply_spin). Polling
/// pays only where a sleeping thread is slow to wake and the server runs on another CPU; where it
/// shares the worker's CPU, polling delays the reply, and a remote server's replies come too late
/// for it. So both ways are timed (moving averages of 8 replies), polling is used while it is at
/// least 10% faster, and every 64th reply is awaited the other way to keep both times current.
class reply_timing {
public:
    REDKIT_DECL bool poll_next(unsigned long long exchange) const noexcept;
    void record(bool polled, std::chrono::microseconds took) noexcept { (polled ? polled_ : slept_).add(took); }

private:
    struct moving_mean {
        std::chrono::microseconds mean{0};
        unsigned n = 0;  // samples, up to 8
        void add(std::chrono::microseconds t) noexcept {
            mean = n == 0 ? t : (mean * 7 + t) / 8;
            if (n < 8) ++n;
        }
    };
    moving_mean polled_, slept_;
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/queue/detail/impl/reply_timing.ipp>
#endif
