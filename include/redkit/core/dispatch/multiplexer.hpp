// SPDX-License-Identifier: MIT
// detail::multiplexer: many threads, one connection. Commands from any number of threads are
// written together and their replies matched in order (automatic pipelining). A client with
// client_options::multiplex (the default) sends its commands through one, except that while
// fewer than spill_below threads call, a caller that finds it busy takes a free pooled
// connection instead; client::submit() uses one always. The I/O thread starts with the first
// command that has to queue.
//
// What it gets right (measured with a prototype on this project's 2-core VMs, see the README):
//   - One thread alone pays nothing extra: a caller that finds the connection idle writes its
//     own command and reads its own reply, as the pool would (no hand-off to another thread).
//   - A caller that finds it busy queues its command and parks on a futex (no spinning). Whoever
//     drives the connection writes everything queued in one write once the previous batch's
//     replies are in, so batches size themselves to the load. The server then pays one read and
//     one write per batch instead of per command: that is the whole gain.
//   - Under contention an I/O thread drives: the caller that drove hands over once it has its
//     own reply, so no caller serves the others for long.
//   - The driver does not wake every caller itself, nor one system call per caller: a caller
//     that queues learns with its push which batch it joined, and sleeps on that batch's futex
//     word for its CPU. Once the batch's replies are read the driver wakes one sleeper per CPU,
//     and the first of each group to run wakes the rest of its group with one system call, on
//     its own CPU (no inter-processor interrupt for them). It replaced a futex word per caller
//     woken in a fan-out (each woken caller woke four more): at 200 threads 4.0-4.25x
//     redis-benchmark -c 200 instead of ~3.5x, with less CPU per command, at the price of a
//     wider spread between threads (the fastest 1.1-1.45x the slowest, from 1.01-1.04x): threads
//     now seldom change CPUs. Waiters of submitted commands (future::get) keep a word of their
//     own, queued by CPU and woken in the fan-out (wake_some).
// A reply that does not come within command_timeout fails its command with errc::timeout and
// closes the connection: the commands behind it in the batch (sent, their replies in doubt) fail
// with errc::connection_closed; commands still queued go out on a new connection. A command
// still queued when its command_timeout has passed fails with errc::timeout, unsent, when the
// driver next takes a batch: callers sleep without a timer (a timer armed and cancelled per
// command cost ~10% of the throughput at 200 threads on a VM), so while the driver waits for a
// reply or a connect, what queued behind it learns its fate when that ends (each is bounded by
// command_timeout or connect_timeout). Back-pressure:
// at most max_in_flight commands and max_queued_bytes queued; past either, callers wait up to
// pool_wait_timeout, then get errc::pool_exhausted. Commands that block or hold connection state
// (BLPOP, SUBSCRIBE, MULTI, WATCH, SELECT...) never come here: command_traits::shareable
// (core/commands.hpp). The futex and lock-free primitives are in futex.hpp.
#pragma once

#include <redkit/connection.hpp>
#include <redkit/core/dispatch/completion.hpp>
#include <redkit/core/dispatch/delay_queue.hpp>
#include <redkit/core/dispatch/futex.hpp>
#include <redkit/core/io/connection_access.hpp>
#include <redkit/core/io/observe.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>
#include <redkit/reply.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <linux/futex.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

