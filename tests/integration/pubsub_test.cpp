// SPDX-License-Identifier: MIT
// Pub/sub against a real redis-server: ordering, typed and raw handlers, errors, reconnects, stop.
#include <redkit/pipeline.hpp>
#include <redkit/pubsub.hpp>

#include "support/consumer_steps.hpp"
#include "support/redis_server.hpp"
#include "support/watchdog.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace shop {
struct order_status {
    std::string order_id;
    std::string status;
    long long seq = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_status, order_id, status, seq)
}  // namespace shop

namespace {

// Collects what the subscriber thread sees; tests wait on it with deadlines.
template <class T>
class inbox {
public:
    void push(T value) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            items_.push_back(std::move(value));
        }
        cv_.notify_all();
    }
    bool wait_for_count(std::size_t n, std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(mutex_);
        return cv_.wait_for(lock, timeout, [&] { return items_.size() >= n; });
    }
    std::vector<T> items() {
        std::lock_guard<std::mutex> lock(mutex_);
        return items_;
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(mutex_);
        return items_.size();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<T> items_;
};

class PubSub : public ::testing::Test {
protected:
    void SetUp() override { redis = redkit::client(shared_server().url()); }
    redkit::client redis{redkit::client_options{}};
};

}  // namespace

TEST_F(PubSub, HundredThousandTypedMessagesArriveInOrder) {
    inbox<long long> seen;
    redkit::subscriber sub(redis);
    sub.on<shop::order_status>("orders:updates", [&](const shop::order_status& o) { seen.push(o.seq); });
    ASSERT_TRUE(sub.wait_subscribed(5s));

    constexpr long long total = 100000;
    for (long long batch = 0; batch < total; batch += 1000) {
        redkit::pipeline p(redis);
        for (long long i = batch; i < batch + 1000; ++i) {
            p.command("PUBLISH", "orders:updates", redkit::encode(shop::order_status{"ord_1", "shipped", i}));
        }
        for (const auto& r : p.exec()) ASSERT_EQ(r.as<long long>(), 1);
    }
    ASSERT_TRUE(seen.wait_for_count(total, 120s)) << "received " << seen.size();
    const auto got = seen.items();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(total));
    for (long long i = 0; i < total; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)], i) << "out of order at " << i;
    EXPECT_EQ(sub.delivered(), static_cast<std::uint64_t>(total));
}

TEST_F(PubSub, PublishReturnsReceiverCount) {
    redkit::publisher pub(redis);
    EXPECT_EQ(pub.publish("nobody:listens", 1), 0);
    redkit::subscriber a(redis), b(redis);
    a.on_raw("count:me", [](const redkit::message&) {});
    b.on_raw("count:me", [](const redkit::message&) {});
    ASSERT_TRUE(a.wait_subscribed(5s));
    ASSERT_TRUE(b.wait_subscribed(5s));
    EXPECT_EQ(pub.publish("count:me", shop::order_status{"o", "paid", 1}), 2);
}

TEST_F(PubSub, PatternHandlersSeeChannelAndPattern) {
    inbox<std::string> seen;
    redkit::subscriber sub(redis);
    sub.on_pattern_raw("audit:*", [&](const redkit::message& m) {
        seen.push(std::string(m.pattern) + "|" + std::string(m.channel) + "|" + std::string(m.payload));
    });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    redkit::publisher(redis).publish_raw("audit:login", "user 42");
    ASSERT_TRUE(seen.wait_for_count(1, 5s));
    EXPECT_EQ(seen.items()[0], "audit:*|audit:login|user 42");
}

TEST_F(PubSub, ShardedChannels) {
    inbox<std::string> seen;
    redkit::subscriber sub(redis);
    sub.on_sharded<shop::order_status>("orders:{eu}", [&](const shop::order_status& o, const redkit::message& m) {
        seen.push(o.status + (m.sharded ? "/sharded" : "/plain"));
    });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    EXPECT_EQ(redkit::publisher(redis).publish_sharded("orders:{eu}", shop::order_status{"o", "packed", 2}), 1);
    ASSERT_TRUE(seen.wait_for_count(1, 5s));
    EXPECT_EQ(seen.items()[0], "packed/sharded");
}

