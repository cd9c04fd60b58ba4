// SPDX-License-Identifier: MIT
// A worker's keeper: out-of-line definitions (queue/detail/keeper.hpp).
#pragma once

#include <redkit/client.hpp>
#include <redkit/dedicated_connection.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/detail/exception_text.hpp>
#include <redkit/error.hpp>
#include <redkit/queue/detail/keeper.hpp>
#include <redkit/queue/detail/lua.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/detail/schedule.hpp>
#include <redkit/reply.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL keeper_timing::keeper_timing(std::chrono::milliseconds renew_interval,
                                         std::chrono::milliseconds stalled_interval, clock::time_point start)
    : renew_interval_(renew_interval),
      stalled_interval_(stalled_interval),
      next_renew_(start + renew_interval),
      next_check_(start),
      now_(start) {}

REDKIT_DECL void keeper_timing::observe(clock::time_point now, bool holding, bool closing, bool abandoned) {
    // leases taken since the last look are fresh: the first renewal is due an interval on
    if (holding && !holding_) next_renew_ = std::max(next_renew_, now + renew_interval_);
    holding_ = holding;
    closing_ = closing;
    abandoned_ = abandoned;
    now_ = now;
}

REDKIT_DECL bool keeper_timing::renew_due() const noexcept { return holding_ && !abandoned_ && now_ >= next_renew_; }

REDKIT_DECL void keeper_timing::renewed(clock::time_point now) noexcept { next_renew_ = now + renew_interval_; }

REDKIT_DECL bool keeper_timing::take_check() noexcept {
    if (closing_ || now_ < next_check_) return false;
    next_check_ = now_ + stalled_interval_;
    return true;
}

REDKIT_DECL keeper_timing::clock::time_point keeper_timing::wake_at(clock::time_point delayed_at) const noexcept {
    auto until = now_ + std::chrono::hours(1);
    if (holding_ && !abandoned_) until = std::min(until, next_renew_);
    if (!closing_) until = std::min(until, next_check_);
    return std::min(until, delayed_at);
}

REDKIT_DECL queue_keeper::queue_keeper(std::shared_ptr<queue_core> core, worker_shared& shared, settings s)
    : core_(std::move(core)),
      shared_(shared),
      settings_(std::move(s)),
      block_(core_->redis, core_->key(queue_key::marker)) {}

REDKIT_DECL void queue_keeper::report(const error& e) const noexcept { report_to(settings_.on_error, core_->redis, e); }

REDKIT_DECL void queue_keeper::report_exception(const std::exception& e) const noexcept {
    const auto* re = dynamic_cast<const error*>(&e);
    report(re ? *re : error(errc::invalid_state, core_->what() + e.what()));
}

REDKIT_DECL void queue_keeper::renew() {
    std::vector<std::string> args{core_->job_prefix, std::to_string(settings_.lease_duration.count())};
    std::vector<std::shared_ptr<job_lease>> leases;
    {
        std::lock_guard<std::mutex> lock(shared_.mutex);
        args.reserve(2 + shared_.held.size() * 2);
        for (const auto& [id, lease] : shared_.held) {
            if (lease->lost) continue;
            args.push_back(id);
            args.push_back(lease->lease);
            leases.push_back(lease);
        }
    }
    if (leases.empty()) return;
    const auto renewed = core_->redis.eval<reply>(idempotent, queue_script<queue_lua::renew>(), core_->keys, args);
    if (renewed.is_error()) throw server_error(renewed.text(), core_->what() + "lease renewal: " + renewed.text());
    for (std::size_t i = 0; i < renewed.size() && i < leases.size(); ++i) {
        const reply& r = renewed[i];
        if (r.type() == reply_type::integer) {
            if (r.integer() == 0) leases[i]->lost = true;
        } else if (r.type() == reply_type::string && r.text().size() >= 2) {
            // queue::cancel: "<r>|<reason>", r '1' when the attempt is to be retried
            const std::string& t = r.text();
            leases[i]->cancel->request("cancelled: " + t.substr(2), t[0] == '1');
        }
    }
}

