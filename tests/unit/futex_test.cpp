// SPDX-License-Identifier: MIT
// The multiplexer's parking and wake primitives (core/dispatch/futex.hpp), on their own: no
// socket, no request. Threads are ordered with futures and deadlines, never with bare sleeps.
#include <redkit/core/dispatch/futex.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <thread>
#include <vector>

namespace {

using futex_clock = std::chrono::steady_clock;

// A value to push that is never dereferenced: producer `p`'s `i`th value (never null).
const void* futex_token(std::uintptr_t producer, std::uintptr_t i) {
    return reinterpret_cast<const void*>((producer << 32) | (i + 1));
}

// Pushes until the ring has no room left; returns how many went in.
std::size_t futex_fill(redkit::detail::wake_ring& ring, std::uintptr_t producer, std::size_t limit) {
    std::size_t n = 0;
    while (n < limit && ring.push(futex_token(producer, n))) ++n;
    return n;
}

}  // namespace

TEST(Parking, FinishBeforeWaitReturnsAtOnce) {
    redkit::detail::parking p;
    EXPECT_FALSE(p.done());
    unsigned cpu = 12345;
    EXPECT_EQ(p.finish(cpu), nullptr);  // nobody sleeps on it: nothing to wake
    EXPECT_EQ(cpu, 12345u);             // and no CPU reported
    EXPECT_TRUE(p.done());
    // a deadline already passed: a finished word still reports true, without sleeping
    EXPECT_TRUE(p.wait_until(futex_clock::now() - std::chrono::seconds(1)));
    EXPECT_TRUE(p.wait_until(futex_clock::time_point::max()));
}

TEST(Parking, WaitUntilTimesOutAtItsDeadline) {
    redkit::detail::parking p;
    EXPECT_FALSE(p.wait_until(futex_clock::now() - std::chrono::milliseconds(1)));
    const auto deadline = futex_clock::now() + std::chrono::milliseconds(30);
    EXPECT_FALSE(p.wait_until(deadline));
    EXPECT_GE(futex_clock::now(), deadline);
    EXPECT_FALSE(p.done());
    // it slept: a finish now has a sleeper's state to clear, yet the word is only marked finished
    unsigned cpu = 0;
    (void)p.finish(cpu);
    EXPECT_TRUE(p.done());
    EXPECT_TRUE(p.wait_until(futex_clock::now()));
}

TEST(Parking, ResetConsumesTheFinish) {
    redkit::detail::parking p;
    unsigned cpu = 0;
    (void)p.finish(cpu);
    ASSERT_TRUE(p.done());
    p.reset();
    EXPECT_FALSE(p.done());
    EXPECT_FALSE(p.wait_until(futex_clock::now() + std::chrono::milliseconds(10)));
    (void)p.finish(cpu);
    EXPECT_TRUE(p.wait_until(futex_clock::now() + std::chrono::seconds(5)));
}

