// SPDX-License-Identifier: MIT
// Durable messaging with Redis Streams and consumer groups: nothing lost when a consumer dies.
#include <redkit/stream.hpp>

#include "support/consumer_steps.hpp"
#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace billing {
struct event {
    long long seq = 0;
    std::string kind;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(event, seq, kind)
}  // namespace billing

namespace {
class Streams : public redkit_test::fresh_database {
protected:
    long long pending(const std::string& key, const std::string& group) {
        const redkit::reply r = redis.command("XPENDING", key, group);
        return r[0].integer();
    }
};
}  // namespace

TEST_F(Streams, AddReadAcknowledge) {
    redkit::stream<billing::event> s(redis, "billing:events");
    for (int i = 0; i < 10; ++i) s.add(billing::event{i, "charge"});
    EXPECT_EQ(s.size(), 10);
    std::vector<long long> seen;
    redkit::stream_consumer_options o;
    o.block = 100ms;
    redkit::stream_consumer<billing::event> c(
        redis, "billing:events", "billing", "c1",
        [&](const billing::event& e, const redkit::stream_entry&) { seen.push_back(e.seq); }, o);
    while (seen.size() < 10) ASSERT_GT(c.poll_once(), 0u);
    EXPECT_EQ(seen, (std::vector<long long>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_EQ(pending("billing:events", "billing"), 0);
    EXPECT_EQ(c.processed(), 10u);
}

TEST_F(Streams, ApproximateTrimming) {
    redkit::stream<int> s(redis, "trimmed", 100);
    for (int i = 0; i < 2000; ++i) s.add(i);
    EXPECT_LT(s.size(), 2000);
    EXPECT_GE(s.size(), 100);
}

TEST_F(Streams, ConsumerKilledMidBatchLosesNothing) {
    const std::string key = "orders:stream";
    redkit::stream<billing::event> s(redis, key);
    s.create_group("workers", "0");
    for (int i = 0; i < 20; ++i) s.add(billing::event{i, "ship"});

    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The victim: takes a batch of 10, handles 4, and dies in the middle of the 5th.
        redkit::client mine(shared_server().url());
        redkit::stream_consumer_options o;
        o.batch = 10;
        o.block = 100ms;
        o.claim_idle = 0ms;
        int handled = 0;
        redkit::stream_consumer<billing::event> victim(
            mine, key, "workers", "victim",
            [&](const billing::event& e, const redkit::stream_entry&) {
                if (++handled == 5) ::_exit(0);  // SIGKILL-like: no cleanup, no ack
                mine.command<long long>("SADD", "done", e.seq);
            },
            o);
        victim.poll_once();
        ::_exit(3);  // not reached
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(redis.command<long long>("SCARD", "done"), 4);
    EXPECT_EQ(pending(key, "workers"), 6);  // the rest of the victim's batch: delivered, never acknowledged

    redkit::stream_consumer_options o;
    o.batch = 10;
    o.block = 50ms;
    o.claim_idle = 100ms;
    redkit::stream_consumer<billing::event> rescuer(
        redis, key, "workers", "rescuer",
        [&](const billing::event& e, const redkit::stream_entry&) { redis.command<long long>("SADD", "done", e.seq); },
        o);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (redis.command<long long>("SCARD", "done") < 20 && std::chrono::steady_clock::now() < deadline)
        rescuer.poll_once();
    EXPECT_EQ(redis.command<long long>("SCARD", "done"), 20);
    EXPECT_EQ(pending(key, "workers"), 0);
}

TEST_F(Streams, ThrowingHandlerIsRetriedAfterClaimIdle) {
    const auto steps = std::make_shared<redkit_test::consumer_steps>();
    auto watched = redis.options();
    watched.observer = steps;
    const redkit::client observed(watched);
    redkit::stream<billing::event> s(redis, "retry:stream");
    s.add(billing::event{1, "charge"});
    int attempts = 0;
    std::vector<std::string> errors;
    redkit::stream_consumer_options o;
    o.block = 50ms;
    o.claim_idle = 100ms;
    o.on_error = [&](const redkit::error& e) { errors.push_back(e.what()); };
    redkit::stream_consumer<billing::event> c(
        observed, "retry:stream", "g", "c",
        [&](const billing::event&, const redkit::stream_entry&) {
            if (++attempts == 1) throw std::runtime_error("payment provider down");
        },
        o);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (c.processed() == 0 && std::chrono::steady_clock::now() < deadline) c.poll_once();
    EXPECT_EQ(attempts, 2);
    EXPECT_EQ(c.processed(), 1u);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("payment provider down"), std::string::npos);
    EXPECT_EQ(pending("retry:stream", "g"), 0);
    // the observer saw the entry read twice (new, then claimed) and the handler fail once
    using step = redkit::consumer_step;
    const auto read = steps->of(step::delivered);
    ASSERT_EQ(read.size(), 2U);
    EXPECT_EQ(read[0].source, "retry:stream");
    EXPECT_EQ(read[0].group, "g");
    EXPECT_EQ(read[0].id, read[1].id);
    const auto failed = steps->of(step::handler_failed);
    ASSERT_EQ(failed.size(), 1U);
    EXPECT_NE(failed[0].reason.find("payment provider down"), std::string::npos);
}

TEST_F(Streams, ADeliveredEntrysLagIsItsAge) {
    const auto steps = std::make_shared<redkit_test::consumer_steps>();
    auto watched = redis.options();
    watched.observer = steps;
    const redkit::client observed(watched);
    // an entry added 5 s ago, as its id says (the server's clock)
    const auto t = redis.command<std::vector<long long>>("TIME");
    const long long five_ago = t.at(0) * 1000 + t.at(1) / 1000 - 5000;
    redis.command<std::string>("XADD", "lagging", std::to_string(five_ago) + "-0", "data", R"({"seq":1,"kind":"x"})");
    redkit::stream_consumer_options o;
    o.block = 50ms;
    o.group_start = "0";
    std::vector<long long> seen;
    redkit::stream_consumer<billing::event> c(
        observed, "lagging", "g", "c",
        [&](const billing::event& e, const redkit::stream_entry&) { seen.push_back(e.seq); }, o);
    c.poll_once();
    ASSERT_EQ(seen.size(), 1U);
    const auto read = steps->of(redkit::consumer_step::delivered);
    ASSERT_EQ(read.size(), 1U);
    EXPECT_GE(read[0].lag, 4900ms);
    EXPECT_LT(read[0].lag, 60s);
}

TEST_F(Streams, PoisonEntryIsDeadLetteredNotLost) {
    redkit::stream<billing::event> s(redis, "poison");
    s.add_raw("{definitely not json");
    s.add(billing::event{2, "ok"});
    std::vector<long long> seen;
    redkit::stream_consumer_options o;
    o.block = 50ms;
    o.on_error = [](const redkit::error&) {};
    const auto steps = std::make_shared<redkit_test::consumer_steps>();
    auto watched = redis.options();
    watched.observer = steps;
    redkit::stream_consumer<billing::event> c(
        redkit::client(watched), "poison", "g", "c",
        [&](const billing::event& e, const redkit::stream_entry&) { seen.push_back(e.seq); }, o);
    c.poll_once();
    EXPECT_EQ(seen, std::vector<long long>{2});
    const auto lettered = steps->of(redkit::consumer_step::dead_letter);
    ASSERT_EQ(lettered.size(), 1U);
    EXPECT_EQ(lettered[0].source, "poison");
    EXPECT_FALSE(lettered[0].reason.empty());
    EXPECT_EQ(pending("poison", "g"), 0);
    const redkit::reply dead = redis.command("XRANGE", "{poison}:dead", "-", "+");
    ASSERT_EQ(dead.size(), 1u);
    const auto fields = dead[0][1].as<std::vector<std::string>>();
    EXPECT_EQ(fields.at(5), "{definitely not json");
}

TEST_F(Streams, StopInterruptsABlockedRead) {
    redkit::stream_consumer_options o;
    o.block = 10s;  // a long block: stop must not wait for it
    redkit::stream_consumer<billing::event> c(
        redis, "idle:stream", "g", "c", [](const billing::event&, const redkit::stream_entry&) {}, o);
    c.start();
    std::this_thread::sleep_for(
        100ms);  // let it enter XREADGROUP ... BLOCK (not a synchronisation: either way stop must be prompt)
    const auto start = std::chrono::steady_clock::now();
    c.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
}

TEST_F(Streams, BackgroundConsumerProcessesWhatArrives) {
    std::promise<void> all;
    std::atomic<int> count{0};
    redkit::stream_consumer_options o;
    o.block = 200ms;
    redkit::stream_consumer<billing::event> c(
        redis, "live", "g", "c",
        [&](const billing::event&, const redkit::stream_entry&) {
            if (++count == 50) all.set_value();
        },
        o);
    c.start();
    redkit::stream<billing::event> s(redis, "live");
    for (int i = 0; i < 50; ++i) s.add(billing::event{i, "x"});
    ASSERT_EQ(all.get_future().wait_for(10s), std::future_status::ready);
    c.stop();
    EXPECT_EQ(c.processed(), 50u);
}
