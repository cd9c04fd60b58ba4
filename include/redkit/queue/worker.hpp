// SPDX-License-Identifier: MIT
// redkit::worker<T>: runs a queue's jobs on N threads, at least once each (see <redkit/queue.hpp>
// for the model: leases, the move script, the keeper, polling for replies).
#pragma once

#include <redkit/client.hpp>
#include <redkit/connection.hpp>
#include <redkit/dedicated_connection.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/detail/exception_text.hpp>
#include <redkit/detail/random.hpp>
#include <redkit/error.hpp>
#include <redkit/queue/detail/keeper.hpp>
#include <redkit/queue/detail/lua.hpp>
#include <redkit/queue/detail/record.hpp>
#include <redkit/queue/detail/reply_timing.hpp>
#include <redkit/queue/detail/schedule.hpp>
#include <redkit/queue/job.hpp>
#include <redkit/queue/queue.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>
#include <redkit/waker.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// How a worker runs. Durations must be positive unless said otherwise.
template <class T>
struct worker_options {
    std::size_t concurrency = 1;                        ///< handler threads, in [1, 4096]
    std::chrono::milliseconds lease_duration{30000};    ///< a job's lease; renewed while it runs
    std::chrono::milliseconds lease_renew_interval{0};  ///< 0: lease_duration / 2
    /// How often the stalled-job check runs. The check takes a per-queue lock for this long, so
    /// one worker of the queue checks per interval: give every worker of a queue the same value.
    std::chrono::milliseconds stalled_interval{30000};
    int max_stalled_count = 1;                       ///< a job that stalls more often than this fails
    std::chrono::milliseconds block_timeout{5000};   ///< longest BZPOPMIN of an idle worker
    std::chrono::milliseconds close_timeout{30000};  ///< how long the destructor's close() waits
    /// While its round trip is in flight and no other thread of the worker is running a job, the
    /// thread that records outcomes and takes jobs polls the socket for up to this long before
    /// sleeping in read(), in [0, 10 ms]. On virtual machines waking a sleeping thread costs tens
    /// of microseconds per reply: polling lets a busy worker take its next job sooner, for the
    /// CPU the polling burns (at most this much per job, only while jobs flow: an idle worker
    /// sleeps in BZPOPMIN). The worker times replies both ways and polls only while that is
    /// faster (not when Redis shares its CPU, nor for a remote server). 0: never poll.
    std::chrono::microseconds reply_spin{100};
    /// While its jobs take less than this, the worker looks ahead: a take leases up to 8 jobs per
    /// thread (at most 128) beyond what its threads need, so that each round trip carries several
    /// outcomes and takes. At concurrency 1 the thread sends the outcomes of the jobs it finished
    /// without waiting, once half the jobs leased ahead ran, with a take that leases as many
    /// again, and runs the next jobs while Redis records them; an outcome that would wait behind
    /// a job running longer is sent by the worker's keeper within about 10 ms. Its callbacks
    /// (on_completed, on_failed) run once the reply came, a few jobs later. At concurrency N > 1 a
    /// thread that finds outcomes waiting (N / 8 of them, at least one) sends them with the next
    /// take while the other threads run the jobs leased ahead. A job leased ahead waits for a
    /// thread (it counts as active, also toward a group's concurrency): after a run of short
    /// jobs, long jobs hold up those behind them for their duration, and after one the worker
    /// takes only what its threads need until a job takes less than this again. The first take
    /// leases no more than the threads need. In [0, 1 s]; 0: never (a worker then holds no more
    /// jobs than its threads).
    std::chrono::microseconds lookahead_below{1000};

    /// Called once Redis recorded the job as completed.
    std::function<void(const job<T>&)> on_completed;
    /// Called for every failed attempt once recorded; failure.will_retry tells whether it runs again.
    std::function<void(const job<T>&, const job_failure&)> on_failed;
    /// Called when this worker's stalled-job check recovered or failed jobs.
    std::function<void(const stalled_jobs&)> on_stalled;
    /// Called on transport and server errors (the worker retries with backoff) and when a job's
    /// lease was lost (its outcome discarded). Unset: the client's on_error gets them.
    /// Callbacks run on the worker's threads and should return quickly: they delay the thread's
    /// next job. What on_completed, on_failed or on_stalled throws is reported here
    /// (errc::handler_failed) and goes no further.
    std::function<void(const error&)> on_error;
};