// Cancels the attempts whose job_options::timeout passed; returns when the next one is due.
// Under shared_.mutex.
REDKIT_DECL std::chrono::steady_clock::time_point queue_keeper::cancel_timed_out_locked(
    std::chrono::steady_clock::time_point now) {
    using clock = std::chrono::steady_clock;
    const long long now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    long long next = 0;
    for (const auto& held : shared_.held) {
        job_lease& l = *held.second;
        const long long at = l.timeout_at.load();
        if (at == 0 || l.cancel->requested.load()) continue;
        if (at <= now_ns) {
            l.cancel->request("timed out after " + std::to_string(l.timeout_ms) + " ms", true);
        } else if (next == 0 || at < next) {
            next = at;
        }
    }
    return next == 0 ? clock::time_point::max() : clock::time_point(std::chrono::nanoseconds(next));
}

REDKIT_DECL void queue_keeper::check_stalled() {
    const std::vector<std::string> args{core_->job_prefix, std::to_string(settings_.stalled_interval.count()),
                                        std::to_string(settings_.max_stalled_count), "1000"};
    const auto r = core_->redis.eval<std::vector<std::vector<std::string>>>(
        idempotent, extras_script<queue_lua::stalled>(), core_->keys, args);
    const stalled_jobs s = parse_stalled(r);
    observe_stalled(*core_, s);
    if ((s.recovered.empty() && s.failed.empty()) || !settings_.on_stalled) return;
    if (const auto thrown = call_caught([&] { settings_.on_stalled(s); })) {
        report(error(errc::handler_failed, "redkit: worker " + core_->name + ": on_stalled threw" + *thrown));
    }
}

// The worker in the queue's live workers (queue::workers): counted for 3 stalled intervals from
// each check; or (alive false) no more.
REDKIT_DECL void queue_keeper::beat(bool alive) {
    const std::string ttl = alive ? std::to_string(3 * settings_.stalled_interval.count()) : std::string();
    (void)core_->redis.eval<long long>(idempotent, queue_script<queue_lua::workers>(), core_->keys,
                                       std::vector<std::string>{core_->job_prefix, settings_.worker_id, ttl});
}

// Schedulers whose current tick's job finished without them being moved on (the taker's
// advance_scheduler failed): moved on now. Every stalled_interval, in each worker: one script that
// only reads unless a scheduler is stuck (moving one on is guarded, so two workers cannot both).
REDKIT_DECL void queue_keeper::repair_schedulers() {
    const auto r = core_->redis.eval<reply>(idempotent, extras_script<queue_lua::scheduler_stuck>(), core_->keys,
                                            std::vector<std::string>{core_->job_prefix, "1000"});
    if (r.size() != 2) return;
    const long long now = r[0].integer();
    const reply& stuck = r[1];
    for (std::size_t i = 0; i + 1 < stuck.size(); i += 2) {
        const reply& f = stuck[i + 1];
        advance_scheduler(*core_, stuck[i].text(), f, job_field_int(f[1].text()), now);
    }
}

// Gives back a marker the keeper popped when no thread was idle to use it: an exchange with
// want = 0 sets it again if jobs are ready.
REDKIT_DECL void queue_keeper::refresh_marker() {
    const std::vector<std::string> args{core_->job_prefix, settings_.worker_id + "-refresh", "1", "0", "0", "0"};
    (void)core_->redis.eval<reply>(idempotent, move_script(), core_->keys, args);
}

REDKIT_DECL void queue_keeper::start_block() {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.3f", static_cast<double>(settings_.block_timeout.count()) / 1000.0);
    try {
        block_.send_blocking(settings_.block_timeout, "BZPOPMIN", core_->key(queue_key::marker),
                             std::string_view(seconds));
    } catch (...) {
        drop_block(true);  // whatever happened meanwhile, look again
        throw;
    }
    std::lock_guard<std::mutex> lock(shared_.mutex);
    shared_.blocking = true;
}

// Forgets the blocking connection (a pending BZPOPMIN ends when the server sees it close).
REDKIT_DECL void queue_keeper::drop_block(bool look_again) {
    block_.close();
    std::lock_guard<std::mutex> lock(shared_.mutex);
    shared_.blocking = false;
    if (look_again) shared_.look_again_locked(true);  // the BZPOPMIN may have popped the marker unseen
}

