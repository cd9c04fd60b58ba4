// SPDX-License-Identifier: MIT
// Job schedulers, rate-limited processing and inspection against a real, private redis-server:
// ticks made exactly once across four worker processes (one killed mid-run), missed ticks run
// once, limits and ends, idempotent upserts; a queue-wide rate limit held by eight threads in two
// processes, and a handler's "rate limited, retry after D"; jobs listed by state, logs, metrics;
// flows (3 levels across queues, failure policies, a child killed with its worker, bad flows);
// deduplication (simple, throttle, debounce; eight producer threads in two processes on one key).
// Worker processes are fork()ed children with their own client; they report through Redis lists
// the test reads.
#include <redkit/queue.hpp>

#include "support/fresh_database.hpp"
#include "support/queue_options.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace {

template <class T = int>
redkit::worker_options<T> quick(std::size_t concurrency = 1) {
    return redkit_test::quick_worker<T>(concurrency);
}

long long ms_of(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

class Schedulers : public redkit_test::fresh_database {
protected:
    long long server_ms() {
        const auto t = redis.command<std::vector<long long>>("TIME");
        return t.at(0) * 1000 + t.at(1) / 1000;
    }

    // Forks a worker process for queue `name`: each job sleeps `work`, then RPUSHes
    // "<job id>|<tick>|<processed ms>" to the list "runs". Returns its pid. No thread of this
    // process may be alive at the fork (the fixture's client has none).
    pid_t spawn_worker(const std::string& name, std::size_t concurrency, std::chrono::milliseconds work) {
        const pid_t pid = ::fork();
        if (pid != 0) return pid;
        try {
            redkit::client c(shared_server().url());
            redkit::queue<int> q(c, name);
            redkit::worker<int> w(
                q,
                [&](redkit::job<int>& j) {
                    std::this_thread::sleep_for(work);
                    c.command<long long>("RPUSH", "runs",
                                         j.id() + "|" + std::to_string(ms_of(j.scheduled_for())) + "|" +
                                             std::to_string(j.processed_at()));
                },
                quick(concurrency));
            std::this_thread::sleep_for(120s);  // until killed
        } catch (...) {
        }
        ::_exit(3);
    }

    struct run {
        std::string id;
        long long tick = 0, processed = 0;
    };
    std::vector<run> runs() {
        std::vector<run> out;
        for (const auto& line : redis.command<std::vector<std::string>>("LRANGE", "runs", 0, -1)) {
            const auto a = line.find('|'), b = line.rfind('|');
            out.push_back(
                {line.substr(0, a), std::stoll(line.substr(a + 1, b - a - 1)), std::stoll(line.substr(b + 1))});
        }
        return out;
    }

    static void stop(pid_t pid) {
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
    }
};

using RateLimit = Schedulers;

}  // namespace

// The issue's test: an every-200-ms scheduler for 10 s with four worker processes, one killed
// with SIGKILL half-way: every tick ran, exactly once, and ticks stay on their 200 ms grid.
TEST_F(Schedulers, EveryIntervalRunsEachTickExactlyOnceAcrossFourProcessesWithOneKilled) {
    if (shared_server().external()) GTEST_SKIP() << "forks workers on the private server";
    redkit::queue<int> q(redis, "ticks");
    std::vector<pid_t> workers;
    for (int i = 0; i < 4; ++i) workers.push_back(spawn_worker("ticks", 2, 20ms));
    const long long first =
        ms_of(q.upsert_scheduler("every-200", redkit::scheduler_options::every_interval(200ms), "tick", 7));
    std::this_thread::sleep_for(5s);
    stop(workers[0]);  // whatever it held is recovered when its lease expires (1 s)
    std::this_thread::sleep_for(5s);
    EXPECT_TRUE(q.remove_scheduler("every-200"));
    std::this_thread::sleep_for(1500ms);  // let running and recovered jobs finish
    for (std::size_t i = 1; i < workers.size(); ++i) stop(workers[i]);

    auto r = runs();
    std::sort(r.begin(), r.end(), [](const run& a, const run& b) { return a.tick < b.tick; });
    ASSERT_GE(r.size(), 45u);
    EXPECT_EQ(r.front().tick, first);
    std::set<std::string> ids;
    for (std::size_t i = 0; i < r.size(); ++i) {
        EXPECT_TRUE(ids.insert(r[i].id).second) << "tick job ran twice: " << r[i].id;
        EXPECT_EQ(r[i].id, "repeat:every-200:" + std::to_string(r[i].tick));
        EXPECT_GE(r[i].processed, r[i].tick) << "ran before its tick";
        if (i > 0) {
            EXPECT_EQ(r[i].tick - r[i - 1].tick, 200) << "a tick was skipped or doubled at " << r[i].tick;
        }
    }
    // about 10 s of ticks (the removal's moment is not exact)
    EXPECT_GE(r.back().tick - first, 9800);
    EXPECT_LE(r.back().tick - first, 10400);
    EXPECT_EQ(q.get_scheduler("every-200"), std::nullopt);
}

TEST_F(Schedulers, CronPatternWithSecondsInAZoneTicksOnWholeSeconds) {
    redkit::queue<int> q(redis, "cron");
    std::mutex m;
    std::vector<long long> ticks;
    std::vector<std::string> schedulers;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            std::lock_guard<std::mutex> lock(m);
            ticks.push_back(ms_of(j.scheduled_for()));
            schedulers.push_back(j.scheduler_id());
            EXPECT_EQ(j.name(), "every-second");
            EXPECT_EQ(j.data(), 5);
        },
        quick());
    const auto next = q.upsert_scheduler("s", redkit::scheduler_options::cron_pattern("* * * * * *", "Europe/Berlin"),
                                         "every-second", 5);
    EXPECT_EQ(ms_of(next) % 1000, 0);
    std::this_thread::sleep_for(3500ms);
    EXPECT_TRUE(q.remove_scheduler("s"));
    EXPECT_TRUE(w.close(5s));
    std::lock_guard<std::mutex> lock(m);
    ASSERT_GE(ticks.size(), 3u);
    for (std::size_t i = 0; i < ticks.size(); ++i) {
        EXPECT_EQ(ticks[i] % 1000, 0);
        if (i > 0) {
            EXPECT_EQ(ticks[i] - ticks[i - 1], 1000);
        }
        EXPECT_EQ(schedulers[i], "s");
    }
}

TEST_F(Schedulers, UpsertAgainKeepsTheScheduleAndANewScheduleReplacesThePendingJob) {
    redkit::queue<int> q(redis, "upsert");
    redkit::scheduler_options hourly = redkit::scheduler_options::every_interval(1h);
    hourly.start = std::chrono::system_clock::now() + 1h;
    const auto next = q.upsert_scheduler("report", hourly, "report", 1);
    EXPECT_EQ(q.counts().delayed, 1);
    // every process may upsert at start-up: the same schedule changes nothing but the template
    EXPECT_EQ(q.upsert_scheduler("report", hourly, "report-v2", 2), next);
    EXPECT_EQ(q.counts().delayed, 1);
    auto info = q.get_scheduler("report");
    ASSERT_TRUE(info);
    EXPECT_EQ(info->id, "report");
    EXPECT_EQ(info->job_name, "report-v2");
    EXPECT_EQ(info->options.every, 1h);
    EXPECT_EQ(ms_of(info->next_run), ms_of(next));
    EXPECT_EQ(info->jobs_made, 1);
    const std::string pending = "repeat:report:" + std::to_string(ms_of(next));
    ASSERT_TRUE(q.get_job(pending));
    EXPECT_EQ(q.get_job(pending)->data(), 1);  // made before the template changed

    // a new schedule: the old pending job goes, the new first tick's job comes
    const auto daily =
        q.upsert_scheduler("report", redkit::scheduler_options::cron_pattern("0 6 * * *", "Asia/Tokyo"), "report", 3);
    EXPECT_EQ(q.get_job(pending), std::nullopt);
    EXPECT_EQ(q.counts().delayed, 1);
    const auto fresh = q.get_job("repeat:report:" + std::to_string(ms_of(daily)));
    ASSERT_TRUE(fresh);
    EXPECT_EQ(fresh->data(), 3);
    EXPECT_EQ(fresh->scheduler_id(), "report");
    EXPECT_EQ((ms_of(daily) / 1000 + 9 * 3600) % 86400, 6 * 3600);  // 06:00 in Tokyo (UTC+9)

    // hostile ids are stored escaped and come back as given
    q.upsert_scheduler("a:b{c} d", redkit::scheduler_options::every_interval(1h), "x", 0);
    const auto all = q.schedulers();
    ASSERT_EQ(all.size(), 2u);
    std::set<std::string> names{all[0].id, all[1].id};
    EXPECT_EQ(names, (std::set<std::string>{"report", "a:b{c} d"}));
    EXPECT_EQ(all[0].id, "a:b{c} d");  // due at once, so first
    EXPECT_EQ(q.get_scheduler("report")->options.cron, "0 6 * * *");
    EXPECT_EQ(q.get_scheduler("report")->options.time_zone, "Asia/Tokyo");

    EXPECT_TRUE(q.remove_scheduler("report"));
    EXPECT_FALSE(q.remove_scheduler("report"));
    EXPECT_EQ(q.counts().delayed, 0);
    EXPECT_EQ(q.get_scheduler("report"), std::nullopt);
    EXPECT_TRUE(q.obliterate());
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 0);
}

TEST_F(Schedulers, TicksMissedWhileNoWorkerRanGiveOneJobNotOnePerTick) {
    redkit::queue<int> q(redis, "missed");
    q.upsert_scheduler("fast", redkit::scheduler_options::every_interval(100ms), "t", 0);
    std::this_thread::sleep_for(1200ms);  // ~12 ticks pass with no worker
    EXPECT_EQ(q.counts().waiting, 1);     // only the first tick's job exists
    const long long started = server_ms();
    std::mutex m;
    std::vector<long long> ticks;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            std::lock_guard<std::mutex> lock(m);
            ticks.push_back(ms_of(j.scheduled_for()));
        },
        quick());
    std::this_thread::sleep_for(550ms);
    EXPECT_TRUE(q.remove_scheduler("fast"));
    EXPECT_TRUE(w.close(5s));
    std::lock_guard<std::mutex> lock(m);
    ASSERT_GE(ticks.size(), 4u);
    // the waiting job of the first tick, then one job for every tick missed (due at once), then
    // the schedule's grid again
    EXPECT_LT(ticks[0], started - 1000);
    EXPECT_GE(ticks[1], started);
    EXPECT_LE(ticks.size(), 9u);
    EXPECT_GT(ticks[2], ticks[1]);
    for (std::size_t i = 3; i < ticks.size(); ++i) EXPECT_EQ(ticks[i] - ticks[i - 1], 100);
}

TEST_F(Schedulers, LimitAndEndStopTheSchedulerAndRemoveIt) {
    redkit::queue<int> q(redis, "bounded");
    std::atomic<int> runs{0};
    redkit::worker<int> w(
        q, [&](redkit::job<int>&) { ++runs; }, quick());
    redkit::scheduler_options three = redkit::scheduler_options::every_interval(50ms);
    three.limit = 3;
    q.upsert_scheduler("three", three, "t", 0);
    redkit::scheduler_options until = redkit::scheduler_options::every_interval(50ms);
    until.start = std::chrono::system_clock::now() + 100ms;
    until.end = *until.start + 260ms;  // ticks at +0, 50 ... 250: six
    q.upsert_scheduler("until", until, "u", 0);
    std::this_thread::sleep_for(1200ms);
    EXPECT_EQ(q.get_scheduler("three"), std::nullopt);
    EXPECT_EQ(q.get_scheduler("until"), std::nullopt);
    EXPECT_TRUE(w.close(5s));
    EXPECT_EQ(runs.load(), 3 + 6);
    EXPECT_EQ(q.counts().completed, 9);
}

TEST_F(Schedulers, InvalidSchedulesAreRefusedAndWriteNothing) {
    redkit::queue<int> q(redis, "bad");
    const auto refused = [&](const redkit::scheduler_options& s, const std::string& says,
                             const redkit::job_options& o = {}, const std::string& id = "x") {
        SCOPED_TRACE(says);
        try {
            q.upsert_scheduler(id, s, "n", 1, o);
            ADD_FAILURE() << "accepted";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
        }
    };
    using so = redkit::scheduler_options;
    refused(so::cron_pattern("61 * * * *"), "minute field");
    refused(so::cron_pattern("0 9 * * *", "Mars/Olympus"), "unknown");
    refused(so::cron_pattern("0 0 30 2 *"), "never matches");
    refused(so{}, "exactly one of cron and every");
    so both = so::cron_pattern("* * * * *");
    both.every = 1s;
    refused(both, "exactly one of cron and every");
    refused(so::every_interval(5ms), "at least 10 ms");
    so zone = so::every_interval(1s);
    zone.time_zone = "UTC";
    refused(zone, "cron pattern only");
    so backwards = so::every_interval(1s);
    backwards.start = std::chrono::system_clock::now() + 1h;
    backwards.end = std::chrono::system_clock::now();
    refused(backwards, "end must not be before start");
    so over = so::every_interval(1s);
    over.start = std::chrono::system_clock::now() - 1h;
    over.end = std::chrono::system_clock::now() - 30min;
    refused(over, "ends before its first job");
    redkit::job_options delayed;
    delayed.delay = 1s;
    refused(so::every_interval(1s), "must be unset", delayed);
    redkit::job_options named;
    named.job_id = "mine";
    refused(so::every_interval(1s), "must be unset", named);
    refused(so::every_interval(1s), "id must not be empty", {}, "");
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 0);
}

