// SPDX-License-Identifier: MIT
// redkit on a real Redis Cluster (3 primaries, 3 replicas, started by the harness on loopback):
// routing by slot, refusals before anything is sent, split multi-key commands, SCAN over every
// primary, pipelines split per node, one-slot transactions, a primary killed in the middle of a
// workload, a slot migrated under load (ASK and TRYAGAIN really happen), and the near cache through
// both (nothing stale served: its worst staleness is printed).
//
// The pattern suites (cache, rate limits, sessions, pub/sub, queues, streams, pipelines) also run
// unchanged on a cluster with REDKIT_TEST_CLUSTER=1 (see tests/CMakeLists.txt).
#include <redkit/redkit.hpp>

#include "support/error_log.hpp"
#include "support/eventually.hpp"
#include "support/redis_cluster.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::eventually;
using redkit_test::redis_cluster;

namespace {

redis_cluster& shared_cluster() {
    static redis_cluster c;
    return c;
}

// The node (harness index) serving `slot`, from CLUSTER SLOTS as node `ask` sees it.
int owner_of(const redis_cluster& c, int slot, int ask = 0) {
    redkit::connection conn(redkit::parse_url("redis://127.0.0.1:" + std::to_string(c.port(ask))));
    for (const auto& range : conn.command<std::vector<redkit::reply>>("CLUSTER", "SLOTS")) {
        const auto& f = range.elements();
        if (f[0].integer() <= slot && slot <= f[1].integer()) {
            return c.index_of(static_cast<int>(f[2].elements()[1].integer()));
        }
    }
    return -1;
}

long long stat_calls(const redis_cluster& c, int node, const std::string& command) {
    const std::string info = c.run(node, {"INFO", "commandstats"});
    const std::string tag = "cmdstat_" + command + ":calls=";
    const auto at = info.find(tag);
    return at == std::string::npos ? 0 : std::stoll(info.substr(at + tag.size()));
}

long long calls_everywhere(const redis_cluster& c, const std::string& command) {
    long long n = 0;
    for (int i = 0; i < redis_cluster::size; ++i) {
        try {
            n += stat_calls(c, i, command);
        } catch (const std::exception&) {
            // a node killed by an earlier test
        }
    }
    return n;
}

class Cluster : public ::testing::Test {
protected:
    void SetUp() override {
        redis = redkit::client(shared_cluster().url());
        redis.command<void>("FLUSHALL");
    }
    redkit::client redis{redkit::client_options{}};
};

}  // namespace

TEST(ClusterSlots, KeySlotsMatchTheServersOwn) {
    redis_cluster& c = shared_cluster();
    const std::vector<std::string> keys = {
        "",      "a",        "user:42", "{user:42}:cart", "x{}y",
        "{}{a}", "a{b}c{d}", "{{a}}",   "{a}}",           std::string("\xff\x00\x01", 3)};
    for (const std::string& key : keys) {
        EXPECT_EQ(redkit::key_slot(key), std::stoi(c.run(0, {"CLUSTER", "KEYSLOT", key}))) << key;
    }
}

TEST_F(Cluster, CommandsGoToTheNodeOwningTheirSlot) {
    constexpr int n = 600;
    for (int i = 0; i < n; ++i) redis.command<void>("SET", "k" + std::to_string(i), i);
    // each primary holds exactly the keys of its slots, and all three hold some
    long long total = 0;
    int holding = 0;
    for (int node = 0; node < redis_cluster::size; ++node) {
        if (shared_cluster().run(node, {"ROLE"}).rfind("master", 0) != 0) continue;
        const long long here = std::stoll(shared_cluster().run(node, {"DBSIZE"}));
        total += here;
        holding += here > 0 ? 1 : 0;
    }
    EXPECT_EQ(total, n);
    EXPECT_EQ(holding, 3);
    for (int i = 0; i < n; i += 37) EXPECT_EQ(redis.command<long long>("GET", "k" + std::to_string(i)), i);
    EXPECT_EQ(redis.command<long long>("DBSIZE"), n);  // summed over the primaries
    EXPECT_TRUE(redis.is_cluster());
}

TEST_F(Cluster, CrossSlotCommandsAreRefusedBeforeAnythingIsSent) {
    const long long mset_before = calls_everywhere(shared_cluster(), "mset");
    try {
        redis.command<void>("MSET", "a", 1, "b", 2);
        FAIL() << "MSET across slots was accepted";
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("MSET"), std::string::npos) << what;
        EXPECT_NE(what.find("a (" + std::to_string(redkit::key_slot("a")) + ")"), std::string::npos) << what;
        EXPECT_NE(what.find("b (" + std::to_string(redkit::key_slot("b")) + ")"), std::string::npos) << what;
    }
    EXPECT_EQ(calls_everywhere(shared_cluster(), "mset"), mset_before);
    const redkit::script two_keys("return redis.call('GET', KEYS[1])");
    EXPECT_THROW(redis.eval<redkit::reply>(two_keys, {"a", "b"}), std::invalid_argument);
    EXPECT_EQ(calls_everywhere(shared_cluster(), "evalsha"), 0);
    EXPECT_THROW(redis.command<void>("RENAME", "a", "b"), std::invalid_argument);
    // with one hash tag they meet in one slot and run
    redis.command<void>("MSET", "{u1}a", 1, "{u1}b", 2);
    EXPECT_EQ(redis.eval<long long>(two_keys, {"{u1}a", "{u1}b"}), 1);
    redkit::transaction tx(redis);
    tx.command("INCR", "{u1}a");
    EXPECT_THROW(tx.command("INCR", "{u2}a"), std::invalid_argument);
    EXPECT_EQ(tx.exec().at(0).as<long long>(), 2);
}