/// Runs a queue's jobs on `concurrency` threads, at least once each.
///
/// The handler is `void(job<T>&)` or `R(job<T>&)` (R stored as JSON, job::return_value()). It
/// runs on the worker's threads, concurrently when concurrency > 1. A handler that throws fails
/// the attempt (reason and a trace entry stored); while attempts remain the job goes back with
/// its backoff; unrecoverable_error fails it at once; rate_limited_error puts it back in line
/// without using an attempt and holds the whole queue for its retry_after. A job whose data does
/// not decode into T fails at once with a reason saying so; the worker goes on. The queue's rate
/// limit (queue::set_rate_limit) caps what a take leases; a worker it stopped waits, without
/// polling, until a start leaves the window. Before running a scheduler's job the worker makes
/// that scheduler's next job (two round trips; failures are reported and repaired by the keeper's
/// periodic look, with the stalled-job check).
///
/// Threads and connections. A handler thread that finished a job records it itself: it sends
/// the outcomes of every thread that finished meanwhile and asks for as many jobs as there are
/// idle threads, in one script round trip on the worker's connection (client::dedicated()); the
/// other threads wait, then take the jobs it brought. So at concurrency 1 a job costs one round
/// trip and no thread hand-off, and under load outcomes travel in batches. While the round trip
/// is in flight and no other thread runs a job, it polls for the reply before sleeping
/// (worker_options::reply_spin). A keeper thread owns a second dedicated connection for the
/// blocking BZPOPMIN of an idle worker, wakes a thread to fetch when the marker pops or a delayed
/// job falls due, and through the client's pool renews the leases of held jobs (one script for
/// all, every lease_renew_interval) and runs the stalled-job check (one script every
/// stalled_interval, by one worker of the queue).
///
/// @code
/// redkit::worker<welcome_mail> w(mails, [](redkit::job<welcome_mail>& j) { send(j.data()); });
/// ...
/// w.close(5s);  // stop taking jobs, wait for the running ones
/// @endcode
template <class T>
class worker {
public:
    /// Validates the options (std::invalid_argument naming the field) and starts the threads. Never
    /// throws for an unreachable Redis: the worker reports through on_error and retries.
    template <class Handler>
    worker(const queue<T>& q, Handler handler, worker_options<T> options = {});

    /// close(options.close_timeout), then waits for the threads to end (a handler that never
    /// returns blocks this destructor).
    ~worker();

    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    /// Stops taking jobs, wakes the idle worker at once (its BZPOPMIN is abandoned) and waits up
    /// to `timeout` for the running jobs to finish and their outcomes to be recorded. Returns true
    /// when they did. On timeout the worker stops renewing the leases of jobs still running (so
    /// another worker recovers them once their lease expires) and returns false; outcomes of
    /// handlers finishing later are still sent. From one of the worker's own threads (a handler or
    /// callback) it only requests the close and returns false. Any thread; idempotent.
    bool close(std::chrono::milliseconds timeout);
    /// close(options.close_timeout).
    bool close() { return close(options_.close_timeout); }

    /// Jobs leased by this worker and not yet recorded as finished.
    std::size_t running() const {
        std::lock_guard<std::mutex> lock(shared_.mutex);
        return shared_.held.size();
    }

    /// Whether close() was called (or the destructor began): the worker takes no more jobs.
    bool closing() const noexcept { return shared_.closing->load(); }

private:
    using clock = std::chrono::steady_clock;

    struct outcome {
        std::unique_ptr<job<T>> item;
        detail::outcome_kind kind = detail::outcome_kind::completed;
        std::string payload;
        std::string trace;
        long long retry_delay = 0;
        std::chrono::nanoseconds ran{0};  // how long the handler ran (for the observer)
        std::shared_ptr<void> observed;   // what observer::on_job_start returned for the attempt
    };

    struct move_result {
        std::vector<long long> codes;
        std::vector<std::unique_ptr<job<T>>> jobs;
        long long now = 0;
        long long next_delay = -1;
        bool limited = false;
    };

    static const void*& current_worker() {
        static thread_local const void* p = nullptr;
        return p;
    }

    void handler_loop();
    std::unique_ptr<job<T>> next(std::optional<outcome>& done);
    // An exchange: the outcomes it sends and how many jobs it asks for.
    struct plan {
        std::vector<outcome> sending;
        std::size_t want = 0;
        bool rearm = false;
        bool alone = false;
        unsigned long long gen = 0;
        std::string token;
    };