// A handler's rate_limited_error: the job goes back without using an attempt, and no job of
// the queue starts until the delay has passed.
TEST_F(RateLimit, HandlerRateLimitedPutsTheJobBackWithoutAnAttemptAndHoldsTheQueue) {
    redkit::queue<int> q(redis, "downstream");
    redkit::job_options once;
    once.attempts = 1;
    const auto a = q.add("call", 1, once);
    const auto b = q.add("call", 2, once);
    std::mutex m;
    std::vector<std::pair<int, long long>> starts;  // data, server ms
    std::atomic<int> failed{0};
    auto o = quick();
    o.on_failed = [&](const redkit::job<int>&, const redkit::job_failure&) { ++failed; };
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            bool first = false;
            {
                std::lock_guard<std::mutex> lock(m);
                first = starts.empty();
                starts.emplace_back(j.data(), j.processed_at());
            }
            if (first) throw redkit::rate_limited_error(400ms, "429 from the mail API");
        },
        o);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (q.counts().completed < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(w.close(5s));
    std::lock_guard<std::mutex> lock(m);
    ASSERT_EQ(starts.size(), 3u);
    EXPECT_EQ(starts[0].first, 1);
    EXPECT_EQ(starts[1].first, 1) << "the limited job goes back to the head of the line";
    EXPECT_EQ(starts[2].first, 2);
    EXPECT_GE(starts[1].second - starts[0].second, 400) << "the queue held for the delay";
    EXPECT_EQ(failed.load(), 0);
    const auto ja = q.get_job(a.id);
    ASSERT_TRUE(ja);
    EXPECT_EQ(ja->state(), redkit::job_state::completed);
    EXPECT_EQ(ja->attempts_made(), 1) << "the limited run used no attempt";
    EXPECT_EQ(q.get_job(b.id)->state(), redkit::job_state::completed);
    EXPECT_THROW(redkit::rate_limited_error(-1ms), std::invalid_argument);
}

TEST_F(RateLimit, SetReadAndRemoveTheLimit) {
    redkit::queue<int> q(redis, "limits");
    EXPECT_EQ(q.rate_limit(), std::nullopt);
    EXPECT_EQ(q.rate_limit_wait(), 0ms);
    q.set_rate_limit(5, 2s);
    ASSERT_TRUE(q.rate_limit());
    EXPECT_EQ(q.rate_limit()->max, 5);
    EXPECT_EQ(q.rate_limit()->per, 2s);
    EXPECT_THROW(q.set_rate_limit(0, 1s), std::invalid_argument);
    EXPECT_THROW(q.set_rate_limit(100001, 1s), std::invalid_argument);
    EXPECT_THROW(q.set_rate_limit(5, 0ms), std::invalid_argument);
    EXPECT_THROW(q.set_rate_limit(5, 25h), std::invalid_argument);
    // five jobs start at once, then the window is full for about two seconds
    for (int i = 0; i < 8; ++i) (void)q.add("j", i);
    std::atomic<int> runs{0};
    redkit::worker<int> w(
        q, [&](redkit::job<int>&) { ++runs; }, quick(4));
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (runs.load() < 5 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(runs.load(), 5);
    EXPECT_GT(q.rate_limit_wait(), 1000ms);
    q.remove_rate_limit();  // wakes the workers: the rest start at once
    const auto rest = std::chrono::steady_clock::now() + 2s;
    while (runs.load() < 8 && std::chrono::steady_clock::now() < rest) std::this_thread::sleep_for(5ms);
    EXPECT_EQ(runs.load(), 8);
    EXPECT_EQ(q.rate_limit(), std::nullopt);
    EXPECT_TRUE(w.close(5s));
}

// The issue's test: 8 worker threads in 2 processes, a limit of 50 jobs per second, 10 s: no
// one-second window starts more than 50, and throughput stays within 10% of the limit.
TEST_F(RateLimit, EightThreadsInTwoProcessesHoldFiftyPerSecond) {
    if (shared_server().external()) GTEST_SKIP() << "forks workers on the private server";
    redkit::queue<int> q(redis, "limited");
    q.set_rate_limit(50, 1s);
    std::vector<redkit::bulk_job<int>> jobs;
    for (int i = 0; i < 1000; ++i) jobs.push_back({"j", i});
    (void)q.add_bulk(jobs);
    std::vector<pid_t> workers{spawn_worker("limited", 4, 5ms), spawn_worker("limited", 4, 5ms)};
    std::this_thread::sleep_for(10500ms);
    for (const pid_t p : workers) stop(p);
    auto r = runs();
    std::vector<long long> starts;
    for (const auto& x : r) starts.push_back(x.processed);
    std::sort(starts.begin(), starts.end());
    ASSERT_GT(starts.size(), 50u);
    for (std::size_t i = 0; i + 50 < starts.size(); ++i) {
        ASSERT_GE(starts[i + 50] - starts[i], 1000) << "51 starts within one second, from " << starts[i];
    }
    const long long from = starts.front();
    const auto in_ten = std::count_if(starts.begin(), starts.end(), [&](long long s) { return s < from + 10000; });
    std::printf("[ measured ] %lld jobs started in the first 10 s (limit 50/s)\n", static_cast<long long>(in_ten));
    EXPECT_GE(in_ten, 450) << "throughput below 90% of the limit";
    EXPECT_LE(in_ten, 500);
}

using Inspection = Schedulers;

TEST_F(Inspection, JobsOfEachStateComePagedNewestFirstOrInTheQueuesOrder) {
    redkit::queue<int> q(redis, "inspect");
    std::vector<std::string> waiting;
    for (int i = 0; i < 7; ++i) waiting.push_back(q.add("w", i).id);
    redkit::job_options later;
    later.delay = 1h;
    const auto delayed = q.add("d", 100, later).id;
    redkit::job_options urgent;
    urgent.priority = 1;
    const auto prioritized = q.add("p", 200, urgent).id;

    auto page = q.jobs(redkit::job_state::waiting, 0, 3);
    EXPECT_EQ(page.total, 7);
    ASSERT_EQ(page.jobs.size(), 3u);
    EXPECT_EQ(page.jobs[0].id(), waiting[6]);  // newest first
    EXPECT_EQ(page.jobs[2].id(), waiting[4]);
    EXPECT_EQ(page.jobs[0].data(), 6);
    EXPECT_EQ(page.jobs[0].state(), redkit::job_state::waiting);
    page = q.jobs(redkit::job_state::waiting, 6, 3);
    ASSERT_EQ(page.jobs.size(), 1u);
    EXPECT_EQ(page.jobs[0].id(), waiting[0]);
    page = q.jobs(redkit::job_state::waiting, 0, 2, false);  // the order they will run in
    ASSERT_EQ(page.jobs.size(), 2u);
    EXPECT_EQ(page.jobs[0].id(), waiting[0]);
    EXPECT_EQ(page.jobs[1].id(), waiting[1]);
    page = q.jobs(redkit::job_state::waiting, 5, 5, false);
    ASSERT_EQ(page.jobs.size(), 2u);
    EXPECT_EQ(page.jobs[1].id(), waiting[6]);
    EXPECT_EQ(q.jobs(redkit::job_state::delayed).jobs.at(0).id(), delayed);
    EXPECT_EQ(q.jobs(redkit::job_state::prioritized).jobs.at(0).id(), prioritized);
    EXPECT_TRUE(q.jobs(redkit::job_state::waiting, 0, 0).jobs.empty());
    EXPECT_THROW(q.jobs(redkit::job_state::unknown), std::invalid_argument);
    EXPECT_THROW(q.jobs(redkit::job_state::waiting, 0, 1001), std::invalid_argument);

    // run them: the prioritized job waits behind the plain ones; one fails; one stays active
    std::atomic<bool> release{false};
    auto o = quick(2);
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            EXPECT_TRUE(j.log("started " + std::to_string(j.data())));
            if (j.data() == 3) throw std::runtime_error("three fails");
            if (j.data() == 200) {
                while (!release) std::this_thread::sleep_for(5ms);
            }
        },
        o);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (q.counts().active < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    while (q.counts().completed + q.counts().failed < 7 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    const auto active = q.jobs(redkit::job_state::active);
    ASSERT_EQ(active.total, 1);
    EXPECT_EQ(active.jobs.at(0).id(), prioritized);
    EXPECT_EQ(active.jobs.at(0).state(), redkit::job_state::active);
    EXPECT_GT(active.jobs.at(0).processed_at(), 0);
    release = true;
    EXPECT_TRUE(w.close(5s));

    const auto done = q.jobs(redkit::job_state::completed, 0, 100);
    EXPECT_EQ(done.total, 7);
    for (std::size_t i = 1; i < done.jobs.size(); ++i) {
        EXPECT_GE(done.jobs[i - 1].finished_at(), done.jobs[i].finished_at()) << "newest first";
    }
    const auto failed = q.jobs(redkit::job_state::failed);
    ASSERT_EQ(failed.total, 1);
    EXPECT_EQ(failed.jobs.at(0).data(), 3);
    EXPECT_EQ(failed.jobs.at(0).failed_reason(), "three fails");

    // logs: written by the handler, read by id, paged, capped
    const auto l = q.logs(waiting[3]);
    EXPECT_EQ(l.total, 1);
    EXPECT_EQ(l.lines, std::vector<std::string>{"started 3"});
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(q.add_log(waiting[0], "line " + std::to_string(i), 4));
    const auto capped = q.logs(waiting[0]);
    EXPECT_EQ(capped.total, 4);
    EXPECT_EQ(capped.lines.front(), "line 1");  // "started 0" and "line 0" dropped
    EXPECT_EQ(q.logs(waiting[0], 3, 10).lines, std::vector<std::string>{"line 4"});
    EXPECT_FALSE(q.add_log("no-such-job", "x"));
    EXPECT_EQ(q.logs("no-such-job").total, 0);
    auto outside = q.get_job(waiting[0]);
    ASSERT_TRUE(outside);
    EXPECT_THROW(outside->log("x"), redkit::error) << "outside a handler, job::log throws";

    // metrics: this minute holds the 7 completed and the failed one
    const auto m = q.metrics(std::chrono::minutes(3));
    ASSERT_EQ(m.size(), 3u);
    long long completed = 0, failed_count = 0;
    for (const auto& x : m) {
        completed += x.completed;
        failed_count += x.failed;
    }
    EXPECT_EQ(completed, 7);
    EXPECT_EQ(failed_count, 1);
    EXPECT_EQ(ms_of(m[1].minute) - ms_of(m[0].minute), 60000);
    EXPECT_THROW(q.metrics(std::chrono::minutes(0)), std::invalid_argument);

    // removing a job removes its log
    EXPECT_EQ(q.remove(waiting[0]), redkit::remove_result::removed);
    EXPECT_EQ(q.logs(waiting[0]).total, 0);
    EXPECT_TRUE(q.obliterate());
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 0);
}

