// SPDX-License-Identifier: MIT
// The multiplexer's queue and batches (core/dispatch/multiplexer.hpp) without a connection: a
// multiplexer that never connects, marked as driven by a caller so that enqueue() hands nothing
// to an I/O thread (none is ever started, so its destructor has nothing to join). The tests take
// the batches themselves, as the driver does, and finish the requests by hand.
#include <redkit/core/dispatch/multiplexer.hpp>
#include <redkit/error.hpp>
#include <redkit/future.hpp>
#include <redkit/options.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

using batching_mux = redkit::detail::multiplexer;
using batching_request = redkit::detail::mux_request;
using batching_clock = std::chrono::steady_clock;

const std::string batching_ping = "*1\r\n$4\r\nPING\r\n";

// A multiplexer with default options, never connected, driven by "a caller" (the test).
std::unique_ptr<batching_mux> batching_idle_mux() {
    auto m = std::make_unique<batching_mux>(std::make_shared<const redkit::client_options>());
    m->driving_.store(batching_mux::caller);
    return m;
}

// `n` requests, each with a wire form of its own length (the queued bytes are counted).
std::unique_ptr<batching_request[]> batching_requests(std::size_t n) {
    std::unique_ptr<batching_request[]> r(new batching_request[n]);
    for (std::size_t i = 0; i < n; ++i) r[i].wire = batching_ping;
    return r;
}

// Wakes every sleeper of every batch: a failing test's way out, so a broken wake cannot hang it.
void batching_rescue(batching_mux& m) {
    for (unsigned i = 0; i < batching_mux::batch_slots * m.rings_; ++i) {
        m.groups_[i].word.fetch_add(1);
        ::syscall(SYS_futex, &m.groups_[i].word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
    }
}

// On leaving a test, finishes every request and wakes every batch, so that a caller still asleep
// (the logic under test broke) returns and its thread can be joined: a failure, never a hang.
class batching_wake_all_on_exit {
public:
    batching_wake_all_on_exit(batching_mux& m, batching_request* r, std::size_t n) noexcept : m_(m), r_(r), n_(n) {}
    ~batching_wake_all_on_exit() {
        for (std::size_t i = 0; i < n_; ++i) {
            unsigned cpu = 0;
            (void)r_[i].park.finish(cpu);
        }
        batching_rescue(m_);
    }
    batching_wake_all_on_exit(const batching_wake_all_on_exit&) = delete;
    batching_wake_all_on_exit& operator=(const batching_wake_all_on_exit&) = delete;

private:
    batching_mux& m_;
    batching_request* r_;
    std::size_t n_;
};

}  // namespace

// future.hpp promises a move-only future: a copy would let two get()s take one reply.
TEST(MuxBatching, AFutureMovesButDoesNotCopy) {
    EXPECT_FALSE(std::is_copy_constructible_v<redkit::future<std::string>>);
    EXPECT_FALSE(std::is_copy_assignable_v<redkit::future<std::string>>);
    EXPECT_TRUE(std::is_nothrow_move_constructible_v<redkit::future<std::string>>);
    EXPECT_TRUE(std::is_nothrow_move_assignable_v<redkit::future<std::string>>);
    redkit::future<std::string> a;
    redkit::future<std::string> b = std::move(a);
    EXPECT_FALSE(b.valid());
}

TEST(MuxBatching, TakeOnAnEmptyQueueReturnsNoSlot) {
    const auto m = batching_idle_mux();
    std::vector<batching_request*> batch;
    EXPECT_FALSE(m->anything_queued());
    EXPECT_EQ(m->take_batch(batch), -1);
    EXPECT_TRUE(batch.empty());
    EXPECT_EQ(m->in_flight(), 0u);
    EXPECT_FALSE(m->io_.joinable());  // nothing started a thread
}