TEST_F(Cluster, MultiKeyReadsAndDeletesAreSplitPerSlotAndMergedInOrder) {
    std::vector<std::string> keys;
    for (int i = 0; i < 50; ++i) keys.push_back("m" + std::to_string(i));
    for (std::size_t i = 0; i < keys.size(); i += 2) redis.command<void>("SET", keys[i], keys[i] + "!");
    const auto got = redis.command<std::vector<std::optional<std::string>>>("MGET", keys);
    ASSERT_EQ(got.size(), keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        if (i % 2 == 0) {
            EXPECT_EQ(got[i], keys[i] + "!");
        } else {
            EXPECT_EQ(got[i], std::nullopt);
        }
    }
    EXPECT_EQ(redis.command<long long>("EXISTS", keys), 25);
    EXPECT_EQ(redis.command<long long>("TOUCH", keys), 25);
    EXPECT_EQ(redis.command<long long>("UNLINK", "m0", "m2"), 2);
    EXPECT_EQ(redis.command<long long>("DEL", keys), 23);
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 0);
}

TEST_F(Cluster, ScanVisitsEveryPrimary) {
    std::set<std::string> want;
    for (int i = 0; i < 500; ++i) {
        want.insert("scan:" + std::to_string(i));
        redis.command<void>("SET", "scan:" + std::to_string(i), i);
    }
    redis.command<void>("SET", "other", 1);
    std::multiset<std::string> seen;
    for (const auto& k : redis.scan("scan:*", 37)) seen.insert(k);
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), want);
    const auto keys = redis.command<std::vector<std::string>>("KEYS", "scan:*");
    EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), want);
}

TEST_F(Cluster, APipelineIsSplitPerNodeAndItsRepliesComeBackInOrder) {
    const redkit::script get("return redis.call('GET', KEYS[1])");
    redkit::pipeline p(redis);
    for (int i = 0; i < 100; ++i) p.command("SET", "p" + std::to_string(i), i);
    for (int i = 0; i < 100; ++i) p.command("INCR", "p" + std::to_string(i));
    for (int i = 0; i < 10; ++i) p.eval(get, {"p" + std::to_string(i)});
    p.command("PING");
    const auto r = p.exec();
    ASSERT_EQ(r.size(), 211u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(r[static_cast<std::size_t>(100 + i)].as<long long>(), i + 1);
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(r[static_cast<std::size_t>(200 + i)].as<std::string>(), std::to_string(i + 1));
    EXPECT_EQ(r.back().as<std::string>(), "PONG");
    // the writes of each node went out together: far fewer connections than commands
    EXPECT_LE(redis.open_connections(), 8u);
}

TEST_F(Cluster, SubmitRoutesByTheSlot) {
    std::vector<redkit::future<long long>> f;
    for (int i = 0; i < 64; ++i) f.push_back(redis.submit<long long>("INCR", "f" + std::to_string(i % 8)));
    long long total = 0;
    for (auto& x : f) total += x.get();
    EXPECT_EQ(total, 8 * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8));
    EXPECT_THROW((void)redis.submit<long long>("MGET", "a", "b"), std::invalid_argument);
}

TEST_F(Cluster, SubmittedPipelinesAndTransactionsGoToTheirSlotsNodes) {
    // a pipeline over many slots: each command to its node, the replies in the order queued, a
    // script loaded where it runs (after a SCRIPT FLUSH on every node: EVAL after NOSCRIPT)
    static const redkit::script add("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    redis.command<void>("SCRIPT", "FLUSH");
    redkit::pipeline p(redis);
    for (int i = 0; i < 40; ++i) {
        p.command("SET", "sp:" + std::to_string(i), i);
        p.eval(add, {"sp:" + std::to_string(i)}, 100);
    }
    p.command("INCR", "sp:text").command("LPUSH", "sp:text", "x");  // WRONGTYPE: a value
    const std::vector<redkit::reply> r = p.submit().get();
    ASSERT_EQ(r.size(), 82u);
    for (int i = 0; i < 40; ++i) EXPECT_EQ(r[static_cast<std::size_t>(2 * i + 1)].as<long long>(), i + 100) << i;
    EXPECT_EQ(r[80].as<long long>(), 1);
    EXPECT_TRUE(r[81].is_error());

    // a transaction on one slot, atomic on its node
    redkit::transaction tx(redis);
    tx.command("SET", "{tx}:a", 1).command("INCR", "{tx}:a").command("GET", "{tx}:a");
    const std::vector<redkit::reply> t = tx.submit().get();
    ASSERT_EQ(t.size(), 3u);
    EXPECT_EQ(t[2].as<std::string>(), "2");
    redkit::transaction bad(redis);
    bad.command("SET", "{tx}:never", 1).command("INCRBY", "{tx}:never");  // wrong arity
    EXPECT_THROW((void)bad.submit().get(), redkit::server_error);
    EXPECT_EQ(redis.command<long long>("EXISTS", "{tx}:never"), 0);
}

TEST(ClusterUrl, BadClusterUrlsAndUnreachableSeedsFailClearly) {
    EXPECT_THROW(redkit::client("redis+cluster://127.0.0.1:7000/3"), std::invalid_argument);
    EXPECT_THROW(redkit::client("redis+cluster://"), std::invalid_argument);
    EXPECT_THROW(redkit::client("redis+cluster://a:1,,b:2"), std::invalid_argument);
    EXPECT_THROW(redkit::parse_url("redis+cluster://h?db=2"), std::invalid_argument);
    const auto o = redkit::parse_url("redis+cluster://u:pw@h1:7001,h2,[::1]:7003?timeout=250ms");
    ASSERT_EQ(o.cluster.nodes.size(), 3u);
    EXPECT_EQ(o.cluster.nodes[1].port, 6379);
    EXPECT_EQ(o.cluster.nodes[2].host, "::1");
    EXPECT_EQ(o.user, "u");
    EXPECT_EQ(o.command_timeout, 250ms);

    // nothing listens there: a clear error, quickly, naming the seeds
    const int dead = redkit_test::free_loopback_port();
    redkit::client c("redis+cluster://127.0.0.1:" + std::to_string(dead) + "?connect_timeout=200ms");
    const auto t0 = std::chrono::steady_clock::now();
    try {
        c.command<void>("SET", "k", 1);
        FAIL();
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::connect_failed);
        EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(dead)), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    redkit::client_options bad;
    bad.cluster.nodes.push_back({"127.0.0.1", dead});
    bad.lazy_connect = false;
    EXPECT_THROW(redkit::client{bad}, redkit::error);
}