namespace redkit {
inline namespace v0 {

namespace detail {

/// A command on its way through a multiplexer.
struct mux_request {
    mux_request* next = nullptr;        // the queue's link
    std::string wire;                   // the command in RESP
    std::string command, key;           // for messages (submit: the caller's argv is gone by then)
    reply_ptr reply;                    // the reply (set by the driver)
    io_status status;                   // or the failure
    bool demoted = false;               // the reply is READONLY from a demoted primary (Sentinel)
    std::exception_ptr refused;         // a server_error of the connection's setup (WRONGPASS...)
    std::shared_ptr<mux_request> self;  // submitted: its driver's share until it finishes
    parking park;                       // finished here; a caller waiting for it parks on it
    // submitted: what runs when it finishes, attached by then() before or after: 0 none yet,
    // 1 attached, 2 finished (whoever comes second runs it)
    std::unique_ptr<mux_completion> completion;
    std::atomic<int> completion_state{0};
    std::atomic<bool> withdrawn{false};  // cancelled: fails unsent if still queued (take_batch)
    unsigned leading = 0;                // replies before the command's own, dropped (ASKING's)
    bool keep_leading = false;           // ... or kept, in `leading_replies` (a pipeline's, submitted whole)
    std::vector<reply_ptr> leading_replies;
    std::shared_ptr<void> made;  // a promise's value: the future's get() returns it (no reply then)
    // a cluster command's current hop (the request a node's multiplexer sends for this one,
    // which stays out of every queue): set before the request is shared, read by withdraw
    std::weak_ptr<mux_request> hop;
    int slot = -1;    // a cluster command's slot (-1: no key), where a failover wait sends it again
    int retries = 0;  // sent again after its connection could not be opened (multiplexer::retry_unsent)
    /// Still queued at this time, it fails unsent (errc::timeout).
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    /// A command submitted while an observer is set: reported when it finishes (end_watch).
    std::unique_ptr<command_watch> watch;
};

/// Reports a watched request's outcome to the observer (`server`: where it was sent, when its
/// watch does not say), before its waiter or callback sees it.
inline void end_watch(mux_request& r, const std::string* server = nullptr) noexcept {
    const std::unique_ptr<command_watch> w = std::move(r.watch);
    if (w->server == nullptr) w->server = server;
    if (r.retries > w->retries) w->retries = r.retries;
    if (r.refused) {
        w->end_failed(errc_of(r.refused, errc::connect_failed));
    } else if (!r.status.ok()) {
        w->end_failed(r.status.code);
    } else {
        w->end_with(r.reply.get(), r.keep_leading ? &r.leading_replies : nullptr);
    }
}

/// Runs what was attached to r (then(), co_await) once r is finished, unless then() is about to:
/// the completion handshake's second half. What it throws goes to on_error.
inline void run_completion_of(std::shared_ptr<mux_request> r,
                              const std::function<void(const error&)>& on_error) noexcept;
/// Finishes a request that is in no multiplexer's queue (a cluster command's, whose hops are):
/// wakes its waiter, runs its completion.
inline void finish_detached(std::shared_ptr<mux_request> r, const std::function<void(const error&)>& on_error) noexcept;
/// The completion handshake's first half: attaches c to r; false, with c given back, when r is
/// finished already (the caller runs it).
inline bool attach_detached(const std::shared_ptr<mux_request>& r, std::unique_ptr<mux_completion>& c) noexcept;

/// Many threads' commands on one connection (see the header comment). The executor
/// (executor.hpp) and redkit::future drive it; its members are open to them and to the tests.
class multiplexer {
public:
    /// Connects lazily (the first command connects, with the options' setup, TLS, Sentinel).
    /// Starts no thread: the I/O thread starts with the first command that has to queue (a
    /// single-threaded program never has one, and may fork freely).
    explicit multiplexer(std::shared_ptr<const client_options> options) : options_(std::move(options)) {}
    /// Sends what is queued (submitted commands get their replies), then stops the I/O thread.
    ~multiplexer() {
        if (!io_.joinable()) return;  // never started: nothing was ever queued
        retries_.stop();              // (those waiting fail now; one sent again is queued below)
        stopping_.store(true);
        signal_io();
        io_.join();
    }
    multiplexer(const multiplexer&) = delete;
    multiplexer& operator=(const multiplexer&) = delete;

    /// Whether the shared connection is open now.
    bool connected() const noexcept { return connected_.load(std::memory_order_relaxed); }
    /// Where the shared connection was last connected (interned; null before, or when nothing observes).
    const std::string* server() const noexcept { return server_.load(std::memory_order_relaxed); }

    /// Whether the calling thread is this multiplexer's I/O thread.
    bool on_io_thread() const noexcept { return io_.joinable() && io_.get_id() == std::this_thread::get_id(); }

    /// Commands queued or in flight now.
    std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }

    /// Whether a caller had better take a free pooled connection than queue here: the
    /// connection is busy, but fewer than spill_below threads are calling (counted by the
    /// callers' guards), too few for batches to pay for the hand-off (a queued caller costs a
    /// sleep, a wake and a thread switch more than one on its own connection).
    bool lightly_loaded() const noexcept {
        return driving_.load(std::memory_order_relaxed) != none &&
               callers_.load(std::memory_order_relaxed) < spill_below;
    }
    /// Callers (synchronous, through a client) below which a busy connection sends them to the pool.
    static constexpr std::size_t spill_below = 16;

    /// Counts a synchronous caller for lightly_loaded() while it lives.
    class caller_guard {
    public:
        explicit caller_guard(multiplexer& m) noexcept : m_(m) { m_.callers_.fetch_add(1, std::memory_order_relaxed); }
        ~caller_guard() { m_.callers_.fetch_sub(1, std::memory_order_relaxed); }
        caller_guard(const caller_guard&) = delete;
        caller_guard& operator=(const caller_guard&) = delete;

    private:
        multiplexer& m_;
    };

    /// Most commands queued or in flight before callers wait.
    static constexpr std::size_t max_in_flight = 8192;
    /// Most bytes of queued commands before callers wait.
    static constexpr std::size_t max_queued_bytes = std::size_t{64} << 20;
    /// Submitted commands nobody waits for go out within this (the I/O thread takes an open offer
    /// at its next look; it looks this often while submits keep coming, see io_loop()).
    static constexpr std::chrono::microseconds offer_period{100};
    /// Looks without a new offer before the I/O thread sleeps until signalled again.
    static constexpr int quiet_looks = 100;

    using request = detail::mux_request;
    /// Who drives the connection. `offered`: the I/O thread is signalled to take over but has not
    /// yet; a caller waiting for a submitted command may take it first and drive itself.
    enum driver : int { none, caller, io, offered };

    /// Sends one command and waits for its reply (the caller drives when the connection is idle).
    /// `demoted`: the reply is READONLY from a primary a failover demoted (the command did not
    /// run; the connection is replaced before the next batch).
    detail::io_status run(const detail::argv& a, detail::reply_ptr& out, bool& demoted);
    /// Queues a command without waiting for its reply (the request finishes on its own; the
    /// multiplexer keeps it alive until then through r->self).
    void submit(std::shared_ptr<request> r);
    /// Waits until a submitted request finishes: drives the connection itself when nobody does
    /// (the one thread with many commands in flight then pays no hand-off), else parks.
    void await(request& r);
    /// As await(), without driving, until `deadline`: whether it finished.
    bool await_until(request& r, std::chrono::steady_clock::time_point deadline);
    /// Attaches what runs when the submitted request r finishes, and has the I/O thread send it
    /// now if it was only offered (nobody will wait for it). False, with `c` left to the caller
    /// to run, when r has finished already.
    bool attach(const std::shared_ptr<request>& r, std::unique_ptr<mux_completion>& c) noexcept;

    bool admit(std::size_t bytes);
    /// Queues r; returns the batch it joined (modulo batch_slots), which take_batch() takes whole.
    unsigned enqueue(request* r, bool submitted) noexcept;
    void release_driving() noexcept;
    void signal_io() noexcept;
    void io_wait() noexcept;
    void io_wait_for(std::chrono::microseconds grace) noexcept;
    void io_loop();
    /// Starts the I/O thread if it is not running (throws std::system_error if it cannot).
    void start_io() {
        std::call_once(io_started_, [this] {
            io_ = std::thread([this] {
                ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // the offer period is short: keep it so
                io_loop();
            });
        });
    }
    /// Empties the queue into `batch` (oldest first), failing what waited past its deadline;
    /// returns the batch's number (modulo batch_slots), or -1 when no synchronous caller waits in
    /// it (the queue was empty, or held submitted commands only): nobody to wake_batch().
    int take_batch(std::vector<request*>& batch);
    /// Wakes the synchronous callers of batch `slot` (whose requests are all finished).
    void wake_batch(int slot) noexcept;
    /// Sleeps until r (queued by this thread in batch `slot`) is finished.
    void sleep_in_batch(request& r, unsigned slot) noexcept;
    void run_batch(std::vector<request*>& batch);
    /// Hands r its outcome; its caller is woken now, or (wake_now false) by the fan-out.
    void finish(request& r, bool wake_now = false);
    /// A submitted request with a completion (then(), co_await, Asio) whose connection could not
    /// be opened, so it provably was not sent, is sent again after a backoff, up to max_retries
    /// times, as a blocking call would be (a Sentinel failover, a restart): true when it will be.
    bool retry_unsent(request& r);
    void report(const error& e) const noexcept { detail::notify(options_->on_error, e); }
    void close_connection() noexcept {
        conn_.reset();
        connected_.store(false, std::memory_order_relaxed);
    }
    void wake_some(std::size_t n) noexcept;
    void wake_each_cpu() noexcept;

    std::shared_ptr<const client_options> options_;

    // The queue: a lock-free stack the driver empties at once (and reverses, for FIFO order).
    // Its head is a request* with the number of the batch it will be (modulo batch_slots) in the
    // low bits (a request is aligned to more), so a caller learns its batch with its push.
    std::atomic<std::uintptr_t> queued_{0};
    static constexpr unsigned batch_slots = 4;  // batches with sleepers: the one in flight, the next
    static constexpr std::uintptr_t slot_mask = batch_slots - 1;
    static request* head_of(std::uintptr_t v) noexcept { return reinterpret_cast<request*>(v & ~slot_mask); }
    bool anything_queued() const noexcept { return head_of(queued_.load()) != nullptr; }
    std::atomic<int> driving_{none};  // who drives the connection; only the driver touches conn_
    std::unique_ptr<connection> conn_;

    std::atomic<bool> connected_{false};               // conn_ is open (for client::open_connections())
    std::atomic<const std::string*> server_{nullptr};  // conn_'s server, interned (set only when observed)
    std::atomic<std::size_t> callers_{0};              // synchronous callers in a client call now
    std::atomic<std::size_t> in_flight_{0};            // queued or written, not finished
    std::atomic<std::size_t> queued_bytes_{0};         // queued, not written
    std::mutex space_mutex_;                           // back-pressure only (callers waiting for room)
    std::condition_variable space_cv_;
    std::atomic<int> space_waiters_{0};

    // futex words of finished submitted requests whose waiters sleep, by the CPU they sleep on
    // (modulo rings_)
    const unsigned rings_ = std::max(1U, std::min(std::thread::hardware_concurrency(), 8U));
    const std::unique_ptr<detail::wake_ring[]> to_wake_{new detail::wake_ring[rings_]};
    // where synchronous callers sleep: by batch (modulo batch_slots) and CPU (modulo rings_)
    const std::unique_ptr<detail::wake_group[]> groups_{new detail::wake_group[batch_slots * rings_]};
    std::atomic<int> io_word_{0};  // the I/O thread's futex word: 0 idle, 1 signalled, 2 asleep
    std::atomic<bool> stopping_{false};
    // While the I/O thread looks at the offers periodically, submitters need not signal it.
    std::atomic<bool> io_looking_{false};
    std::atomic<unsigned> offers_{0};  // offers made (the I/O thread keeps looking while they come)
    std::once_flag io_started_;
    std::thread io_;       // started by start_io(), before the first command is queued
    delay_queue retries_;  // retry_unsent()'s waits
};

// ---- implementation ----

// A callback the multiplexer runs (future::then, a resumed coroutine) may not wait for a reply:
// it may be the very thread that would read it (client::command(), a future's get()).
inline void refuse_wait_in_completion() {
    if (completing_here() > 0) {
        throw error(errc::invalid_state,
                    "redkit: a completion callback (future::then, co_await) may not wait for a reply: it runs on "
                    "the thread that reads replies; send with submit() and then() or co_await instead");
    }
}

inline bool multiplexer::admit(std::size_t bytes) {
    const auto roomy = [&] {
        return in_flight_.load(std::memory_order_relaxed) < max_in_flight &&
               queued_bytes_.load(std::memory_order_relaxed) + bytes <= max_queued_bytes;
    };
    if (roomy()) return true;
    // a completion callback runs on the thread that reads replies: waiting there for room would
    // only wait out pool_wait_timeout, since the room comes from that very thread
    if (completing_here() > 0) return false;
    std::unique_lock<std::mutex> lock(space_mutex_);
    ++space_waiters_;
    const bool ok = space_cv_.wait_for(lock, options_->pool_wait_timeout, roomy);
    --space_waiters_;
    return ok;
}

inline unsigned multiplexer::enqueue(request* r, bool submitted) noexcept {
    static_assert(alignof(request) > slot_mask, "the batch number lives in a request pointer's low bits");
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    queued_bytes_.fetch_add(r->wire.size(), std::memory_order_relaxed);
    std::uintptr_t head = queued_.load(std::memory_order_relaxed);
    do {
        r->next = head_of(head);
    } while (!queued_.compare_exchange_weak(head, reinterpret_cast<std::uintptr_t>(r) | (head & slot_mask),
                                            std::memory_order_seq_cst, std::memory_order_relaxed));
    const auto slot = static_cast<unsigned>(head & slot_mask);
    // nobody drives: the I/O thread takes over (a submitted command's: after a grace period in
    // which its submitter may come to wait and drive itself); it may sleep while it drives
    int d = driving_.load();
    if (d == none || (!submitted && d == offered)) {
        if (driving_.compare_exchange_strong(d, submitted ? offered : io)) {
            if (!submitted) {
                signal_io();
            } else {
                offers_.fetch_add(1, std::memory_order_relaxed);
                if (!io_looking_.load()) signal_io();  // else it looks within offer_period
            }
            return slot;
        }
    }
    if (io_word_.load(std::memory_order_relaxed) == 2 && driving_.load() == io) signal_io();
    return slot;
}

// A driver stops driving; whatever was queued meanwhile is not left behind (whoever pushed saw
// a driver, so the one leaving checks the queue after it has left: one of the two sees the other).
inline void multiplexer::release_driving() noexcept {
    driving_.store(none);
    int expected = none;
    if (anything_queued() && driving_.compare_exchange_strong(expected, io)) signal_io();
}

inline void multiplexer::signal_io() noexcept {
    if (io_word_.exchange(1) == 2) ::syscall(SYS_futex, &io_word_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

inline void multiplexer::io_wait() noexcept {
    int s = io_word_.load();
    for (;;) {
        if (s == 1) {
            io_word_.store(0);
            return;
        }
        if (s == 0) {
            if (!io_word_.compare_exchange_weak(s, 2)) continue;
            s = 2;
        }
        ::syscall(SYS_futex, &io_word_, FUTEX_WAIT_PRIVATE, 2, nullptr, nullptr, 0);
        s = io_word_.load();
    }
}

// As io_wait(), or until `grace` passes.
inline void multiplexer::io_wait_for(std::chrono::microseconds grace) noexcept {
    int s = 0;
    if (!io_word_.compare_exchange_strong(s, 2)) {
        if (s == 1) io_word_.store(0);
        return;
    }
    const timespec ts{0, static_cast<long>(grace.count()) * 1000};
    ::syscall(SYS_futex, &io_word_, FUTEX_WAIT_PRIVATE, 2, &ts, nullptr, 0);
    s = 2;
    if (!io_word_.compare_exchange_strong(s, 0) && s == 1) io_word_.store(0);
}

inline detail::io_status multiplexer::run(const detail::argv& a, detail::reply_ptr& out, bool& demoted) {
    // one request per thread, reused
    thread_local std::unique_ptr<request> spare;
    if (!spare) spare = std::make_unique<request>();
    request& r = *spare;
    r.wire.clear();
    detail::append_resp(r.wire, a);
    r.reply.reset();
    r.status = {};
    r.demoted = false;
    r.refused = nullptr;
    r.park.reset();
    const auto timeout = options_->command_timeout;
    r.deadline =
        timeout.count() > 0 ? std::chrono::steady_clock::now() + timeout : std::chrono::steady_clock::time_point::max();

    int expected = none;
    if (driving_.load(std::memory_order_relaxed) == none && driving_.compare_exchange_strong(expected, caller)) {
        // idle: this caller writes its own command and reads its own reply, as the pool would
        in_flight_.fetch_add(1, std::memory_order_relaxed);
        std::vector<request*> mine{&r};
        run_batch(mine);
        if (anything_queued()) {
            driving_.store(io);  // others queued meanwhile: the I/O thread takes over
            signal_io();
        } else {
            release_driving();
        }
        if (r.refused) std::rethrow_exception(std::exchange(r.refused, nullptr));
        out = std::move(r.reply);
        demoted = r.demoted;
        return std::move(r.status);
    }
    refuse_wait_in_completion();
    start_io();
    if (!admit(r.wire.size())) {
        return {errc::pool_exhausted, false,
                "the multiplexed connection has " + std::to_string(max_in_flight) +
                    " commands (or its bytes) in flight for longer than pool_wait_timeout"};
    }
    // no timer of its own (arming and cancelling one per command cost ~10% of the throughput at
    // 200 threads on a VM): the driver fails it once its deadline passed (take_batch), and
    // bounds the read of its reply
    sleep_in_batch(r, enqueue(&r, false));
    wake_some(4);  // submitted commands' waiters, if any
    if (r.refused) std::rethrow_exception(std::exchange(r.refused, nullptr));
    out = std::move(r.reply);
    demoted = r.demoted;
    return std::move(r.status);
}

inline void multiplexer::submit(std::shared_ptr<request> r) {
    start_io();
    if (!admit(r->wire.size())) {
        r->status = {errc::pool_exhausted, false,
                     "the multiplexed connection has " + std::to_string(max_in_flight) +
                         " commands (or its bytes) in flight for longer than pool_wait_timeout"};
        if (r->watch) end_watch(*r, server());
        unsigned cpu = 0;
        (void)r->park.finish(cpu);  // nobody waits yet
        r->completion_state.store(2);
        return;
    }
    request* raw = r.get();
    raw->self = std::move(r);
    enqueue(raw, true);
}

inline bool multiplexer::attach(const std::shared_ptr<request>& r, std::unique_ptr<mux_completion>& c) noexcept {
    if (!attach_detached(r, c)) return false;
    // offered to a submitter who may come to wait and drive: nobody will, send it now
    int d = offered;
    if (driving_.compare_exchange_strong(d, io)) signal_io();
    return true;
}

inline void multiplexer::await(request& r) {
    if (!r.park.done()) refuse_wait_in_completion();
    while (!r.park.done()) {
        int d = driving_.load();
        if ((d == none || d == offered) && driving_.compare_exchange_strong(d, caller)) {
            // Every batch taken before ours is finished (a driver runs its batch to the end before
            // it lets go), so r is done or still queued: the batches below reach it.
            thread_local std::vector<request*> batch;
            while (!r.park.done()) {
                const int slot = take_batch(batch);
                if (!batch.empty()) run_batch(batch);
                wake_batch(slot);
                if (batch.empty()) break;
                batch.clear();
            }
            if (anything_queued()) {
                driving_.store(io);
                signal_io();
            } else {
                release_driving();
            }
            continue;
        }
        // someone drives (or is about to): r's reply comes to us
        (void)r.park.wait_until(std::chrono::steady_clock::time_point::max());
    }
    wake_some(4);
}

inline bool multiplexer::await_until(request& r, std::chrono::steady_clock::time_point deadline) {
    if (!r.park.wait_until(deadline)) return false;
    wake_some(4);
    return true;
}

inline int multiplexer::take_batch(std::vector<request*>& batch) {
    // the queue empties, and the next batch's number goes into its head
    std::uintptr_t head = queued_.load();
    while (!queued_.compare_exchange_weak(head, (head + 1) & slot_mask)) {
    }
    request* r = head_of(head);
    if (!r) return -1;
    const int slot = static_cast<int>(head & slot_mask);
    const std::size_t from = batch.size();
    std::size_t bytes = 0;
    bool expired = false, callers = false;  // callers: synchronous ones, asleep in the batch's groups
    const auto now = std::chrono::steady_clock::now();
    while (r) {
        request* next = r->next;  // r may be gone once finished
        bytes += r->wire.size();
        callers = callers || !r->self;
        if (r->deadline <= now) {
            // waited in the queue past its timeout (behind a slow reply or connect): fails unsent
            r->status = {errc::timeout, false,
                         "timeout after " + std::to_string(options_->command_timeout.count()) +
                             " ms in the queue of the multiplexed connection"};
            finish(*r, true);
            expired = true;
        } else if (r->withdrawn.load(std::memory_order_relaxed)) {
            r->status = {errc::cancelled, false, "cancelled before it was sent"};
            finish(*r, true);
            expired = true;
        } else {
            batch.push_back(r);
        }
        r = next;
    }
    if (expired) wake_batch(slot);  // now, not after the batch (the others look and sleep again)
    std::reverse(batch.begin() + static_cast<std::ptrdiff_t>(from), batch.end());  // oldest first
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    if (space_waiters_.load() > 0) {
        std::lock_guard<std::mutex> lock(space_mutex_);
        space_cv_.notify_all();
    }
    return callers ? slot : -1;
}

// Submitted commands are offered, not handed over: their submitter, once it waits for a reply,
// may take the connection and write and read the batch itself (future::get), which saves the
// two thread switches a hand-off costs. The I/O thread takes an offer still open when it looks;
// it looks every offer_period while offers keep coming (submitters then need not signal it) and
// sleeps until signalled after quiet_looks looks without one.
inline void multiplexer::io_loop() {
    std::vector<request*> batch;
    unsigned seen_offers = offers_.load(std::memory_order_relaxed);
    int quiet = 0;
    for (;;) {
        int d = driving_.load();
        if (d == offered) {
            if (!io_looking_.load() && !stopping_.load()) {
                io_looking_.store(true);  // signalled for a first offer: its submitter gets a period
                quiet = 0;
                io_wait_for(offer_period);
                continue;
            }
            (void)driving_.compare_exchange_strong(d, io);
        }
        if (driving_.load() != io) {
            wake_some(static_cast<std::size_t>(-1));  // nobody left asleep behind us
            if (stopping_.load()) break;
            if (io_looking_.load()) {
                const unsigned offers = offers_.load(std::memory_order_relaxed);
                quiet = offers == seen_offers ? quiet + 1 : 0;
                seen_offers = offers;
                if (quiet < quiet_looks) {
                    io_wait_for(offer_period);
                    continue;
                }
                io_looking_.store(false);
                if (driving_.load() == offered) continue;  // an offer made as we stopped looking
            }
            io_wait();
            continue;
        }
        const int slot = take_batch(batch);
        if (!batch.empty()) run_batch(batch);
        wake_batch(slot);
        if (batch.empty()) {
            release_driving();
            continue;
        }
        batch.clear();
    }
}

inline void multiplexer::run_batch(std::vector<request*>& batch) {
    const auto fail_all = [&](std::size_t from, const detail::io_status& st) {
        for (std::size_t i = from; i < batch.size(); ++i) {
            batch[i]->status = st;
            finish(*batch[i]);
        }
    };
    if (conn_ && !conn_->broken() && options_->idle_check_after.count() > 0 &&
        std::chrono::steady_clock::now() - detail::connection_access::last_used(*conn_) >= options_->idle_check_after &&
        !detail::connection_access::idle_check(*conn_)) {
        // closed by the server while idle (its timeout, CLIENT KILL, a restart): as the pool does,
        // replace it before anything is written, so the batch provably was not sent on it
        close_connection();
        report(error(errc::connection_closed, "redkit: the shared connection to " +
                                                  detail::transport::endpoint_of(*options_) +
                                                  " was closed while idle; replacing it"));
    }
    // a failover the sentinels announced: wait, then write to the new primary
    if (conn_ && !detail::connection_access::await_failover(*conn_)) close_connection();
    if (!conn_ || conn_->broken() || detail::connection_access::stale(*conn_)) {
        close_connection();
        detail::io_status failure;
        try {
            conn_ = detail::connection_access::open(options_, failure);
        } catch (...) {
            // a refused setup (WRONGPASS...) or a configuration that cannot be loaded: every caller
            // gets the exception itself
            const std::exception_ptr refused = std::current_exception();
            for (request* r : batch) r->refused = refused;
            fail_all(0, {errc::connect_failed, false, "the shared connection could not be set up"});
            return;
        }
        if (!conn_) {
            fail_all(0, failure);
            return;
        }
        connected_.store(true, std::memory_order_relaxed);
        server_.store(detail::connection_access::server(*conn_), std::memory_order_relaxed);
    }
    detail::transport& wire = detail::connection_access::wire(*conn_);
    try {
        for (request* r : batch) wire.append_formatted(r->wire);
    } catch (...) {
        detail::connection_access::poison(*conn_);
        close_connection();
        fail_all(0, {errc::io_error, false, "out of memory while queueing commands"});
        return;
    }
    if (auto st = wire.flush(); !st.ok()) {
        close_connection();
        fail_all(0, st);
        return;
    }
    if (options_->observer) {
        batch_event e;
        if (const std::string* at = server()) e.server = *at;
        e.commands = batch.size();
        e.in_flight = in_flight_.load(std::memory_order_relaxed);
        detail::observe(options_->observer.get(), &observer::on_batch, e);
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        detail::io_status st;
        // replies that come before the command's own (ASKING's, read and dropped; a pipeline's, kept)
        for (unsigned k = 0; k < batch[i]->leading && st.ok(); ++k) {
            detail::reply_ptr earlier;
            st = wire.read(earlier);
            if (st.ok() && batch[i]->keep_leading) batch[i]->leading_replies.push_back(std::move(earlier));
        }
        if (st.ok()) st = wire.read(batch[i]->reply);
        if (!st.ok()) {
            // this reply is lost or late: the stream is in doubt, nothing more is read from it
            close_connection();
            batch[i]->status = st;
            finish(*batch[i]);
            const std::string why = st.code == errc::timeout ? "timed out" : "failed";
            fail_all(i + 1, {st.code == errc::timeout ? errc::connection_closed : st.code, true,
                             "the multiplexed connection was closed: the reply of a command before this one " + why});
            return;
        }
        if (detail::raw_is_error(batch[i]->reply.get())) {
            detail::connection_access::check_demoted(*conn_, batch[i]->reply);
            batch[i]->demoted = detail::connection_access::demoted(*conn_, batch[i]->reply);
        }
        finish(*batch[i]);
    }
    detail::connection_access::mark_used(*conn_);
    wake_each_cpu();
}

inline bool multiplexer::retry_unsent(request& r) {
    if (!r.self || r.status.code != errc::connect_failed || r.status.maybe_sent || r.refused ||
        r.retries >= options_->max_retries || r.completion_state.load(std::memory_order_acquire) != 1 ||
        r.withdrawn.load(std::memory_order_relaxed) || stopping_.load()) {
        return false;
    }
    const auto due = std::chrono::steady_clock::now() +
                     backoff::draw(options_->retry_backoff, options_->retry_backoff_max, std::min(r.retries, 16));
    ++r.retries;
    retries_.post(due, [this, keep = std::move(r.self), options = options_](bool run) mutable {
        if (run && !keep->withdrawn.load(std::memory_order_relaxed)) {
            keep->status = {};
            request* raw = keep.get();
            raw->self = std::move(keep);
            enqueue(raw, false);  // written at once: nobody waits to drive it
            return;
        }
        // the client goes (or the command was cancelled): it ends with the failure it had
        if (keep->withdrawn.load(std::memory_order_relaxed)) keep->status = {errc::cancelled, false, "cancelled"};
        if (keep->watch) end_watch(*keep, server());
        unsigned cpu = 0;
        if (const void* word = keep->park.finish(cpu)) detail::parking::wake(word);
        run_completion_of(std::move(keep), options->on_error);
    });
    return true;
}

inline void multiplexer::finish(request& r, bool wake_now) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    if (retry_unsent(r)) return;
    std::shared_ptr<request> keep = std::move(r.self);  // a submitted one lives to the end here
    if (keep && keep->watch) end_watch(*keep, server());
    unsigned cpu = 0;
    if (const void* word = r.park.finish(cpu)) {  // r may be gone from here on (unless kept)
        if (wake_now || !to_wake_[cpu % rings_].push(word)) detail::parking::wake(word);
    }
    // its callback, here: the driver's thread (the I/O thread, or a caller driving)
    if (keep) run_completion_of(std::move(keep), options_->on_error);
}

inline void run_completion_of(std::shared_ptr<mux_request> r,
                              const std::function<void(const error&)>& on_error) noexcept {
    if (r->completion_state.exchange(2, std::memory_order_acq_rel) != 1) return;  // none, or then() runs it
    const std::unique_ptr<mux_completion> c = std::move(r->completion);
    ++completing_here();
    try {
        c->complete(std::move(r));
    } catch (const std::exception& e) {
        notify(on_error, error(errc::handler_failed, std::string("redkit: a completion callback threw: ") + e.what()));
    } catch (...) {
        notify(on_error,
               error(errc::handler_failed, "redkit: a completion callback threw an exception of unknown type"));
    }
    --completing_here();
}

inline void finish_detached(std::shared_ptr<mux_request> r,
                            const std::function<void(const error&)>& on_error) noexcept {
    if (r->watch) end_watch(*r);
    unsigned cpu = 0;
    if (const void* word = r->park.finish(cpu)) parking::wake(word);
    run_completion_of(std::move(r), on_error);
}

inline bool attach_detached(const std::shared_ptr<mux_request>& r, std::unique_ptr<mux_completion>& c) noexcept {
    r->completion = std::move(c);
    int expected = 0;
    if (!r->completion_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        c = std::move(r->completion);  // finished meanwhile: the caller runs it
        return false;
    }
    return true;
}

// The driver, after a batch: one wake per CPU that the batch's callers slept on; the first of a
// group to run wakes the rest of its group, on its own CPU, with one system call. The word moves
// before the token is raised: whoever takes the token then wakes everyone who went to sleep on
// the old word (a token raised first could be spent before a late sleeper lay down, and the
// one wake left would not reach all of them).
inline void multiplexer::wake_batch(int slot) noexcept {
    if (slot < 0) return;
    for (unsigned c = 0; c < rings_; ++c) {
        detail::wake_group& g = groups_[static_cast<unsigned>(slot) * rings_ + c];
        g.word.fetch_add(1);
        g.owed.store(true);
        ::syscall(SYS_futex, &g.word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }
}

// Every request of a batch is finished before the batch's word moves, and a caller reads the
// word before it looks at its request: a wake that comes between the look and the sleep
// changes the word, so the sleep returns at once. A word is shared by batches batch_slots
// apart: a caller woken for another's batch looks again and sleeps again.
inline void multiplexer::sleep_in_batch(request& r, unsigned slot) noexcept {
    const int cpu = ::sched_getcpu();
    detail::wake_group& g = groups_[slot * rings_ + static_cast<unsigned>(cpu < 0 ? 0 : cpu) % rings_];
    for (;;) {
        const int seen = g.word.load();
        if (r.park.done()) break;
        ::syscall(SYS_futex, &g.word, FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
    }
    if (g.owed.load(std::memory_order_relaxed) && g.owed.exchange(false)) {
        ::syscall(SYS_futex, &g.word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
    }
}

// Wakes up to n sleepers: one of the next CPU's (so that threads keep moving between CPUs), then
// those of this CPU (the kernel wakes them here, without an inter-processor interrupt), then any.
// n == -1 (the driver, before it sleeps): everybody.
inline void multiplexer::wake_some(std::size_t n) noexcept {
    const int here = ::sched_getcpu();
    const unsigned first = here < 0 ? 0U : static_cast<unsigned>(here) % rings_;
    const void* word = nullptr;
    if (n != static_cast<std::size_t>(-1) && rings_ > 1 && n > 1) {
        if (to_wake_[(first + 1) % rings_].pop(word)) {
            detail::parking::wake(word);
            --n;
        }
    }
    for (unsigned k = 0; k < rings_ && n > 0; ++k) {
        detail::wake_ring& ring = to_wake_[(first + k) % rings_];
        while (n > 0 && ring.pop(word)) {
            detail::parking::wake(word);
            --n;
        }
    }
}

// The driver, after a batch: starts the fan-out on every CPU that has sleepers.
inline void multiplexer::wake_each_cpu() noexcept {
    const void* word = nullptr;
    for (unsigned k = 0; k < rings_; ++k) {
        if (to_wake_[k].pop(word)) detail::parking::wake(word);
    }
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
