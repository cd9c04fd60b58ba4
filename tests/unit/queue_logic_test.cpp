// SPDX-License-Identifier: MIT
// The queue's pure logic, without a server: job retry delays, the worker's reply-timing choice,
// and reading a job's stored fields.
#include <redkit/queue.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>

using namespace std::chrono_literals;

TEST(QueueBackoff, ExponentialAndFixedDelaysWithJitterStayInRange) {
    const auto e = redkit::backoff_policy::exponential(100ms);
    EXPECT_EQ(e.delay_before(1, 0.5), 100ms);
    EXPECT_EQ(e.delay_before(2, 0.5), 200ms);
    EXPECT_EQ(e.delay_before(3, 0.5), 400ms);
    EXPECT_EQ(redkit::backoff_policy::fixed(70ms).delay_before(5, 0.9), 70ms);
    EXPECT_EQ(redkit::backoff_policy::none().delay_before(3, 0.5), 0ms);
    const auto j = redkit::backoff_policy::exponential(1000ms, 0.5);
    EXPECT_EQ(j.delay_before(1, 0.0), 1000ms);
    EXPECT_EQ(j.delay_before(1, 0.999), 500ms);
    EXPECT_EQ(j.delay_before(2, 0.5), 1500ms);
    EXPECT_GT(e.delay_before(10000, 0.0).count(), 0);  // saturates, no overflow
}

TEST(QueueReplyTiming, PollsOnlyWhileThatIsFasterAndKeepsTryingTheOtherWay) {
    redkit::detail::reply_timing t;
    unsigned long long exchange = 1;
    // first both ways are timed: four polled replies, then four slept ones
    for (int i = 0; i < 4; ++i, ++exchange) {
        ASSERT_TRUE(t.poll_next(exchange));
        t.record(true, 50us);
    }
    for (int i = 0; i < 4; ++i, ++exchange) {
        ASSERT_FALSE(t.poll_next(exchange));
        t.record(false, 90us);
    }
    // 64 replies that take `when_polled` or `when_slept`; how many were polled
    const auto run = [&](std::chrono::microseconds when_polled, std::chrono::microseconds when_slept) {
        int polled = 0;
        for (int i = 0; i < 64; ++i, ++exchange) {
            const bool poll = t.poll_next(exchange);
            polled += poll ? 1 : 0;
            t.record(poll, poll ? when_polled : when_slept);
        }
        return polled;
    };
    // polling is faster here (the server on another CPU): poll, but every 32nd reply sleeps
    int polled = run(50us, 90us);
    EXPECT_EQ(64 - polled, 2);
    EXPECT_EQ(polled, 62);
    // now polling delays the reply (the server shares this CPU): the polled samples drag its
    // average up until sleeping wins, and from then on only every 32nd reply polls
    (void)run(400us, 90us);
    polled = run(400us, 90us);
    EXPECT_EQ(polled, 2);
    EXPECT_EQ(64 - polled, 62);
}

TEST(QueueRecord, FieldsOfAJobHashAreReadWhateverTheirOrder) {
    const auto fields = redkit::detail::parse_resp(
        "*16\r\n$4\r\nname\r\n$4\r\nmail\r\n$4\r\ndata\r\n$5\r\n{\"a\"}\r\n$3\r\natt\r\n$1\r\n3\r\n"
        "$4\r\nmade\r\n$1\r\n1\r\n$4\r\nprio\r\n$2\r\n17\r\n$2\r\nst\r\n$1\r\nd\r\n$3\r\nrcn\r\n$1\r\n0\r\n"
        "$7\r\nunknown\r\n$1\r\nx\r\n");
    const redkit::detail::origin from{"HGETALL", "job"};
    const redkit::reply h(redkit::detail::view_access::of(fields.get(), from));
    redkit::detail::job_record r;
    redkit::detail::read_fields(h, r);
    EXPECT_EQ(r.name, "mail");
    EXPECT_EQ(r.data, "{\"a\"}");
    EXPECT_EQ(r.attempts, 3);
    EXPECT_EQ(r.attempts_made, 1);
    EXPECT_EQ(r.priority, 17);
    EXPECT_EQ(r.state, 'd');
    EXPECT_EQ(redkit::detail::state_of(r.state), redkit::job_state::delayed);
    EXPECT_EQ(r.keep_completed_count, 0);
    EXPECT_EQ(r.keep_failed_count, -1);  // absent: keep all
}