// A delayed job tells when it is due: its score in the delayed set, read by jobs() and get_job().
// A retry's backoff parks a job there too, so created + delay would be wrong for it.
TEST_F(Inspection, DelayedJobsTellWhenTheyAreDueFromTheDelayedSet) {
    redkit::queue<int> q(redis, "due");
    const long long before = server_ms();
    redkit::job_options later;
    later.delay = 1h;
    const auto delayed = q.add("later", 1, later).id;
    const long long after = server_ms();
    redkit::job_options retried;
    retried.attempts = 2;
    retried.backoff = redkit::backoff_policy::fixed(3h);
    const auto backing_off = q.add("flaky", 2, retried).id;
    const auto plain = q.add("now", 3).id;
    {
        redkit::worker<int> w(
            q,
            [](redkit::job<int>& j) {
                if (j.data() == 2) throw std::runtime_error("try later");
            },
            quick());
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while ((q.counts().delayed < 2 || q.counts().completed < 1) && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(5ms);
        }
        EXPECT_TRUE(w.close(5s));
    }
    ASSERT_EQ(q.counts().delayed, 2);
    const auto score = [&](const std::string& id) {
        return std::stoll(redis.command<std::string>("ZSCORE", "queue:{due}:delayed", id));
    };

    const auto page = q.jobs(redkit::job_state::delayed, 0, 10, false);  // soonest due first
    ASSERT_EQ(page.jobs.size(), 2u);
    EXPECT_EQ(page.jobs[0].id(), delayed);
    EXPECT_EQ(page.jobs[0].due_at(), score(delayed));
    EXPECT_GE(page.jobs[0].due_at(), before + 3600000);
    EXPECT_LE(page.jobs[0].due_at(), after + 3600000);
    EXPECT_EQ(page.jobs[1].id(), backing_off);
    EXPECT_EQ(page.jobs[1].due_at(), score(backing_off));
    EXPECT_GE(page.jobs[1].due_at(), page.jobs[1].processed_at() + 3 * 3600000)
        << "due after the failed attempt's backoff, not at created + delay";

    EXPECT_EQ(q.get_job(delayed)->due_at(), score(delayed));
    EXPECT_EQ(q.get_job(backing_off)->due_at(), score(backing_off));
    EXPECT_EQ(q.get_job(plain)->due_at(), 0) << "only a delayed job has a due time";
    EXPECT_EQ(q.jobs(redkit::job_state::completed).jobs.at(0).due_at(), 0);
}

using Events = Schedulers;

// Events are off by default; once on, another reader (here: another client) follows every change
// of a job, resumes after the last id it saw, and a blocking read wakes for a new event.
TEST_F(Events, ReaderFollowsEveryChangeAndResumesAfterAnId) {
    redkit::queue<int> q(redis, "watched");
    redkit::queue_events events(redkit::client(shared_server().url()), "watched");
    (void)q.add("quiet", 0);
    EXPECT_FALSE(q.events_enabled());
    EXPECT_TRUE(events.read().empty()) << "events are off by default";

    q.set_events(1000);
    EXPECT_TRUE(q.events_enabled());
    redkit::job_options twice;
    twice.attempts = 2;
    const auto ok = q.add("ok", 1).id;
    const auto flaky = q.add("flaky", 2, twice).id;
    const auto doomed = q.add("doomed", 3).id;
    std::atomic<int> flaky_runs{0};
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            if (j.data() == 1) {
                j.update_progress(50);
                return 42;
            }
            if (j.data() == 2 && flaky_runs++ == 0) throw std::runtime_error("first try fails");
            if (j.data() == 3) throw redkit::unrecoverable_error("no");
            return 0;
        },
        quick());
    std::vector<redkit::queue_event> seen;
    std::string after = "0";
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    const auto has = [&](const std::string& type, const std::string& id) {
        return std::any_of(seen.begin(), seen.end(),
                           [&](const redkit::queue_event& e) { return e.type == type && e.job_id == id; });
    };
    while (!(has("completed", flaky) && has("failed", doomed) && has("completed", ok)) &&
           std::chrono::steady_clock::now() < deadline) {
        for (auto& e : events.read(after, 2, 500ms)) {  // small pages: resuming after an id
            after = e.id;
            seen.push_back(std::move(e));
        }
    }
    EXPECT_TRUE(w.close(5s));
    // the quiet job was added before events were on; it runs (active, completed) after
    EXPECT_FALSE(has("added", "1"));
    for (const auto& id : {ok, flaky, doomed}) {
        EXPECT_TRUE(has("added", id)) << id;
        EXPECT_TRUE(has("active", id)) << id;
    }
    EXPECT_TRUE(has("progress", ok));
    EXPECT_TRUE(has("completed", ok));
    EXPECT_TRUE(has("retried", flaky));
    EXPECT_TRUE(has("completed", flaky));
    EXPECT_TRUE(has("failed", doomed));
    for (const auto& e : seen) {
        if (e.type == "completed" && e.job_id == ok) {
            EXPECT_EQ(e.detail, "42");
        }
        if (e.type == "failed") {
            EXPECT_EQ(e.detail, "no");
        }
        if (e.type == "progress") {
            EXPECT_EQ(e.detail, "50");
        }
        if (e.type == "added" && e.job_id == ok) {
            EXPECT_EQ(e.detail, "ok");
        }
        EXPECT_GT(ms_of(e.time()), 0);
    }
    // in order: a job's added before its active before its completed
    const auto at = [&](const std::string& type, const std::string& id) {
        return std::find_if(seen.begin(), seen.end(),
                            [&](const redkit::queue_event& e) { return e.type == type && e.job_id == id; }) -
               seen.begin();
    };
    EXPECT_LT(at("added", ok), at("active", ok));
    EXPECT_LT(at("active", ok), at("completed", ok));

    // a blocking read from "$" wakes for the next event, and removal is one
    std::thread remover([&] {
        std::this_thread::sleep_for(200ms);
        EXPECT_EQ(q.remove(ok), redkit::remove_result::removed);
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto next = events.read("$", 10, 3s);
    remover.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].type, "removed");
    EXPECT_EQ(next[0].job_id, ok);
    EXPECT_TRUE(events.read(next[0].id, 10, 100ms).empty());

    q.set_events(0);
    EXPECT_FALSE(q.events_enabled());
    (void)q.add("after", 9);
    EXPECT_TRUE(events.read(next[0].id).empty()) << "off again";
    EXPECT_THROW(events.read("0", 0), std::invalid_argument);
    EXPECT_THROW(redkit::queue_events(redis, ""), std::invalid_argument);
}

// A server error is an error, not "no events": an id XREAD refuses, and a key of another type,
// both through the pooled read and the blocking one on the reader's own connection.
TEST_F(Events, ServerErrorsThrowInsteadOfReadingAsNoEvents) {
    redkit::queue<int> q(redis, "broken");
    q.set_events(100);
    (void)q.add("one", 1);
    redkit::queue_events events(redis, "broken");
    ASSERT_EQ(events.read().size(), 1u);
    const auto expect_server_error = [&](std::string_view after, std::chrono::milliseconds block,
                                         std::string_view prefix) {
        try {
            (void)events.read(after, 10, block);
            ADD_FAILURE() << "no error for " << after << " with block " << block.count() << " ms";
        } catch (const redkit::server_error& e) {
            EXPECT_EQ(e.prefix(), prefix) << e.what();
            EXPECT_NE(std::string(e.what()).find("XREAD " + events.key() + ": " + e.server_message()),
                      std::string::npos)
                << e.what();
        }
    };
    expect_server_error("x-y", 0ms, "ERR");
    expect_server_error("x-y", 100ms, "ERR");
    EXPECT_EQ(events.read("0", 10, 100ms).size(), 1u) << "the blocking connection is still good";

    redis.command<void>("DEL", events.key());
    redis.command<void>("SET", events.key(), "not a stream");
    expect_server_error("0", 0ms, "WRONGTYPE");
    expect_server_error("0", 100ms, "WRONGTYPE");
    expect_server_error("$", 100ms, "WRONGTYPE");
}

#ifdef REDKIT_QUEUE_TOOL
namespace {

struct tool_run {
    int status = -1;
    std::string output;  // what the command wrote to stdout (with 2>&1, stderr too)
};

// Runs `command` (a shell command line) and returns its stdout only, and its exit status.
tool_run shell_stdout(const std::string& command) {
    tool_run r;
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
    const int status = ::pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

// Runs redkit-queue against the test's server; its stdout and stderr. stdin is not a terminal (as
// in a script): clean does not ask.
tool_run queue_tool(const std::string& args) {
    return shell_stdout(std::string(REDKIT_QUEUE_TOOL) + " --url '" + shared_server().url() + "' " + args +
                        " 2>&1 < /dev/null");
}

// Runs `redkit-queue --url <server> clean orders completed` on a pseudo-terminal (python3's pty),
// answers `answer` to its question, and returns what it printed and its status.
tool_run clean_on_a_terminal(const std::string& answer) {
    const std::string script = "/tmp/redkit-clean-pty-" + std::to_string(::getpid()) + ".py";
    {
        std::FILE* f = std::fopen(script.c_str(), "w");
        if (!f) return {};
        std::fputs(
            "import os, pty, sys\n"
            "tool, url, answer = sys.argv[1], sys.argv[2], sys.argv[3]\n"
            "pid, fd = pty.fork()\n"
            "if pid == 0:\n"
            "    os.execv(tool, [tool, 'clean', 'orders', 'completed', '--url', url])\n"
            "out = b''\n"
            "while b'[y/N]' not in out:\n"
            "    chunk = os.read(fd, 1024)\n"
            "    if not chunk: break\n"
            "    out += chunk\n"
            "os.write(fd, answer.encode() + b'\\n')\n"
            "while True:\n"
            "    try:\n"
            "        chunk = os.read(fd, 1024)\n"
            "    except OSError:\n"
            "        break\n"
            "    if not chunk: break\n"
            "    out += chunk\n"
            "status = os.waitpid(pid, 0)[1]\n"
            "sys.stdout.write(out.decode(errors='replace'))\n"
            "sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 99)\n",
            f);
        std::fclose(f);
    }
    tool_run r = shell_stdout("python3 " + script + " " + REDKIT_QUEUE_TOOL + " '" + shared_server().url() + "' " +
                              answer + " < /dev/null");
    std::remove(script.c_str());
    return r;
}

}  // namespace

using QueueTool = Schedulers;

// The papercuts of the first hour: --url after the subcommand, nothing on stdout when the server
// cannot be read (not a table header first), and clean asking before it deletes on a terminal.
TEST_F(QueueTool, TakesTheUrlAnywherePrintsNothingOnAnErrorAndAsksBeforeCleaning) {
    redkit::queue<int> q(redis, "orders");
    for (int i = 0; i < 3; ++i) (void)q.add("ship", i);
    {
        redkit::worker<int> w(q, [](redkit::job<int>&) {});
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (q.counts().completed < 3 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(5ms);
        }
        EXPECT_TRUE(w.close(5s));
    }
    ASSERT_EQ(q.counts().completed, 3);

    // --url after the subcommand (and its arguments)
    auto r = shell_stdout(std::string(REDKIT_QUEUE_TOOL) + " counts orders --url '" + shared_server().url() +
                          "' 2>&1 < /dev/null");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("orders "), std::string::npos) << r.output;

    // a server that is not there: status 1, stdout empty (the error goes to stderr)
    const int dead = redkit_test::free_loopback_port();
    for (const std::string& sub :
         {std::string("counts orders"), std::string("queues"), std::string("schedulers orders")}) {
        SCOPED_TRACE(sub);
        r = shell_stdout(std::string(REDKIT_QUEUE_TOOL) + " " + sub + " --url 'redis://127.0.0.1:" +
                         std::to_string(dead) + "?connect_timeout=200ms' 2>/dev/null < /dev/null");
        EXPECT_EQ(r.status, 1);
        EXPECT_EQ(r.output, "");
    }

    // clean on a terminal asks: "n" keeps everything (status 3), "y" removes
    r = clean_on_a_terminal("n");
    EXPECT_EQ(r.status, 3) << r.output;
    EXPECT_NE(r.output.find("remove the completed jobs of queue 'orders' (3 completed now)? [y/N]"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("nothing removed"), std::string::npos) << r.output;
    EXPECT_EQ(q.counts().completed, 3);
    r = clean_on_a_terminal("y");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("3 completed job(s) removed"), std::string::npos) << r.output;
    EXPECT_EQ(q.counts().completed, 0);
}

