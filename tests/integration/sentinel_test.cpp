// SPDX-License-Identifier: MIT
// Sentinel against real servers: one primary, one replica, three sentinels on loopback. The client
// finds the primary through the sentinels, with their own password, and the same client objects
// (cache, rate limiter, queue and worker, subscriber) recover by themselves from a SENTINEL
// FAILOVER and from a kill -9 of the primary in the middle of a workload; every job add()
// acknowledged (replicated with WAIT) is completed.
#include <redkit/redkit.hpp>

#include "support/error_log.hpp"
#include "support/sentinel_topology.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::error_log;
using redkit_test::sentinel_topology;

namespace {

using clock_type = std::chrono::steady_clock;

// Cache, rate limiter and queue adds in a loop, measuring how long calls kept failing.
class workload {
public:
    explicit workload(const redkit::client& redis)
        : redis_(redis),
          cache_(redis,
                 [] {
                     redkit::cache_options o;
                     o.on_failure = redkit::cache_failure_policy::throw_error;  // count failures, do not hide them
                     o.outage_backoff = 0ms;
                     return o;
                 }()),
          limiter_(redkit::rate_limiter::fixed_window(redis, "api", 1000000, 1min,
                                                      [] {
                                                          redkit::rate_limit_options o;
                                                          o.on_failure = redkit::rate_limit_failure_policy::raise;
                                                          return o;
                                                      }())),
          jobs_(redis, "failover", [] {
              redkit::queue_options o;
              o.replicas = 1;  // acknowledged = on the replica too: survives the primary's death
              o.replica_timeout = 300ms;
              return o;
          }()) {}

    void start() {
        thread_ = std::thread([this] { run(); });
    }
    void stop() {
        stop_ = true;
        thread_.join();
    }

    std::set<std::string> acknowledged() {
        std::lock_guard<std::mutex> lock(mutex_);
        return acked_;
    }
    long long failed_calls() const { return failed_.load(); }
    long long ok_rounds() const { return ok_.load(); }  // successful cache + rate limit rounds
    long long longest_command_stall_ms() const { return command_stall_ms_.load(); }
    long long longest_add_stall_ms() const { return add_stall_ms_.load(); }
    redkit::queue<int>& queue() { return jobs_; }

private:
    void run() {
        stall command_stall, add_stall;
        for (int i = 0; !stop_; ++i) {
            try {
                (void)cache_.get_or_set<int>(
                    "product:" + std::to_string(i % 50), [&] { return i; }, 60s);
                (void)limiter_.hit("client-" + std::to_string(i % 7));
                command_stall.ok(command_stall_ms_);
                ++ok_;
            } catch (const redkit::error&) {
                ++failed_;
            }
            try {
                const auto added = jobs_.add("job", i);
                std::lock_guard<std::mutex> lock(mutex_);
                acked_.insert(added.id);
                add_stall.ok(add_stall_ms_);
            } catch (const redkit::error&) {
                ++failed_;
            }
            std::this_thread::sleep_for(2ms);
        }
    }

    // The longest time between two successes (from the first one on).
    struct stall {
        std::optional<clock_type::time_point> last;
        void ok(std::atomic<long long>& longest) {
            const auto now = clock_type::now();
            if (last) {
                const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(now - *last).count();
                if (gap > longest.load()) longest = gap;
            }
            last = now;
        }
    };

