// SPDX-License-Identifier: MIT
// detail::delay_queue: tasks run at their due time on a thread of the queue's own.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

namespace redkit {
inline namespace v0 {
namespace detail {

/// Runs tasks at their due time on a thread of its own, started on first use: the retries of
/// submitted commands that provably were not sent (multiplexer.hpp) and the failover waits of
/// submitted cluster commands (cluster.hpp), whose next try may block where the thread that read
/// their reply may not. Its state outlives it while the thread runs, so a task may release the
/// last share of the queue's owner.
class delay_queue {
public:
    /// `run` is false when the queue goes away before the task is due (it must still end its work).
    using task = std::function<void(bool run)>;

    delay_queue() = default;
    delay_queue(const delay_queue&) = delete;
    delay_queue& operator=(const delay_queue&) = delete;
    ~delay_queue() { stop(); }

    /// Ends the thread after the task it runs; the tasks not run yet run with false (here, or on
    /// the queue's thread when it is the caller). Later posts run at once with false.
    void stop() {
        std::thread t;
        {
            std::lock_guard<std::mutex> lock(state_->mutex);
            state_->stopping = true;
            t = std::move(state_->thread);
        }
        state_->wake.notify_all();
        if (!t.joinable()) {
            drain(*state_);
        } else if (t.get_id() == std::this_thread::get_id()) {
            t.detach();  // a task released the owner: the loop ends (and drains) on its own
        } else {
            t.join();
        }
    }

    /// Runs `t` at `due` (or with false, if the queue goes first).
    void post(std::chrono::steady_clock::time_point due, task t) {
        {
            std::lock_guard<std::mutex> lock(state_->mutex);
            if (!state_->stopping) {
                state_->tasks.emplace(due, std::move(t));
                if (!state_->thread.joinable()) {
                    state_->thread = std::thread([s = state_] { loop(s); });
                }
                state_->wake.notify_one();
                return;
            }
        }
        t(false);
    }

private:
    struct state {
        std::mutex mutex;
        std::condition_variable wake;
        std::multimap<std::chrono::steady_clock::time_point, task> tasks;
        std::thread thread;
        bool stopping = false;
    };

    static void loop(const std::shared_ptr<state>& s) {
        std::unique_lock<std::mutex> lock(s->mutex);
        while (!s->stopping) {
            if (s->tasks.empty()) {
                s->wake.wait(lock);
                continue;
            }
            const auto due = s->tasks.begin()->first;
            if (std::chrono::steady_clock::now() < due) {
                s->wake.wait_until(lock, due);
                continue;
            }
            task t = std::move(s->tasks.begin()->second);
            s->tasks.erase(s->tasks.begin());
            lock.unlock();
            t(true);
            t = nullptr;  // (what it holds goes here, outside the lock)
            lock.lock();
        }
        lock.unlock();
        drain(*s);
    }

    static void drain(state& s) {
        std::multimap<std::chrono::steady_clock::time_point, task> left;
        {
            std::lock_guard<std::mutex> lock(s.mutex);
            left.swap(s.tasks);
        }
        for (auto& [due, t] : left) t(false);
    }

    std::shared_ptr<state> state_ = std::make_shared<state>();
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