    template <class F>
    bool unlocked(std::unique_lock<std::mutex>& lock, F&& io);
    void lead(std::unique_lock<std::mutex>& lock);
    void round_trip(std::unique_lock<std::mutex>& lock, std::size_t want);
    void flush_held();
    void launch(std::unique_lock<std::mutex>& lock, std::size_t want);
    void land(std::unique_lock<std::mutex>& lock);
    plan begin_exchange(std::size_t want);
    void finish_exchange(std::unique_lock<std::mutex>& lock, plan& p, bool ok, move_result& r);
    bool looking_ahead() const noexcept;
    std::size_t jobs_ahead() const noexcept;
    std::vector<std::string> exchange_args(plan& p);
    move_result to_result(detail::move_reply m, const std::string& token);
    move_result receive_exchange(plan& p);
    outcome run_one(std::unique_ptr<job<T>> j);
    move_result exchange(plan& p);
    void notify_outcomes(const move_result& r, std::vector<outcome>& sent);
    // Tells the observer (if any) how an attempt ended, with what on_job_start gave for it.
    void report_end(job_stage stage, const job<T>& j, outcome& o, std::string_view reason = {}) noexcept {
        observer* to = core_->redis.options().observer.get();
        if (to == nullptr) return;
        job_event e = detail::attempt_event(*core_, stage, j.id(), j.record(), j.record().attempts_made);
        e.duration = o.ran;
        e.reason = reason;
        e.context = std::move(o.observed);
        detail::observe_job(to, e);
    }
    void advance_scheduler(const job<T>& j);
    void report(const error& e) noexcept;
    template <class F, class... A>
    void call(const char* name, const F& f, A&&... a) noexcept;

    std::shared_ptr<detail::queue_core> core_;
    std::function<std::string(job<T>&)> handler_;
    worker_options<T> options_;
    std::chrono::milliseconds renew_interval_;
    std::string worker_id_;

    mutable detail::worker_shared shared_;       // with the keeper; ready_ and pending_ are under its mutex too
    std::deque<std::unique_ptr<job<T>>> ready_;  // leased, not started yet
    std::vector<outcome> pending_;               // finished, not recorded yet
    bool busy_ = false;                          // an exchange is in flight on cmd_ (only its leader touches cmd_)
    unsigned long long seq_ = 0;
    detail::reply_timing reply_timing_;                                                             // the leader's
    detail::backoff lead_backoff_{std::chrono::milliseconds(50), std::chrono::milliseconds(2000)};  // the leader's
    std::optional<dedicated_connection> cmd_;                                                       // the leader's
    std::optional<plan> flight_;              // an exchange written, its reply not read yet (lookahead)
    connection* flight_conn_ = nullptr;       // the connection it was written on
    waker flight_wake_;                       // never raised: a landing waits with a timeout
    std::atomic<long long> last_run_us_{-1};  // the last handler's run time (-1: none yet)
    std::optional<detail::queue_keeper> keeper_;

    std::vector<std::thread> handlers_;
    std::thread keeper_thread_;
};

// ---- implementation ----

template <class T>
template <class Handler>
worker<T>::worker(const queue<T>& q, Handler handler, worker_options<T> options)
    : core_(q.core_), options_(std::move(options)) {
    using R = std::invoke_result_t<Handler&, job<T>&>;
    if constexpr (std::is_void_v<R>) {
        handler_ = [h = std::move(handler)](job<T>& j) mutable {
            h(j);
            return std::string("null");
        };
    } else {
        handler_ = [h = std::move(handler)](job<T>& j) mutable { return nlohmann::json(h(j)).dump(); };
    }
    const auto& o = options_;
    if (o.concurrency < 1 || o.concurrency > 4096)
        throw std::invalid_argument("redkit: worker_options.concurrency must be in [1, 4096]");
    if (o.lease_duration.count() < 10)
        throw std::invalid_argument("redkit: worker_options.lease_duration must be at least 10 ms");
    if (o.lease_renew_interval.count() < 0 || o.lease_renew_interval >= o.lease_duration) {
        throw std::invalid_argument("redkit: worker_options.lease_renew_interval must be in [0, lease_duration)");
    }
    if (o.stalled_interval.count() <= 0)
        throw std::invalid_argument("redkit: worker_options.stalled_interval must be positive");
    if (o.max_stalled_count < 0)
        throw std::invalid_argument("redkit: worker_options.max_stalled_count must not be negative");
    if (o.block_timeout.count() < 1 || o.block_timeout > std::chrono::hours(24)) {
        throw std::invalid_argument("redkit: worker_options.block_timeout must be in [1 ms, 24 h]");
    }
    if (o.close_timeout.count() < 0)
        throw std::invalid_argument("redkit: worker_options.close_timeout must not be negative");
    if (o.reply_spin.count() < 0 || o.reply_spin > std::chrono::milliseconds(10))
        throw std::invalid_argument("redkit: worker_options.reply_spin must be in [0, 10 ms]");
    if (o.lookahead_below.count() < 0 || o.lookahead_below > std::chrono::seconds(1))
        throw std::invalid_argument("redkit: worker_options.lookahead_below must be in [0, 1 s]");
    renew_interval_ = o.lease_renew_interval.count() > 0 ? o.lease_renew_interval : o.lease_duration / 2;

    worker_id_ = detail::random_hex(8);
    cmd_.emplace(core_->redis, core_->key(detail::queue_key::marker));
    detail::queue_keeper::settings k;
    k.lease_duration = o.lease_duration;
    k.renew_interval = renew_interval_;
    k.stalled_interval = o.stalled_interval;
    k.max_stalled_count = o.max_stalled_count;
    k.block_timeout = o.block_timeout;
    k.worker_id = worker_id_;
    k.on_error = o.on_error;
    k.on_stalled = o.on_stalled;
    k.flush = [this] { flush_held(); };
    keeper_.emplace(core_, shared_, std::move(k));

    handlers_.reserve(o.concurrency);
    shared_.live = o.concurrency;
    try {
        for (std::size_t i = 0; i < o.concurrency; ++i) handlers_.emplace_back([this] { handler_loop(); });
        keeper_thread_ = std::thread([this] {
            current_worker() = this;
            keeper_->run();
        });
    } catch (...) {
        {
            std::lock_guard<std::mutex> lock(shared_.mutex);
            *shared_.closing = true;
            shared_.live -= o.concurrency - handlers_.size();
        }
        shared_.jobs_cv.notify_all();
        for (auto& t : handlers_) t.join();
        throw;
    }
}