    redkit::client redis_;
    redkit::cache cache_;
    redkit::rate_limiter limiter_;
    redkit::queue<int> jobs_;
    std::atomic<bool> stop_{false};
    std::atomic<long long> failed_{0}, ok_{0}, command_stall_ms_{0}, add_stall_ms_{0};
    std::mutex mutex_;
    std::set<std::string> acked_;
    std::thread thread_;
};

// Runs the workload and a worker through `disrupt`, then checks that everything recovered.
void run_through(sentinel_topology& t, const char* what, const std::function<void()>& disrupt,
                 const std::function<void()>& after = {}) {
    error_log log;
    auto o = redkit::parse_url(t.url());
    o.command_timeout = 1000ms;
    o.connect_timeout = 500ms;
    o.max_retries = 3;
    o.on_error = log.callback();
    redkit::client redis(o);
    const int old_primary = t.primary_port();

    workload w(redis);
    std::mutex done_mutex;
    std::set<std::string> completed;
    redkit::worker_options<int> wo;
    wo.concurrency = 4;
    wo.lease_duration = 1000ms;  // a job leased from the dead primary is recovered after a second
    wo.stalled_interval = 200ms;
    wo.block_timeout = 500ms;
    wo.on_error = log.callback();
    redkit::worker<int> worker(
        w.queue(),
        [&](redkit::job<int>& j) {
            std::lock_guard<std::mutex> lock(done_mutex);
            completed.insert(j.id());
        },
        wo);

    std::atomic<int> received{0};
    redkit::subscriber sub(redis);
    sub.on_raw("failover:events", [&](const redkit::message&) { ++received; });
    ASSERT_TRUE(sub.wait_subscribed(5s));

    w.start();
    std::this_thread::sleep_for(1s);
    const long long before = w.ok_rounds();
    disrupt();
    ASSERT_TRUE(t.wait_for_new_primary(old_primary)) << "no failover";
    if (after) after();
    // the same objects keep working: a few seconds of successful rounds after the failover
    const long long at_failover = w.ok_rounds();
    const auto deadline = clock_type::now() + 20s;
    while (w.ok_rounds() < at_failover + 200 && clock_type::now() < deadline) std::this_thread::sleep_for(20ms);
    w.stop();
    EXPECT_GE(w.ok_rounds(), at_failover + 200) << "the workload did not recover";
    EXPECT_GT(before, 0);
    EXPECT_EQ(std::to_string(t.primary_port()), redis.command<std::vector<std::string>>("CONFIG", "GET", "port").at(1))
        << "the client talks to the new primary";

    // every acknowledged job completes (at least once)
    const auto acked = w.acknowledged();
    const auto jobs_deadline = clock_type::now() + 30s;
    for (;;) {
        std::size_t missing = 0;
        {
            std::lock_guard<std::mutex> lock(done_mutex);
            for (const auto& id : acked) missing += completed.count(id) == 0 ? 1u : 0u;
        }
        if (missing == 0 || clock_type::now() > jobs_deadline) {
            EXPECT_EQ(missing, 0u) << missing << " acknowledged jobs never completed";
            break;
        }
        std::this_thread::sleep_for(50ms);
    }
    // pub/sub follows too: a message published on the new primary arrives
    const auto sub_deadline = clock_type::now() + 10s;
    while (received.load() == 0 && clock_type::now() < sub_deadline) {
        redkit::publisher(redis).publish_raw("failover:events", "after");
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_GT(received.load(), 0) << "the subscriber did not follow the failover";
    EXPECT_TRUE(worker.close(5s));
    std::printf(
        "%s: longest stall %lld ms (cache + rate limit), %lld ms (adds acknowledged by a replica); "
        "%lld failed calls; %zu jobs acknowledged, %zu distinct jobs completed\n",
        what, w.longest_command_stall_ms(), w.longest_add_stall_ms(), w.failed_calls(), acked.size(), completed.size());
}

}  // namespace

TEST(Sentinel, FindsThePrimaryWithTheSentinelsOwnPassword) {
    sentinel_topology t("sentinel-secret");
    redkit::client redis(t.url());
    redis.command<void>("SET", "k", "v");
    EXPECT_EQ(redis.command<std::string>("GET", "k"), "v");
    EXPECT_EQ(redis.command<std::vector<redkit::reply>>("ROLE").at(0).text(), "master");

    // without the sentinels' password nobody tells where the primary is: a clear error, in time
    auto o = redkit::parse_url(t.url());
    o.sentinel.password.clear();
    o.max_retries = 0;
    const auto start = clock_type::now();
    try {
        redkit::client(o).ping();
        FAIL() << "connected without the sentinels' password";
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::connect_failed) << e.what();
        EXPECT_NE(std::string(e.what()).find("sentinel"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("NOAUTH"), std::string::npos) << e.what();
    }
    EXPECT_LT(clock_type::now() - start, 5s);
}

TEST(Sentinel, NoReachableSentinelIsAClearError) {
    auto o = redkit::parse_url("redis+sentinel://127.0.0.1:" + std::to_string(redkit_test::free_loopback_port()) +
                               "/mymaster");
    o.max_retries = 0;
    try {
        redkit::client(o).ping();
        FAIL();
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::connect_failed) << e.what();
        EXPECT_NE(std::string(e.what()).find("no sentinel named a primary for 'mymaster'"), std::string::npos)
            << e.what();
    }
}

TEST(Sentinel, TheSameObjectsFollowASentinelFailover) {
    sentinel_topology t;
    run_through(t, "SENTINEL FAILOVER", [&] { t.failover(); });
}

TEST(Sentinel, TheSameObjectsFollowAKilledPrimary) {
    sentinel_topology t;
    // the dead primary comes back and the sentinels make it the new primary's replica: adds can
    // be acknowledged by a replica again
    run_through(
        t, "kill -9 of the primary", [&] { t.first_primary().kill(); }, [&] { t.first_primary().start(); });
}

