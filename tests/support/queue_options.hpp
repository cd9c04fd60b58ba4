// SPDX-License-Identifier: MIT
// Test helper: worker options whose leases, stalled-job checks and blocking waits are short, so
// what a queue test provokes (a killed worker, a lost lease, a close) shows within its time.
#pragma once

#include <redkit/queue.hpp>

#include <chrono>
#include <cstddef>

namespace redkit_test {

/// `concurrency` handler threads, a lease of `lease`, a stalled-job check every 200 ms, blocking
/// waits of 500 ms and close() giving up after 5 s.
template <class T>
redkit::worker_options<T> quick_worker(std::size_t concurrency = 1,
                                       std::chrono::milliseconds lease = std::chrono::milliseconds(1000)) {
    redkit::worker_options<T> o;
    o.concurrency = concurrency;
    o.lease_duration = lease;
    o.stalled_interval = std::chrono::milliseconds(200);
    o.block_timeout = std::chrono::milliseconds(500);
    o.close_timeout = std::chrono::milliseconds(5000);
    return o;
}

}  // namespace redkit_test