// Takes the BZPOPMIN reply; true when it popped the marker (false: it timed out).
REDKIT_DECL bool queue_keeper::read_block(reply_view r) {
    {
        std::lock_guard<std::mutex> lock(shared_.mutex);
        shared_.blocking = false;
    }
    if (r.is_error()) r.mismatch("BZPOPMIN");  // throws server_error naming the marker key
    return !r.is_nil();
}

REDKIT_DECL void queue_keeper::run() {
    using clock = std::chrono::steady_clock;
    keeper_timing timing(settings_.renew_interval, settings_.stalled_interval, clock::now());
    backoff pause(std::chrono::milliseconds(50), std::chrono::milliseconds(2000));
    for (;;) {
        bool closing = false, block = false, flush = false;
        auto delayed_at = clock::time_point::max();
        const auto now = clock::now();
        {
            std::lock_guard<std::mutex> lock(shared_.mutex);
            closing = *shared_.closing;
            if (closing && shared_.live == 0) break;
            if (now >= shared_.delayed_at) {
                // a delayed job fell due: an idle thread fetches it (promoting it first)
                shared_.delayed_at = clock::time_point::max();
                shared_.look_again_locked(false);
            }
            // a timeout due is a wake-up too
            delayed_at = std::min(shared_.delayed_at, cancel_timed_out_locked(now));
            if (shared_.flush_watch) {
                // outcomes wait behind a job (lookahead at concurrency 1): sent once they waited
                // flush_after; the watch ends at a look that finds none waiting
                if (shared_.outcomes_held_since == clock::time_point::max()) {
                    shared_.flush_watch = false;
                } else if (now - shared_.outcomes_held_since >= settings_.flush_after) {
                    // and a look again after as long: a flush that found the connection taken
                    // (a landing under way) leaves them waiting
                    flush = true;
                    delayed_at = std::min(delayed_at, now + settings_.flush_after);
                } else {
                    delayed_at = std::min(delayed_at, shared_.outcomes_held_since + settings_.flush_after);
                }
            }
            timing.observe(now, !shared_.held.empty(), closing, shared_.abandoned);
            block = !closing && !shared_.fetch && shared_.idle > 0 && !shared_.blocking;
        }
        try {
            if (closing && block_.pending()) {
                // abandon the BZPOPMIN (the server unblocks a closed client) and give back a
                // marker it may have popped meanwhile
                drop_block(false);
                refresh_marker();
            }
            if (timing.renew_due()) {
                renew();
                timing.renewed(now);
            }
            if (timing.take_check()) {
                beat(true);  // the first check runs at once: the worker counts from its start
                check_stalled();
                repair_schedulers();
            }
            if (block && !block_.pending()) start_block();
            if (flush && settings_.flush) settings_.flush();
            pause.reset();
        } catch (const std::exception& e) {
            report_exception(e);
            shared_.wake_keeper.sleep_for(pause.next());  // cut short by close
            continue;
        }

        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(timing.wake_at(delayed_at) - clock::now()) +
            std::chrono::milliseconds(1);
        try {
            bool popped = false;
            wait_status w = wait_status::timeout;
            if (block_.pending()) {
                // past the BZPOPMIN's own timeout and the grace, this throws (and closes)
                w = block_.wait_reply(shared_.wake_keeper, left, [&](reply_view r) { popped = read_block(r); });
            } else if (shared_.wake_keeper.sleep_for(left)) {
                w = wait_status::woken;
            }
            if (w == wait_status::reply) {
                bool give_back = false;
                {
                    std::lock_guard<std::mutex> lock(shared_.mutex);
                    // a marker, or a block timeout: look (this also catches what others missed)
                    if (shared_.idle > 0) {
                        shared_.look_again_locked(popped);
                    } else {
                        shared_.fetch = true;
                        ++shared_.wake_gen;
                        give_back = popped;
                    }
                }
                if (give_back) refresh_marker();
            }
        } catch (const std::exception& e) {
            report_exception(e);
            drop_block(true);
            shared_.wake_keeper.sleep_for(pause.next());
        }
    }
    drop_block(false);
    try {
        beat(false);
    } catch (const std::exception& e) {
        report_exception(e);  // it stops counting once its time is up
    }
    std::lock_guard<std::mutex> lock(shared_.mutex);
    shared_.keeper_done = true;
    shared_.done_cv.notify_all();
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
