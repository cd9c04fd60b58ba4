// SPDX-License-Identifier: MIT
// A worker's keeper (queue/worker.hpp), which does not depend on the job type: the state the
// worker's handler threads share with it, the clock that decides when it renews leases and runs
// the stalled-job check, and the thread that does so and blocks in BZPOPMIN for an idle worker.
//
//   worker_shared   flags and leases the handler threads and the keeper read and write under
//                   one mutex (the worker keeps its own job queues under the same mutex)
//   keeper_timing   the keeper's decisions in time, with no server and no thread: unit-tested
//   queue_keeper    the thread: renew, check stalled jobs, repair schedulers, BZPOPMIN the marker,
//                   and keep the worker in the queue's live workers
#pragma once

#include <redkit/config.hpp>
#include <redkit/dedicated_connection.hpp>
#include <redkit/error.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>
#include <redkit/waker.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace redkit {
inline namespace v0 {
namespace detail {

/// What a worker's handler threads and its keeper share. Everything but `closing` and `wake_keeper`
/// is guarded by `mutex`.
struct worker_shared {
    using clock = std::chrono::steady_clock;

    std::mutex mutex;
    std::condition_variable jobs_cv;  // handler threads: jobs ready, the connection free, closing
    std::condition_variable done_cv;  // close(): the keeper ended
    std::unordered_map<std::string, std::shared_ptr<job_lease>> held;  // leased, by stored id
    std::size_t idle = 0;                                              // handler threads waiting for a job
    std::size_t live = 0;                                              // handler threads alive
    bool fetch = true;                                                 // jobs may be ready
    unsigned long long wake_gen = 0;                          // bumped when the keeper learns jobs may be ready
    bool rearm = true;                                        // a marker was (or may have been) popped for us
    bool blocking = false;                                    // the keeper has a BZPOPMIN pending
    clock::time_point delayed_at = clock::time_point::max();  // fetch then: a delayed job falls due
    bool abandoned = false;                                   // close() timed out: stop renewing
    // concurrency 1, looking ahead: since when a handler thread runs jobs while outcomes of jobs
    // it finished wait for the next exchange (max: none wait), and whether the keeper watches
    // that (it flushes outcomes that waited flush_after; see queue_keeper::settings::flush)
    clock::time_point outcomes_held_since = clock::time_point::max();
    bool flush_watch = false;
    bool keeper_done = false;
    // shared with the jobs' leases: job::closing() stays valid if a job outlives the worker
    std::shared_ptr<std::atomic<bool>> closing = std::make_shared<std::atomic<bool>>(false);
    waker wake_keeper;

    /// Jobs may be ready: a handler thread looks (under the lock). `rearm`: the marker may have
    /// been popped unseen, so the next full take sets it again.
    void look_again_locked(bool rearm_too) {
        fetch = true;
        ++wake_gen;
        if (rearm_too) rearm = true;
        jobs_cv.notify_one();
    }
};

/// When the keeper renews leases and checks for stalled jobs, and how long it may sleep. The first
/// check runs at once; then one every stalled_interval while not closing. Leases are renewed
/// every renew_interval while some are held; leases taken while none were held are fresh, so
/// their first renewal is due a whole interval after the keeper first sees them. No renewal once
/// close() gave up on the running jobs (abandoned).
class keeper_timing {
public:
    using clock = std::chrono::steady_clock;

    REDKIT_DECL keeper_timing(std::chrono::milliseconds renew_interval, std::chrono::milliseconds stalled_interval,
                              clock::time_point start);

    /// What the keeper saw at `now`: whether it holds leases, is closing, abandoned the jobs.
    REDKIT_DECL void observe(clock::time_point now, bool holding, bool closing, bool abandoned);
    /// Whether leases are due for renewal now.
    REDKIT_DECL bool renew_due() const noexcept;
    /// The renewal succeeded at `now` (a failed one stays due and is tried again).
    REDKIT_DECL void renewed(clock::time_point now) noexcept;
    /// Whether the stalled-job check is due now; true also books the next one an interval on,
    /// whether or not this one succeeds (the check takes a per-queue lock for that interval).
    REDKIT_DECL bool take_check() noexcept;
    /// When the keeper must look again at the latest: the next renewal or check, a delayed job's
    /// due time, and at most an hour on.
    REDKIT_DECL clock::time_point wake_at(clock::time_point delayed_at) const noexcept;

private:
    std::chrono::milliseconds renew_interval_, stalled_interval_;
    clock::time_point next_renew_, next_check_;
    clock::time_point now_{};
    bool holding_ = false, closing_ = false, abandoned_ = false;
};

/// A worker's keeper thread (run()). It renews the leases in worker_shared::held through the
/// client's pool, runs the stalled-job check and the schedulers' repair, and while handler threads
/// are idle with nothing to fetch blocks in BZPOPMIN on the marker on a connection of its own;
/// when the marker pops or a delayed job falls due it wakes a handler thread to fetch.
class queue_keeper {
public:
    /// What the keeper needs of the worker's options.
    struct settings {
        std::chrono::milliseconds lease_duration{30000};
        std::chrono::milliseconds renew_interval{15000};
        std::chrono::milliseconds stalled_interval{30000};
        int max_stalled_count = 1;
        std::chrono::milliseconds block_timeout{5000};
        std::string worker_id;
        std::function<void(const error&)> on_error;           // unset: the client's on_error
        std::function<void(const stalled_jobs&)> on_stalled;  // what it throws goes to on_error
        /// Sends the outcomes worker_shared::outcomes_held_since says wait, when no exchange is
        /// under way (the worker's, called without the lock); unset: never called.
        std::function<void()> flush;
        /// How long outcomes may wait before the keeper sends them (flush).
        std::chrono::milliseconds flush_after{10};
    };

    REDKIT_DECL queue_keeper(std::shared_ptr<queue_core> core, worker_shared& shared, settings s);

    /// The thread's body: returns once the worker is closing and its handler threads are gone.
    REDKIT_DECL void run();

    /// Sends an error to on_error (or the client's).
    REDKIT_DECL void report(const error& e) const noexcept;

private:
    REDKIT_DECL void renew();
    REDKIT_DECL std::chrono::steady_clock::time_point cancel_timed_out_locked(
        std::chrono::steady_clock::time_point now);
    REDKIT_DECL void check_stalled();
    REDKIT_DECL void beat(bool alive);
    REDKIT_DECL void repair_schedulers();
    REDKIT_DECL void refresh_marker();
    REDKIT_DECL void start_block();
    REDKIT_DECL bool read_block(reply_view r);
    REDKIT_DECL void drop_block(bool look_again);
    REDKIT_DECL void report_exception(const std::exception& e) const noexcept;

    std::shared_ptr<queue_core> core_;
    worker_shared& shared_;
    settings settings_;
    dedicated_connection block_;  // BZPOPMIN
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/queue/detail/impl/keeper.ipp>
#endif
