// SPDX-License-Identifier: MIT
// client_options::observer on a real server: every hook with its fields, through CLIENT KILL,
// DEBUG SLEEP, kill -9 and an exhausted pool; redkit::metrics and its Prometheus text, read back
// with a strict parser of the format.
#include <redkit/redkit.hpp>

#include "support/prometheus_text.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace {

struct seen_command {
    std::string operation, key, query_text, server, error_prefix;
    int db = 0;
    redkit::command_path path{};
    std::size_t batch_size = 0;
    std::chrono::nanoseconds duration{};
    std::chrono::steady_clock::time_point start;
    redkit::command_outcome outcome{};
    redkit::errc code{};
    int retries = 0, moved = 0, asked = 0;
    std::shared_ptr<void> context;
    std::thread::id thread;
};

struct seen_close {
    std::string server;
    redkit::close_reason reason{};
};

// Keeps a copy of every event (string_views die with the call).
class recorder : public redkit::observer {
public:
    std::shared_ptr<void> on_command_start(const redkit::command_event& e) override {
        std::lock_guard<std::mutex> lock(mutex_);
        started.push_back(copy(e));
        return std::make_shared<std::thread::id>(std::this_thread::get_id());
    }
    void on_command(const redkit::command_event& e) override {
        std::lock_guard<std::mutex> lock(mutex_);
        ended.push_back(copy(e));
    }
    void on_connect(const redkit::connect_event& e) override {
        std::lock_guard<std::mutex> lock(mutex_);
        connects.push_back(e);
        connect_servers.emplace_back(e.server);
    }
    void on_close(const redkit::close_event& e) override {
        std::lock_guard<std::mutex> lock(mutex_);
        closes.push_back({std::string(e.server), e.reason});
    }
    void on_pool_wait(const redkit::pool_wait_event& e) override {
        std::lock_guard<std::mutex> lock(mutex_);
        waits.push_back(e);
    }
    void on_batch(const redkit::batch_event& e) override {
        std::lock_guard<std::mutex> lock(mutex_);
        batches.push_back(e);
    }

    std::vector<seen_command> named(const std::string& op) {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<seen_command> out;
        for (const auto& c : ended) {
            if (c.operation == op) out.push_back(c);
        }
        return out;
    }
    std::vector<seen_close> closes_now() {
        std::lock_guard<std::mutex> lock(mutex_);
        return closes;
    }
    template <class F>
    auto with(F f) {
        std::lock_guard<std::mutex> lock(mutex_);
        return f(*this);
    }

    std::vector<seen_command> started, ended;
    std::vector<redkit::connect_event> connects;  // (reason and server views are dead: see below)
    std::vector<std::string> connect_servers;
    std::vector<seen_close> closes;
    std::vector<redkit::pool_wait_event> waits;
    std::vector<redkit::batch_event> batches;

private:
    static seen_command copy(const redkit::command_event& e) {
        seen_command c;
        c.operation = e.operation;
        c.key = e.key;
        c.query_text = e.query_text;
        c.server = e.server;
        c.error_prefix = e.error_prefix;
        c.db = e.db;
        c.path = e.path;
        c.batch_size = e.batch_size;
        c.duration = e.duration;
        c.start = e.start;
        c.outcome = e.outcome;
        c.code = e.code;
        c.retries = e.retries;
        c.moved = e.moved;
        c.asked = e.asked;
        c.context = e.context;
        c.thread = std::this_thread::get_id();
        return c;
    }
    std::mutex mutex_;
};

class Observer : public ::testing::Test {
protected:
    void SetUp() override {
        if (shared_server().external()) GTEST_SKIP() << "observer tests kill their own redis-server";
        if (!shared_server().running()) shared_server().start();
        redkit::client(shared_server().options()).command<void>("FLUSHALL");
    }
    redkit::client_options options() {
        auto o = shared_server().options();
        o.observer = seen;
        return o;
    }
    std::string server_name() const {
        const auto o = shared_server().options();
        return o.unix_socket.empty() ? o.host + ":" + std::to_string(o.port) : o.unix_socket;
    }
    std::shared_ptr<recorder> seen = std::make_shared<recorder>();
};

}  // namespace