// A finish from another thread wakes a waiter asleep on the word. The waiter has a distant
// deadline; each round gives it time to fall asleep (it cannot return before the finish), so the
// finish must report the sleeper's address and the wake must reach it. Rounds repeat until one
// found the waiter asleep (on a loaded machine the first may not).
TEST(Parking, FinishFromAnotherThreadWakesTheWaiter) {
    const auto give_up = futex_clock::now() + std::chrono::seconds(20);
    int asleep_rounds = 0, rounds = 0;
    while (asleep_rounds < 3 && futex_clock::now() < give_up) {
        ++rounds;
        redkit::detail::parking p;
        std::promise<void> started;
        std::future<bool> woke = std::async(std::launch::async, [&] {
            started.set_value();
            return p.wait_until(futex_clock::now() + std::chrono::seconds(15));
        });
        started.get_future().wait();
        // nothing finished it: it must still wait
        ASSERT_EQ(woke.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
        unsigned cpu = 0;
        const void* address = p.finish(cpu);
        if (address != nullptr) {
            ++asleep_rounds;
            EXPECT_LT(cpu, 4096u);  // the CPU it fell asleep on
            redkit::detail::parking::wake(address);
        }
        ASSERT_EQ(woke.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "round " << rounds;
        EXPECT_TRUE(woke.get());
    }
    EXPECT_GE(asleep_rounds, 1) << "no round found the waiter asleep in " << rounds << " rounds";
}

// Several waiters, each on its own word, woken in the reverse order of their waits.
TEST(Parking, EachWakeReachesItsOwnWaiter) {
    constexpr int waiters = 4;
    std::vector<redkit::detail::parking> words(waiters);
    std::vector<std::future<bool>> woke;
    for (int i = 0; i < waiters; ++i) {
        woke.push_back(std::async(std::launch::async, [&words, i] {
            return words[static_cast<std::size_t>(i)].wait_until(futex_clock::now() + std::chrono::seconds(15));
        }));
    }
    for (int i = waiters - 1; i >= 0; --i) {
        const auto at = static_cast<std::size_t>(i);
        for (std::size_t j = 0; j < at; ++j) {
            EXPECT_EQ(woke[j].wait_for(std::chrono::milliseconds(j == 0 ? 10 : 0)), std::future_status::timeout)
                << "waiter " << j << " returned before its finish";
        }
        unsigned cpu = 0;
        if (const void* address = words[at].finish(cpu)) redkit::detail::parking::wake(address);
        ASSERT_EQ(woke[at].wait_for(std::chrono::seconds(10)), std::future_status::ready) << "waiter " << i;
        EXPECT_TRUE(woke[at].get());
    }
}

TEST(WakeRing, PopsInPushOrder) {
    redkit::detail::wake_ring ring;
    for (std::uintptr_t i = 0; i < 100; ++i) ASSERT_TRUE(ring.push(futex_token(1, i)));
    for (std::uintptr_t i = 0; i < 100; ++i) {
        const void* word = nullptr;
        ASSERT_TRUE(ring.pop(word));
        EXPECT_EQ(word, futex_token(1, i)) << "pop " << i;
    }
}

TEST(WakeRing, EmptyPopFailsAndLeavesTheWord) {
    redkit::detail::wake_ring ring;
    const void* word = futex_token(9, 9);
    EXPECT_FALSE(ring.pop(word));
    EXPECT_EQ(word, futex_token(9, 9));
    ASSERT_TRUE(ring.push(futex_token(2, 0)));
    ASSERT_TRUE(ring.pop(word));
    EXPECT_EQ(word, futex_token(2, 0));
    EXPECT_FALSE(ring.pop(word));
    EXPECT_EQ(word, futex_token(2, 0));
}

TEST(WakeRing, FullAtCapacityRefusesThePush) {
    redkit::detail::wake_ring ring;
    const std::size_t capacity = futex_fill(ring, 3, 100000);
    EXPECT_EQ(capacity, 1024u);
    EXPECT_FALSE(ring.push(futex_token(4, 0)));
    // one popped: one room, then full again
    const void* word = nullptr;
    ASSERT_TRUE(ring.pop(word));
    EXPECT_EQ(word, futex_token(3, 0));
    EXPECT_TRUE(ring.push(futex_token(4, 1)));
    EXPECT_FALSE(ring.push(futex_token(4, 2)));
    // everything comes out once, in order, across the wrap-around
    for (std::size_t i = 1; i < capacity; ++i) {
        ASSERT_TRUE(ring.pop(word));
        EXPECT_EQ(word, futex_token(3, i)) << "pop " << i;
    }
    ASSERT_TRUE(ring.pop(word));
    EXPECT_EQ(word, futex_token(4, 1));
    EXPECT_FALSE(ring.pop(word));
}

TEST(WakeRing, StaysFifoOverManyLaps) {
    redkit::detail::wake_ring ring;
    std::uintptr_t pushed = 0, popped = 0;
    for (int lap = 0; lap < 20; ++lap) {
        // fill part of the ring, drain a little less: the positions run far past the capacity
        for (int i = 0; i < 600; ++i) ASSERT_TRUE(ring.push(futex_token(5, pushed++)));
        for (int i = 0; i < 590; ++i) {
            const void* word = nullptr;
            ASSERT_TRUE(ring.pop(word));
            ASSERT_EQ(word, futex_token(5, popped++));
        }
    }
    const void* word = nullptr;
    while (ring.pop(word)) ASSERT_EQ(word, futex_token(5, popped++));
    EXPECT_EQ(popped, pushed);
}

// Producers and consumers on threads: every value pushed is popped exactly once, and each
// consumer sees each producer's values in the order they were pushed.
TEST(WakeRing, ManyProducersAndConsumersLoseNothing) {
    constexpr std::uintptr_t producers = 4, consumers = 3, per_producer = 20000;
    constexpr std::size_t total = producers * per_producer;
    redkit::detail::wake_ring ring;
    const auto give_up = futex_clock::now() + std::chrono::seconds(60);
    std::atomic<std::size_t> popped_count{0};
    std::atomic<bool> go{false};
    std::atomic<bool> out_of_order{false};
    std::vector<std::vector<std::uintptr_t>> seen(consumers);
    std::vector<std::thread> threads;
    for (std::uintptr_t p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            while (!go.load()) std::this_thread::yield();
            for (std::uintptr_t i = 0; i < per_producer; ++i) {
                while (!ring.push(futex_token(p + 1, i))) {  // full: the consumers make room
                    if (futex_clock::now() > give_up) return;
                    std::this_thread::yield();
                }
            }
        });
    }
    for (std::size_t c = 0; c < consumers; ++c) {
        threads.emplace_back([&, c] {
            std::vector<std::uintptr_t> last(producers + 1, 0);  // per producer: last index + 1 seen
            while (!go.load()) std::this_thread::yield();
            while (popped_count.load() < total && futex_clock::now() < give_up) {
                const void* word = nullptr;
                if (!ring.pop(word)) {
                    std::this_thread::yield();
                    continue;
                }
                popped_count.fetch_add(1);
                const auto v = reinterpret_cast<std::uintptr_t>(word);
                seen[c].push_back(v);
                const std::uintptr_t producer = v >> 32, index = v & 0xffffffffu;
                if (producer == 0 || producer > producers || index <= last[producer]) out_of_order.store(true);
                if (producer >= 1 && producer <= producers) last[producer] = index;
            }
        });
    }
    go.store(true);
    for (auto& t : threads) t.join();

    EXPECT_FALSE(out_of_order.load()) << "a consumer saw a producer's values out of order";
    std::vector<std::uintptr_t> all;
    for (const auto& s : seen) all.insert(all.end(), s.begin(), s.end());
    ASSERT_EQ(all.size(), total);
    std::vector<std::uintptr_t> expected;
    for (std::uintptr_t p = 0; p < producers; ++p) {
        for (std::uintptr_t i = 0; i < per_producer; ++i) {
            expected.push_back(reinterpret_cast<std::uintptr_t>(futex_token(p + 1, i)));
        }
    }
    std::sort(all.begin(), all.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_TRUE(all == expected) << "some value was lost or popped twice";
    const void* word = nullptr;
    EXPECT_FALSE(ring.pop(word));
}