TEST(MuxBatching, OneThreadsRequestsComeOutOldestFirstOnce) {
    const auto m = batching_idle_mux();
    constexpr std::size_t n = 10;
    auto r = batching_requests(n);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(m->enqueue(&r[i], false), 0u) << "request " << i;
    EXPECT_TRUE(m->anything_queued());
    EXPECT_EQ(m->in_flight(), n);
    EXPECT_EQ(m->queued_bytes_.load(), n * batching_ping.size());
    EXPECT_FALSE(m->io_.joinable());  // a driver was there: nothing handed over

    std::vector<batching_request*> batch;
    EXPECT_EQ(m->take_batch(batch), 0);
    ASSERT_EQ(batch.size(), n);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(batch[i], &r[i]) << "position " << i;
    EXPECT_FALSE(m->anything_queued());
    EXPECT_EQ(m->queued_bytes_.load(), 0u);
    EXPECT_EQ(m->in_flight(), n);  // taken is not finished
    for (std::size_t i = 0; i < n; ++i) EXPECT_FALSE(r[i].park.done());

    // a second take finds nothing: nothing comes out twice
    std::vector<batching_request*> again;
    EXPECT_EQ(m->take_batch(again), -1);
    EXPECT_TRUE(again.empty());

    for (auto* q : batch) m->finish(*q);
    EXPECT_EQ(m->in_flight(), 0u);
    for (std::size_t i = 0; i < n; ++i) EXPECT_TRUE(r[i].park.done());
}

TEST(MuxBatching, TakeAppendsAfterWhatTheBatchHolds) {
    const auto m = batching_idle_mux();
    auto r = batching_requests(3);
    batching_request earlier;
    std::vector<batching_request*> batch{&earlier};
    for (std::size_t i = 0; i < 3; ++i) (void)m->enqueue(&r[i], false);
    EXPECT_EQ(m->take_batch(batch), 0);
    ASSERT_EQ(batch.size(), 4u);
    EXPECT_EQ(batch[0], &earlier);  // untouched, and the new ones oldest first after it
    EXPECT_EQ(batch[1], &r[0]);
    EXPECT_EQ(batch[2], &r[1]);
    EXPECT_EQ(batch[3], &r[2]);
}

TEST(MuxBatching, RequestsAfterATakeJoinTheNextBatch) {
    const auto m = batching_idle_mux();
    constexpr std::size_t rounds = 9;  // past batch_slots twice: the numbers wrap modulo 4
    auto r = batching_requests(rounds * 2);
    std::vector<batching_request*> batch;
    for (std::size_t round = 0; round < rounds; ++round) {
        const unsigned expected = static_cast<unsigned>(round % batching_mux::batch_slots);
        EXPECT_EQ(m->enqueue(&r[2 * round], false), expected) << "round " << round;
        EXPECT_EQ(m->enqueue(&r[2 * round + 1], false), expected) << "round " << round;
        batch.clear();
        EXPECT_EQ(m->take_batch(batch), static_cast<int>(expected)) << "round " << round;
        ASSERT_EQ(batch.size(), 2u);
        EXPECT_EQ(batch[0], &r[2 * round]);
        EXPECT_EQ(batch[1], &r[2 * round + 1]);
        for (auto* q : batch) m->finish(*q);
    }
    EXPECT_EQ(m->in_flight(), 0u);
}

TEST(MuxBatching, ExpiredRequestFailsUnsentWithTimeout) {
    const auto m = batching_idle_mux();
    auto r = batching_requests(4);
    const auto now = batching_clock::now();
    r[0].deadline = now + std::chrono::hours(1);
    r[1].deadline = now - std::chrono::milliseconds(1);  // waited past its command_timeout
    // r[2]: no deadline (time_point::max)
    r[3].deadline = now - std::chrono::seconds(5);
    for (std::size_t i = 0; i < 4; ++i) (void)m->enqueue(&r[i], false);
    ASSERT_EQ(m->in_flight(), 4u);

    std::vector<batching_request*> batch;
    EXPECT_EQ(m->take_batch(batch), 0);
    ASSERT_EQ(batch.size(), 2u);
    EXPECT_EQ(batch[0], &r[0]);
    EXPECT_EQ(batch[1], &r[2]);
    for (const std::size_t i : {std::size_t{1}, std::size_t{3}}) {
        EXPECT_TRUE(r[i].park.done()) << "request " << i;
        EXPECT_EQ(r[i].status.code, redkit::errc::timeout) << "request " << i;
        EXPECT_FALSE(r[i].status.maybe_sent) << "request " << i;  // never written: safe to say so
        EXPECT_NE(r[i].status.text.find("queue"), std::string::npos) << r[i].status.text;
        EXPECT_FALSE(r[i].reply) << "request " << i;
    }
    for (const std::size_t i : {std::size_t{0}, std::size_t{2}}) {
        EXPECT_FALSE(r[i].park.done()) << "request " << i;
        EXPECT_TRUE(r[i].status.ok()) << "request " << i;
    }
    EXPECT_EQ(m->in_flight(), 2u);  // the expired ones are finished
    EXPECT_EQ(m->queued_bytes_.load(), 0u);
    for (auto* q : batch) m->finish(*q);
}