TEST_F(Observer, EveryCommandIsReportedOnceWithItsFields) {
    auto o = options();
    o.db = 2;
    o.observe_keys = true;
    o.observe_query_text = true;
    redkit::client c(o);
    const auto before = std::chrono::steady_clock::now();
    c.command<void>("SET", "user:42", "secret-value");
    EXPECT_EQ(c.command<std::string>("GET", "user:42"), "secret-value");
    EXPECT_THROW(c.command<long long>("HLEN", "user:42"), redkit::server_error);

    const auto sets = seen->named("SET");
    ASSERT_EQ(sets.size(), 1U);
    const seen_command& set = sets[0];
    EXPECT_EQ(set.key, "user:42");
    EXPECT_EQ(set.query_text, "SET user:42 ?");  // the value never reaches the observer
    EXPECT_EQ(set.db, 2);
    EXPECT_EQ(set.server, server_name());
    EXPECT_EQ(set.batch_size, 1U);
    EXPECT_EQ(set.outcome, redkit::command_outcome::ok);
    EXPECT_GE(set.start, before);
    EXPECT_GT(set.duration.count(), 0);
    EXPECT_LT(set.duration, 5s);
    EXPECT_EQ(set.retries, 0);
    // the start ran on the caller's thread, and what it returned came back at the end
    ASSERT_TRUE(set.context);
    EXPECT_EQ(*std::static_pointer_cast<std::thread::id>(set.context), std::this_thread::get_id());
    EXPECT_EQ(set.thread, std::this_thread::get_id());

    const auto hlen = seen->named("HLEN");
    ASSERT_EQ(hlen.size(), 1U);
    EXPECT_EQ(hlen[0].outcome, redkit::command_outcome::error_reply);
    EXPECT_EQ(hlen[0].error_prefix, "WRONGTYPE");
    ASSERT_EQ(seen->named("GET").size(), 1U);
    // one start per end, and a connection opened to the server
    seen->with([&](recorder& r) {
        EXPECT_EQ(r.started.size(), r.ended.size());
        EXPECT_FALSE(r.connects.empty());
        if (r.connects.empty()) return 0;
        EXPECT_TRUE(r.connects[0].ok);
        EXPECT_EQ(r.connects[0].tls, shared_server().options().tls.enabled);
        EXPECT_GT(r.connects[0].duration.count(), 0);
        EXPECT_EQ(r.connect_servers[0], server_name());
        return 0;
    });
}

TEST_F(Observer, KeysAndArgumentsStayOutUnlessAskedFor) {
    {
        redkit::client c(options());
        c.command<void>("SET", "user:7", "v");
    }
    auto plain = seen->named("SET");
    ASSERT_EQ(plain.size(), 1U);
    EXPECT_EQ(plain[0].key, "");
    EXPECT_EQ(plain[0].query_text, "");

    auto o = options();
    o.observe_query_text = true;  // without observe_keys: keys are masked too
    redkit::client c(o);
    c.command<void>("MSET", "a", "1", "b", "2");
    const auto mset = seen->named("MSET");
    ASSERT_EQ(mset.size(), 1U);
    EXPECT_EQ(mset[0].query_text, "MSET ? ? ? ?");
    EXPECT_EQ(mset[0].key, "");
}

TEST_F(Observer, PipelinesAndTransactionsAreOneOperationEach) {
    redkit::client c(options());
    redkit::pipeline p(c);
    p.command("SET", "a", "1");
    p.command("INCR", "a");
    p.command("GET", "a");
    const auto replies = p.exec();
    ASSERT_EQ(replies.size(), 3U);
    const auto pipes = seen->named("PIPELINE");
    ASSERT_EQ(pipes.size(), 1U);
    EXPECT_EQ(pipes[0].batch_size, 3U);
    EXPECT_EQ(pipes[0].path, redkit::command_path::pooled);
    EXPECT_EQ(pipes[0].outcome, redkit::command_outcome::ok);
    EXPECT_EQ(pipes[0].server, server_name());
    EXPECT_TRUE(seen->named("INCR").empty()) << "a pipeline's commands are not reported one by one";

    redkit::transaction tx(c);
    tx.command("SET", "b", "x");
    tx.command("INCR", "b");  // fails inside EXEC: an error reply among the results
    const auto results = tx.exec();
    ASSERT_EQ(results.size(), 2U);
    auto multi = seen->named("MULTI");
    ASSERT_EQ(multi.size(), 1U);
    EXPECT_EQ(multi[0].batch_size, 2U);
    EXPECT_EQ(multi[0].outcome, redkit::command_outcome::ok);  // EXEC answered; INCR's error is its element

    redkit::transaction bad(c);
    bad.command("SET", "c", "1");
    bad.command("GET", "c", "extra");  // refused while queued: EXECABORT
    EXPECT_THROW((void)bad.exec(), redkit::server_error);
    multi = seen->named("MULTI");
    ASSERT_EQ(multi.size(), 2U);
    EXPECT_EQ(multi[1].outcome, redkit::command_outcome::error_reply);
    EXPECT_EQ(multi[1].error_prefix, "ERR");
}