// `redkit-queue cancel` cancels a running job (status 0) and refuses an unknown or idle one
// (status 2, nothing written).
TEST_F(QueueTool, CancelsARunningJobAndRefusesOthers) {
    redkit::queue<int> q(redis, "orders");
    const std::string id = q.add("ship", 1).id;
    auto wo = quick();
    wo.lease_duration = 400ms;
    redkit::worker<int> w(
        q, [](redkit::job<int>& j) { (void)j.cancellation().wait_for(10s); }, wo);
    for (int k = 0; k < 500 && q.counts().active == 0; ++k) std::this_thread::sleep_for(5ms);
    const tool_run unknown = queue_tool("cancel orders nope");
    EXPECT_EQ(unknown.status, 2) << unknown.output;
    const tool_run ok = queue_tool("cancel orders " + id + " --reason 'from the shell'");
    EXPECT_EQ(ok.status, 0) << ok.output;
    EXPECT_EQ(ok.output, "job " + id + ": cancel requested\n");
    for (int k = 0; k < 500; ++k) {
        if (q.get_job(id)->state() == redkit::job_state::failed) break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(q.get_job(id)->failed_reason(), "cancelled: from the shell");
    const tool_run again = queue_tool("cancel orders " + id);
    EXPECT_EQ(again.status, 2) << again.output;
    EXPECT_NE(again.output.find("not running"), std::string::npos) << again.output;
}

// The command-line tool against a real queue: what it lists matches the queue, its actions act,
// and a mistyped queue, job or state is refused with status 2 and writes nothing.
TEST_F(QueueTool, ListsShowsActsAndRefusesUnknownNamesWithoutWriting) {
    redkit::queue<nlohmann::json> q(redis, "orders");
    q.set_events(1000);
    redkit::job_options once;
    once.attempts = 1;
    const auto good = q.add("ship", nlohmann::json{{"sku", "A-1"}}).id;
    const auto bad = q.add("ship", nlohmann::json{{"sku", "BROKEN"}}, once).id;
    {
        redkit::worker<nlohmann::json> w(q, [](redkit::job<nlohmann::json>& j) {
            j.log("looking at " + j.data()["sku"].get<std::string>());
            if (j.data()["sku"] == "BROKEN") throw std::runtime_error("no such sku");
        });
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (q.counts().completed + q.counts().failed < 2 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(5ms);
        }
        EXPECT_TRUE(w.close(5s));
    }
    (void)q.add("later", nlohmann::json{{"sku", "B-2"}});
    q.upsert_scheduler("nightly", redkit::scheduler_options::cron_pattern("0 3 * * *", "Europe/Paris"), "report",
                       nlohmann::json::object());

    auto r = queue_tool("queues");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("orders"), std::string::npos) << r.output;
    r = queue_tool("counts orders");
    EXPECT_EQ(r.status, 0) << r.output;
    // waiting 1 (the later job), delayed 1 (the scheduler's), completed 1, failed 1
    EXPECT_NE(r.output.find("orders                           1         0         1           0          1         1"),
              std::string::npos)
        << r.output;
    r = queue_tool("jobs orders failed");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("1 failed job(s)"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(bad), std::string::npos);
    EXPECT_NE(r.output.find("no such sku"), std::string::npos);
    r = queue_tool("job orders " + bad);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("state:       failed"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("\"sku\": \"BROKEN\""), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("attempt 1: std::runtime_error: no such sku"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("looking at BROKEN"), std::string::npos) << r.output;
    r = queue_tool("logs orders " + good);
    EXPECT_EQ(r.output, "looking at A-1\n");
    r = queue_tool("schedulers orders");
    EXPECT_NE(r.output.find("0 3 * * * (Europe/Paris)"), std::string::npos) << r.output;
    r = queue_tool("events orders");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("completed  " + good), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("failed     " + bad), std::string::npos) << r.output;

    r = queue_tool("retry orders " + bad);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(q.get_job(bad)->state(), redkit::job_state::waiting);
    r = queue_tool("pause orders");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(q.is_paused());
    r = queue_tool("resume orders");
    EXPECT_FALSE(q.is_paused());
    r = queue_tool("clean orders completed");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("1 completed job(s) removed"), std::string::npos) << r.output;
    EXPECT_EQ(q.counts().completed, 0);
    r = queue_tool("remove orders " + bad);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(q.get_job(bad), std::nullopt);

    // a flow parent waiting for its child, then run with the child's value
    redkit::flow_job parent;
    parent.name = "bundle";
    parent.data = 0;
    redkit::flow_job child;
    child.name = "part";
    child.data = 41;
    parent.children.push_back(child);
    const auto flow = q.add_flow(parent);
    r = queue_tool("jobs orders waiting-children");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("1 waiting-children job(s)"), std::string::npos) << r.output;
    r = queue_tool("job orders " + flow.id);
    EXPECT_NE(r.output.find("state:       waiting-children"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("waiting for: 1 child job(s)"), std::string::npos) << r.output;
    r = queue_tool("job orders " + flow.children[0].id);
    EXPECT_NE(r.output.find("parent:      orders:" + flow.id), std::string::npos) << r.output;
    {
        redkit::worker<nlohmann::json> w(q, [](redkit::job<nlohmann::json>& j) { return j.data().get<int>() + 1; });
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (q.get_job(flow.id)->state() != redkit::job_state::completed &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(5ms);
        }
    }
    r = queue_tool("job orders " + flow.id);
    EXPECT_NE(r.output.find("  orders:" + flow.children[0].id + " -> 42"), std::string::npos) << r.output;

    // mistakes: status 2, a clear message, nothing written
    const auto keys = redis.command<long long>("DBSIZE");
    for (const std::string& args :
         {std::string("counts nope"), std::string("pause nope"), std::string("jobs nope waiting"),
          std::string("jobs orders bogus"), std::string("job orders 999"), std::string("retry orders 999"),
          std::string("remove orders 999"), std::string("clean orders waiting"), std::string("retry orders")}) {
        SCOPED_TRACE(args);
        r = queue_tool(args);
        EXPECT_EQ(r.status, 2) << r.output;
        EXPECT_NE(r.output.find("redkit-queue: "), std::string::npos) << r.output;
    }
    EXPECT_NE(queue_tool("counts nope").output.find("no queue 'nope'"), std::string::npos);
    EXPECT_NE(queue_tool("jobs orders bogus").output.find("unknown state 'bogus'"), std::string::npos);
    EXPECT_EQ(redis.command<long long>("DBSIZE"), keys);
    EXPECT_EQ(queue_tool("no-such-command").status, 2);
    EXPECT_EQ(queue_tool("jobs").status, 2) << "missing arguments";
    r = queue_tool("--help");
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.output.find("schedulers"), std::string::npos) << r.output;
}

// Delayed jobs show when they are due (UTC, from the delayed set's score): in the list of delayed
// jobs and in one job's view, for a delay and for a retry's backoff alike.
TEST_F(QueueTool, DelayedJobsShowWhenTheyAreDue) {
    redkit::queue<int> q(redis, "later");
    redkit::job_options hour;
    hour.delay = 1h;
    const auto delayed = q.add("remind", 1, hour).id;
    redkit::job_options retried;
    retried.attempts = 2;
    retried.backoff = redkit::backoff_policy::fixed(3h);
    const auto backing_off = q.add("flaky", 2, retried).id;
    {
        redkit::worker<int> w(
            q, [](redkit::job<int>&) { throw std::runtime_error("try later"); }, quick());
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (q.counts().delayed < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
        EXPECT_TRUE(w.close(5s));
    }
    ASSERT_EQ(q.counts().delayed, 2);
    // "2024-05-01T12:00:00.123Z", as the tool prints times
    const auto utc = [&](const std::string& id) {
        const long long ms = std::stoll(redis.command<std::string>("ZSCORE", "queue:{later}:delayed", id));
        const std::time_t s = static_cast<std::time_t>(ms / 1000);
        std::tm tm{};
        gmtime_r(&s, &tm);
        char buf[40];
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        return std::string(buf) + "." + std::to_string(1000 + ms % 1000).substr(1) + "Z";
    };

    auto r = queue_tool("jobs later delayed");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("2 delayed job(s)"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(" due "), std::string::npos) << "a due column: " << r.output;
    for (const auto& id : {delayed, backing_off}) {
        const auto row = r.output.find("\n" + id + " ");
        ASSERT_NE(row, std::string::npos) << r.output;
        const auto line = r.output.substr(row + 1, r.output.find('\n', row + 1) - row - 1);
        EXPECT_NE(line.find(utc(id)), std::string::npos) << id << " due " << utc(id) << ": " << line;
    }
    r = queue_tool("job later " + backing_off);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("due:         " + utc(backing_off)), std::string::npos) << r.output;
    r = queue_tool("job later " + delayed);
    EXPECT_NE(r.output.find("due:         " + utc(delayed)), std::string::npos) << r.output;
}

// A job's deduplication key shows in `job` (and not for a job without one).
TEST_F(QueueTool, JobShowsItsDeduplicationKey) {
    redkit::queue<int> q(redis, "keyed");
    redkit::job_options o;
    o.deduplication.id = "invoice:{42}";
    const auto keyed = q.add("bill", 1, o).id;
    const auto plain = q.add("bill", 2).id;
    auto r = queue_tool("job keyed " + keyed);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("dedup key:   invoice:{42}\n"), std::string::npos) << r.output;
    r = queue_tool("job keyed " + plain);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.find("dedup key:"), std::string::npos) << r.output;
}

// Groups from the shell: `groups` lists them with their limits and the settings they share,
// `counts` shows the grouped jobs apart, `jobs Q waiting --group G` lists one group's line, `job`
// names a job's group, `pause-group` and `resume-group` act (a group with no jobs may be paused
// ahead of them; one not listed is not resumed), a group the rate limit holds shows until when,
// and a mistake exits with 2 and writes nothing.
TEST_F(QueueTool, ListsGroupsTheirLinesAndPausesAndResumesThem) {
    redkit::queue<int> q(redis, "tenants");
    const auto in_group = [](const std::string& g) {
        redkit::job_options o;
        o.group = g;
        return o;
    };
    std::vector<std::string> acme;
    for (int i = 0; i < 3; ++i) acme.push_back(q.add("bill", i, in_group("acme")).id);
    const std::string globex = q.add("bill", 10, in_group("globex")).id;
    const std::string plain = q.add("bill", 20).id;
    q.set_group_concurrency(2);
    q.set_group_concurrency("globex", 1);
    q.set_group_rate_limit(5, 1000ms);

    auto r = queue_tool("groups tenants");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.rfind("group                      waiting    active paused  own limit  held until\n", 0), 0u)
        << r.output;
    EXPECT_NE(r.output.find("\nacme                             3         0 no              -  -\n"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("\nglobex                           1         0 no              1  -\n"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("\ndefault per-group concurrency: 2\n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("\nper-group rate limit: 5 job(s) per 1000 ms\n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("\n2 group(s)\n"), std::string::npos) << r.output;
    r = queue_tool("groups tenants --offset 1 --count 1");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.find("acme"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("\nglobex "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("\n2 group(s), 2-2 shown\n"), std::string::npos) << r.output;

    // grouped jobs are counted apart from waiting, in the last column
    r = queue_tool("counts tenants");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(" w-children   grouped\n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("\ntenants                          1         0         0           0          0         0"
                            "         0          0         4\n"),
              std::string::npos)
        << r.output;

    // one group's line, in the order it runs; the queue's own line without it
    const auto row_of = [](const std::string& out, const std::string& id) { return out.find("\n" + id + " "); };
    r = queue_tool("jobs tenants waiting --group acme --oldest");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.rfind("3 waiting job(s) in group acme\n", 0), 0u) << r.output;
    for (const auto& id : acme) EXPECT_NE(row_of(r.output, id), std::string::npos) << id << ": " << r.output;
    EXPECT_LT(row_of(r.output, acme[0]), row_of(r.output, acme[1])) << r.output;
    EXPECT_LT(row_of(r.output, acme[1]), row_of(r.output, acme[2])) << r.output;
    EXPECT_EQ(row_of(r.output, globex), std::string::npos) << r.output;
    EXPECT_EQ(row_of(r.output, plain), std::string::npos) << r.output;
    r = queue_tool("jobs tenants waiting");
    EXPECT_EQ(r.output.rfind("1 waiting job(s)\n", 0), 0u) << r.output;
    EXPECT_NE(row_of(r.output, plain), std::string::npos) << r.output;

    r = queue_tool("job tenants " + acme[1]);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("\ngroup:       acme\n"), std::string::npos) << r.output;
    r = queue_tool("job tenants " + plain);
    EXPECT_EQ(r.output.find("group:"), std::string::npos) << r.output;

    // mistakes: status 2, a message, nothing written
    const auto keys = redis.command<long long>("DBSIZE");
    for (const std::string& args :
         {std::string("jobs tenants failed --group acme"), std::string("jobs tenants waiting --group nope"),
          std::string("jobs tenants waiting --group ''"), std::string("resume-group tenants nope"),
          std::string("pause-group nope acme"), std::string("pause-group tenants ''"), std::string("groups nope"),
          std::string("groups tenants --count 1001")}) {
        SCOPED_TRACE(args);
        r = queue_tool(args);
        EXPECT_EQ(r.status, 2) << r.output;
        EXPECT_NE(r.output.find("redkit-queue: "), std::string::npos) << r.output;
    }
    EXPECT_NE(queue_tool("resume-group tenants nope").output.find("no group 'nope' in queue 'tenants'"),
              std::string::npos);
    EXPECT_NE(queue_tool("jobs tenants failed --group acme").output.find("--group lists waiting jobs only"),
              std::string::npos);
    EXPECT_EQ(queue_tool("pause-group tenants").status, 2) << "missing the group";
    EXPECT_EQ(redis.command<long long>("DBSIZE"), keys);
    EXPECT_FALSE(q.group("acme")->paused);
    EXPECT_FALSE(q.group("nope"));

    // pause and resume a group; a group without jobs is paused ahead of them
    r = queue_tool("pause-group tenants acme");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output, "group acme paused\n");
    EXPECT_TRUE(q.group("acme")->paused);
    EXPECT_FALSE(q.group("globex")->paused);
    r = queue_tool("groups tenants");
    EXPECT_NE(r.output.find("\nacme                             3         0 yes             -  -\n"), std::string::npos)
        << r.output;
    r = queue_tool("pause-group tenants initech");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output, "group initech paused ahead of its jobs (none in line or running yet)\n");
    ASSERT_TRUE(q.group("initech"));
    EXPECT_TRUE(q.group("initech")->paused);
    r = queue_tool("resume-group tenants acme");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output, "group acme resumed\n");
    EXPECT_FALSE(q.group("acme")->paused);
    r = queue_tool("resume-group tenants globex");
    EXPECT_EQ(r.output, "group globex resumed (it was not paused)\n");
    r = queue_tool("resume-group tenants initech");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_FALSE(q.group("initech")) << "resumed and without jobs, it is no longer listed";
    r = queue_tool("resume-group tenants initech");
    EXPECT_EQ(r.status, 2) << r.output;

    // one start per group per hour: once each group has started one, the limit holds both
    q.set_group_rate_limit(1, 1h);
    {
        redkit::worker<int> w(
            q, [](redkit::job<int>&) {}, quick());
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (q.counts().completed < 3 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(5ms);
        }
        EXPECT_TRUE(w.close(5s));
    }
    ASSERT_EQ(q.counts().completed, 3) << "the plain job and one of each group";
    const auto held = q.group("acme");
    ASSERT_TRUE(held && held->held_until);
    // as the tool prints times: "2024-05-01T12:00:00.123Z"
    const long long ms = ms_of(*held->held_until);
    const std::time_t sec = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&sec, &tm);
    char utc[40];
    std::strftime(utc, sizeof utc, "%Y-%m-%dT%H:%M:%S", &tm);
    const std::string until = std::string(utc) + "." + std::to_string(1000 + ms % 1000).substr(1) + "Z";
    r = queue_tool("groups tenants");
    EXPECT_NE(r.output.find("\nacme                             2         0 no              -  " + until + "\n"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("\nper-group rate limit: 1 job(s) per 3600000 ms\n"), std::string::npos) << r.output;
}