TEST_F(PubSub, BadJsonIsReportedAndTheNextMessageStillArrives) {
    inbox<std::string> errors;
    inbox<long long> seen;
    redkit::subscriber_options o;
    o.on_error = [&](const redkit::error& e) {
        errors.push(std::string(redkit::error_category().message(static_cast<int>(e.kind()))) + ": " + e.what());
    };
    redkit::subscriber sub(redis, o);
    sub.on<shop::order_status>("orders:bad", [&](const shop::order_status& s) { seen.push(s.seq); });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    redkit::publisher pub(redis);
    pub.publish_raw("orders:bad", "{not json");
    pub.publish_raw("orders:bad", R"({"order_id":"x"})");  // valid JSON, wrong schema
    pub.publish("orders:bad", shop::order_status{"o", "ok", 7});
    ASSERT_TRUE(seen.wait_for_count(1, 5s));
    EXPECT_EQ(seen.items()[0], 7);
    ASSERT_TRUE(errors.wait_for_count(2, 5s));
    for (const auto& e : errors.items()) {
        EXPECT_NE(e.find("decode error"), std::string::npos) << e;
        EXPECT_NE(e.find("orders:bad"), std::string::npos) << e;
    }
}

TEST_F(PubSub, ThrowingHandlerIsReportedAndDeliveryGoesOn) {
    inbox<std::string> errors;
    inbox<std::string> seen;
    redkit::subscriber_options o;
    o.on_error = [&](const redkit::error& e) { errors.push(e.what()); };
    const auto steps = std::make_shared<redkit_test::consumer_steps>();
    auto watched = redis.options();
    watched.observer = steps;
    redkit::subscriber sub(redkit::client(watched), o);
    sub.on_raw("flaky", [&](const redkit::message& m) {
        if (m.payload == "boom") throw std::runtime_error("handler exploded");
        seen.push(std::string(m.payload));
    });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    redkit::publisher pub(redis);
    pub.publish_raw("flaky", "boom");
    pub.publish_raw("flaky", "fine");
    ASSERT_TRUE(seen.wait_for_count(1, 5s));
    ASSERT_TRUE(errors.wait_for_count(1, 5s));
    EXPECT_NE(errors.items()[0].find("handler exploded"), std::string::npos);
    const auto failed = steps->of(redkit::consumer_step::handler_failed);  // reported before on_error
    ASSERT_EQ(failed.size(), 1U);
    EXPECT_EQ(failed[0].source, "flaky");
    EXPECT_NE(failed[0].reason.find("handler exploded"), std::string::npos);
}

TEST_F(PubSub, UnsubscribeStopsDeliveryAtOnce) {
    inbox<std::string> seen;
    redkit::subscriber sub(redis);
    sub.on_raw("a", [&](const redkit::message& m) { seen.push("a:" + std::string(m.payload)); });
    sub.on_raw("b", [&](const redkit::message& m) { seen.push("b:" + std::string(m.payload)); });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    sub.off("a");
    redkit::publisher pub(redis);
    pub.publish_raw("a", "1");  // may still reach the server-side subscription, but no handler runs
    pub.publish_raw("b", "2");
    ASSERT_TRUE(seen.wait_for_count(1, 5s));
    EXPECT_EQ(seen.items(), std::vector<std::string>{"b:2"});
}

TEST_F(PubSub, SubscribeFromInsideAHandler) {
    inbox<std::string> seen;
    redkit::subscriber sub(redis);
    sub.on_raw("first", [&](const redkit::message&) {
        sub.on_raw("second", [&](const redkit::message& m) { seen.push(std::string(m.payload)); });
        seen.push("subscribed");
    });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    redkit::publisher pub(redis);
    pub.publish_raw("first", "go");
    ASSERT_TRUE(seen.wait_for_count(1, 5s));
    ASSERT_TRUE(sub.wait_subscribed(5s));
    pub.publish_raw("second", "hello");
    ASSERT_TRUE(seen.wait_for_count(2, 5s));
    EXPECT_EQ(seen.items()[1], "hello");
}

