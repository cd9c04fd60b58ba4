// SPDX-License-Identifier: MIT
// What a running job's cancel_token reads: whether a cancel was requested (queue::cancel from any
// process, seen by the worker at its next lease renewal, or the job's timeout), why, and whether
// the attempt is then to be retried. Shared by the worker's lease of the job and the handler's
// tokens; the first request wins.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>

namespace redkit {
inline namespace v0 {
namespace detail {

struct cancel_state {
    std::atomic<bool> requested{false};
    mutable std::mutex mutex;
    mutable std::condition_variable cv;
    std::string reason;  // written once, before `requested` turns true (under mutex)
    bool retry = false;  // the attempt is to be retried (attempts and backoff apply)

    /// Records a request; false when one was recorded before (this one is dropped).
    bool request(std::string why, bool retry_it) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (requested.load()) return false;
            reason = std::move(why);
            retry = retry_it;
            requested.store(true);
        }
        cv.notify_all();
        return true;
    }

    /// The request's reason and whether to retry (empty and false while there is none).
    std::pair<std::string, bool> read() const {
        std::lock_guard<std::mutex> lock(mutex);
        return {reason, retry};
    }

    /// Waits up to `d` for a request; true once there is one.
    bool wait_for(std::chrono::milliseconds d) const {
        std::unique_lock<std::mutex> lock(mutex);
        return cv.wait_for(lock, d, [&] { return requested.load(); });
    }
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