// A server error while reading events is a failure (status 1, the server's message), not an
// empty list.
TEST_F(QueueTool, EventsReportServerErrorsWithStatusOne) {
    redkit::queue<int> q(redis, "noisy");
    q.set_events(100);
    (void)q.add("one", 1);
    auto r = queue_tool("events noisy");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("added"), std::string::npos) << r.output;

    r = queue_tool("events noisy --from x-y");
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("redkit-queue: redkit: XREAD queue:{noisy}:events: ERR Invalid stream ID"),
              std::string::npos)
        << r.output;
    r = queue_tool("events noisy --from x-y --follow --seconds 1");
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("ERR Invalid stream ID"), std::string::npos) << r.output;

    redis.command<void>("DEL", "queue:{noisy}:events");
    redis.command<void>("SET", "queue:{noisy}:events", "not a stream");
    r = queue_tool("events noisy");
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("WRONGTYPE"), std::string::npos) << r.output;
}
#endif

// ---- flows ----

namespace {

using json = nlohmann::json;
using Cancel = Schedulers;

// A cancel issued by this process reaches a handler running in another one within one lease
// renewal (the worker's renew script carries it), and the job fails with the reason.
TEST_F(Cancel, ACancelFromAnotherProcessReachesTheRunningHandlerWithinOneRenewal) {
    redkit::queue<int> q(redis, "reports");
    const pid_t child = ::fork();
    if (child == 0) {
        try {
            redkit::client c(shared_server().url());
            redkit::queue<int> cq(c, "reports");
            auto o = quick();
            o.lease_duration = 1000ms;  // renewed every 500 ms
            redkit::worker<int> w(
                cq,
                [&](redkit::job<int>& j) {
                    c.command<long long>("RPUSH", "started", j.id());
                    const redkit::cancel_token stop = j.cancellation();
                    if (stop.wait_for(20s)) {
                        c.command<long long>("RPUSH", "saw", std::to_string(ms_of(std::chrono::system_clock::now())),
                                             stop.reason());
                    }
                },
                o);
            std::this_thread::sleep_for(120s);  // until killed
        } catch (...) {
        }
        ::_exit(0);
    }
    std::vector<long long> latencies;
    for (int i = 0; i < 5; ++i) {
        const std::string id = q.add("render", i).id;
        const auto started = redis.command<std::vector<std::string>>("BLPOP", "started", 10);
        ASSERT_EQ(started.size(), 2u) << "the worker never started job " << id;
        EXPECT_EQ(started[1], id);
        const long long asked = ms_of(std::chrono::system_clock::now());
        EXPECT_EQ(q.cancel(id, "test " + std::to_string(i)), redkit::cancel_result::requested);
        const auto saw = redis.command<std::vector<std::string>>("BLPOP", "saw", 10);
        ASSERT_EQ(saw.size(), 2u) << "the handler never saw the cancel of job " << id;
        const auto seen = redis.command<std::vector<std::string>>("RPOP", "saw", 1);
        ASSERT_EQ(seen.size(), 1u);
        EXPECT_EQ(seen[0], "cancelled: test " + std::to_string(i));
        latencies.push_back(std::stoll(saw[1]) - asked);
        for (int k = 0; k < 500; ++k) {
            const auto j = q.get_job(id);
            if (j && j->state() == redkit::job_state::failed) break;
            std::this_thread::sleep_for(10ms);
        }
        const auto j = q.get_job(id);
        ASSERT_TRUE(j);
        EXPECT_EQ(j->state(), redkit::job_state::failed);
        EXPECT_EQ(j->failed_reason(), "cancelled: test " + std::to_string(i));
        EXPECT_EQ(j->attempts_made(), 1);
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    std::sort(latencies.begin(), latencies.end());
    std::printf("cancel -> handler, renewal interval 500 ms: min %lld ms, median %lld ms, max %lld ms\n",
                latencies.front(), latencies[latencies.size() / 2], latencies.back());
    EXPECT_LE(latencies.back(), 500 + 400) << "within one renewal interval (and a little for the round trips)";
}

// job_options::timeout cancels the attempt from inside the worker; the attempt fails and is
// retried per its attempts, and a handler that ignores its token is never run twice at once.
TEST_F(Cancel, ATimedOutAttemptIsCancelledRetriedAndNeverRunsTwiceAtOnce) {
    redkit::queue<int> q(redis, "slow");
    redkit::job_options o;
    o.timeout = 300ms;
    o.attempts = 3;
    o.backoff = redkit::backoff_policy::fixed(20ms);
    o.job_id = "slow*[1]?";  // glob characters: the keeper's and the scripts' matching stay exact
    (void)q.add("slow", 1, o);
    std::atomic<int> running{0}, most{0}, attempts{0};
    std::mutex m;
    std::vector<std::string> reasons;
    std::vector<long long> waited_ms;
    auto wo = quick(4);
    wo.on_failed = [&](const redkit::job<int>&, const redkit::job_failure& f) {
        std::lock_guard<std::mutex> lock(m);
        reasons.push_back(f.reason + (f.will_retry ? " (retry)" : ""));
    };
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            const int now_running = ++running;
            int seen = most.load();
            while (now_running > seen && !most.compare_exchange_weak(seen, now_running)) {
            }
            const int attempt = ++attempts;
            const redkit::cancel_token stop = j.cancellation();
            EXPECT_EQ(j.timeout(), 300ms);
            if (attempt == 1) {
                std::this_thread::sleep_for(800ms);  // ignores its token
                EXPECT_TRUE(stop.stop_requested());
                EXPECT_EQ(stop.reason(), "timed out after 300 ms");
            } else if (attempt == 2) {
                const auto t0 = std::chrono::steady_clock::now();
                EXPECT_TRUE(stop.wait_for(5s));
                std::lock_guard<std::mutex> lock(m);
                waited_ms.push_back(
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
                        .count());
            }
            --running;
        },
        wo);
    for (int k = 0; k < 1000; ++k) {
        const auto j = q.get_job("slow*[1]?");
        if (j && j->state() == redkit::job_state::completed) break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(w.close(5s));
    const auto j = q.get_job("slow*[1]?");
    ASSERT_TRUE(j);
    EXPECT_EQ(j->state(), redkit::job_state::completed);
    EXPECT_EQ(j->attempts_made(), 3);
    EXPECT_EQ(attempts.load(), 3);
    EXPECT_EQ(most.load(), 1) << "an attempt started while the timed-out one still ran";
    std::lock_guard<std::mutex> lock(m);
    EXPECT_EQ(reasons, (std::vector<std::string>{"timed out after 300 ms (retry)", "timed out after 300 ms (retry)"}));
    ASSERT_EQ(waited_ms.size(), 1u);
    EXPECT_GE(waited_ms[0], 250);  // the timeout counts from the handler's start
    EXPECT_LE(waited_ms[0], 300 + 300);
}

// A cancelled job whose worker went away is not recovered by the stalled-job check (it fails);
// with after_cancel::retry it is, and runs again.
TEST_F(Cancel, ACancelledJobWhoseWorkerIsGoneFailsInsteadOfRunningAgain) {
    redkit::queue<int> q(redis, "gone");
    for (const auto then : {redkit::after_cancel::fail, redkit::after_cancel::retry}) {
        const bool retry = then == redkit::after_cancel::retry;
        redkit::job_options o;
        o.attempts = 2;
        const std::string id = q.add("stuck", 1, o).id;
        std::mutex m;
        std::condition_variable cv;
        bool started = false, release = false;
        auto wo = quick();
        wo.lease_duration = 600ms;
        wo.stalled_interval = 60000ms;  // this worker's own check ran at its start, and not again
        auto first = std::make_unique<redkit::worker<int>>(
            q,
            [&](redkit::job<int>&) {
                std::unique_lock<std::mutex> lock(m);
                started = true;
                cv.notify_all();
                cv.wait_for(lock, 10s, [&] { return release; });  // ignores its token
            },
            wo);
        {
            std::unique_lock<std::mutex> lock(m);
            ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return started; }));
        }
        EXPECT_EQ(q.cancel(id, "stop it", then), redkit::cancel_result::requested);
        EXPECT_FALSE(first->close(50ms));    // gives up on the running job: its lease is no longer renewed
        std::this_thread::sleep_for(900ms);  // the lease expires
        const redkit::stalled_jobs s = q.check_stalled(5);
        if (retry) {
            EXPECT_EQ(s.recovered, std::vector<std::string>{id});
            EXPECT_TRUE(s.failed.empty());
        } else {
            EXPECT_EQ(s.failed, std::vector<std::string>{id});
            EXPECT_TRUE(s.recovered.empty());
            const auto j = q.get_job(id);
            ASSERT_TRUE(j);
            EXPECT_EQ(j->state(), redkit::job_state::failed);
            EXPECT_EQ(j->failed_reason(), "cancelled: stop it");
        }
        std::atomic<int> runs{0};
        {
            redkit::worker<int> second(
                q, [&](redkit::job<int>&) { ++runs; }, quick());
            std::this_thread::sleep_for(400ms);
        }
        EXPECT_EQ(runs.load(), retry ? 1 : 0);
        {
            std::lock_guard<std::mutex> lock(m);
            release = true;
        }
        cv.notify_all();
        first.reset();  // the abandoned handler returns; its outcome is discarded (lease lost)
        const auto j = q.get_job(id);
        ASSERT_TRUE(j);
        EXPECT_EQ(j->state(), retry ? redkit::job_state::completed : redkit::job_state::failed);
    }
}

TEST_F(Cancel, OnlyARunningJobIsCancelledAndOnlyThatOne) {
    redkit::queue<int> q(redis, "pick");
    EXPECT_EQ(q.cancel("nope"), redkit::cancel_result::not_found);
    redkit::job_options waiting;
    waiting.job_id = "in-line";
    (void)q.add("wait", 0, waiting);
    EXPECT_EQ(q.cancel("in-line"), redkit::cancel_result::not_running);
    EXPECT_THROW((void)q.cancel("in-line", std::string(1025, 'x')), std::invalid_argument);
    // two running jobs whose ids a glob pattern of the one would both match
    ASSERT_EQ(q.remove("in-line"), redkit::remove_result::removed);
    for (const char* id : {"a*", "ab"}) {
        redkit::job_options o;
        o.job_id = id;
        (void)q.add("run", 1, o);
    }
    std::mutex m;
    std::map<std::string, std::string> outcome;
    auto wo = quick(2);
    wo.lease_duration = 400ms;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            const bool cancelled = j.cancellation().wait_for(1500ms);
            std::lock_guard<std::mutex> lock(m);
            outcome[j.id()] = cancelled ? j.cancellation().reason() : "ran to its end";
        },
        wo);
    for (int k = 0; k < 500; ++k) {
        if (q.counts().active == 2) break;
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(q.counts().active, 2);
    EXPECT_EQ(q.cancel("a*", "only me"), redkit::cancel_result::requested);
    EXPECT_TRUE(w.close(5s));
    std::lock_guard<std::mutex> lock(m);
    EXPECT_EQ(outcome["a*"], "cancelled: only me");
    EXPECT_EQ(outcome["ab"], "ran to its end");
    EXPECT_EQ(q.get_job("a*")->state(), redkit::job_state::failed);
    EXPECT_EQ(q.get_job("ab")->state(), redkit::job_state::completed);
    EXPECT_EQ(q.cancel("ab"), redkit::cancel_result::not_running);  // finished
}

