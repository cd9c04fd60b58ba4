// SPDX-License-Identifier: MIT
// Least-privilege ACL users: every pattern's whole API as a user holding exactly the rule the
// docs' table gives for it (the test checks docs/pages/production.md carries each rule word for word), and
// a command outside the rule as a clear NOPERM server_error naming the command and key.
#include <redkit/redkit.hpp>

#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace {

// The docs' table (docs/pages/production.md), one rule per pattern (the keys as the examples below name them).
const char* const cache_rule = "~shop:cache:* resetchannels -@all +get +set +del +mget +evalsha +eval +ping";
const char* const rate_limit_rule =
    "~rate_limit:* resetchannels -@all +evalsha +eval +get +set +incrby +pexpire +pttl +hmget +hset +time +del "
    "+ping";
const char* const session_rule =
    "~shop:session:* ~shop:user:* resetchannels -@all +evalsha +eval +exists +hget +hmget +hset +del +rename "
    "+pexpireat +pttl +zadd +zrange +zrem +zremrangebyscore +time +ping";
const char* const pubsub_rule =
    "resetkeys &orders:* -@all +publish +spublish +subscribe +psubscribe +ssubscribe +unsubscribe +punsubscribe "
    "+sunsubscribe +ping";
const char* const stream_rule =
    "~orders:events ~{orders:events}:dead resetchannels -@all +xadd +xlen +xgroup|create +xautoclaim +xreadgroup "
    "+xack +multi +exec +ping";
const char* const queue_rule =
    "~queue:{mail}:* resetchannels -@all +evalsha +eval +bzpopmin +hexists +del +exists +get +hdel +hget "
    "+hgetall +hincrby +hmget +hset +incr +incrby +llen +lpush +lrange +lrem +ltrim +pexpire +pttl +rpop +rpush +set "
    "+time +xadd +xread +zadd +zcard +zcount +zmscore +zpopmin +zrange +zrangebylex +zrangebyscore +zrem "
    "+zremrangebyscore +zrevrange +zscan +zscore +ping";

std::vector<std::string> words(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

class Acl : public redkit_test::fresh_database {
protected:
    // A client logged in as a fresh user holding exactly `rule`.
    redkit::client as_user(const std::string& name, const std::string& rule) {
        std::vector<std::string> setuser{"ACL", "SETUSER", name, "reset", "on", ">" + name + "-pw"};
        for (auto& w : words(rule)) setuser.push_back(w);
        redis.command<void>(setuser);
        auto o = shared_server().options();
        o.user = name;
        o.password = name + "-pw";
        return redkit::client(o);
    }

    void TearDown() override {
        for (const char* u :
             {"cacheuser", "limituser", "sessionuser", "pubsubuser", "streamuser", "queueuser", "eventsuser"}) {
            redis.command<long long>("ACL", "DELUSER", u);
        }
    }

    // What a command outside the rule gives: NOPERM, naming the command and the key.
    static void expect_noperm(const std::function<void()>& f, const std::string& named) {
        try {
            f();
            ADD_FAILURE() << "allowed";
        } catch (const redkit::server_error& e) {
            EXPECT_EQ(e.prefix(), "NOPERM") << e.what();
            EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
        }
    }
};

}  // namespace

TEST_F(Acl, TheReadmeCarriesEveryRule) {
    std::ifstream in(REDKIT_ACL_DOCS);
    ASSERT_TRUE(in) << REDKIT_ACL_DOCS;
    std::stringstream read;
    read << in.rdbuf();
    std::string text = read.str();  // a '|' in a table cell is written '\|'
    for (auto at = text.find("\\|"); at != std::string::npos; at = text.find("\\|", at)) text.erase(at, 1);
    for (const char* rule : {cache_rule, rate_limit_rule, session_rule, pubsub_rule, stream_rule, queue_rule}) {
        EXPECT_NE(text.find(rule), std::string::npos) << "not in docs/pages/production.md: " << rule;
    }
}