template <class T>
worker<T>::~worker() {
    close(options_.close_timeout);
    for (auto& t : handlers_) {
        if (t.joinable()) t.join();
    }
    if (keeper_thread_.joinable()) keeper_thread_.join();
}

template <class T>
bool worker<T>::close(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(shared_.mutex);
    *shared_.closing = true;
    shared_.jobs_cv.notify_all();
    shared_.wake_keeper.notify();
    if (current_worker() == this) return false;
    if (shared_.done_cv.wait_for(lock, timeout, [&] { return shared_.keeper_done; })) return true;
    shared_.abandoned = true;
    shared_.jobs_cv.notify_all();
    shared_.wake_keeper.notify();
    return false;
}

template <class T>
void worker<T>::report(const error& e) noexcept {
    keeper_->report(e);
}

template <class T>
template <class F, class... A>
void worker<T>::call(const char* name, const F& f, A&&... a) noexcept {
    if (!f) return;
    if (const auto thrown = detail::call_caught([&] { f(std::forward<A>(a)...); })) {
        report(error(errc::handler_failed,
                     std::string("redkit: worker ") + core_->name + ": " + name + " threw" + *thrown));
    }
}

template <class T>
void worker<T>::handler_loop() {
    current_worker() = this;
    std::optional<outcome> done;
    for (;;) {
        std::unique_ptr<job<T>> j = next(done);
        if (!j) return;
        const auto started = clock::now();
        done = run_one(std::move(j));
        last_run_us_.store(std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started).count(),
                           std::memory_order_relaxed);
    }
}

// Hands in the previous outcome (if any) and returns the next job, or nullptr once the worker
// is closing and nothing of this worker is left to record.
template <class T>
std::unique_ptr<job<T>> worker<T>::next(std::optional<outcome>& done) {
    std::unique_lock<std::mutex> lock(shared_.mutex);
    if (done) {
        pending_.push_back(std::move(*done));
        done.reset();
    }
    ++shared_.idle;
    for (;;) {
        if (options_.concurrency > 1 && !busy_ && !ready_.empty() && pending_.size() * 8 >= options_.concurrency &&
            looking_ahead()) {
            // outcomes wait while jobs leased ahead are left: send them with the next take now, so
            // the round trip overlaps the jobs still to run
            lead(lock);
            continue;
        }
        if (!ready_.empty()) {
            std::unique_ptr<job<T>> j = std::move(ready_.front());
            ready_.pop_front();
            --shared_.idle;
            // j was leased ahead (concurrency 1): once half the jobs leased ahead ran, their outcomes
            // go out while j runs, with a take that leases as many again (after a long job: at once,
            // with no take)
            if (!busy_ && !pending_.empty() && options_.concurrency == 1) {
                const std::size_t ahead = jobs_ahead();
                if (!flight_ && (ahead == 0 || ready_.size() * 2 < ahead)) {
                    launch(lock, ahead > ready_.size() ? ahead - ready_.size() : 0);
                } else if (shared_.outcomes_held_since == clock::time_point::max()) {
                    // they wait for a few more jobs, or for the exchange in flight to land: the
                    // keeper sends them if j takes long
                    shared_.outcomes_held_since = clock::now();
                    if (!shared_.flush_watch) {
                        shared_.flush_watch = true;
                        shared_.wake_keeper.notify();
                    }
                }
            }
            return j;
        }
        if (!busy_ && flight_) {
            land(lock);
            continue;
        }
        const bool closing = *shared_.closing;
        if (!busy_ && (!pending_.empty() || (shared_.fetch && !closing))) {
            lead(lock);
            continue;
        }
        if (closing && !busy_ && pending_.empty()) {
            --shared_.idle;
            if (--shared_.live == 0) shared_.wake_keeper.notify();
            return nullptr;
        }
        shared_.jobs_cv.wait(lock);
    }
}