namespace {

// One thread's share of a workload: calls that succeeded and failed, and the longest time it
// went without a success (its stall).
struct tally {
    long long ok = 0, failed = 0;
    long long failed_by_kind[4] = {0, 0, 0, 0};
    std::chrono::steady_clock::duration worst_gap{};
    std::chrono::steady_clock::time_point last_ok = std::chrono::steady_clock::now();
    std::string first_failure;
    void success() {
        const auto now = std::chrono::steady_clock::now();
        worst_gap = std::max(worst_gap, now - last_ok);
        last_ok = now;
        ++ok;
    }
    void failure(const std::exception& e) {
        if (first_failure.empty()) first_failure = e.what();
        ++failed;
    }
};

double ms(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

TEST(ClusterFaults, APrimaryKilledMidWorkloadIsReplacedAndNoAcknowledgedJobIsLost) {
    redis_cluster c;  // its own: this test kills a node
    std::atomic<long long> reported{0};
    redkit::client_options o = redkit::parse_url(c.url());
    o.cluster.failover_timeout = 10s;
    o.on_error = [&](const redkit::error&) { ++reported; };
    redkit::client redis(o);
    redkit::cache cache(redis);
    const auto limiter = redkit::rate_limiter::fixed_window(redis, "api", 1000000000, std::chrono::hours(1));
    const redkit::session_store<> sessions(redis);
    redkit::queue_options qo;
    qo.replicas = 1;  // add() returns once a replica holds the job: a failover cannot lose it
    qo.replica_timeout = 2000ms;
    redkit::queue<int> q(redis, "orders", qo);

    std::mutex m;
    std::map<std::string, int> runs;  // job id -> handler runs
    std::set<std::string> acked;
    redkit::worker_options<int> wo;
    wo.concurrency = 4;
    wo.lease_duration = 10s;  // outlives the failover: a worker's completions reach the new primary
    wo.stalled_interval = 500ms;
    wo.block_timeout = 500ms;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            std::lock_guard<std::mutex> lock(m);
            ++runs[j.id()];
        },
        wo);

    const int victim = owner_of(c, redkit::key_slot("{orders}"));
    ASSERT_GE(victim, 0);
    std::atomic<bool> stop{false};
    constexpr int threads = 4;
    std::vector<tally> tallies(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            tally& mine = tallies[static_cast<std::size_t>(t)];
            for (long long i = 0; !stop.load(); ++i) {
                try {
                    switch (i % 4) {
                        case 0: {
                            const int v = cache.get_or_set<int>(
                                "item:" + std::to_string(i % 97), [] { return 7; }, 60s);
                            if (v != 7) throw std::runtime_error("cache returned " + std::to_string(v));
                            break;
                        }
                        case 1:
                            if (!limiter.hit("user" + std::to_string(t)).allowed) throw std::runtime_error("denied");
                            break;
                        case 2: {
                            const std::string token = sessions.create("u" + std::to_string(i % 13));
                            if (!sessions.get(token)) throw std::runtime_error("a session just made is missing");
                            break;
                        }
                        default: {
                            const auto added = q.add("job", static_cast<int>(i));
                            std::lock_guard<std::mutex> lock(m);
                            acked.insert(added.id);
                        }
                    }
                    mine.success();
                } catch (const std::exception& e) {
                    mine.failure(e);
                    ++mine.failed_by_kind[i % 4];
                }
            }
        });
    }
    std::this_thread::sleep_for(1500ms);
    const auto killed_at = std::chrono::steady_clock::now();
    c.kill(victim);
    std::this_thread::sleep_for(8s);
    stop = true;
    for (auto& th : pool) th.join();

    // every job add() acknowledged runs; count the ones run twice (a completion the dead primary
    // had not yet replicated)
    std::set<std::string> missing;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    do {
        std::this_thread::sleep_for(100ms);
        std::lock_guard<std::mutex> lock(m);
        missing.clear();
        for (const auto& id : acked) {
            if (runs.count(id) == 0) missing.insert(id);
        }
    } while (!missing.empty() && std::chrono::steady_clock::now() < deadline);
    EXPECT_TRUE(missing.empty()) << missing.size() << " acknowledged jobs never ran, e.g. " << *missing.begin();
    int twice = 0;
    {
        std::lock_guard<std::mutex> lock(m);
        for (const auto& [id, n] : runs) twice += n > 1 ? 1 : 0;
    }

    long long ok = 0, failed = 0;
    long long by_kind[4] = {0, 0, 0, 0};
    std::chrono::steady_clock::duration stall{};
    std::string why;
    for (const auto& x : tallies) {
        ok += x.ok;
        failed += x.failed;
        for (int k = 0; k < 4; ++k) by_kind[k] += x.failed_by_kind[k];
        stall = std::max(stall, x.worst_gap);
        if (why.empty()) why = x.first_failure;
        // each thread worked again after the failover
        EXPECT_GT(x.last_ok, killed_at + 2s);
    }
    std::printf(
        "failover: %lld calls ok, %lld failed (cache %lld, rate limit %lld, sessions %lld, queue add %lld; first: %s), "
        "longest stall %.0f ms, %zu jobs acknowledged, %zu run, %d run twice, %lld errors reported\n",
        ok, failed, by_kind[0], by_kind[1], by_kind[2], by_kind[3], why.c_str(), ms(stall), acked.size(), runs.size(),
        twice, reported.load());
    // A job runs twice only if the dead primary had recorded its completion and not yet sent it to
    // its replica (replication is asynchronous): at-least-once, and rare
    EXPECT_LE(twice * 100, static_cast<int>(acked.size())) << twice << " jobs ran twice";
    EXPECT_GT(reported.load(), 0);  // the failover was seen
    EXPECT_LT(stall, 8s);
    w.close(5s);
}