TEST(Sentinel, PooledConnectionsToADemotedPrimaryAreReplaced) {
    sentinel_topology t;
    auto o = redkit::parse_url(t.url());
    o.pool_size = 1;
    struct switches : redkit::observer {  // observer::on_sentinel_switch, kept as "master from to"
        void on_sentinel_switch(const redkit::sentinel_switch_event& e) override {
            std::lock_guard<std::mutex> lock(mutex);
            seen.push_back(std::string(e.master) + " " + std::string(e.from) + " " + std::string(e.to));
        }
        std::vector<std::string> take() {
            std::lock_guard<std::mutex> lock(mutex);
            return seen;
        }
        std::mutex mutex;
        std::vector<std::string> seen;
    };
    const auto watched = std::make_shared<switches>();
    o.observer = watched;
    redkit::client redis(o);
    auto counted_options = o;  // redkit::metrics counts the same switch
    const auto counts = std::make_shared<redkit::metrics>();
    counted_options.observer = counts;
    redkit::client counted(counted_options);
    counted.command<void>("PING");
    EXPECT_EQ(redis.command<std::vector<redkit::reply>>("ROLE").at(0).text(), "master");  // one pooled connection
    const int old_primary = t.primary_port();
    t.failover();
    ASSERT_TRUE(t.wait_for_new_primary(old_primary));
    // ROLE and CONFIG work on a replica too: were the old connection kept, it would answer forever
    // from the old primary's port; the sentinels' +switch-master makes it stale, so it is replaced
    const std::string new_primary = std::to_string(t.primary_port());
    const auto deadline = clock_type::now() + 5s;
    std::string port;
    while (clock_type::now() < deadline) {
        port = redis.command<std::vector<std::string>>("CONFIG", "GET", "port").at(1);
        if (port == new_primary) break;
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(port, new_primary);
    EXPECT_EQ(redis.command<std::vector<redkit::reply>>("ROLE").at(0).text(), "master");
    // the observer heard of the switch once, from the old primary to the new
    const auto seen = watched->take();
    ASSERT_EQ(seen.size(), 1U);
    EXPECT_EQ(seen[0].substr(0, seen[0].find(' ')), o.sentinel.master);
    EXPECT_NE(seen[0].find(":" + std::to_string(old_primary) + " "), std::string::npos) << seen[0];
    EXPECT_EQ(seen[0].substr(seen[0].rfind(':') + 1), new_primary) << seen[0];
    const auto counted_deadline = clock_type::now() + 5s;  // its connection is replaced on its next use
    while (counts->snapshot().sentinel_switches == 0 && clock_type::now() < counted_deadline) {
        (void)counted.command<std::string>("PING");
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(counts->snapshot().sentinel_switches, 1U);
}

TEST(Sentinel, TheMultiplexedConnectionFollowsAFailover) {
    sentinel_topology t;
    auto o = redkit::parse_url(t.url());
    o.multiplex = true;
    o.pool_size = 1;  // what spills to the pool (a lightly loaded shared connection) stays on one
    o.max_retries = 3;
    o.command_timeout = 1000ms;
    redkit::client redis(o);
    std::atomic<bool> stop{false};
    std::atomic<long long> writes{0}, failures{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 8; ++i) {
        ts.emplace_back([&] {
            while (!stop.load()) {
                try {
                    redis.command<long long>("INCR", "mux:writes");
                    ++writes;
                } catch (const redkit::error&) {
                    ++failures;  // during the switch; READONLY is retried, so these stay few
                    std::this_thread::sleep_for(10ms);
                }
            }
        });
    }
    std::this_thread::sleep_for(300ms);
    const int old_primary = t.primary_port();
    t.failover();
    ASSERT_TRUE(t.wait_for_new_primary(old_primary));
    const long long at_failover = writes.load();
    const auto deadline = clock_type::now() + 10s;
    while (writes.load() < at_failover + 2000 && clock_type::now() < deadline) std::this_thread::sleep_for(20ms);
    stop = true;
    for (auto& th : ts) th.join();
    EXPECT_GE(writes.load(), at_failover + 2000) << "writes through the shared connection did not resume";
    // until every sentinel has announced the switch and the old primary is reconfigured, it may
    // still take writes (Sentinel's own window); within seconds the shared connection moves
    const std::string new_primary = std::to_string(t.primary_port());
    std::string port;
    const auto moved_by = clock_type::now() + 10s;
    while (clock_type::now() < moved_by) {
        port = redis.command<std::vector<std::string>>("CONFIG", "GET", "port").at(1);
        if (port == new_primary) break;
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(port, new_primary) << "the shared connection stayed on the old primary";
    EXPECT_LE(redis.open_connections(), 2u) << "the writes took pooled connections instead of the shared one";
    std::printf("multiplexed through SENTINEL FAILOVER: %lld writes, %lld failed during the switch\n", writes.load(),
                failures.load());
}

namespace {

// INCRs one key in a loop through the sentinels, counting the increments the client acknowledged
// and the longest call, until stopped.
class counter_loop {
public:
    counter_loop(redkit::client redis, std::string key) : redis_(std::move(redis)), key_(std::move(key)) {
        thread_ = std::thread([this] { run(); });
    }
    ~counter_loop() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    long long acknowledged() const { return acked_.load(); }
    long long failed() const { return failed_.load(); }
    long long longest_call_ms() const { return longest_ms_.load(); }
    const std::string& key() const { return key_; }

private:
    void run() {
        while (!stop_) {
            const auto start = clock_type::now();
            try {
                (void)redis_.command<long long>("INCR", key_);
                ++acked_;
            } catch (const redkit::error&) {
                ++failed_;  // may or may not have run: not counted as acknowledged
            }
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start).count();
            if (ms > longest_ms_.load()) longest_ms_ = ms;
        }
    }

    redkit::client redis_;
    std::string key_;
    std::atomic<bool> stop_{false};
    std::atomic<long long> acked_{0}, failed_{0}, longest_ms_{0};
    std::thread thread_;
};

}  // namespace

// SENTINEL FAILOVER while INCRs run, through the shared connection and through pooled ones: the
// client holds its writes from the moment the leading sentinel announces the failover until it
// names the new primary, so the old primary acknowledges nothing the new one will not have.
TEST(Sentinel, APlannedFailoverLosesNoAcknowledgedWrite) {
    sentinel_topology t;
    error_log log;
    auto o = redkit::parse_url(t.url());
    o.command_timeout = 1000ms;
    o.max_retries = 3;
    o.on_error = log.callback();
    auto pooled_options = o;
    pooled_options.multiplex = false;
    const int old_primary = t.primary_port();
    {
        counter_loop shared(redkit::client(o), "planned:shared");
        counter_loop pooled(redkit::client(pooled_options), "planned:pooled");
        std::this_thread::sleep_for(3s);
        t.failover();
        ASSERT_TRUE(t.wait_for_new_primary(old_primary)) << "no failover";
        std::this_thread::sleep_for(1s);  // writes go on against the new primary
        shared.stop();
        pooled.stop();
        // what the new primary holds, asked directly
        redkit::client primary("redis://127.0.0.1:" + std::to_string(t.primary_port()));
        for (const counter_loop* loop : {&shared, &pooled}) {
            const auto held = primary.command<std::optional<long long>>("GET", loop->key()).value_or(0);
            const long long lost = std::max(0LL, loop->acknowledged() - held);
            std::printf(
                "planned failover, %s: %lld increments acknowledged, %lld on the new primary, %lld lost, "
                "%lld failed; longest call %lld ms\n",
                loop->key().c_str(), loop->acknowledged(), held, lost, loop->failed(), loop->longest_call_ms());
            EXPECT_EQ(lost, 0) << loop->key() << ": acknowledged increments vanished";
            EXPECT_LE(held, loop->acknowledged() + loop->failed()) << "more increments than were sent";
            EXPECT_GT(loop->acknowledged(), 0);
        }
    }
}

// The near cache's invalidation connection follows the primary: a write on the new primary drops
// what was cached from the old one.
TEST(Sentinel, TheNearCacheFollowsAFailover) {
    sentinel_topology t;
    auto o = redkit::parse_url(t.url());
    o.command_timeout = 1000ms;
    o.max_retries = 3;
    redkit::client redis(o);
    redkit::cache_options co;
    co.keys = redkit::key_space("near");
    co.near.enabled = true;
    redkit::cache c(redis, co);
    const auto deadline = clock_type::now() + 10s;
    while (!c.near_stats().connected && clock_type::now() < deadline) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(c.near_stats().connected);
    c.set("k", 1, 10min);
    const auto filled_by = clock_type::now() + 5s;
    while (c.near_stats().entries == 0 && clock_type::now() < filled_by) {
        ASSERT_EQ(c.get<int>("k"), 1);  // the first reads may race the report of our own write
    }
    ASSERT_EQ(c.near_stats().entries, 1U);
    const int old_primary = t.primary_port();
    t.failover();
    ASSERT_TRUE(t.wait_for_new_primary(old_primary));
    redkit::client primary("redis://127.0.0.1:" + std::to_string(t.primary_port()));
    primary.command<void>("SET", "near:k", "2");
    const auto written = clock_type::now();
    std::optional<int> seen;
    while (clock_type::now() < written + 10s) {
        seen = c.get<int>("k");
        if (seen == 2) break;
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_EQ(seen, 2) << "the near cache kept the old primary's value";
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - written).count();
    std::printf("near cache through SENTINEL FAILOVER: the new primary's write was seen after %lld ms\n",
                static_cast<long long>(took));
    EXPECT_LT(took, 2500) << "health_check + command_timeout, and the time the sentinels take to say so";
}