TEST_F(PubSub, SubscribeAndUnsubscribeFromManyThreads) {
    std::atomic<long long> received{0};
    redkit::subscriber sub(redis);
    std::vector<std::future<void>> workers;
    for (int t = 0; t < 4; ++t) {
        workers.push_back(std::async(std::launch::async, [&, t] {
            for (int i = 0; i < 200; ++i) {
                const std::string ch = "churn:" + std::to_string(t) + ":" + std::to_string(i % 10);
                sub.on_raw(ch, [&](const redkit::message&) { received.fetch_add(1); });
                if (i % 3 == 0) sub.off(ch);
            }
        }));
    }
    redkit::publisher pub(redis);
    for (int i = 0; i < 200; ++i) pub.publish_raw("churn:0:" + std::to_string(i % 10), "x");
    for (auto& w : workers) ASSERT_EQ(w.wait_for(30s), std::future_status::ready);
    ASSERT_TRUE(sub.wait_subscribed(10s));
    // the final set is subscribed on the server: every thread's last state of each channel
    const long long before = received.load();
    const long long n = pub.publish_raw("churn:3:9", "y");  // i = 199: 199 % 3 != 0, so subscribed
    EXPECT_EQ(n, 1);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (received.load() == before && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    EXPECT_GT(received.load(), before);
}

TEST_F(PubSub, StopIsPromptWhileTheServerIsSilent) {
    auto sub = std::make_unique<redkit::subscriber>(redis);
    sub->on_raw("quiet", [](const redkit::message&) {});
    ASSERT_TRUE(sub->wait_subscribed(5s));
    const auto start = std::chrono::steady_clock::now();
    sub.reset();  // destructor: stop + join
    EXPECT_LT(std::chrono::steady_clock::now() - start, 200ms);
}

TEST_F(PubSub, StopFromManyThreadsAtOnceNeverHangs) {
    // a shutdown thread racing another stop() and the destructor: each joins at most once
    redkit_test::watchdog guard(60s, "racing subscriber::stop()");
    for (int round = 0; round < 40; ++round) {
        auto sub = std::make_unique<redkit::subscriber>(redis);
        sub->on_raw("race", [](const redkit::message&) {});
        std::atomic<int> ready{0};
        std::vector<std::thread> stoppers;
        for (int i = 0; i < 3; ++i) {
            stoppers.emplace_back([&] {
                ready.fetch_add(1);
                while (ready.load() < 4) std::this_thread::yield();
                sub->stop();
            });
        }
        ready.fetch_add(1);
        while (ready.load() < 4) std::this_thread::yield();
        sub->stop();
        for (auto& t : stoppers) t.join();
        sub.reset();  // and the destructor after them
    }
}

TEST_F(PubSub, StopWaitsForTheRunningHandlerOnlyNotForMessagesAlreadyRead) {
    std::atomic<int> started{0};
    std::atomic<bool> stop_called{false};
    std::atomic<int> started_after_stop{0};
    std::promise<void> first;
    std::atomic<bool> first_set{false};
    auto sub = std::make_unique<redkit::subscriber>(redis);
    sub->on_raw("slow", [&](const redkit::message&) {
        if (stop_called.load()) started_after_stop.fetch_add(1);
        started.fetch_add(1);
        if (!first_set.exchange(true)) first.set_value();
        std::this_thread::sleep_for(20ms);
    });
    ASSERT_TRUE(sub->wait_subscribed(5s));
    {
        redkit::pipeline p(redis);
        for (int i = 0; i < 200; ++i) p.command("PUBLISH", "slow", i);
        p.exec();  // 200 messages on their way: the subscriber reads them while the first runs
    }
    ASSERT_EQ(first.get_future().wait_for(5s), std::future_status::ready);
    std::this_thread::sleep_for(50ms);  // a few handlers ran; the rest sit read and buffered
    stop_called = true;
    const auto start = std::chrono::steady_clock::now();
    sub->stop();
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_LT(took, 500ms) << "stop() waited for queued messages";
    // at most the handler that was about to start when the flag above was raised
    EXPECT_LE(started_after_stop.load(), 1);
    EXPECT_LT(started.load(), 50);
}

TEST_F(PubSub, StopFromInsideAHandlerRunsNoFurtherHandler) {
    std::atomic<int> calls{0};
    std::promise<void> stopped;
    auto sub = std::make_unique<redkit::subscriber>(redis);
    sub->on_raw("inner-stop", [&](const redkit::message&) {
        if (calls.fetch_add(1) == 0) {
            sub->stop();  // only requests the stop
            stopped.set_value();
        }
    });
    ASSERT_TRUE(sub->wait_subscribed(5s));
    {
        redkit::pipeline p(redis);
        for (int i = 0; i < 100; ++i) p.command("PUBLISH", "inner-stop", i);
        p.exec();
    }
    ASSERT_EQ(stopped.get_future().wait_for(5s), std::future_status::ready);
    sub.reset();  // joins
    EXPECT_EQ(calls.load(), 1);
}

TEST_F(PubSub, ARedkitErrorFromAHandlerIsAHandlerFailureNamingTheChannel) {
    inbox<std::pair<redkit::errc, std::string>> errors;
    redkit::subscriber_options o;
    o.on_error = [&](const redkit::error& e) { errors.push({e.kind(), e.what()}); };
    redkit::subscriber sub(redis, o);
    sub.on<shop::order_status>("orders:handler", [&](const shop::order_status&) {
        // e.g. a Redis call inside the handler failed
        throw redkit::error(redkit::errc::timeout, "redkit: GET inventory:7: timeout after 1000 ms");
    });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    redkit::publisher(redis).publish("orders:handler", shop::order_status{"o", "ok", 1});
    ASSERT_TRUE(errors.wait_for_count(1, 5s));
    const auto e = errors.items()[0];
    EXPECT_EQ(e.first, redkit::errc::handler_failed) << e.second;
    EXPECT_NE(e.second.find("orders:handler"), std::string::npos) << e.second;
    EXPECT_NE(e.second.find("inventory:7"), std::string::npos) << e.second;  // the cause is kept
}

TEST(PubSubFaults, ServerRestartIsFollowedByResubscription) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "needs a private server";
    redkit::client c(server.url());
    std::promise<void> reconnected;
    std::atomic<bool> once{false};
    inbox<std::string> seen;
    inbox<std::string> errors;
    redkit::subscriber_options o;
    o.reconnect_backoff = 20ms;
    o.on_reconnect = [&] {
        if (!once.exchange(true)) reconnected.set_value();
    };
    o.on_error = [&](const redkit::error& e) { errors.push(e.what()); };
    redkit::subscriber sub(c, o);
    sub.on_raw("events", [&](const redkit::message& m) { seen.push(std::string(m.payload)); });
    sub.on_pattern_raw("events:*", [&](const redkit::message& m) { seen.push("p:" + std::string(m.payload)); });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    redkit::publisher pub(c);
    pub.publish_raw("events", "before");
    ASSERT_TRUE(seen.wait_for_count(1, 5s));

    server.restart();
    ASSERT_EQ(reconnected.get_future().wait_for(10s), std::future_status::ready);
    EXPECT_GE(errors.size(), 1u);  // the drop was reported
    EXPECT_EQ(sub.reconnects(), 1u);
    EXPECT_EQ(pub.publish_raw("events", "after"), 1);
    EXPECT_EQ(pub.publish_raw("events:x", "pattern-after"), 1);
    ASSERT_TRUE(seen.wait_for_count(3, 5s));
    const auto got = seen.items();
    EXPECT_EQ(got[1], "after");
    EXPECT_EQ(got[2], "p:pattern-after");
}