// Moving one slot between primaries, as redis-cli --cluster reshard does it.
struct slot_move {
    redis_cluster& c;
    int slot;
    int src = -1, dst = -1;
    std::string src_id, dst_id;

    // picks the slot's owner and another primary
    slot_move(redis_cluster& cluster, int s) : c(cluster), slot(s) {
        src = owner_of(c, slot);
        for (int i = 0; i < redis_cluster::size && dst < 0; ++i) {
            if (i != src && c.run(i, {"ROLE"}).rfind("master", 0) == 0) dst = i;
        }
        if (src < 0 || dst < 0) throw std::runtime_error("no two primaries to move a slot between");
        src_id = c.run(src, {"CLUSTER", "MYID"});
        dst_id = c.run(dst, {"CLUSTER", "MYID"});
    }
    // from now on: ASK for keys already moved, TRYAGAIN for multi-key commands split between them
    void begin() const {
        c.run(dst, {"CLUSTER", "SETSLOT", std::to_string(slot), "IMPORTING", src_id});
        c.run(src, {"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", dst_id});
    }
    // moves the slot's keys 100 at a time, pausing between batches so that the workload meets
    // the slot half moved
    void migrate_keys() const {
        for (;;) {
            const std::string batch = c.run(src, {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "100"});
            if (batch.empty()) break;
            std::vector<std::string> args = {"MIGRATE", "127.0.0.1", std::to_string(c.node_port(dst)), "", "0",
                                             "5000",    "KEYS"};
            for (std::size_t from = 0; from < batch.size();) {
                const auto nl = batch.find('\n', from);
                args.push_back(batch.substr(from, nl == std::string::npos ? std::string::npos : nl - from));
                from = nl == std::string::npos ? batch.size() : nl + 1;
            }
            c.run(src, args);
            std::this_thread::sleep_for(20ms);
        }
    }
    // the new owner, told to every primary: MOVED from the old one
    void finish() const {
        for (int i = 0; i < redis_cluster::size; ++i) {
            if (c.run(i, {"ROLE"}).rfind("master", 0) == 0) {
                c.run(i, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", dst_id});
            }
        }
    }
};

// Keys "<tag>:k<i>" = i for i in [0, keys), in one pipeline (one slot: the tag's).
void fill_slot(const redkit::client& redis, const std::string& tag, int keys) {
    redkit::pipeline p(redis);
    for (int i = 0; i < keys; ++i) p.command("SET", tag + ":k" + std::to_string(i), i);
    p.exec();
}

// `chains` callback chains, each sending its next command from the callback of the last (no
// thread waits), until stop(). step(ch, i, done) sends chain ch's i-th command; its callback
// calls done(ok, why).
class awaiting_load {
public:
    using done_fn = std::function<void(bool, const std::string&)>;
    using step_fn = std::function<void(int, long long, done_fn)>;

    awaiting_load(int chains, step_fn step)
        : state_(static_cast<std::size_t>(chains)), live_(chains), step_(std::move(step)) {
        for (int ch = 0; ch < chains; ++ch) next(ch, 0);
    }

    /// Ends each chain after its current command; whether all ended within `within`.
    bool stop(std::chrono::milliseconds within) {
        stop_ = true;
        return eventually([&] { return live_.load() == 0; }, within);
    }
    int live() const { return live_.load(); }
    long long ok() const { return sum(&tally::ok); }
    long long failed() const { return sum(&tally::failed); }
    std::string first_failure() const {
        for (const auto& t : state_) {
            if (!t.first_failure.empty()) return t.first_failure;
        }
        return {};
    }

private:
    struct tally {
        std::atomic<long long> ok{0}, failed{0};  // (read while the chains run)
        std::string first_failure;
    };

    void next(int ch, long long i) {
        step_(ch, i, [this, ch, i](bool ok, const std::string& why) {
            tally& t = state_[static_cast<std::size_t>(ch)];
            (ok ? t.ok : t.failed)++;
            if (!ok && t.first_failure.empty()) t.first_failure = why;
            if (stop_.load()) {
                --live_;
            } else {
                next(ch, i + 1);
            }
        });
    }
    long long sum(std::atomic<long long> tally::*field) const {
        long long n = 0;
        for (const auto& t : state_) n += (t.*field).load();
        return n;
    }

