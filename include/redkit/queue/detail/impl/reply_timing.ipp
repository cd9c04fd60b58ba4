// SPDX-License-Identifier: MIT
// The poll-or-sleep choice of a worker's leader: out-of-line definitions (reply_timing.hpp).
#pragma once

#include <redkit/queue/detail/reply_timing.hpp>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL bool reply_timing::poll_next(unsigned long long exchange) const noexcept {
    bool poll;
    if (polled_.n < 4) {
        poll = true;
    } else if (slept_.n < 4) {
        poll = false;
    } else {
        poll = polled_.mean < slept_.mean;
    }
    return exchange % 32 == 0 ? !poll : poll;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