// The keeper's clock (queue/detail/keeper.hpp): when a worker renews leases, checks for stalled
// jobs and how long it may sleep, driven by hand through time.
TEST(QueueKeeperTiming, TheStalledCheckRunsAtOnceThenOncePerInterval) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::time_point() + 1000h;
    redkit::detail::keeper_timing k(500ms, 2000ms, t0);
    k.observe(t0, false, false, false);
    EXPECT_TRUE(k.take_check());
    EXPECT_FALSE(k.take_check());  // booked an interval on, whether or not the check succeeds
    k.observe(t0 + 1999ms, false, false, false);
    EXPECT_FALSE(k.take_check());
    EXPECT_EQ(k.wake_at(clock::time_point::max()), t0 + 2000ms);
    k.observe(t0 + 2000ms, false, false, false);
    EXPECT_TRUE(k.take_check());
    // a late look books the next check an interval after it, not after the missed time
    k.observe(t0 + 9000ms, false, false, false);
    EXPECT_TRUE(k.take_check());
    k.observe(t0 + 10000ms, false, false, false);
    EXPECT_FALSE(k.take_check());
    EXPECT_EQ(k.wake_at(clock::time_point::max()), t0 + 11000ms);
    // closing: no more checks, and they no longer bound the sleep
    k.observe(t0 + 20000ms, false, true, false);
    EXPECT_FALSE(k.take_check());
    EXPECT_EQ(k.wake_at(clock::time_point::max()), t0 + 20000ms + 1h);
}

TEST(QueueKeeperTiming, LeasesAreRenewedAnIntervalAfterTheKeeperFirstSeesThemAndThenEveryInterval) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::time_point() + 1000h;
    redkit::detail::keeper_timing k(500ms, 60000ms, t0);
    k.observe(t0, false, false, false);
    ASSERT_TRUE(k.take_check());
    // nothing held: nothing to renew, and renewals do not bound the sleep
    k.observe(t0 + 3000ms, false, false, false);
    EXPECT_FALSE(k.renew_due());
    EXPECT_EQ(k.wake_at(clock::time_point::max()), t0 + 60000ms);
    // the first lease, long after the last renewal was booked: fresh, due an interval on
    k.observe(t0 + 4000ms, true, false, false);
    EXPECT_FALSE(k.renew_due());
    EXPECT_EQ(k.wake_at(clock::time_point::max()), t0 + 4500ms);
    k.observe(t0 + 4499ms, true, false, false);
    EXPECT_FALSE(k.renew_due());
    k.observe(t0 + 4500ms, true, false, false);
    EXPECT_TRUE(k.renew_due());
    // a failed renewal stays due
    k.observe(t0 + 4550ms, true, false, false);
    EXPECT_TRUE(k.renew_due());
    k.renewed(t0 + 4550ms);
    EXPECT_FALSE(k.renew_due());
    EXPECT_EQ(k.wake_at(clock::time_point::max()), t0 + 5050ms);
    // a delayed job due sooner bounds the sleep
    EXPECT_EQ(k.wake_at(t0 + 4700ms), t0 + 4700ms);
    // close() gave up on the running jobs: no renewal, however late
    k.observe(t0 + 9000ms, true, true, true);
    EXPECT_FALSE(k.renew_due());
    EXPECT_EQ(k.wake_at(clock::time_point::max()), t0 + 9000ms + 1h);
}

TEST(QueueKeeperTiming, LeasesHeldAgainAfterAGapAreFreshAgain) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::time_point() + 1000h;
    redkit::detail::keeper_timing k(1000ms, 60000ms, t0);
    k.observe(t0, true, false, false);
    EXPECT_FALSE(k.renew_due());
    k.observe(t0 + 1000ms, true, false, false);
    EXPECT_TRUE(k.renew_due());
    k.renewed(t0 + 1000ms);
    k.observe(t0 + 1200ms, false, false, false);  // every job finished
    k.observe(t0 + 5000ms, true, false, false);   // a new one: its lease is 0 ms old
    EXPECT_FALSE(k.renew_due());
    k.observe(t0 + 5999ms, true, false, false);
    EXPECT_FALSE(k.renew_due());
    k.observe(t0 + 6000ms, true, false, false);
    EXPECT_TRUE(k.renew_due());
}