    std::vector<tally> state_;  // each chain's, written by its callbacks only (one at a time)
    std::atomic<int> live_;
    std::atomic<bool> stop_{false};
    step_fn step_;
};

TEST(ClusterFaults, ASlotMigratedUnderLoadIsFollowedThroughAskAndMoved) {
    redis_cluster& c = shared_cluster();
    auto options = redkit::parse_url(c.url());
    const auto seen = std::make_shared<redkit::metrics>();  // counts the redirections the client followed
    options.observer = seen;
    redkit::client redis(options);
    redis.command<void>("FLUSHALL");
    const int slot = redkit::key_slot("{hot}");
    const slot_move move(c, slot);
    const int dst = move.dst;
    constexpr int keys = 3000;
    fill_slot(redis, "{hot}", keys);
    const long long asking_before = stat_calls(c, dst, "asking");
    const redkit::script swap_two(R"(
local a = redis.call('GET', KEYS[1])
local b = redis.call('GET', KEYS[2])
return {a, b})");

    std::atomic<bool> stop{false};
    std::atomic<long long> increments{0};
    std::vector<tally> tallies(3);
    std::vector<std::thread> pool;
    for (int t = 0; t < 3; ++t) {
        pool.emplace_back([&, t] {
            tally& mine = tallies[static_cast<std::size_t>(t)];
            for (long long i = t; !stop.load(); i += 7) {
                const std::string k = "{hot}:k" + std::to_string(i % keys);
                const std::string k2 = "{hot}:k" + std::to_string((i * 31) % keys);
                try {
                    switch (i % 4) {
                        case 0:
                            if (redis.command<long long>("GET", k) != i % keys) throw std::runtime_error("wrong value");
                            break;
                        case 1:
                            (void)redis.command<long long>("INCR", "{hot}:n");
                            ++increments;
                            break;
                        case 2: {
                            const auto two = redis.eval<std::vector<long long>>(swap_two, {k, k2});
                            if (two.at(0) != i % keys) throw std::runtime_error("wrong value from the script");
                            break;
                        }
                        default: {
                            const auto v = redis.command<std::vector<std::optional<long long>>>("MGET", k, k2);
                            if (v.at(0) != i % keys) throw std::runtime_error("wrong value from MGET");
                        }
                    }
                    mine.success();
                } catch (const std::exception& e) {
                    mine.failure(e);
                }
            }
        });
    }
    std::this_thread::sleep_for(300ms);
    move.begin();
    const auto t0 = std::chrono::steady_clock::now();
    move.migrate_keys();
    move.finish();
    const auto migration = std::chrono::steady_clock::now() - t0;
    std::this_thread::sleep_for(500ms);  // MOVED from the old owner from now on
    stop = true;
    for (auto& th : pool) th.join();

    long long ok = 0, failed = 0;
    std::string why;
    for (const auto& x : tallies) {
        ok += x.ok;
        failed += x.failed;
        if (why.empty()) why = x.first_failure;
    }
    const long long asked = stat_calls(c, dst, "asking") - asking_before;
    std::printf("resharding: slot %d moved in %.0f ms; %lld calls ok, %lld failed, %lld ASKING on the target\n", slot,
                ms(migration), ok, failed, asked);
    EXPECT_EQ(failed, 0) << why;
    EXPECT_GT(asked, 0) << "no ASK redirection happened";
    // the observer saw each ASK the target saw ASKING for, the MOVED after, and every INCR
    const auto counted = seen->snapshot();
    EXPECT_EQ(static_cast<long long>(counted.asked), asked);
    EXPECT_GE(counted.moved, 1U);
    EXPECT_GE(counted.cluster_maps, 1U);
    EXPECT_EQ(static_cast<long long>(counted.operations.at("INCR").ok), increments.load());
    EXPECT_EQ(redis.command<long long>("GET", "{hot}:n"), increments.load());  // none lost, none twice
    EXPECT_EQ(owner_of(c, slot), dst);
    EXPECT_EQ(redis.command<long long>("GET", "{hot}:k5"), 5);
    c.wait_healthy();
}

// The same migration under submitted commands nobody waits for: each reply's callback sends its
// chain's next command, so every redirection is followed on redkit's I/O threads.
TEST(ClusterFaults, ASlotMigratedUnderAwaitingLoadIsFollowedThroughAskAndMoved) {
    redis_cluster& c = shared_cluster();
    auto options = redkit::parse_url(c.url());
    const auto seen = std::make_shared<redkit::metrics>();  // counts the redirections the hops followed
    options.observer = seen;
    redkit::client redis(options);
    redis.command<void>("FLUSHALL");
    const int slot = redkit::key_slot("{warm}");
    const slot_move move(c, slot);
    constexpr int keys = 2000;
    fill_slot(redis, "{warm}", keys);
    const long long asking_before = stat_calls(c, move.dst, "asking");

    // 64 chains: GET of a key (its value must come back) and INCR of a counter, in turn
    std::atomic<long long> incremented{0};
    awaiting_load load(64, [&](int ch, long long i, awaiting_load::done_fn done) {
        if (i % 2 == 0) {
            const long long k = (ch * 7919 + i) % keys;
            redis.submit<long long>("GET", "{warm}:k" + std::to_string(k)).then([done, k](redkit::future<long long> f) {
                try {
                    done(f.get() == k, "wrong value");
                } catch (const std::exception& e) {
                    done(false, e.what());
                }
            });
        } else {
            redis.submit<long long>("INCR", "{warm}:n").then([done, &incremented](redkit::future<long long> f) {
                try {
                    (void)f.get();
                    ++incremented;
                    done(true, "");
                } catch (const std::exception& e) {
                    done(false, e.what());
                }
            });
        }
    });
    std::this_thread::sleep_for(300ms);
    move.begin();
    move.migrate_keys();
    move.finish();
    std::this_thread::sleep_for(500ms);  // MOVED from the old owner from now on
    ASSERT_TRUE(load.stop(20s)) << load.live() << " chains still running";

    const long long asked = stat_calls(c, move.dst, "asking") - asking_before;
    std::printf("resharding under then(): %lld commands ok, %lld failed, %lld ASKING on the target\n", load.ok(),
                load.failed(), asked);
    EXPECT_EQ(load.failed(), 0) << load.first_failure();
    EXPECT_GT(load.ok(), 1000);
    EXPECT_GT(asked, 0) << "no ASK redirection happened";
    const auto counted = seen->snapshot();
    EXPECT_EQ(static_cast<long long>(counted.asked), asked);
    EXPECT_GE(counted.moved, 1U);
    EXPECT_EQ(static_cast<long long>(counted.operations.at("INCR").ok), incremented.load());
    EXPECT_EQ(redis.command<long long>("GET", "{warm}:n"), incremented.load());  // none lost, none twice
    EXPECT_EQ(owner_of(c, slot), move.dst);
    c.wait_healthy();
}

TEST(ClusterFaults, APrimaryKilledUnderAwaitingLoadIsWaitedOut) {
    redis_cluster c;  // its own: this test kills a node
    redkit::client_options o = redkit::parse_url(c.url());
    o.cluster.failover_timeout = 10s;
    redkit::client redis(o);
    const int slot = redkit::key_slot("{await}");
    const int victim = owner_of(c, slot);
    ASSERT_GE(victim, 0);
    redis.command<void>("SET", "{await}:n", 0);

    // 64 chains of INCR on the victim's slot, and of GET on the other primaries' keys
    std::atomic<long long> after_kill{0}, not_run{0};
    std::atomic<bool> killed{false};
    awaiting_load load(64, [&](int ch, long long i, awaiting_load::done_fn done) {
        const std::string key = ch % 2 == 0 ? std::string("{await}:n") : "other:" + std::to_string(i % 50);
        const bool on_slot = ch % 2 == 0;
        redis.submit<redkit::reply>(on_slot ? "INCR" : "GET", key)
            .then([done, on_slot, &after_kill, &killed, &not_run](auto f) {
                try {
                    const redkit::reply r = f.get();
                    if (r.is_error()) {  // TRYAGAIN, CLUSTERDOWN past the window: it did not run
                        ++not_run;
                        return done(false, r.text());
                    }
                    if (on_slot && killed.load()) ++after_kill;  // the lost slot served again
                    done(true, "");
                } catch (const redkit::error& e) {
                    if (e.kind() == redkit::errc::connect_failed) ++not_run;  // never sent
                    done(false, e.what());
                }
            });
    });
    std::this_thread::sleep_for(300ms);
    const long long before = load.ok();
    c.kill(victim);
    killed = true;
    // the replica takes over within about a second (node timeout 1 s); meanwhile the commands on
    // the lost slot wait, and go on once the map names the new primary
    ASSERT_TRUE(eventually([&] { return after_kill.load() > 2000; }, 20s))
        << "the lost slot's chains did not go on after the failover: " << after_kill.load() << " INCRs since the kill ("
        << load.failed() << " failed; first: " << load.first_failure() << ")";
    ASSERT_TRUE(load.stop(20s)) << load.live() << " chains still running";
    std::printf(
        "primary killed under then(): %lld commands ok before the kill, %lld INCRs on its slot after, %lld "
        "failed (%s)\n",
        before, after_kill.load(), load.failed(), load.first_failure().c_str());
    // only a command that may have run fails (in flight on the killed node when it died, or
    // timed out): every one that provably did not run waited out the failover
    EXPECT_EQ(not_run.load(), 0) << load.first_failure();
    EXPECT_NE(owner_of(c, slot, (victim + 1) % redis_cluster::size), victim);
}

TEST(ClusterPubSub, ShardChannelsFollowTheirSlotToItsNewOwner) {
    redis_cluster& c = shared_cluster();
    std::mutex m;
    std::vector<std::string> errors;
    redkit::client_options o = redkit::parse_url(c.url());
    o.on_error = [&](const redkit::error& e) {
        std::lock_guard<std::mutex> lock(m);
        errors.emplace_back(e.what());
    };
    redkit::client redis(o);
    std::atomic<int> got{0};
    redkit::subscriber sub(redis);
    sub.on_sharded_raw("news:{s1}", [&](const redkit::message&) { ++got; });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    redkit::publisher pub(redis);
    EXPECT_EQ(pub.publish_sharded_raw("news:{s1}", "one"), 1);
    const auto until = [](auto done, std::chrono::milliseconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
        return done();
    };
    ASSERT_TRUE(until([&] { return got.load() == 1; }, 5000ms));

    // a shard channel on another node cannot share this subscriber's connection: refused, reported
    std::string elsewhere;
    for (int i = 0; elsewhere.empty(); ++i) {
        const std::string name = "news:{x" + std::to_string(i) + "}";
        if (owner_of(c, redkit::key_slot(name)) != owner_of(c, redkit::key_slot("news:{s1}"))) elsewhere = name;
    }
    sub.on_sharded_raw(elsewhere, [](const redkit::message&) {});
    EXPECT_TRUE(until(
        [&] {
            std::lock_guard<std::mutex> lock(m);
            for (const auto& e : errors) {
                if (e.find(elsewhere) != std::string::npos && e.find("another cluster node") != std::string::npos) {
                    return true;
                }
            }
            return false;
        },
        5000ms));

    // move the channel's slot: the old owner unsubscribes it, the subscriber follows
    const int slot = redkit::key_slot("news:{s1}");
    const slot_move move(c, slot);
    move.begin();
    move.finish();
    const int dst = move.dst;
    EXPECT_TRUE(until(
        [&] {
            if (pub.publish_sharded_raw("news:{s1}", "again") == 1) return true;
            std::this_thread::sleep_for(50ms);
            return false;
        },
        10000ms))
        << "the subscriber did not follow the slot";
    EXPECT_TRUE(until([&] { return got.load() >= 2; }, 5000ms));
    EXPECT_EQ(owner_of(c, slot), dst);
    c.wait_healthy();
}

namespace {

// A writer setting `key` to 1, 2, 3... through a client of its own (a version is retried until
// acknowledged) and reader threads reading it through a near-cached cache of another client. The
// figure: the worst staleness, i.e. how long after a version's acknowledgement a read begun later
// still returned an older one (0 when none did).
class staleness_probe {
public:
    staleness_probe(const std::string& url, std::string key, int readers = 2)
        : key_(std::move(key)), ack_ns_(1 << 20), writer_(url), cache_(redkit::client(url), near_options()) {
        for (int r = 0; r < readers; ++r) threads_.emplace_back([this] { read(); });
    }
    ~staleness_probe() { stop(); }