// Starts an exchange (under the lock, busy_ false): the pending outcomes, `want` jobs.
template <class T>
typename worker<T>::plan worker<T>::begin_exchange(std::size_t want) {
    busy_ = true;
    plan p;
    p.gen = shared_.wake_gen;
    p.sending = std::move(pending_);
    pending_.clear();
    shared_.outcomes_held_since = clock::time_point::max();
    p.want = *shared_.closing ? 0 : want;
    p.rearm = shared_.rearm && p.want > 0;
    if (p.rearm) shared_.rearm = false;
    // no other thread is running a job (and needs the CPU): polling for the reply pays
    p.alone = shared_.idle == shared_.live || options_.concurrency == 1;
    return p;
}

// Runs `io` (the exchange's round trip, or half of it) without the lock; true when it did not
// throw. What it throws is reported.
template <class T>
template <class F>
bool worker<T>::unlocked(std::unique_lock<std::mutex>& lock, F&& io) {
    lock.unlock();
    bool ok = false;
    try {
        io();
        ok = true;
    } catch (const error& e) {
        report(e);
    } catch (const std::exception& e) {
        report(error(errc::invalid_state, core_->what() + e.what()));
    }
    lock.lock();
    return ok;
}

// One exchange: the pending outcomes out, jobs for the idle threads in (and more, looking
// ahead). Called with the lock held and busy_ false; returns with the lock held.
template <class T>
void worker<T>::lead(std::unique_lock<std::mutex>& lock) {
    // enough jobs for every thread, and while looking ahead more (ready_ is empty, except for an
    // early exchange of next())
    const std::size_t ahead = jobs_ahead();
    const std::size_t running = shared_.live > shared_.idle ? shared_.live - shared_.idle : 0;
    const std::size_t in_hand = running + ready_.size();
    const std::size_t target = options_.concurrency + ahead;
    round_trip(lock, options_.concurrency == 1 ? shared_.idle + ahead : (target > in_hand ? target - in_hand : 0));
}

// An exchange of the pending outcomes and a take of `want` jobs, waiting for its reply (lead(),
// flush_held()). Called with the lock held and busy_ false; returns with the lock held.
template <class T>
void worker<T>::round_trip(std::unique_lock<std::mutex>& lock, std::size_t want) {
    plan p = begin_exchange(want);
    move_result r;
    const bool ok = unlocked(lock, [&] { r = exchange(p); });
    finish_exchange(lock, p, ok, r);
}

// The keeper's flush (concurrency 1, looking ahead): the outcomes that waited behind a job that
// runs long go out now, with no take (an exchange in flight lands first), unless an exchange is
// under way (it takes them).
template <class T>
void worker<T>::flush_held() {
    std::unique_lock<std::mutex> lock(shared_.mutex);
    if (busy_ || pending_.empty()) return;
    if (flight_) {
        land(lock);
        if (busy_ || pending_.empty()) return;
    }
    round_trip(lock, 0);
}

// Concurrency 1, the job about to run was leased ahead: writes the pending outcomes and the take
// of `want` jobs (while looking ahead, those that fill the jobs leased ahead up again; else
// none), and returns without waiting; land() reads the reply.
template <class T>
void worker<T>::launch(std::unique_lock<std::mutex>& lock, std::size_t want) {
    plan p = begin_exchange(want);
    const bool ok = unlocked(lock, [&] {
        connection& cmd = cmd_->get();
        const std::vector<std::string> args = exchange_args(p);
        const script& s = detail::move_script();
        cmd.send("EVALSHA", s.sha1(), static_cast<long long>(core_->keys.size()), core_->keys, args);
        flight_conn_ = &cmd;
    });
    if (ok) {
        flight_ = std::move(p);
        busy_ = false;
        return;
    }
    move_result none;
    finish_exchange(lock, p, false, none);
}

// Reads the reply of the exchange launch() wrote, and takes it in as lead() does.
template <class T>
void worker<T>::land(std::unique_lock<std::mutex>& lock) {
    busy_ = true;
    plan p = std::move(*flight_);
    flight_.reset();
    move_result r;
    const bool ok = unlocked(lock, [&] { r = receive_exchange(p); });
    finish_exchange(lock, p, ok, r);
}

// How many jobs a take leases beyond the threads' need: while looking ahead, 8 per thread (at
// most 128), else none. Exchanges then carry several outcomes and takes each: the move script's
// cost per job falls by half from 1 job per call to 4, and again from 16 to 64.
template <class T>
std::size_t worker<T>::jobs_ahead() const noexcept {
    if (!looking_ahead()) return 0;
    return std::min<std::size_t>(8 * options_.concurrency, 128);
}

// Whether a take leases jobs ahead of the idle threads' need (worker_options::lookahead_below).
template <class T>
bool worker<T>::looking_ahead() const noexcept {
    if (options_.lookahead_below.count() <= 0 || *shared_.closing) return false;
    const long long last = last_run_us_.load(std::memory_order_relaxed);
    return last >= 0 && last < options_.lookahead_below.count();
}