using Flows = Schedulers;

redkit::worker_options<json> flow_quick(std::size_t concurrency = 4) { return quick<json>(concurrency); }

// A handler that sums its children's values and its own data (a leaf: its data).
long long sum_of(redkit::job<json>& j) {
    long long sum = j.data().get<long long>();
    for (const auto& c : j.children_values()) sum += c.value.get<long long>();
    return sum;
}

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds limit = 20s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

redkit::flow_job node(std::string name, long long data, std::string queue = {}) {
    redkit::flow_job f;
    f.name = std::move(name);
    f.data = data;
    f.queue = std::move(queue);
    return f;
}

}  // namespace

// The issue's tree: a root with 100 children, 10 of them in another queue with 10 children each
// in a third (3 levels), the other 90 in that third queue too. Every parent runs after all its
// children completed, reads all their values, and runs exactly once.
TEST_F(Flows, ThreeLevelsAcrossQueuesRunParentsAfterAllChildrenWithTheirValues) {
    redkit::queue<json> roots(redis, "flow-root"), mids(redis, "flow-mid"), leaves(redis, "flow-leaf");
    redkit::flow_job root = node("total", 0);
    long long expected = 0;
    for (int m = 0; m < 10; ++m) {
        auto mid = node("part", 1000 * (m + 1), "flow-mid");
        expected += 1000 * (m + 1);
        for (int l = 0; l < 10; ++l) {
            mid.children.push_back(node("piece", m * 10 + l, "flow-leaf"));
            expected += m * 10 + l;
        }
        root.children.push_back(std::move(mid));
    }
    for (int l = 0; l < 90; ++l) {
        root.children.push_back(node("direct", 100000 + l, "flow-leaf"));
        expected += 100000 + l;
    }
    const auto added = roots.add_flow(root);
    ASSERT_EQ(added.children.size(), 100u);
    EXPECT_EQ(added.children[3].queue, "flow-mid");
    EXPECT_EQ(added.children[3].children[9].queue, "flow-leaf");
    EXPECT_EQ(roots.counts().waiting_children, 1);
    EXPECT_EQ(mids.counts().waiting_children, 10);
    EXPECT_EQ(leaves.counts().waiting, 190);
    const auto waiting_root = roots.get_job(added.id);
    ASSERT_TRUE(waiting_root);
    EXPECT_EQ(waiting_root->state(), redkit::job_state::waiting_children);
    EXPECT_EQ(waiting_root->pending_children(), 100);
    const auto leaf = leaves.get_job(added.children[2].children[4].id);
    ASSERT_TRUE(leaf && leaf->parent());
    EXPECT_EQ(leaf->parent()->queue, "flow-mid");
    EXPECT_EQ(leaf->parent()->id, added.children[2].id);
    EXPECT_EQ(roots.jobs(redkit::job_state::waiting_children).total, 1);

    std::mutex mu;
    std::map<std::string, int> runs;
    std::vector<std::string> problems;
    const auto check = [&](redkit::job<json>& j, std::size_t children, const char* queue) {
        const auto values = j.children_values();
        std::lock_guard<std::mutex> lock(mu);
        ++runs[std::string(queue) + ":" + j.id()];
        if (values.size() != children)
            problems.push_back(j.id() + " saw " + std::to_string(values.size()) + " children");
    };
    redkit::worker<json> leaf_worker(
        leaves,
        [&](redkit::job<json>& j) {
            check(j, 0, "leaf");
            return sum_of(j);
        },
        flow_quick(8));
    redkit::worker<json> mid_worker(
        mids,
        [&](redkit::job<json>& j) {
            check(j, 10, "mid");
            return sum_of(j);
        },
        flow_quick());
    redkit::worker<json> root_worker(
        roots,
        [&](redkit::job<json>& j) {
            check(j, 100, "root");
            return sum_of(j);
        },
        flow_quick());
    ASSERT_TRUE(wait_for([&] { return roots.counts().completed == 1; }));
    const auto done = roots.get_job(added.id);
    ASSERT_TRUE(done);
    EXPECT_EQ(done->return_value(), expected);
    EXPECT_EQ(done->pending_children(), 0);
    const auto values = roots.children_values(added.id);
    ASSERT_EQ(values.size(), 100u);
    EXPECT_EQ(values[0].queue, "flow-leaf");
    EXPECT_EQ(values[99].queue, "flow-mid");
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_TRUE(problems.empty()) << problems.front();
    EXPECT_EQ(runs.size(), 201u);
    for (const auto& [id, n] : runs) EXPECT_EQ(n, 1) << id;
    EXPECT_EQ(leaves.counts().completed, 190);
    EXPECT_EQ(mids.counts().completed, 10);
}

// Per-child policies: an ignored child's failure lets the parent run (and it can list it); a
// failing child with the default policy fails its parent, which fails its own parent in turn,
// while other children still finishing change nothing.
TEST_F(Flows, ChildFailurePoliciesFailOrIgnoreUpTheTree) {
    redkit::queue<json> q(redis, "policies");
    q.set_events(1000);
    auto tolerant = node("tolerant", 0);
    auto broken = node("broken", -1);
    broken.on_failure = redkit::on_child_failure::ignore;
    tolerant.children = {node("fine", 5), broken};
    const auto t = q.add_flow(tolerant);

    auto grand = node("grand", 0);
    auto strict = node("strict", 0);
    strict.children = {node("boom", -1), node("slow", 7)};
    grand.children = {strict, node("sibling", 3)};
    const auto g = q.add_flow(grand);
    // the same with a middle parent that keeps no failed jobs: gone, yet its parent heard
    auto grand2 = node("grand2", 0);
    auto strict2 = node("strict2", 0);
    strict2.options.remove_on_fail = redkit::retention::keep_none();
    strict2.children = {node("boom2", -1)};
    grand2.children = {strict2};
    const auto g2 = q.add_flow(grand2);

    std::vector<redkit::ignored_child> seen_ignored;
    std::mutex mu;
    redkit::worker<json> w(
        q,
        [&](redkit::job<json>& j) -> long long {
            if (j.data() == -1) throw redkit::unrecoverable_error("bad input");
            if (j.name() == "slow") std::this_thread::sleep_for(300ms);
            if (j.name() == "tolerant") {
                std::lock_guard<std::mutex> lock(mu);
                seen_ignored = j.ignored_failures();
            }
            return sum_of(j);
        },
        flow_quick());
    ASSERT_TRUE(wait_for([&] {
        const auto c = q.counts();
        return c.completed + c.failed == 10 && c.active == 0 && c.waiting == 0;
    }));
    const auto tj = q.get_job(t.id);
    ASSERT_TRUE(tj);
    EXPECT_EQ(tj->state(), redkit::job_state::completed);
    EXPECT_EQ(tj->return_value(), 5);
    {
        std::lock_guard<std::mutex> lock(mu);
        ASSERT_EQ(seen_ignored.size(), 1u);
        EXPECT_EQ(seen_ignored[0].id, t.children[1].id);
        EXPECT_EQ(seen_ignored[0].queue, "policies");
        EXPECT_NE(seen_ignored[0].reason.find("bad input"), std::string::npos) << seen_ignored[0].reason;
    }

    const auto sj = q.get_job(g.children[0].id);
    ASSERT_TRUE(sj);
    EXPECT_EQ(sj->state(), redkit::job_state::failed);
    EXPECT_NE(sj->failed_reason().find("child policies:" + g.children[0].children[0].id + " failed: bad input"),
              std::string::npos)
        << sj->failed_reason();
    const auto gj = q.get_job(g.id);
    ASSERT_TRUE(gj);
    EXPECT_EQ(gj->state(), redkit::job_state::failed);
    EXPECT_NE(gj->failed_reason().find("child policies:" + g.children[0].id + " failed"), std::string::npos);
    EXPECT_EQ(gj->attempts_made(), 0) << "a parent failed by its child never ran";
    // the slow child and the sibling still completed, and changed nothing
    EXPECT_EQ(q.get_job(g.children[0].children[1].id)->state(), redkit::job_state::completed);
    EXPECT_EQ(q.get_job(g.children[1].id)->state(), redkit::job_state::completed);
    EXPECT_EQ(q.counts().waiting_children, 0);
    EXPECT_FALSE(q.get_job(g2.children[0].id)) << "remove_on_fail keep_none: deleted";
    const auto g2j = q.get_job(g2.id);
    ASSERT_TRUE(g2j);
    EXPECT_EQ(g2j->state(), redkit::job_state::failed);
    EXPECT_NE(g2j->failed_reason().find("child policies:" + g2.children[0].id + " failed: child policies:" +
                                        g2.children[0].children[0].id + " failed: bad input"),
              std::string::npos)
        << g2j->failed_reason();
    // the failure reached the events stream too
    redkit::queue_events events(redis, "policies");
    bool parent_failed_event = false;
    for (const auto& e : events.read("0", 1000))
        if (e.type == "failed" && e.job_id == g.id) parent_failed_event = true;
    EXPECT_TRUE(parent_failed_event);
}

// A child whose worker process is SIGKILLed mid-job: the stalled check puts it back, another
// worker completes it, and the parent runs once with every value.
TEST_F(Flows, ChildKilledWithItsWorkerIsRecoveredAndTheParentRunsOnce) {
    redkit::queue<json> parents(redis, "flow-parents");
    auto root = node("join", 0);
    for (int i = 0; i < 4; ++i) root.children.push_back(node("part", 10 + i, "flow-kill"));
    const auto added = parents.add_flow(root);
    const pid_t victim = ::fork();
    if (victim == 0) {
        try {
            redkit::client c(shared_server().url());
            redkit::queue<json> q(c, "flow-kill");
            redkit::worker<json> w(
                q,
                [&](redkit::job<json>&) -> long long {
                    c.command<long long>("RPUSH", "taken", "1");
                    std::this_thread::sleep_for(60s);
                    return 0;
                },
                flow_quick(4));
            std::this_thread::sleep_for(120s);
        } catch (...) {
        }
        ::_exit(3);
    }
    ASSERT_TRUE(wait_for([&] { return redis.command<long long>("LLEN", "taken") == 4; }));
    stop(victim);
    redkit::queue<json> kids(redis, "flow-kill");
    EXPECT_EQ(kids.counts().active, 4);
    std::atomic<int> parent_runs{0};
    redkit::worker<json> kid_worker(
        kids, [&](redkit::job<json>& j) { return sum_of(j); }, flow_quick());
    redkit::worker<json> parent_worker(
        parents,
        [&](redkit::job<json>& j) {
            ++parent_runs;
            return sum_of(j);
        },
        flow_quick());
    ASSERT_TRUE(wait_for([&] { return parents.counts().completed == 1; }));
    EXPECT_EQ(parents.get_job(added.id)->return_value(), 10 + 11 + 12 + 13);
    EXPECT_EQ(parent_runs.load(), 1);
    for (const auto& c : added.children) EXPECT_EQ(kids.get_job(c.id)->stalls(), 1);
}

// Removing a child that has not run drops the parent's wait for it; removing a waiting parent
// leaves its children harmless.
TEST_F(Flows, RemovedChildNoLongerHoldsItsParent) {
    redkit::queue<json> q(redis, "removals");
    auto parent = node("parent", 1);
    parent.children = {node("kept", 2), node("dropped", 3)};
    const auto a = q.add_flow(parent);
    EXPECT_EQ(q.remove(a.children[1].id), redkit::remove_result::removed);
    auto orphaned = node("orphaned", 1);
    orphaned.children = {node("child", 4)};
    const auto b = q.add_flow(orphaned);
    EXPECT_EQ(q.remove(b.id), redkit::remove_result::removed);
    EXPECT_EQ(q.counts().waiting_children, 1);
    redkit::worker<json> w(
        q, [&](redkit::job<json>& j) { return sum_of(j); }, flow_quick());
    ASSERT_TRUE(wait_for([&] { return q.counts().completed == 3; }));
    EXPECT_EQ(q.get_job(a.id)->return_value(), 3);
    const auto ignored = q.ignored_failures(a.id);
    ASSERT_EQ(ignored.size(), 1u);
    EXPECT_EQ(ignored[0].reason, "removed");
    EXPECT_FALSE(q.get_job(b.id));
}