    static redkit::cache_options near_options() {
        redkit::cache_options o;
        o.near.enabled = true;
        o.near.max_ttl = 60s;
        return o;
    }
    redkit::cache& cache() { return cache_; }

    // Writes from now on, one version every `pause` (the readers see some versions for a while).
    void start_writing(std::chrono::microseconds pause = 300us) {
        threads_.emplace_back([this, pause] { write(pause); });
    }
    void stop() {
        stop_.store(true);
        for (auto& t : threads_) t.join();
        threads_.clear();
    }
    double worst_ms() const { return static_cast<double>(worst_ns_.load()) / 1e6; }
    long long versions() const { return written_.load(); }
    long long reads() const { return reads_.load(); }
    long long failed_reads() const { return failed_reads_.load(); }

private:
    static long long now_ns() {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }
    void write(std::chrono::microseconds pause) {
        for (long long v = 1; !stop_.load() && v < static_cast<long long>(ack_ns_.size()); ++v) {
            for (;;) {  // the same version again until acknowledged (a failover under way)
                try {
                    writer_.command<void>("SET", key_, v);
                    break;
                } catch (const std::exception&) {
                    if (stop_.load()) return;
                    std::this_thread::sleep_for(10ms);
                }
            }
            ack_ns_[static_cast<std::size_t>(v)].store(now_ns());
            written_.store(v);
            std::this_thread::sleep_for(pause);
        }
    }
    void read() {
        while (!stop_.load()) {
            const long long began = now_ns();
            try {
                const auto got = cache_.get<long long>(key_);
                ++reads_;
                const long long next = got ? *got + 1 : 1;
                if (next <= written_.load()) {
                    const long long acked = ack_ns_[static_cast<std::size_t>(next)].load();
                    long long worst = worst_ns_.load();
                    while (acked < began && began - acked > worst &&
                           !worst_ns_.compare_exchange_weak(worst, began - acked)) {
                    }
                }
            } catch (const std::exception&) {
                ++failed_reads_;  // the key's primary is gone (until its replica takes over)
                std::this_thread::sleep_for(1ms);
            }
        }
    }