TEST(PubSubFaults, ClientKillIsFollowedByResubscription) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "needs a private server";
    auto watched = redkit::parse_url(server.url());
    const auto steps = std::make_shared<redkit_test::consumer_steps>();
    watched.observer = steps;
    redkit::client c(watched);
    std::promise<void> reconnected;
    redkit::subscriber_options o;
    o.reconnect_backoff = 10ms;
    o.on_reconnect = [&] { reconnected.set_value(); };
    inbox<std::string> seen;
    redkit::subscriber sub(c, o);
    sub.on_raw("k", [&](const redkit::message& m) { seen.push(std::string(m.payload)); });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    EXPECT_EQ(c.command<long long>("CLIENT", "KILL", "TYPE", "pubsub"), 1);
    ASSERT_EQ(reconnected.get_future().wait_for(10s), std::future_status::ready);
    EXPECT_EQ(redkit::publisher(c).publish_raw("k", "again"), 1);
    ASSERT_TRUE(seen.wait_for_count(1, 5s));
    EXPECT_EQ(steps->of(redkit::consumer_step::reconnected).size(), 1U);
}

TEST(PubSubFaults, UnansweredPingTriggersReconnect) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "needs a private server";
    redkit::client c(server.url());
    std::promise<void> reconnected;
    std::atomic<bool> once{false};
    inbox<std::string> errors;
    redkit::subscriber_options o;
    o.ping_interval = 100ms;
    o.reconnect_backoff = 10ms;
    o.on_error = [&](const redkit::error& e) {
        if (e.kind() == redkit::errc::timeout) errors.push(e.what());
    };
    o.on_reconnect = [&] {
        if (!once.exchange(true)) reconnected.set_value();
    };
    redkit::subscriber sub(c, o);
    sub.on_raw("hb", [](const redkit::message&) {});
    ASSERT_TRUE(sub.wait_subscribed(5s));
    c.command<void>("DEBUG", "SLEEP", "0.6");  // the server answers nothing for 600 ms
    ASSERT_TRUE(errors.wait_for_count(1, 5s));
    EXPECT_NE(errors.items()[0].find("PING"), std::string::npos);
    ASSERT_EQ(reconnected.get_future().wait_for(10s), std::future_status::ready);
}