TEST_F(Acl, CacheWorksWithItsRuleAlone) {
    const auto user = as_user("cacheuser", cache_rule);
    redkit::cache_options o;
    o.keys = redkit::key_space("shop:cache");
    o.lock = true;  // the cross-process lock: SET NX PX and the unlock script
    redkit::cache c(user, o);
    int loads = 0;
    EXPECT_EQ(c.get_or_set<int>(
                  "product:1", [&] { return ++loads; }, 60s),
              1);
    EXPECT_EQ(c.get_or_set<int>(
                  "product:1", [&] { return ++loads; }, 60s),
              1);
    c.set("product:2", 2, 60s);
    EXPECT_EQ(c.get<int>("product:2"), 2);
    c.set_many<int>({{"product:3", 3}, {"product:4", 4}}, 60s);
    EXPECT_EQ(c.get_many<int>({"product:3", "product:4"}), (std::vector<std::optional<int>>{3, 4}));
    EXPECT_TRUE(c.invalidate("product:2"));
    EXPECT_TRUE(user.is_reachable());
    EXPECT_EQ(c.stats().errors, 0u);
    expect_noperm([&] { user.command<void>("SET", "other:key", 1); }, "SET other:key");
    expect_noperm([&] { user.command<long long>("DBSIZE"); }, "DBSIZE");
}

TEST_F(Acl, RateLimitersWorkWithTheirRuleAlone) {
    const auto user = as_user("limituser", rate_limit_rule);
    redkit::rate_limit_options o;
    o.on_failure = redkit::rate_limit_failure_policy::raise;  // a refused command must show
    const auto fixed = redkit::rate_limiter::fixed_window(user, "api", 2, 1min, o);
    const auto sliding = redkit::rate_limiter::sliding_window(user, "api", 2, 1min, o);
    const auto bucket = redkit::rate_limiter::token_bucket(user, "api", 2, redkit::per_second(1), o);
    const auto gcra = redkit::rate_limiter::gcra(user, "api", redkit::per_second(1), 2, o);
    for (const auto* l : {&fixed, &sliding, &bucket, &gcra}) {
        EXPECT_TRUE(l->hit("10.0.0.1").allowed);
        EXPECT_TRUE(l->peek("10.0.0.1").allowed);
        EXPECT_TRUE(l->hit("10.0.0.1").allowed);
        EXPECT_FALSE(l->hit("10.0.0.1").allowed);
        EXPECT_TRUE(l->reset("10.0.0.1"));
    }
    expect_noperm([&] { user.command<long long>("INCR", "shop:visits"); }, "INCR shop:visits");
}

TEST_F(Acl, SessionsWorkWithTheirRuleAlone) {
    const auto user = as_user("sessionuser", session_rule);
    redkit::session_store<> sessions(user, {30min, 8h, redkit::key_space("shop")});
    const std::string token = sessions.create("42", {{"device", "laptop"}});
    ASSERT_TRUE(sessions.get(token));
    EXPECT_TRUE(sessions.peek(token));
    EXPECT_TRUE(sessions.touch(token));
    EXPECT_TRUE(sessions.update(token, {{"device", "phone"}}, 1));
    EXPECT_TRUE(sessions.modify(token, [](auto& d) { d["role"] = "admin"; }));
    const auto fresh = sessions.rotate(token);
    ASSERT_TRUE(fresh);
    const auto listed = sessions.list("42");
    ASSERT_EQ(listed.size(), 1u);
    const std::string other = sessions.create("42", {});
    EXPECT_TRUE(sessions.revoke_by_id("42", listed[0].id));
    EXPECT_TRUE(sessions.revoke(other));
    (void)sessions.create("42", {});
    EXPECT_EQ(sessions.revoke_all("42"), 1u);
    expect_noperm([&] { user.command<void>("GET", "shop:cache:x"); }, "GET shop:cache:x");
}

TEST_F(Acl, PubSubWorksWithItsRuleAlone) {
    const auto user = as_user("pubsubuser", pubsub_rule);
    std::promise<std::string> exact, pattern, sharded;
    redkit::subscriber sub(user);
    sub.on_raw("orders:updates", [&](const redkit::message& m) { exact.set_value(std::string(m.payload)); });
    sub.on_pattern_raw("orders:*", [&](const redkit::message& m) {
        if (m.channel == "orders:audit") pattern.set_value(std::string(m.payload));
    });
    sub.on_sharded_raw("orders:shard", [&](const redkit::message& m) { sharded.set_value(std::string(m.payload)); });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    redkit::publisher pub(user);
    EXPECT_GE(pub.publish_raw("orders:updates", "u"), 1);
    EXPECT_GE(pub.publish_raw("orders:audit", "a"), 1);
    EXPECT_GE(pub.publish_sharded_raw("orders:shard", "s"), 1);
    auto e = exact.get_future();
    auto p = pattern.get_future();
    auto s = sharded.get_future();
    ASSERT_EQ(e.wait_for(5s), std::future_status::ready);
    ASSERT_EQ(p.wait_for(5s), std::future_status::ready);
    ASSERT_EQ(s.wait_for(5s), std::future_status::ready);
    sub.off("orders:updates");
    sub.off_pattern("orders:*");
    sub.off_sharded("orders:shard");
    expect_noperm([&] { pub.publish_raw("billing:updates", "x"); }, "PUBLISH billing:updates");
}