    std::string key_;
    std::vector<std::atomic<long long>> ack_ns_;  // per version: when its SET was acknowledged
    std::atomic<long long> written_{0}, reads_{0}, failed_reads_{0}, worst_ns_{0};
    std::atomic<bool> stop_{false};
    redkit::client writer_;
    redkit::cache cache_;
    std::vector<std::thread> threads_;
};

bool near_serves(redkit::cache& c, const std::string& key, long long want) {
    const auto hits = c.near_stats().hits;
    return eventually(
        [&] {
            const auto got = c.get<long long>(key);
            return got == want && c.near_stats().hits > hits;
        },
        5s);
}

}  // namespace

TEST_F(Cluster, TheNearCacheTracksEveryPrimaryAndDropsWhatAnotherClientWrites) {
    redkit::cache c(redkit::client(shared_cluster().url()), staleness_probe::near_options());
    ASSERT_TRUE(eventually([&] { return c.near_stats().connected; }, 5s)) << "never connected";
    // keys on each primary: a write to any of them, by another client, is heard of
    std::set<int> owners;
    for (int i = 0; owners.size() < 3 && i < 100; ++i) {
        const std::string key = "nc:k" + std::to_string(i);
        if (!owners.insert(owner_of(shared_cluster(), redkit::key_slot(key))).second) continue;
        redis.command<void>("SET", key, 1);
        ASSERT_TRUE(near_serves(c, key, 1)) << key << " is never served from memory";
        const auto heard = c.near_stats().invalidations;
        redis.command<void>("SET", key, 2);
        ASSERT_TRUE(eventually([&] { return c.near_stats().invalidations > heard; }, 5s))
            << "no invalidation from the primary of " << key;
        EXPECT_EQ(c.get<long long>(key), 2);
    }
    EXPECT_EQ(owners.size(), 3u);
}

TEST(ClusterNearCache, NothingStaleIsServedThroughASlotMigration) {
    redis_cluster& c = shared_cluster();
    redkit::client admin(c.url());
    const std::string key = "{ncmove}:item";
    admin.command<void>("SET", key, 0);
    const int slot = redkit::key_slot(key);
    const slot_move move(c, slot);
    staleness_probe probe(c.url(), key);
    ASSERT_TRUE(near_serves(probe.cache(), key, 0));
    probe.start_writing();
    std::this_thread::sleep_for(300ms);
    move.begin();
    c.run(move.src, {"MIGRATE", "127.0.0.1", std::to_string(c.node_port(move.dst)), key, "0", "5000"});
    std::this_thread::sleep_for(300ms);  // writes follow ASK to the new owner
    move.finish();
    std::this_thread::sleep_for(700ms);  // and MOVED
    probe.stop();
    const auto s = probe.cache().near_stats();
    std::printf(
        "[ figures  ] near cache, slot migration: worst staleness %.3f ms over %lld reads (%llu near hits), "
        "%lld versions written\n",
        probe.worst_ms(), probe.reads(), static_cast<unsigned long long>(s.hits), probe.versions());
    EXPECT_EQ(owner_of(c, slot), move.dst);
    EXPECT_GT(probe.versions(), 100);
    EXPECT_GT(s.hits, 0u);
    // the bound: an invalidation's trip to this process (a thread of a loaded machine)
    EXPECT_LT(probe.worst_ms(), 250.0) << "a read served a value older than an acknowledged write";
    EXPECT_EQ(probe.cache().get<long long>(key), admin.command<long long>("GET", key));
    c.wait_healthy();
}

TEST(ClusterNearCache, NothingStaleIsServedThroughAPrimaryKilledAndReplaced) {
    redis_cluster c;  // its own: this test kills a node
    redkit::client admin(c.url());
    const std::string key = "{nckill}:item";
    admin.command<void>("SET", key, 0);
    {
        // version 0 on the replica too: the write below is the only change a reader can miss
        redkit::lease l = admin.borrow(key);
        ASSERT_EQ(l->command<long long>("WAIT", 1, 2000), 1);
    }
    const int victim = owner_of(c, redkit::key_slot(key));
    ASSERT_GE(victim, 0);
    staleness_probe probe(c.url(), key);
    ASSERT_TRUE(near_serves(probe.cache(), key, 0));
    const auto flushes = probe.cache().near_stats().flushes;
    c.kill(victim);
    probe.start_writing(2ms);  // retried until the replica has taken over
    ASSERT_TRUE(eventually([&] { return probe.versions() > 50; }, 20s)) << "no write after the failover";
    // the new primary is tracked: values are served from memory again, and stay fresh
    const auto hits = probe.cache().near_stats().hits;
    ASSERT_TRUE(eventually([&] { return probe.cache().near_stats().hits > hits + 100; }, 10s))
        << "the near cache never served again after the failover";
    std::this_thread::sleep_for(500ms);
    probe.stop();
    const auto s = probe.cache().near_stats();
    std::printf(
        "[ figures  ] near cache, primary killed: worst staleness %.3f ms over %lld reads (%lld failed "
        "during the failover, %llu near hits), %llu flushes\n",
        probe.worst_ms(), probe.reads(), probe.failed_reads(), static_cast<unsigned long long>(s.hits),
        static_cast<unsigned long long>(s.flushes - flushes));
    EXPECT_GT(s.flushes, flushes) << "the lost primary's tracking was not dropped";
    // the bound: an invalidation's trip to this process (a thread of a loaded machine)
    EXPECT_LT(probe.worst_ms(), 250.0) << "a read served a value older than an acknowledged write";
    EXPECT_EQ(probe.cache().get<long long>(key), admin.command<long long>("GET", key));
}

TEST(ClusterNearCache, PrimariesAreReadFromClusterNodes) {
    const std::string nodes =
        "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-4 slave "
        "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n"
        "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected "
        "5461-10922\n"
        "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected\n"
        "392f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30005@31005 master,fail - 0 1426238318243 3 connected "
        "10923-16383 [93-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]\n"
        "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460\n"
        "6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 master,noaddr - 0 0 0 disconnected\n"
        "824fe116063bc5fcf9f4ffd895bc17aee7731ac3 [::1]:30006@31006 master - 0 1426238317741 6 connected\n";
    const auto p = redkit::detail::cluster_primaries(nodes);
    // a failed primary without slots is left out; one that still owns slots stays (its writes
    // have no other tracked home until the view names its replacement)
    ASSERT_EQ(p.size(), 4u);
    EXPECT_EQ(p[0].host, "127.0.0.1");
    EXPECT_EQ(p[0].port, 30001);
    EXPECT_EQ(p[1].port, 30002);
    EXPECT_EQ(p[2].port, 30005);
    EXPECT_EQ(p[3].host, "::1");
    EXPECT_EQ(p[3].port, 30006);
    EXPECT_TRUE(redkit::detail::cluster_primaries("").empty());
    EXPECT_TRUE(redkit::detail::cluster_primaries("garbage\nid 1.2.3.4:99999@1 master\n").empty());
}

TEST(ClusterReplicaReads, ReadsGoToReplicasAndFallBackToThePrimary) {
    redis_cluster& c = shared_cluster();
    {
        // A replica that has replicated nothing yet is "loading" in CLUSTER SHARDS (Redis 7) and
        // is not read from; on a fresh cluster, wait until every node reports its replicas online.
        redkit::client writer(c.url());
        writer.command<void>("FLUSHALL");  // every primary: something for each replica to replicate
        writer.command<void>("SET", "rr:k", "v1");
        ASSERT_TRUE(eventually(
            [&] {
                for (int i = 0; i < redis_cluster::size; ++i) {
                    if (c.run(i, {"CLUSTER", "SHARDS"}).find("loading") != std::string::npos) return false;
                }
                return true;
            },
            10s, 20ms))
            << "replicas still loading";
    }
    redkit::client redis(c.url("replica_reads=yes"));
    redis.command<void>("SET", "rr:k", "v1");
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (redis.command<std::optional<std::string>>("GET", "rr:k") != "v1") {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the write never reached the replica";
        std::this_thread::sleep_for(5ms);
    }
    for (int i = 0; i < redis_cluster::size; ++i) c.run(i, {"CONFIG", "RESETSTAT"});
    for (int i = 0; i < 50; ++i) EXPECT_EQ(redis.command<std::string>("GET", "rr:k"), "v1");
    long long on_replicas = 0, on_primaries = 0;
    int replica = -1;
    const int primary = owner_of(c, redkit::key_slot("rr:k"));
    for (int i = 0; i < redis_cluster::size; ++i) {
        const bool is_primary = c.run(i, {"ROLE"}).rfind("master", 0) == 0;
        const long long n = stat_calls(c, i, "get");
        (is_primary ? on_primaries : on_replicas) += n;
        if (!is_primary && n > 0) replica = i;
    }
    EXPECT_EQ(on_replicas, 50);
    EXPECT_EQ(on_primaries, 0);
    EXPECT_EQ(stat_calls(c, primary, "set"), 0);
    // writes still go to the primary
    redis.command<void>("SET", "rr:k", "v2");
    EXPECT_EQ(stat_calls(c, primary, "set"), 1);

    // the replica gone: reads go to the primary, nothing fails
    ASSERT_GE(replica, 0);
    c.kill(replica);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(redis.command<std::string>("GET", "rr:k"), "v2");
    EXPECT_GE(stat_calls(c, primary, "get"), 20);
    c.restart(replica);
    c.wait_healthy();
}