TEST(MuxBatching, BatchOfSubmittedRequestsOnlyHasNoSlotToWake) {
    const auto m = batching_idle_mux();
    auto a = std::make_shared<batching_request>();
    auto b = std::make_shared<batching_request>();
    a->wire = b->wire = batching_ping;
    a->self = a;  // as submit() does: the multiplexer's share until it finishes
    b->self = b;
    (void)m->enqueue(a.get(), true);
    (void)m->enqueue(b.get(), true);
    std::vector<batching_request*> batch;
    EXPECT_EQ(m->take_batch(batch), -1);  // nobody sleeps in the batch's groups
    ASSERT_EQ(batch.size(), 2u);
    EXPECT_EQ(batch[0], a.get());
    EXPECT_EQ(batch[1], b.get());
    for (auto* q : batch) m->finish(*q);
    EXPECT_EQ(a.use_count(), 1);  // the multiplexer let go of its share
    EXPECT_EQ(b.use_count(), 1);

    // one synchronous caller among submitted ones: the batch has a slot again
    auto c = std::make_shared<batching_request>();
    c->self = c;
    batching_request sync;
    (void)m->enqueue(c.get(), true);
    const unsigned slot = m->enqueue(&sync, false);
    batch.clear();
    EXPECT_EQ(m->take_batch(batch), static_cast<int>(slot));
    ASSERT_EQ(batch.size(), 2u);
    for (auto* q : batch) m->finish(*q);
}

// Several threads enqueue while the test takes batches, as a driver would: every request comes
// out exactly once, each thread's in the order it queued them, each in the batch whose number
// its enqueue() returned.
TEST(MuxBatching, ConcurrentEnqueuesComeOutOncePerThreadInOrder) {
    constexpr std::size_t threads = 4, per_thread = 3000;
    const auto m = batching_idle_mux();
    std::vector<std::unique_ptr<batching_request[]>> reqs;
    std::vector<std::vector<unsigned>> joined(threads, std::vector<unsigned>(per_thread, 99));
    for (std::size_t t = 0; t < threads; ++t) reqs.push_back(batching_requests(per_thread));

    std::promise<void> start;
    std::shared_future<void> go = start.get_future().share();
    std::vector<std::thread> pushers;
    for (std::size_t t = 0; t < threads; ++t) {
        pushers.emplace_back([&, t] {
            go.wait();
            for (std::size_t i = 0; i < per_thread; ++i) joined[t][i] = m->enqueue(&reqs[t][i], false);
        });
    }
    // (request, batch number it came out in), in the order taken
    std::vector<std::pair<batching_request*, int>> taken;
    std::vector<batching_request*> batch;
    std::size_t batches = 0;
    const auto give_up = batching_clock::now() + std::chrono::seconds(60);
    start.set_value();
    while (taken.size() < threads * per_thread && batching_clock::now() < give_up) {
        batch.clear();
        const int slot = m->take_batch(batch);
        if (batch.empty()) {
            EXPECT_EQ(slot, -1);
            std::this_thread::yield();
            continue;
        }
        ++batches;
        EXPECT_GE(slot, 0);
        for (auto* q : batch) taken.emplace_back(q, slot);
    }
    for (auto& t : pushers) t.join();
    batch.clear();
    EXPECT_EQ(m->take_batch(batch), -1);  // nothing left behind
    EXPECT_TRUE(batch.empty());

    ASSERT_EQ(taken.size(), threads * per_thread);
    std::vector<std::size_t> next(threads, 0);  // per thread: the index expected next
    std::size_t wrong_batch = 0, out_of_order = 0, foreign = 0;
    for (const auto& [q, slot] : taken) {
        std::size_t t = 0;
        while (t < threads && !(q >= &reqs[t][0] && q < &reqs[t][0] + per_thread)) ++t;
        if (t == threads) {
            ++foreign;
            continue;
        }
        const auto i = static_cast<std::size_t>(q - &reqs[t][0]);
        if (i != next[t]) ++out_of_order;
        next[t] = i + 1;
        if (static_cast<int>(joined[t][i]) != slot) ++wrong_batch;
    }
    EXPECT_EQ(foreign, 0u);
    EXPECT_EQ(out_of_order, 0u) << "a thread's requests came out of order, twice or not at all";
    EXPECT_EQ(wrong_batch, 0u) << "a request came out in another batch than the one it joined";
    for (std::size_t t = 0; t < threads; ++t) EXPECT_EQ(next[t], per_thread) << "thread " << t;
    EXPECT_EQ(m->queued_bytes_.load(), 0u);
    EXPECT_EQ(m->in_flight(), threads * per_thread);
    for (const auto& taken_one : taken) m->finish(*taken_one.first);
    EXPECT_EQ(m->in_flight(), 0u);
    EXPECT_GE(batches, 1u);
}