// Bad flows are refused whole: a job id twice in the tree (a cycle), a root naming another
// queue, invalid options deep in the tree, an id that exists already. Nothing is written.
TEST_F(Flows, BadFlowsAreRefusedAndWriteNothing) {
    redkit::queue<json> q(redis, "bad-flows");
    const auto with_id = [](redkit::flow_job f, std::string id) {
        f.options.job_id = std::move(id);
        return f;
    };
    auto cycle = with_id(node("a", 1), "a");
    auto b = with_id(node("b", 2), "b");
    b.children = {with_id(node("a-again", 3), "a")};
    cycle.children = {b};
    EXPECT_THROW(
        {
            try {
                (void)q.add_flow(cycle);
            } catch (const std::invalid_argument& e) {
                EXPECT_NE(std::string(e.what()).find("appears twice"), std::string::npos) << e.what();
                throw;
            }
        },
        std::invalid_argument);
    EXPECT_THROW((void)q.add_flow(node("elsewhere", 1, "another-queue")), std::invalid_argument);
    auto deep = node("deep", 1);
    deep.children = {node("ok", 1)};
    deep.children[0].children = {node("bad", 1)};
    deep.children[0].children[0].options.attempts = 0;
    EXPECT_THROW((void)q.add_flow(deep), std::invalid_argument);
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 0);

    (void)q.add("plain", 1, [] {
        redkit::job_options o;
        o.job_id = "taken";
        return o;
    }());
    const long long keys = redis.command<long long>("DBSIZE");
    auto clash = node("clash", 1);
    clash.children = {node("fresh", 1, "other"), with_id(node("dup", 1), "taken")};
    EXPECT_THROW((void)q.add_flow(clash), redkit::error);
    EXPECT_EQ(redis.command<long long>("DBSIZE"), keys) << "a refused flow wrote nothing";
}

// ---- deduplication (job_options::deduplication) ----

namespace {

redkit::job_options dedup(std::string key, std::chrono::milliseconds ttl = 0ms) {
    redkit::job_options o;
    o.deduplication.id = std::move(key);
    o.deduplication.ttl = ttl;
    return o;
}

// Debounce: the key held for `ttl`, the job delayed by `delay`; extend and replace as given.
redkit::job_options debounce(std::string key, std::chrono::milliseconds ttl, std::chrono::milliseconds delay,
                             bool extend = true, bool replace = true) {
    redkit::job_options o = dedup(std::move(key), ttl);
    o.delay = delay;
    o.deduplication.extend = extend;
    o.deduplication.replace = replace;
    return o;
}

long long server_us(const redkit::client& c) {
    const auto t = c.command<std::vector<long long>>("TIME");
    return t.at(0) * 1000000 + t.at(1);
}

// One add a producer made, as it reported it.
struct reported_add {
    std::string outcome, id;
    int data = 0;
    long long before_us = 0, after_us = 0;  // server time just before the add was sent, and after its reply
};

class Deduplication : public redkit_test::fresh_database {
protected:
    // The job that holds `key` in `queue` as the server has it (nullopt: the key is free).
    std::optional<std::string> holder(const std::string& queue, const std::string& key) {
        return redis.command<std::optional<std::string>>("GET", key_of(queue, key));
    }
    long long key_pttl(const std::string& queue, const std::string& key) {
        return redis.command<long long>("PTTL", key_of(queue, key));
    }
    std::optional<redkit::job<int>> q_job(const std::string& queue, const std::string& id) {
        return redkit::queue<int>(redis, queue).get_job(id);
    }
    static std::string key_of(const std::string& queue, const std::string& key) {
        return "queue:{" + queue + "}:dedup:" + redkit::escape_key_part(key);
    }

    // The job hashes of `queue`, from the server (not its logs or children's hashes).
    std::vector<std::string> job_hashes(const std::string& queue) {
        std::vector<std::string> out;
        const std::string prefix = "queue:{" + queue + "}:job:";
        for (const std::string& k : redis.scan(prefix + "*", 1000)) {
            if (k.find(':', prefix.size()) == std::string::npos) out.push_back(k.substr(prefix.size()));
        }
        return out;
    }

    // Waits up to 10 s for job `id` to reach `state` (or, for unknown, to be gone).
    template <class T>
    bool wait_for(const redkit::queue<T>& q, const std::string& id, redkit::job_state state) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < deadline) {
            const auto j = q.get_job(id);
            if (j ? j->state() == state : state == redkit::job_state::unknown) return true;
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }

    // Forks a process of 4 producer threads: once the key "go" exists, each adds `adds` jobs to
    // `queue` with `o`, data <base + 1000 * thread + i>, and RPUSHes
    // "<outcome>|<id>|<data>|<server µs before>|<server µs after>" to the list "adds". Exits 0
    // when every add went through. No thread of this process may be alive at the fork.
    pid_t spawn_producers(const std::string& queue, int base, int adds, const redkit::job_options& o) {
        const pid_t pid = ::fork();
        if (pid != 0) return pid;
        int status = 3;
        try {
            redkit::client c(shared_server().url());
            redkit::queue<int> q(c, queue);
            const auto deadline = std::chrono::steady_clock::now() + 20s;
            while (c.command<long long>("EXISTS", "go") == 0 && std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(1ms);
            }
            std::atomic<bool> failed{false};
            std::vector<std::thread> threads;
            for (int t = 0; t < 4; ++t) {
                threads.emplace_back([&, t] {
                    try {
                        for (int i = 0; i < adds; ++i) {
                            const int data = base + 1000 * t + i;
                            const long long before = server_us(c);
                            const redkit::added_job a = q.add("j", data, o);
                            const long long after = server_us(c);
                            c.command<long long>("RPUSH", "adds",
                                                 std::string(redkit::to_string(a.outcome)) + "|" + a.id + "|" +
                                                     std::to_string(data) + "|" + std::to_string(before) + "|" +
                                                     std::to_string(after));
                        }
                    } catch (...) {
                        failed = true;
                    }
                });
            }
            for (auto& th : threads) th.join();
            status = failed ? 2 : 0;
        } catch (...) {
        }
        ::_exit(status);
    }

    // That the two processes' adds ran at the same time (else the test would not test concurrency):
    // each process began an add before the other one's last add had finished.
    static void expect_overlap(const std::vector<reported_add>& reports) {
        long long first[2] = {LLONG_MAX, LLONG_MAX}, last[2] = {0, 0};
        for (const auto& r : reports) {
            const int p = r.data >= 200000 ? 1 : 0;
            first[p] = std::min(first[p], r.before_us);
            last[p] = std::max(last[p], r.after_us);
        }
        EXPECT_LT(first[0], last[1]) << "the producer processes did not overlap";
        EXPECT_LT(first[1], last[0]) << "the producer processes did not overlap";
    }

    // 8 producers in 2 processes, `adds` each, started together; their reports once both exited.
    std::vector<reported_add> produce(const std::string& queue, int adds, const redkit::job_options& o) {
        std::vector<pid_t> pids{spawn_producers(queue, 100000, adds, o), spawn_producers(queue, 200000, adds, o)};
        redis.command<std::string>("SET", "go", "1");
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        for (pid_t& p : pids) {
            int status = -1;
            while (::waitpid(p, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(5ms);
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                ::kill(p, SIGKILL);
                ::waitpid(p, &status, 0);
            }
            EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a producer process failed: " << status;
        }
        std::vector<reported_add> out;
        for (const auto& line : redis.command<std::vector<std::string>>("LRANGE", "adds", 0, -1)) {
            std::vector<std::string> f;
            std::size_t from = 0;
            for (std::size_t bar; (bar = line.find('|', from)) != std::string::npos; from = bar + 1) {
                f.push_back(line.substr(from, bar - from));
            }
            f.push_back(line.substr(from));
            if (f.size() != 5) {
                ADD_FAILURE() << "malformed report " << line;
                continue;
            }
            out.push_back({f[0], f[1], std::stoi(f[2]), std::stoll(f[3]), std::stoll(f[4])});
        }
        return out;
    }
};

}  // namespace

// Simple mode: while the job is unfinished, adds with its key add nothing and map to it; the key
// is released when it completes (kept), fails for good (not kept), is removed or drained.
TEST_F(Deduplication, SimpleModeMapsToTheUnfinishedJobAndIsReleasedWhenItFinishesOrIsRemoved) {
    redkit::queue<int> q(redis, "dedup-simple");
    const std::string key = "order:{7}";  // escaped like ids: its ':' and braces stay out of the key's shape
    const auto a = q.add("j", 1, dedup(key));
    EXPECT_EQ(a.outcome, redkit::add_outcome::created);
    EXPECT_TRUE(a.created);
    EXPECT_EQ(holder("dedup-simple", key), a.id);
    EXPECT_EQ(key_pttl("dedup-simple", key), -1) << "simple mode: no TTL";
    const auto b = q.add("j", 2, dedup(key));
    EXPECT_EQ(b.outcome, redkit::add_outcome::deduplicated);
    EXPECT_FALSE(b.created);
    EXPECT_EQ(b.id, a.id);
    auto named = dedup(key);
    named.job_id = "other";  // the key is checked first: no job "other"
    const auto c = q.add("j", 3, named);
    EXPECT_EQ(c.outcome, redkit::add_outcome::deduplicated);
    EXPECT_EQ(c.id, a.id);
    EXPECT_FALSE(q.get_job("other"));
    ASSERT_TRUE(q.get_job(a.id));
    EXPECT_EQ(q.get_job(a.id)->data(), 1);
    EXPECT_EQ(q.get_job(a.id)->deduplication_id(), key);
    EXPECT_EQ(q.counts().waiting, 1);
    EXPECT_EQ(job_hashes("dedup-simple").size(), 1u);

    // completed and kept (the take's own path): released
    std::mutex m;
    std::set<int> seen;
    {
        redkit::worker<int> w(
            q,
            [&](redkit::job<int>& j) {
                {
                    std::lock_guard<std::mutex> lock(m);
                    seen.insert(j.data());
                }
                if (j.data() == 4) throw redkit::unrecoverable_error("no");
            },
            quick());
        ASSERT_TRUE(wait_for(q, a.id, redkit::job_state::completed));
        EXPECT_EQ(holder("dedup-simple", key), std::nullopt) << "completed: released";
        // failed for good and removed at once (remove_on_fail keeps none): released
        auto gone = dedup(key);
        gone.remove_on_fail = redkit::retention::keep_none();
        const auto d = q.add("j", 4, gone);
        EXPECT_EQ(d.outcome, redkit::add_outcome::created);
        EXPECT_NE(d.id, a.id);
        ASSERT_TRUE(wait_for(q, d.id, redkit::job_state::unknown));
        EXPECT_EQ(holder("dedup-simple", key), std::nullopt) << "failed: released";
        EXPECT_TRUE(w.close(5s));
    }
    EXPECT_EQ(seen, (std::set<int>{1, 4}));

    // removed, and drained: released
    const auto e = q.add("j", 5, dedup(key));
    EXPECT_EQ(e.outcome, redkit::add_outcome::created);
    EXPECT_EQ(q.add("j", 6, dedup(key)).id, e.id);
    EXPECT_EQ(q.remove(e.id), redkit::remove_result::removed);
    EXPECT_EQ(holder("dedup-simple", key), std::nullopt) << "removed: released";
    const auto f = q.add("j", 7, dedup(key));
    EXPECT_EQ(f.outcome, redkit::add_outcome::created);
    EXPECT_EQ(q.drain(), 1u);
    EXPECT_EQ(holder("dedup-simple", key), std::nullopt) << "drained: released";
    EXPECT_EQ(q.add("j", 8, dedup(key)).outcome, redkit::add_outcome::created);
}

// Throttle: for the TTL after the first add, adds with the key are ignored, even after the job
// completed; then the next add makes a job.
TEST_F(Deduplication, ThrottleIgnoresAddsForTheTtlEvenAfterTheJobFinished) {
    redkit::queue<int> q(redis, "dedup-throttle");
    const auto a = q.add("j", 1, dedup("sync", 3s));
    EXPECT_EQ(a.outcome, redkit::add_outcome::created);
    const long long ttl = key_pttl("dedup-throttle", "sync");
    EXPECT_GT(ttl, 0);
    EXPECT_LE(ttl, 3000);
    EXPECT_EQ(q.add("j", 2, dedup("sync", 3s)).id, a.id);
    {
        redkit::worker<int> w(
            q, [](redkit::job<int>&) {}, quick());
        ASSERT_TRUE(wait_for(q, a.id, redkit::job_state::completed));
        EXPECT_TRUE(w.close(5s));
    }
    ASSERT_EQ(holder("dedup-throttle", "sync"), a.id) << "the window outlives the job (test too slow?)";
    const auto c = q.add("j", 3, dedup("sync", 3s));
    EXPECT_EQ(c.outcome, redkit::add_outcome::deduplicated) << "finished, but inside the window";
    EXPECT_EQ(c.id, a.id);
    const auto deadline = std::chrono::steady_clock::now() + 6s;
    while (holder("dedup-throttle", "sync") && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
    }
    const auto d = q.add("j", 4, dedup("sync", 3s));
    EXPECT_EQ(d.outcome, redkit::add_outcome::created) << "the window is over";
    EXPECT_NE(d.id, a.id);
    const auto counts = q.counts();
    EXPECT_EQ(counts.completed, 1);
    EXPECT_EQ(counts.waiting, 1);
}