// Takes in an exchange's result (under the lock, busy_ true): the jobs it leased, the outcomes it
// recorded; a failed exchange's outcomes go again after a backoff. Returns with busy_ false.
template <class T>
void worker<T>::finish_exchange(std::unique_lock<std::mutex>& lock, plan& p, bool ok, move_result& r) {
    if (!ok) {
        shared_.rearm = shared_.rearm || p.rearm;
        if (!shared_.abandoned) {
            // the outcomes go again (the script recognises a resend); back off holding busy_
            for (auto& o : pending_) p.sending.push_back(std::move(o));
            pending_ = std::move(p.sending);
            // cut short by close() once (then outcomes are retried until close gives up)
            const bool was_closing = *shared_.closing;
            shared_.jobs_cv.wait_for(lock, lead_backoff_.next(),
                                     [&] { return shared_.abandoned || (*shared_.closing && !was_closing); });
        }
        busy_ = false;
        shared_.jobs_cv.notify_all();  // rare: let any thread try (or leave, when closing)
        return;
    }
    lead_backoff_.reset();
    busy_ = false;
    // the keeper renews leases only while it knows it holds some: the first one wakes it (with
    // every thread busy nothing else may wake it before the next stalled-job check)
    const bool first_lease = shared_.held.empty() && !r.jobs.empty();
    for (auto& j : r.jobs) {
        shared_.held[j->record().id] = j->lease();
        ready_.push_back(std::move(j));
    }
    for (const auto& o : p.sending) {
        // only this lease: the job may have been recovered and leased to this worker again
        const auto it = shared_.held.find(o.item->record().id);
        if (it != shared_.held.end() && it->second->lease == o.item->record().lease) shared_.held.erase(it);
    }
    if (p.want > 0) {
        // a marker the keeper popped while this exchange ran may announce jobs it did not see
        // limited: nothing may start before next_delay, whatever a marker announced meanwhile;
        // the take after it sets the marker again for the other workers
        shared_.fetch = !r.limited && (r.jobs.size() == p.want || shared_.wake_gen != p.gen);
        if (r.limited) shared_.rearm = true;
        bool wake_keeper = !shared_.fetch && !shared_.blocking;  // nothing left: the keeper blocks on the server
        if (!shared_.fetch && r.next_delay >= 0) {
            const auto at = clock::now() + std::chrono::milliseconds(r.next_delay);
            if (at < shared_.delayed_at) {
                shared_.delayed_at = at;
                wake_keeper = true;
            }
        }
        if (wake_keeper || first_lease) shared_.wake_keeper.notify();
    }
    // wake the others when there is something for them: jobs (one wake-up for all is cheaper
    // than a chain of single ones), outcomes to send, a fetch to lead, or (closing) the end of
    // this exchange they wait for to leave
    const bool wake = !ready_.empty() || !pending_.empty() || *shared_.closing || (shared_.fetch && shared_.idle > 1);
    if (wake || !p.sending.empty()) {
        lock.unlock();  // notify unlocked: the woken threads need the mutex at once
        if (wake) shared_.jobs_cv.notify_all();
        if (!p.sending.empty()) notify_outcomes(r, p.sending);
        lock.lock();
    }
}