TEST_F(Acl, StreamsWorkWithTheirRuleAlone) {
    const auto user = as_user("streamuser", stream_rule);
    redkit::stream<int> events(user, "orders:events");
    for (int i = 0; i < 5; ++i) events.add(i);
    events.add_raw("not json");  // dead-lettered: MULTI, XADD to the dead stream, XACK, EXEC
    EXPECT_EQ(events.size(), 6);
    std::atomic<int> handled{0};
    redkit::stream_consumer_options o;
    o.block = 100ms;
    o.claim_idle = 1ms;  // XAUTOCLAIM runs on every poll
    redkit::stream_consumer<int> consumer(
        user, "orders:events", "billing", "c1", [&](const int&, const redkit::stream_entry&) { ++handled; }, o);
    for (int i = 0; i < 10 && handled.load() < 5; ++i) consumer.poll_once();
    EXPECT_EQ(handled.load(), 5);
    EXPECT_EQ(redis.command<long long>("XLEN", "{orders:events}:dead"), 1);
    expect_noperm([&] { user.command<std::string>("XADD", "billing:events", "*", "k", "v"); }, "XADD billing:events");
}

TEST_F(Acl, QueuesWorkWithTheirRuleAlone) {
    const auto user = as_user("queueuser", queue_rule);
    redkit::queue<int> q(user, "mail");
    redkit::job_options retried;
    retried.attempts = 2;
    (void)q.add("ok", 1);
    (void)q.add("flaky", 2, retried);
    redkit::job_options later;
    later.delay = 50ms;
    later.priority = 3;
    (void)q.add("later", 3, later);
    (void)q.add_bulk({{"bulk", 4}, {"bulk", 5}});
    std::atomic<int> completed{0}, failures{0};
    redkit::worker_options<int> wo;
    wo.stalled_interval = 100ms;
    wo.block_timeout = 200ms;
    wo.on_completed = [&](const redkit::job<int>&) { ++completed; };
    wo.on_error = [&](const redkit::error& e) { ADD_FAILURE() << e.what(); };
    {
        redkit::worker<int> w(
            q,
            [&](redkit::job<int>& j) {
                j.update_progress(50);
                if (j.name() == "flaky" && j.attempts_made() == 0) {
                    ++failures;
                    throw std::runtime_error("once");
                }
                return j.data() * 10;
            },
            wo);
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (completed.load() < 5 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
        EXPECT_TRUE(w.close(5s));
    }
    EXPECT_EQ(completed.load(), 5);
    EXPECT_EQ(failures.load(), 1);
    EXPECT_EQ(q.counts().completed, 5);
    ASSERT_TRUE(q.get_job("1"));
    q.pause();
    EXPECT_TRUE(q.is_paused());
    q.resume();
    const auto doomed = q.add("doomed", 6);
    EXPECT_EQ(q.remove(doomed.id), redkit::remove_result::removed);
    (void)q.add("drained", 7);
    EXPECT_EQ(q.drain(), 1u);

    // groups, and deduplication: throttle (SET PX, GET) and debounce (PTTL, PEXPIRE)
    redkit::job_options grouped;
    grouped.group = "tenant";
    grouped.deduplication = {"once", 60s, false, false};
    EXPECT_EQ(q.add("grouped", 10, grouped).outcome, redkit::add_outcome::created);
    EXPECT_EQ(q.add("grouped", 10, grouped).outcome, redkit::add_outcome::deduplicated);
    redkit::job_options debounced;
    debounced.delay = 1s;
    debounced.deduplication = {"edits", 2s, true, true};
    EXPECT_EQ(q.add("debounced", 11, debounced).outcome, redkit::add_outcome::created);
    EXPECT_EQ(q.add("debounced", 12, debounced).outcome, redkit::add_outcome::debounced);
    q.set_group_concurrency(2);
    q.set_group_concurrency("tenant", 1);
    q.set_group_rate_limit(10, 1s);
    q.pause_group("tenant");
    EXPECT_TRUE(q.group("tenant")->paused);
    q.resume_group("tenant");
    EXPECT_EQ(q.groups().total, 1);
    EXPECT_EQ(q.group_jobs("tenant").total, 1);
    EXPECT_EQ(q.counts().grouped, 1);
    EXPECT_EQ(q.drain(true), 2u);
    q.remove_group_rate_limit();
    q.set_group_concurrency("tenant", 0);
    q.set_group_concurrency(0);
    EXPECT_EQ(q.groups().total, 0);
    EXPECT_FALSE(q.retry("1"));
    EXPECT_EQ(q.retry_failed(), 0u);
    EXPECT_TRUE(q.check_stalled().recovered.empty());

    // schedulers, the rate limit, a handler's rate_limited_error, logs, inspection and events
    q.set_events(100);
    EXPECT_TRUE(q.events_enabled());
    q.set_rate_limit(100, 1s);
    ASSERT_TRUE(q.rate_limit());
    redkit::scheduler_options twice = redkit::scheduler_options::every_interval(50ms);
    twice.limit = 2;
    q.upsert_scheduler("tick", twice, "tick", 8);
    ASSERT_TRUE(q.get_scheduler("tick"));
    EXPECT_EQ(q.schedulers().size(), 1u);
    (void)q.add("limited", 9);
    std::atomic<int> limited{0};
    completed = 0;
    {
        redkit::worker<int> w(
            q,
            [&](redkit::job<int>& j) {
                j.log("ran " + j.name());
                if (j.name() == "limited" && limited++ == 0) throw redkit::rate_limited_error(10ms);
                return 0;
            },
            wo);
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (completed.load() < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
        EXPECT_TRUE(w.close(5s));
    }
    EXPECT_EQ(completed.load(), 3);
    EXPECT_EQ(limited.load(), 2);
    EXPECT_FALSE(q.get_scheduler("tick")) << "removed after its limit";
    EXPECT_GE(q.rate_limit_wait().count(), 0);
    const auto page = q.jobs(redkit::job_state::completed, 0, 10);
    EXPECT_EQ(page.total, 8);
    EXPECT_EQ(q.jobs(redkit::job_state::completed, 0, 10, false).jobs.size(), 8u);
    EXPECT_EQ(q.jobs(redkit::job_state::waiting).total, 0);
    EXPECT_TRUE(q.add_log(page.jobs.at(0).id(), "note"));
    EXPECT_GE(q.logs(page.jobs.at(0).id()).total, 2);
    long long finished = 0;
    for (const auto& m : q.metrics(std::chrono::minutes(2))) finished += m.completed;
    EXPECT_EQ(finished, 8);
    redkit::queue_events events(user, "mail");
    EXPECT_FALSE(events.read("0", 100).empty());
    EXPECT_TRUE(events.read("$", 10, 10ms).empty());
    q.upsert_scheduler("again", twice, "tick", 8);
    EXPECT_TRUE(q.remove_scheduler("again"));
    EXPECT_EQ(q.clean(redkit::job_state::completed), 8u);

    // a flow in the queue: the parent runs after its children and reads their values
    redkit::flow_job parent{"sum", 0};
    parent.children = {redkit::flow_job{"part", 1}, redkit::flow_job{"part", 2}};
    const auto flow = q.add_flow(parent);
    EXPECT_EQ(q.counts().waiting_children, 1);
    completed = 0;
    {
        redkit::worker<int> w(
            q,
            [&](redkit::job<int>& j) {
                long long sum = j.data();
                for (const auto& c : j.children_values()) sum += c.value.get<long long>();
                return sum;
            },
            wo);
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (completed.load() < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
        EXPECT_TRUE(w.close(5s));
    }
    EXPECT_EQ(q.get_job(flow.id)->return_value(), 3);
    EXPECT_EQ(q.children_values(flow.id).size(), 2u);
    q.remove_rate_limit();
    q.set_events(0);
    EXPECT_TRUE(q.obliterate());
    expect_noperm([&] { (void)redkit::queue<int>(user, "billing").add("x", 1); }, "queue:{billing}");
}

// A queue_events reader whose user may not XREAD gets NOPERM, not an empty list of events.
TEST_F(Acl, QueueEventsWithoutXreadThrowNoperm) {
    redkit::queue<int> q(redis, "mail");
    q.set_events(100);
    (void)q.add("one", 1);
    const auto user = as_user("eventsuser", "~queue:{mail}:* resetchannels -@all +ping");
    redkit::queue_events events(user, "mail");
    expect_noperm([&] { (void)events.read("0", 10); }, "XREAD queue:{mail}:events: NOPERM");
    expect_noperm([&] { (void)events.read("0", 10, 50ms); }, "XREAD queue:{mail}:events: NOPERM");
    EXPECT_EQ(redkit::queue_events(redis, "mail").read("0", 10).size(), 1u);
}
