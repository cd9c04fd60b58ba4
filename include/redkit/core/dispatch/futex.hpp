// SPDX-License-Identifier: MIT
// The lock-free and futex primitives the multiplexer parks and wakes its callers with (Linux):
//   parking     one futex word a thread sleeps on until its request is finished
//   wake_ring   a bounded MPMC ring of futex addresses still to wake (the sequence-number ring)
//   wake_group  where the callers of one batch on one CPU sleep together, woken by one call
// No socket and no request here: each is tested on its own (tests/unit/futex_test.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace redkit {
inline namespace v0 {
namespace detail {

/// One futex word a thread sleeps on; its states (pending, finished, sleeping on CPU n) make a
/// wake-up that comes before the sleep cost no system call, and tell the waker where to wake.
///
/// A woken caller may return (and free its request) before every wake-up meant for it was sent,
/// so wake-ups go to the word's address (wake(address)), never through the object: the kernel
/// only uses the address as a key, and a stray wake of whatever lives there later is harmless,
/// because every wait re-checks its own state.
class parking {
public:
    /// Marks the word finished; returns the address to wake() when its thread sleeps (and in
    /// `cpu` the CPU it fell asleep on), else null.
    const void* finish(unsigned& cpu) noexcept {
        const int old = state_.exchange(finished, std::memory_order_acq_rel);
        if (old < sleeping) return nullptr;
        cpu = static_cast<unsigned>(old - sleeping);
        return static_cast<const void*>(&state_);
    }
    static void wake(const void* address) noexcept {
        ::syscall(SYS_futex, address, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }

    /// Blocks until finish() (true), or until `deadline` (false).
    bool wait_until(std::chrono::steady_clock::time_point deadline) noexcept {
        int s = state_.load(std::memory_order_acquire);
        while (s != finished) {
            if (s == pending) {
                const int cpu = ::sched_getcpu();
                const int asleep = sleeping + (cpu < 0 ? 0 : cpu);
                if (!state_.compare_exchange_weak(s, asleep, std::memory_order_acq_rel)) continue;
                s = asleep;
            }
            timespec ts{};
            const timespec* limit = nullptr;
            if (deadline != std::chrono::steady_clock::time_point::max()) {
                const auto left = deadline - std::chrono::steady_clock::now();
                if (left <= std::chrono::steady_clock::duration::zero()) return false;
                const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
                ts = {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
                limit = &ts;
            }
            ::syscall(SYS_futex, reinterpret_cast<int*>(&state_), FUTEX_WAIT_PRIVATE, s, limit, nullptr, 0);
            s = state_.load(std::memory_order_acquire);
        }
        return true;
    }
    bool done() const noexcept { return state_.load(std::memory_order_acquire) == finished; }
    /// Consumes a finish() (the word is reused): the next wait sleeps until the next finish().
    void reset() noexcept { state_.store(pending, std::memory_order_release); }

private:
    static constexpr int pending = 0, finished = 1, sleeping = 2;  // sleeping + n: asleep on CPU n
    std::atomic<int> state_{pending};
};
static_assert(sizeof(std::atomic<int>) == sizeof(int), "a futex word is an int");

/// Bounded multi-producer multi-consumer ring of futex addresses still to wake (the sequence-
/// number ring: a cell's sequence says whether it is free to write or ready to read). push()
/// fails when full; the caller then wakes the address itself.
class wake_ring {
public:
    wake_ring() : cells_(new cell[capacity]) {
        for (std::size_t i = 0; i < capacity; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
    }
    bool push(const void* word) noexcept {
        std::size_t pos = tail_.load(std::memory_order_relaxed);
        for (;;) {
            cell& c = cells_[pos & (capacity - 1)];
            const std::size_t seq = c.seq.load(std::memory_order_acquire);
            const auto diff = static_cast<std::ptrdiff_t>(seq - pos);
            if (diff == 0) {
                if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
                    c.word = word;
                    c.seq.store(pos + 1, std::memory_order_release);
                    return true;
                }
            } else if (diff < 0) {
                return false;  // full
            } else {
                pos = tail_.load(std::memory_order_relaxed);
            }
        }
    }
    bool pop(const void*& word) noexcept {
        std::size_t pos = head_.load(std::memory_order_relaxed);
        for (;;) {
            cell& c = cells_[pos & (capacity - 1)];
            const std::size_t seq = c.seq.load(std::memory_order_acquire);
            const auto diff = static_cast<std::ptrdiff_t>(seq - (pos + 1));
            if (diff == 0) {
                if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
                    word = c.word;
                    c.seq.store(pos + capacity, std::memory_order_release);
                    return true;
                }
            } else if (diff < 0) {
                return false;  // empty
            } else {
                pos = head_.load(std::memory_order_relaxed);
            }
        }
    }

private:
    static constexpr std::size_t capacity = 1024;  // a power of two; more sleepers than this wake directly
    struct cell {
        std::atomic<std::size_t> seq;
        const void* word = nullptr;
    };
    std::unique_ptr<cell[]> cells_;
    alignas(64) std::atomic<std::size_t> tail_{0};
    alignas(64) std::atomic<std::size_t> head_{0};
};

/// Where the synchronous callers of one batch sleep, per CPU: one futex word all of them wait
/// on, so a whole group is woken by one system call (made on its own CPU by the first of them
/// to wake), and a token saying that wake is still owed.
struct alignas(64) wake_group {
    std::atomic<int> word{0};       // bumped when the group's batch finished
    std::atomic<bool> owed{false};  // the group's wake-all is still to be made
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