template <class T>
typename worker<T>::outcome worker<T>::run_one(std::unique_ptr<job<T>> j) {
    outcome o;
    j->decode_data();
    const auto attempt = [&] { return "attempt " + std::to_string(j->attempts_made() + 1) + ": "; };
    if (!j->has_data()) {
        o.kind = detail::outcome_kind::failed_for_good;
        o.payload = j->decode_error();
        o.trace = attempt() + o.payload;
    } else {
        if (!j->record().scheduler.empty()) advance_scheduler(*j);
        detail::job_lease& lease = *j->lease();
        if (lease.timeout_ms > 0) {
            const auto at = clock::now() + std::chrono::milliseconds(lease.timeout_ms);
            lease.timeout_at = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
            shared_.wake_keeper.notify();  // it sleeps until the earliest timeout it knows
        }
        const auto& rec = j->record();
        std::shared_ptr<void> scope;  // held while the handler runs (observer::on_job_scope)
        if (observer* to = core_->redis.options().observer.get()) {
            job_event e = detail::attempt_event(*core_, job_stage::started, j->id(), rec, rec.attempts_made + 1);
            if (rec.processed > 0) {  // the server's clock: from when it was due to its start
                e.waited = std::chrono::milliseconds(std::max(0LL, rec.processed - (rec.created + rec.delay)));
            }
            o.observed = detail::observe_job(to, e);
            e.context = o.observed;
            scope = detail::observe_for(to, &observer::on_job_scope, e);
        }
        const auto began = clock::now();
        try {
            o.payload = handler_(*j);
            o.kind =
                j->record().parent_id.empty() ? detail::outcome_kind::completed : detail::outcome_kind::child_completed;
        } catch (const rate_limited_error& e) {
            o.kind = detail::outcome_kind::rate_limited;
            o.payload = e.what();
            o.retry_delay = e.retry_after().count();
        } catch (const unrecoverable_error& e) {
            o.kind = detail::outcome_kind::failed_for_good;
            o.payload = e.what();
            o.trace = attempt() + detail::describe_exception(e);
        } catch (const std::exception& e) {
            o.kind = detail::outcome_kind::failed;
            o.payload = e.what();
            o.trace = attempt() + detail::describe_exception(e);
        } catch (...) {
            o.kind = detail::outcome_kind::failed;
            o.payload = "exception of unknown type";
            o.trace = attempt() + o.payload;
        }
        o.ran = clock::now() - began;
        scope.reset();
        if (lease.cancel->requested.load()) {
            // cancelled (queue::cancel, or the timeout): the attempt's outcome is the cancel's
            auto [reason, retry] = lease.cancel->read();
            o.kind = retry ? detail::outcome_kind::failed : detail::outcome_kind::failed_for_good;
            o.trace = attempt() + reason;
            o.payload = std::move(reason);
        }
        if (o.kind == detail::outcome_kind::failed) {
            static thread_local std::minstd_rand rng(std::random_device{}());
            const double r = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
            const backoff_policy b{static_cast<backoff_policy::kind>(j->record().backoff_kind),
                                   std::chrono::milliseconds(j->record().backoff_ms),
                                   static_cast<double>(j->record().jitter_permille) / 1000.0};
            o.retry_delay = b.delay_before(j->attempts_made() + 1, r).count();
        }
    }
    o.item = std::move(j);
    return o;
}

// The move script's ARGV for an exchange (and its token, new for each).
template <class T>
std::vector<std::string> worker<T>::exchange_args(plan& p) {
    // only the leader (busy_) gets here, so seq_ is its own
    p.token = worker_id_ + "-" + std::to_string(++seq_);
    std::vector<std::string> args;
    args.reserve(6 + p.sending.size() * 11);
    args.push_back(core_->job_prefix);
    args.push_back(p.token);
    args.push_back(std::to_string(options_.lease_duration.count()));
    args.push_back(std::to_string(p.want));
    args.emplace_back(p.rearm ? "1" : "0");
    args.push_back(std::to_string(p.sending.size()));
    for (const auto& o : p.sending) {
        const auto& rec = o.item->record();
        args.push_back(rec.id);
        args.push_back(rec.lease);
        args.emplace_back(1, static_cast<char>(o.kind));
        args.push_back(o.payload);
        args.push_back(o.trace);
        args.push_back(std::to_string(o.retry_delay));
        args.push_back(std::to_string(rec.attempts_made + 1));
        const bool done = o.kind == detail::outcome_kind::completed || o.kind == detail::outcome_kind::child_completed;
        const long long keep_n = done ? rec.keep_completed_count : rec.keep_failed_count;
        const long long keep_age = done ? rec.keep_completed_age : rec.keep_failed_age;
        args.push_back(keep_n >= 0 ? std::to_string(keep_n) : std::string());
        args.push_back(keep_age > 0 ? std::to_string(keep_age) : std::string());
        args.push_back(std::to_string(rec.processed));
        args.emplace_back(rec.dedup_id.empty() ? "" : "1");
    }
    return args;
}

template <class T>
typename worker<T>::move_result worker<T>::exchange(plan& p) {
    // only the leader (busy_) gets here, so cmd_ is its own
    connection& cmd = cmd_->get();
    const std::vector<std::string> args = exchange_args(p);
    const bool poll = p.alone && options_.reply_spin.count() > 0 && reply_timing_.poll_next(seq_);
    cmd.set_read_spin(poll ? options_.reply_spin : std::chrono::microseconds(0));
    const auto sent = clock::now();
    detail::move_reply m = cmd.eval<detail::move_reply>(detail::move_script(), core_->keys, args);
    reply_timing_.record(poll, std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - sent));
    return to_result(std::move(m), p.token);
}