// Synchronous callers sleep on their batch's word (several per CPU group) until the driver
// finishes the batch and wakes it: none returns before, all return after.
TEST(MuxBatching, CallersSleepingInABatchWakeWhenItFinishes) {
    constexpr std::size_t callers = 6;
    const auto m = batching_idle_mux();
    auto r = batching_requests(callers);
    std::atomic<std::size_t> queued{0};
    std::vector<std::future<void>> back;
    const batching_wake_all_on_exit way_out(*m, r.get(), callers);  // destroyed before `back`
    for (std::size_t i = 0; i < callers; ++i) {
        back.push_back(std::async(std::launch::async, [&, i] {
            const unsigned slot = m->enqueue(&r[i], false);
            queued.fetch_add(1);
            m->sleep_in_batch(r[i], slot);
        }));
    }
    const auto give_up = batching_clock::now() + std::chrono::seconds(20);
    while (queued.load() < callers && batching_clock::now() < give_up) std::this_thread::yield();
    ASSERT_EQ(queued.load(), callers);
    // nothing finished: nobody may return
    EXPECT_EQ(back[0].wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
    for (auto& b : back) EXPECT_EQ(b.wait_for(std::chrono::seconds(0)), std::future_status::timeout);

    std::vector<batching_request*> batch;
    const int slot = m->take_batch(batch);
    EXPECT_EQ(slot, 0);
    EXPECT_EQ(batch.size(), callers);
    for (auto* q : batch) m->finish(*q);
    m->wake_batch(slot);
    bool all_back = true;
    for (auto& b : back) all_back = b.wait_for(std::chrono::seconds(10)) == std::future_status::ready && all_back;
    EXPECT_TRUE(all_back) << "a caller was not woken when its batch finished";
    EXPECT_EQ(m->in_flight(), 0u);
}

// A caller whose request expired in the queue is woken at once by take_batch, before the
// batch's other requests are run.
TEST(MuxBatching, ExpiredCallerIsWokenByTheTake) {
    const auto m = batching_idle_mux();
    auto r = batching_requests(2);
    r[0].deadline = batching_clock::now() - std::chrono::milliseconds(1);
    std::promise<unsigned> joined;
    std::future<unsigned> joined_slot = joined.get_future();
    std::future<void> back = std::async(std::launch::async, [&] {
        const unsigned slot = m->enqueue(&r[0], false);
        joined.set_value(slot);
        m->sleep_in_batch(r[0], slot);
    });
    const batching_wake_all_on_exit way_out(*m, r.get(), 1);  // destroyed before `back`
    ASSERT_EQ(joined_slot.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_EQ(joined_slot.get(), 0u);
    (void)m->enqueue(&r[1], false);  // the other caller of the batch, still to be run
    EXPECT_EQ(back.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);

    std::vector<batching_request*> batch;
    EXPECT_EQ(m->take_batch(batch), 0);
    EXPECT_EQ(batch.size(), 1u);
    EXPECT_EQ(batch.empty() ? nullptr : batch[0], &r[1]);
    // no wake_batch() yet: the take itself woke the expired caller
    EXPECT_EQ(back.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "the expired caller still sleeps";
    EXPECT_EQ(r[0].status.code, redkit::errc::timeout);
    m->finish(r[1]);
}