TEST_F(Observer, SubmittedCommandsAreReportedBeforeTheirCallbacksRun) {
    redkit::client c(options());
    constexpr int n = 500;
    std::atomic<int> reported_before{0}, done{0};
    for (int i = 0; i < n; ++i) {
        c.submit<long long>("INCR", "counter").then([&](redkit::future<long long> f) {
            (void)f.get();
            const auto incrs = seen->with([](recorder& r) {
                int k = 0;
                for (const auto& e : r.ended) k += e.operation == "INCR" ? 1 : 0;
                return k;
            });
            if (incrs >= done.load() + 1) ++reported_before;
            ++done;
        });
    }
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (done.load() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    ASSERT_EQ(done.load(), n);
    EXPECT_EQ(reported_before.load(), n);
    const auto incrs = seen->named("INCR");
    ASSERT_EQ(incrs.size(), static_cast<std::size_t>(n));
    for (const auto& e : incrs) {
        EXPECT_EQ(e.path, redkit::command_path::shared);
        EXPECT_EQ(e.outcome, redkit::command_outcome::ok);
        EXPECT_EQ(e.server, server_name());
        ASSERT_TRUE(e.context);  // started on this (the submitting) thread
        EXPECT_EQ(*std::static_pointer_cast<std::thread::id>(e.context), std::this_thread::get_id());
    }
    // the shared connection's writes carried every submitted command
    const std::size_t written = seen->with([](recorder& r) {
        std::size_t k = 0;
        for (const auto& b : r.batches) k += b.commands;
        return k;
    });
    EXPECT_GE(written, static_cast<std::size_t>(n));

    redkit::transaction tx(c);
    tx.command("INCR", "counter");
    tx.command("INCR", "counter");
    const auto r = tx.submit().get();
    ASSERT_EQ(r.size(), 2U);
    const auto multi = seen->named("MULTI");
    ASSERT_EQ(multi.size(), 1U);
    EXPECT_EQ(multi[0].batch_size, 2U);
    EXPECT_EQ(multi[0].path, redkit::command_path::shared);
}

TEST_F(Observer, AKilledConnectionIsClosedAsEofAndTheReadIsRetried) {
    auto o = options();
    o.multiplex = false;
    o.pool_size = 1;
    o.idle_check_after = std::chrono::hours(1);  // reuse it without a look: the GET finds it dead
    redkit::client c(o);
    c.command<void>("SET", "k", "v");
    redkit::client admin(shared_server().options());
    const auto list = admin.command<std::string>("CLIENT", "LIST");
    // every client but admin's own connection
    std::istringstream lines(list);
    std::string line;
    const long long own = admin.command<long long>("CLIENT", "ID");
    int killed = 0;
    while (std::getline(lines, line)) {
        const long long id = std::stoll(line.substr(3, line.find(' ') - 3));
        if (id != own) killed += static_cast<int>(admin.command<long long>("CLIENT", "KILL", "ID", id));
    }
    ASSERT_GE(killed, 1);
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(c.command<std::string>("GET", "k"), "v");
    const auto gets = seen->named("GET");
    ASSERT_EQ(gets.size(), 1U);
    EXPECT_EQ(gets[0].retries, 1);
    EXPECT_EQ(gets[0].outcome, redkit::command_outcome::ok);
    const auto closes = seen->closes_now();
    ASSERT_EQ(closes.size(), 1U);
    EXPECT_EQ(closes[0].reason, redkit::close_reason::eof);
    EXPECT_EQ(closes[0].server, server_name());
}

TEST_F(Observer, ATimeoutFailsTheCommandAndClosesItsConnection) {
    auto o = options();
    o.command_timeout = 100ms;
    redkit::client c(o);
    EXPECT_THROW(c.command<void>("DEBUG", "SLEEP", "0.4"), redkit::error);
    const auto sleeps = seen->named("DEBUG");
    ASSERT_EQ(sleeps.size(), 1U);
    EXPECT_EQ(sleeps[0].outcome, redkit::command_outcome::failed);
    EXPECT_EQ(sleeps[0].code, redkit::errc::timeout);
    EXPECT_EQ(sleeps[0].path, redkit::command_path::pooled);  // a DEBUG holds no shared connection
    const auto closes = seen->closes_now();
    ASSERT_EQ(closes.size(), 1U);
    EXPECT_EQ(closes[0].reason, redkit::close_reason::timeout);
    std::this_thread::sleep_for(400ms);
}

TEST_F(Observer, AKilledServerFailsConnectsUntilItIsBack) {
    auto o = options();
    o.max_retries = 1;
    o.retry_backoff = 10ms;
    redkit::client c(o);
    c.command<void>("SET", "k", "v");
    shared_server().kill();
    EXPECT_THROW(c.command<std::string>("GET", "k"), redkit::error);
    shared_server().start();
    c.command<void>("SET", "k", "again");
    const auto gets = seen->named("GET");
    ASSERT_EQ(gets.size(), 1U);
    EXPECT_EQ(gets[0].outcome, redkit::command_outcome::failed);
    EXPECT_EQ(gets[0].retries, 1);  // read-only: retried once, as max_retries says
    seen->with([&](recorder& r) {
        int failed = 0, ok = 0;
        for (const auto& e : r.connects) (e.ok ? ok : failed) += 1;
        EXPECT_GE(failed, 1) << "the connects while the server was down";
        EXPECT_GE(ok, 2) << "before and after";
        int eof = 0;
        for (const auto& e : r.closes) eof += e.reason == redkit::close_reason::eof ? 1 : 0;
        EXPECT_GE(eof, 1) << "the connection the kill closed";
        return 0;
    });
}

TEST_F(Observer, PoolWaitsAndExhaustionAreReported) {
    auto o = options();
    o.multiplex = false;
    o.pool_size = 1;
    o.pool_wait_timeout = 150ms;
    redkit::client c(o);
    {
        redkit::lease held = c.borrow();
        std::thread([&] { EXPECT_THROW(c.command<void>("PING"), redkit::error); }).join();
    }
    std::thread release_later;
    {
        auto held = std::make_shared<redkit::lease>(c.borrow());
        release_later = std::thread([held]() mutable {
            std::this_thread::sleep_for(50ms);
            held.reset();
        });
        held.reset();
        c.ping();  // waits ~50 ms, then gets it
    }
    release_later.join();
    seen->with([&](recorder& r) {
        EXPECT_EQ(r.waits.size(), 2U);
        if (r.waits.size() != 2U) return 0;
        EXPECT_TRUE(r.waits[0].exhausted);
        EXPECT_GE(r.waits[0].waited, 140ms);
        EXPECT_FALSE(r.waits[1].exhausted);
        EXPECT_GE(r.waits[1].waited, 30ms);
        EXPECT_EQ(r.waits[1].pool_size, 1U);
        return 0;
    });
    const auto pings = seen->named("PING");
    ASSERT_EQ(pings.size(), 2U);
    EXPECT_EQ(pings[0].outcome, redkit::command_outcome::failed);
    EXPECT_EQ(pings[0].code, redkit::errc::pool_exhausted);
    EXPECT_EQ(pings[1].outcome, redkit::command_outcome::ok);
}

TEST_F(Observer, AnObserverThatThrowsBreaksNothing) {
    struct thrower : redkit::observer {
        std::shared_ptr<void> on_command_start(const redkit::command_event&) override { throw std::runtime_error("x"); }
        void on_command(const redkit::command_event&) override { throw std::runtime_error("x"); }
        void on_connect(const redkit::connect_event&) override { throw 42; }
        void on_close(const redkit::close_event&) override { throw 42; }
        void on_batch(const redkit::batch_event&) override { throw 42; }
    };
    auto o = shared_server().options();
    o.observer = std::make_shared<thrower>();
    redkit::client c(o);
    c.command<void>("SET", "k", "v");
    EXPECT_EQ(c.command<std::string>("GET", "k"), "v");
    EXPECT_EQ(c.submit<std::string>("GET", "k").get(), "v");
}

// ---- redkit::metrics and its Prometheus text ----

TEST_F(Observer, MetricsCountWhatHappenedAndRenderStrictPrometheusText) {
    auto counts = std::make_shared<redkit::metrics>();
    auto o = shared_server().options();
    o.observer = counts;
    o.command_timeout = 100ms;
    redkit::client c(o);
    for (int i = 0; i < 10; ++i) c.command<void>("SET", "k" + std::to_string(i), i);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 250; ++i) (void)c.command<std::optional<std::string>>("GET", "k1");
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_THROW(c.command<long long>("HLEN", "k1"), redkit::server_error);
    EXPECT_THROW(c.command<void>("DEBUG", "SLEEP", "0.3"), redkit::error);
    std::this_thread::sleep_for(300ms);
    redkit::pipeline p(c);
    p.command("INCR", "n");
    (void)p.exec();
    // an operation's name is the application's: a label value, escaped
    EXPECT_THROW(c.command<void>("NO\"SUCH"), redkit::server_error);

    const auto snap = counts->snapshot();
    ASSERT_EQ(snap.operations.count("GET"), 1U);
    EXPECT_EQ(snap.operations.at("GET").ok, 1000U);
    EXPECT_EQ(snap.operations.at("SET").ok, 10U);
    EXPECT_EQ(snap.operations.at("HLEN").error_reply, 1U);
    EXPECT_EQ(snap.operations.at("DEBUG").failed, 1U);
    EXPECT_EQ(snap.operations.at("PIPELINE").ok, 1U);
    EXPECT_GE(snap.connects, 2U);
    EXPECT_EQ(snap.closes.at("timeout"), 1U);

    const auto samples = redkit_test::parse_prometheus(counts->prometheus());
    EXPECT_EQ(samples.at(R"(redkit_commands_total{operation="GET",outcome="ok"})"), 1000);
    EXPECT_EQ(samples.at(R"(redkit_commands_total{operation="HLEN",outcome="error_reply"})"), 1);
    EXPECT_EQ(samples.at(R"(redkit_commands_total{operation="DEBUG",outcome="failed"})"), 1);
    EXPECT_EQ(samples.at(R"(redkit_commands_total{operation="NO\"SUCH",outcome="error_reply"})"), 1);
    EXPECT_EQ(samples.at(R"(redkit_connections_closed_total{reason="timeout"})"), 1);
    EXPECT_EQ(samples.at(R"(redkit_connections_opened_total)"), static_cast<double>(snap.connects));
    // the histogram: cumulative, ending at +Inf with the count; the sum is the time spent
    double previous = 0;
    for (const double le : redkit::metrics::bucket_bounds) {
        char bound[32];
        std::snprintf(bound, sizeof bound, "%.9g", le);
        const double v =
            samples.at(std::string(R"(redkit_command_duration_seconds_bucket{operation="GET",le=")") + bound + "\"}");
        EXPECT_GE(v, previous);
        previous = v;
    }
    EXPECT_EQ(samples.at(R"(redkit_command_duration_seconds_bucket{operation="GET",le="+Inf"})"), 1000);
    EXPECT_EQ(samples.at(R"(redkit_command_duration_seconds_count{operation="GET"})"), 1000);
    const double debug_sum = samples.at(R"(redkit_command_duration_seconds_sum{operation="DEBUG"})");
    EXPECT_GE(debug_sum, 0.09);
    EXPECT_LT(debug_sum, 1.0);
    EXPECT_EQ(samples.at(R"(redkit_cache_calls_total{outcome="hit"})"), 0);  // no cache was used

    // cache calls, by outcome
    auto cached = std::make_shared<redkit::metrics>();
    auto co = shared_server().options();
    co.observer = cached;
    redkit::cache cache{redkit::client(co)};
    for (int i = 0; i < 3; ++i)
        (void)cache.get_or_set<int>(
            "metrics:cached", [] { return 7; }, 60s);
    EXPECT_EQ(cached->snapshot().cache_calls.at("miss"), 1U);
    EXPECT_EQ(cached->snapshot().cache_calls.at("hit"), 2U);
    const auto cache_samples = redkit_test::parse_prometheus(cached->prometheus());
    EXPECT_EQ(cache_samples.at(R"(redkit_cache_calls_total{outcome="hit"})"), 2);
    EXPECT_EQ(cache_samples.at(R"(redkit_cache_calls_total{outcome="miss"})"), 1);
    EXPECT_EQ(cache_samples.at(R"(redkit_cache_calls_total{outcome="waited"})"), 0);
    EXPECT_EQ(cache_samples.at(R"(redkit_cache_lock_wait_seconds_total)"), 0);
}