// The reply of an exchange launch() wrote (the job ahead ran meanwhile). A script the server
// does not know yet (NOSCRIPT: it ran nothing) goes again, whole, as exchange() sends it.
template <class T>
typename worker<T>::move_result worker<T>::receive_exchange(plan& p) {
    connection& cmd = *flight_conn_;
    cmd.set_read_spin(p.alone ? options_.reply_spin : std::chrono::microseconds(0));
    const auto timeout = core_->redis.options().command_timeout;
    const auto limit = timeout.count() > 0 ? timeout : std::chrono::milliseconds(3600 * 1000);
    std::optional<detail::move_reply> m;
    bool noscript = false;
    const wait_status w = cmd.wait_reply(flight_wake_, limit, [&](reply_view r) {
        if (r.is_error() && detail::is_noscript(r.str())) {
            noscript = true;
        } else {
            m = reply_traits<detail::move_reply>::convert(r);
        }
    });
    if (w != wait_status::reply) {
        cmd_->close();  // its reply is still due: never read it as another's
        throw error(errc::timeout, core_->what() + "no reply to the take within " + std::to_string(limit.count()) +
                                       " ms; reconnecting");
    }
    if (noscript) return exchange(p);
    return to_result(std::move(*m), p.token);
}

// Jobs of a move reply, leased as "<now>|<token>".
template <class T>
typename worker<T>::move_result worker<T>::to_result(detail::move_reply m, const std::string& token) {
    move_result out;
    out.codes = std::move(m.codes);
    out.now = m.now;
    out.next_delay = m.next_delay;
    out.limited = m.limited;
    out.jobs.reserve(m.jobs.size());
    const std::string lease_text = std::to_string(out.now) + "|" + token;
    for (detail::job_record& rec : m.jobs) {
        rec.lease = lease_text;
        rec.state = detail::queue_model::state_letter::active;
        rec.processed = out.now;
        auto lease = std::make_shared<detail::job_lease>();
        lease->timeout_ms = rec.timeout_ms;
        lease->core = core_;
        lease->lease = lease_text;
        lease->closing = shared_.closing;
        out.jobs.push_back(std::unique_ptr<job<T>>(new job<T>(std::move(rec), std::move(lease), false)));
    }
    return out;
}

namespace detail {
// The state letter of a job put back in line: prioritized or waiting.
inline char in_line(const job_record& rec) noexcept {
    return rec.priority > 0 ? queue_model::state_letter::prioritized : queue_model::state_letter::waiting;
}
}  // namespace detail

template <class T>
void worker<T>::notify_outcomes(const move_result& r, std::vector<outcome>& sent) {
    for (std::size_t i = 0; i < sent.size() && i < r.codes.size(); ++i) {
        outcome& o = sent[i];
        job<T>& j = *o.item;
        auto& rec = j.record();
        const auto code = static_cast<detail::move_code>(r.codes[i]);
        if (code == detail::move_code::lease_lost) {
            report(error(errc::invalid_state,
                         core_->what() + "job " + j.id() +
                             ": lease lost (the job was recovered as stalled, or removed); its outcome was discarded"));
            continue;
        }
        if (code == detail::move_code::rate_limited) {
            rec.state = detail::in_line(rec);  // back in line, no attempt used, no callback
            continue;
        }
        ++rec.attempts_made;
        if (code == detail::move_code::completed) {
            rec.state = detail::queue_model::state_letter::completed;
            rec.finished = r.now;
            rec.return_value = std::move(o.payload);
            report_end(job_stage::completed, j, o);
            call("on_completed", options_.on_completed, static_cast<const job<T>&>(j));
            continue;
        }
        rec.failed_reason = o.payload;
        job_failure f;
        f.reason = std::move(o.payload);
        f.will_retry = code == detail::move_code::retry_delayed || code == detail::move_code::retry_now;
        f.retry_in = std::chrono::milliseconds(code == detail::move_code::retry_delayed ? o.retry_delay : 0);
        rec.state = code == detail::move_code::retry_delayed ? detail::queue_model::state_letter::delayed
                    : code == detail::move_code::retry_now   ? detail::in_line(rec)
                                                             : detail::queue_model::state_letter::failed;
        if (code == detail::move_code::failed) rec.finished = r.now;
        report_end(f.will_retry ? job_stage::retrying : job_stage::failed, j, o, f.reason);
        call("on_failed", options_.on_failed, static_cast<const job<T>&>(j), f);
    }
}

// Moves the job's scheduler on to its next tick (making that tick's job) before the handler
// runs: a scheduler's ticks go on while its jobs run, however long they take. Failures are
// reported, and repaired by the keeper's periodic look (repair_schedulers).
template <class T>
void worker<T>::advance_scheduler(const job<T>& j) {
    const auto& rec = j.record();
    try {
        const auto r = core_->redis.template eval<reply>(
            idempotent, detail::extras_script<detail::queue_lua::scheduler_list>(), core_->keys,
            std::vector<std::string>{core_->job_prefix, rec.scheduler, "0", "1"});
        if (r.size() == 2) detail::advance_scheduler(*core_, rec.scheduler, r[1], rec.tick, rec.processed);
    } catch (const error& e) {
        report(e);
    } catch (const std::exception& e) {
        report(error(errc::invalid_state, core_->what() + "scheduler of job " + j.id() + ": " + e.what()));
    }
}

}  // namespace v0
}  // namespace redkit