// Debounce: an add while the job is delayed replaces its data and/or pushes its due time and the
// key's TTL; once the job started, an add changes nothing.
TEST_F(Deduplication, DebounceUpdatesTheDelayedJobAndNothingOnceItStarted) {
    redkit::queue<int> q(redis, "dedup-debounce");
    const auto a = q.add("j", 1, debounce("search", 2s, 2s));
    EXPECT_EQ(a.outcome, redkit::add_outcome::created);
    const long long due0 = q.get_job(a.id)->due_at();
    const auto b = q.add("j", 2, debounce("search", 4s, 4s));
    EXPECT_EQ(b.outcome, redkit::add_outcome::debounced);
    EXPECT_EQ(b.id, a.id);
    auto j = q.get_job(a.id);
    ASSERT_TRUE(j);
    EXPECT_EQ(j->data(), 2) << "replaced";
    EXPECT_GE(j->due_at(), due0 + 2000) << "pushed back to now + 4 s";
    EXPECT_EQ(j->options().delay, 4s);
    EXPECT_GT(key_pttl("dedup-debounce", "search"), 2000) << "the key's TTL pushed on to 4 s";
    const long long due1 = j->due_at();

    const auto c = q.add("j", 3, debounce("search", 1s, 1s, false, true));  // replace only
    EXPECT_EQ(c.outcome, redkit::add_outcome::debounced);
    EXPECT_EQ(q.get_job(a.id)->data(), 3);
    EXPECT_EQ(q.get_job(a.id)->due_at(), due1) << "replace alone leaves the due time";
    const auto d = q.add("j", 4, debounce("search", 5s, 5s, true, false));  // extend only
    EXPECT_EQ(d.outcome, redkit::add_outcome::debounced);
    EXPECT_EQ(q.get_job(a.id)->data(), 3) << "extend alone leaves the data";
    EXPECT_GT(q.get_job(a.id)->due_at(), due1);
    EXPECT_EQ(q.counts().delayed, 1);
    EXPECT_EQ(job_hashes("dedup-debounce").size(), 1u);

    // started: nothing is replaced, the add maps to the running job
    redkit::queue<int> s(redis, "dedup-started");
    const auto first = s.add("j", 1, debounce("k", 10s, 50ms));
    std::promise<void> started, release;
    auto released = release.get_future().share();
    std::atomic<int> saw{0};
    redkit::worker<int> w(
        s,
        [&, released](redkit::job<int>& job) {
            saw = job.data();
            started.set_value();
            released.wait_for(10s);
        },
        quick());
    ASSERT_EQ(started.get_future().wait_for(10s), std::future_status::ready);
    const auto late = s.add("j", 2, debounce("k", 10s, 50ms));
    EXPECT_EQ(late.outcome, redkit::add_outcome::deduplicated);
    EXPECT_EQ(late.id, first.id);
    EXPECT_EQ(s.get_job(first.id)->data(), 1);
    release.set_value();
    ASSERT_TRUE(wait_for(s, first.id, redkit::job_state::completed));
    EXPECT_EQ(saw.load(), 1);
    EXPECT_TRUE(w.close(5s));
    EXPECT_EQ(s.counts().completed, 1);
    EXPECT_EQ(job_hashes("dedup-started").size(), 1u);
}

// add_bulk: each job gets what add would give it, seeing the keys and ids of the jobs before it.
TEST_F(Deduplication, AddBulkGivesEachJobTheOutcomeAddWouldGive) {
    redkit::queue<int> q(redis, "dedup-bulk");
    redkit::job_options fixed;
    fixed.job_id = "fixed";
    EXPECT_EQ(q.add("j", 0, fixed).outcome, redkit::add_outcome::created);
    auto b_named = dedup("b");
    b_named.job_id = "x";
    const std::vector<redkit::bulk_job<int>> jobs{
        {"j", 1, dedup("a")},
        {"j", 2, dedup("a")},
        {"j", 3, dedup("b")},
        {"j", 4, fixed},
        {"j", 5},
        {"j", 6, b_named},
        {"j", 7, debounce("c", 5s, 5s)},
        {"j", 8, debounce("c", 5s, 5s)},
    };
    const auto r = q.add_bulk(jobs);
    ASSERT_EQ(r.size(), jobs.size());
    using o = redkit::add_outcome;
    const std::vector<o> want{o::created, o::deduplicated, o::created, o::exists,
                              o::created, o::deduplicated, o::created, o::debounced};
    for (std::size_t i = 0; i < r.size(); ++i) {
        EXPECT_EQ(r[i].outcome, want[i]) << "job " << i << ": " << redkit::to_string(r[i].outcome);
        EXPECT_EQ(r[i].created, want[i] == o::created) << i;
    }
    EXPECT_EQ(r[1].id, r[0].id);
    EXPECT_EQ(r[3].id, "fixed");
    EXPECT_EQ(r[5].id, r[2].id);
    EXPECT_EQ(r[7].id, r[6].id);
    EXPECT_EQ(q.get_job(r[6].id)->data(), 8);
    EXPECT_FALSE(q.get_job("x"));
    const std::set<std::string> made{"fixed", r[0].id, r[2].id, r[4].id, r[6].id};
    EXPECT_EQ(made.size(), 5u) << "distinct ids";
    const auto hashes = job_hashes("dedup-bulk");
    EXPECT_EQ(std::set<std::string>(hashes.begin(), hashes.end()), made);
    // the same adds one by one now: every key is held, so all map to the jobs above
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (jobs[i].options.deduplication.id.empty()) continue;
        const auto again = q.add("j", 9, jobs[i].options);
        EXPECT_NE(again.outcome, o::created) << i;
        EXPECT_EQ(again.id, r[i].id) << i;
    }
}

TEST_F(Deduplication, InvalidOptionsAreRefusedAndFlowsAndSchedulersRefuseDeduplication) {
    redkit::queue<int> q(redis, "dedup-bad");
    const auto refused = [&](const redkit::job_options& o, const std::string& words) {
        try {
            (void)q.add("j", 1, o);
            ADD_FAILURE() << "accepted; wanted: " << words;
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
        }
    };
    refused(dedup(std::string(513, 'k')), "deduplication.id must be at most 512 bytes");
    refused(dedup("k", -1ms), "deduplication.ttl must be in [0, 24 h]");
    refused(dedup("k", 24h + 1ms), "deduplication.ttl must be in [0, 24 h]");
    refused(debounce("k", 0ms, 1s), "need a positive deduplication.ttl and a positive delay");
    refused(debounce("k", 1s, 0ms, false, true), "need a positive deduplication.ttl and a positive delay");
    refused(debounce("k", 1s, 0ms, true, false), "need a positive deduplication.ttl and a positive delay");
    refused(dedup("", 1s), "deduplication.id must not be empty");
    redkit::job_options extend_only;
    extend_only.deduplication.extend = true;
    refused(extend_only, "deduplication.id must not be empty");
    EXPECT_THROW((void)q.add_bulk({{"j", 1, dedup("ok")}, {"j", 2, dedup("k", -1ms)}}), std::invalid_argument);

    redkit::flow_job root{"parent", 1};
    root.children.push_back({"child", 2});
    root.children.back().options = dedup("k");
    try {
        (void)q.add_flow(root);
        ADD_FAILURE() << "a flow took a deduplication key";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("add_flow: job_options.deduplication must be unset"), std::string::npos)
            << e.what();
    }
    try {
        (void)q.upsert_scheduler("s", redkit::scheduler_options::every_interval(1s), "j", 1, dedup("k", 1s));
        ADD_FAILURE() << "a scheduler took a deduplication key";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("upsert_scheduler: job_options.deduplication must be unset"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 0) << "nothing written";
    const auto longest = q.add("j", 1, dedup(std::string(512, 'k'), 24h));
    EXPECT_EQ(longest.outcome, redkit::add_outcome::created);
    EXPECT_EQ(q.get_job(longest.id)->deduplication_id(), std::string(512, 'k'));
}

// The issue's test, throttle: 8 producers in 2 processes add with one key inside its window:
// exactly one job, every other add maps to it, and the server's job hashes agree with what add()
// reported.
TEST_F(Deduplication, EightProducersInTwoProcessesThrottleToOneJob) {
    if (shared_server().external()) GTEST_SKIP() << "forks producers on the private server";
    constexpr int adds = 25;
    const auto reports = produce("dedup-many", adds, dedup("report", 20s));
    ASSERT_EQ(reports.size(), 8u * adds);
    long long first = reports.front().before_us, last = reports.front().after_us;
    std::vector<const reported_add*> created;
    std::set<std::string> ids;
    for (const auto& r : reports) {
        first = std::min(first, r.before_us);
        last = std::max(last, r.after_us);
        if (r.outcome == "created")
            created.push_back(&r);
        else
            EXPECT_EQ(r.outcome, "deduplicated");
        ids.insert(r.id);
    }
    ASSERT_LT(last - first, 20000000) << "the adds did not all fall in the window; the test proves nothing";
    expect_overlap(reports);
    ASSERT_EQ(created.size(), 1u);
    EXPECT_EQ(ids, (std::set<std::string>{created[0]->id})) << "every add maps to the one job";
    // the server's own record
    EXPECT_EQ(job_hashes("dedup-many"), (std::vector<std::string>{created[0]->id}));
    const auto j = q_job("dedup-many", created[0]->id);
    ASSERT_TRUE(j);
    EXPECT_EQ(j->data(), created[0]->data) << "throttle keeps the first add's data";
    EXPECT_EQ(j->deduplication_id(), "report");
    EXPECT_EQ(holder("dedup-many", "report"), created[0]->id);
    EXPECT_GT(key_pttl("dedup-many", "report"), 0);
}

// The issue's test, debounce: 8 producers in 2 processes add one delayed job with extend and
// replace: one job, whose data is the last add's (no add began after the one whose data it holds
// had finished) and whose due time is that last add's time plus the delay.
TEST_F(Deduplication, EightProducersInTwoProcessesDebounceToOneJobWithTheLastData) {
    if (shared_server().external()) GTEST_SKIP() << "forks producers on the private server";
    constexpr int adds = 25;
    constexpr long long delay_ms = 20000;
    const auto reports = produce("dedup-debounced", adds, debounce("typing", 20s, 20s));
    ASSERT_EQ(reports.size(), 8u * adds);
    std::size_t created = 0, debounced = 0;
    std::set<std::string> ids;
    long long max_before = 0, max_after = 0;
    for (const auto& r : reports) {
        created += r.outcome == "created";
        debounced += r.outcome == "debounced";
        ids.insert(r.id);
        max_before = std::max(max_before, r.before_us);
        max_after = std::max(max_after, r.after_us);
    }
    expect_overlap(reports);
    EXPECT_EQ(created, 1u);
    EXPECT_EQ(debounced, reports.size() - 1) << "the job stayed delayed: every later add debounced it";
    ASSERT_EQ(ids.size(), 1u);
    const std::string id = *ids.begin();
    // the server's own record: one job hash, delayed, with the last add's data and due time
    EXPECT_EQ(job_hashes("dedup-debounced"), (std::vector<std::string>{id}));
    EXPECT_EQ(redis.command<long long>("ZCARD", "queue:{dedup-debounced}:delayed"), 1);
    const auto j = q_job("dedup-debounced", id);
    ASSERT_TRUE(j);
    const auto holder_add =
        std::find_if(reports.begin(), reports.end(), [&](const reported_add& r) { return r.data == j->data(); });
    ASSERT_NE(holder_add, reports.end()) << "the job holds data no add sent: " << j->data();
    for (const auto& r : reports) {
        EXPECT_LE(r.before_us, holder_add->after_us)
            << "the add of " << r.data << " began after the add of " << j->data()
            << " had finished, so its data should have replaced it";
    }
    EXPECT_GE(j->due_at(), max_before / 1000 + delay_ms) << "due time not pushed back by the last add";
    EXPECT_LE(j->due_at(), max_after / 1000 + delay_ms);
    EXPECT_GT(j->due_at(), j->created_at() + delay_ms);
}
