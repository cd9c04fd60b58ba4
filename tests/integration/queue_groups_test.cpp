// SPDX-License-Identifier: MIT
// Groups (job_options::group) against a real, private redis-server: fair turns (one group with
// 20,000 jobs in line does not hold up fifty one-job groups), per-group concurrency across two
// worker processes checked from the server's own leases, pause and resume of one group, the
// per-group rate limit, retries, delays and a killed worker inside a group, and the listing,
// removal, drain and obliterate of grouped jobs. Built into queue_features_tests.
#include <redkit/queue.hpp>

#include "support/eventually.hpp"
#include "support/fresh_database.hpp"
#include "support/queue_options.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace {

redkit::worker_options<int> fast(std::size_t concurrency = 1) { return redkit_test::quick_worker<int>(concurrency); }

redkit::job_options in_group(std::string g) {
    redkit::job_options o;
    o.group = std::move(g);
    return o;
}

using redkit_test::eventually;

class Groups : public redkit_test::fresh_database {
protected:
    // The server's own record of who runs what: each group's leases in the active zset, read in
    // one script (so one instant), by the grp field of each leased job.
    std::map<std::string, long long> active_per_group(const std::string& queue) {
        static const char* lua = R"lua(
local m = redis.call('ZRANGE', KEYS[1], 0, -1)
local per, out = {}, {}
for i = 1, #m do
  local id = string.sub(m[i], 1, string.find(m[i], ':', 1, true) - 1)
  local g = redis.call('HGET', ARGV[1] .. id, 'grp') or ''
  per[g] = (per[g] or 0) + 1
end
for g, n in pairs(per) do
  out[#out + 1] = g
  out[#out + 1] = n
end
return out
)lua";
        const auto r = redis.command<std::vector<redkit::reply>>("EVAL", lua, 1, "queue:{" + queue + "}:active",
                                                                 "queue:{" + queue + "}:job:");
        std::map<std::string, long long> out;
        for (std::size_t i = 0; i + 1 < r.size(); i += 2) out[r[i].text()] = r[i + 1].integer();
        return out;
    }

    // Forks a worker process on `queue` whose jobs sleep `work`. No thread of this process may be
    // alive at the fork (the fixture's client has none).
    pid_t spawn_worker(const std::string& queue, std::size_t concurrency, std::chrono::milliseconds work) {
        const pid_t pid = ::fork();
        if (pid != 0) return pid;
        try {
            redkit::client c(shared_server().url());
            redkit::queue<int> q(c, queue);
            redkit::worker<int> w(
                q,
                [&](redkit::job<int>&) {
                    c.command<long long>("INCR", "started");
                    std::this_thread::sleep_for(work);
                },
                fast(concurrency));
            std::this_thread::sleep_for(120s);  // until killed
        } catch (...) {
        }
        ::_exit(3);
    }

    static void stop(pid_t pid) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
};

}  // namespace

// The issue's test: 4 workers, one group holding 20,000 jobs in line and 50 groups holding one
// job each, added once the big group is running: each one-job group's job starts before the big
// group has had more than about 50 more started.
TEST_F(Groups, FiftyOneJobGroupsStartBeforeTheBigGroupHasHadFiftyMore) {
    redkit::queue<int> q(redis, "tenants");
    std::vector<redkit::bulk_job<int>> big;
    for (int i = 0; i < 20000; ++i) big.push_back({"work", i, in_group("big")});
    q.add_bulk(big);
    ASSERT_EQ(q.counts().grouped, 20000);

    std::mutex m;
    long long big_started = 0;
    std::map<std::string, long long> small_started_after;  // group -> big starts before it started
    const auto handler = [&](redkit::job<int>& j) {
        {
            std::lock_guard<std::mutex> lock(m);
            if (j.group() == "big") {
                ++big_started;
            } else {
                small_started_after[j.group()] = big_started;
            }
        }
        std::this_thread::sleep_for(1ms);
    };
    std::vector<std::unique_ptr<redkit::worker<int>>> workers;
    for (int i = 0; i < 4; ++i) workers.push_back(std::make_unique<redkit::worker<int>>(q, handler, fast()));
    ASSERT_TRUE(eventually(
        [&] {
            std::lock_guard<std::mutex> lock(m);
            return big_started >= 200;
        },
        30s));
    long long big_at_add = 0;
    {
        std::vector<redkit::bulk_job<int>> small;
        for (int i = 0; i < 50; ++i) small.push_back({"work", i, in_group("tenant-" + std::to_string(i))});
        std::lock_guard<std::mutex> lock(m);  // the big group's count as the small jobs arrive
        big_at_add = big_started;
        q.add_bulk(small);
    }
    ASSERT_TRUE(eventually(
        [&] {
            std::lock_guard<std::mutex> lock(m);
            return small_started_after.size() == 50;
        },
        30s))
        << "not every one-job group ran";
    long long worst = 0;
    {
        std::lock_guard<std::mutex> lock(m);
        for (const auto& [g, before] : small_started_after) worst = std::max(worst, before - big_at_add);
    }
    for (auto& w : workers) w->close();
    std::printf("groups: the last of 50 one-job groups started after %lld more jobs of the 20,000-job group\n", worst);
    EXPECT_LE(worst, 50) << "each one-job group waits its turn, not behind the big group's line";
    EXPECT_GT(q.counts().grouped, 10000) << "the big group was still far from done";
    EXPECT_TRUE(q.obliterate(true));
    EXPECT_EQ(redis.command<std::vector<std::string>>("KEYS", "queue:{tenants}*").size(), 0u)
        << "obliterate leaves no group key behind";
}

// At most N of a group's jobs run at once across two worker processes (8 handler threads in
// all), as the server's own leases show at every look; a group's own limit wins over the default.
TEST_F(Groups, ConcurrencyPerGroupHoldsAcrossTwoProcessesByTheServersLeases) {
    redkit::queue<int> q(redis, "per-group");
    q.set_group_concurrency(2);
    q.set_group_concurrency("solo", 1);
    std::vector<redkit::bulk_job<int>> jobs;
    for (int i = 0; i < 24; ++i) {
        for (const char* g : {"solo", "duo-a", "duo-b"}) jobs.push_back({"work", i, in_group(g)});
    }
    q.add_bulk(jobs);
    const auto g = q.group("solo");
    ASSERT_TRUE(g);
    EXPECT_EQ(g->concurrency, 1);
    EXPECT_EQ(g->waiting, 24);
    EXPECT_EQ(q.groups().concurrency, 2);

    const pid_t a = spawn_worker("per-group", 4, 25ms);
    const pid_t b = spawn_worker("per-group", 4, 25ms);
    std::map<std::string, long long> most;
    long long looks = 0;
    while (q.counts().completed < 72) {
        for (const auto& [group, n] : active_per_group("per-group")) most[group] = std::max(most[group], n);
        ++looks;
        ASSERT_LT(looks, 20000) << "the jobs did not finish";
        std::this_thread::sleep_for(1ms);
    }
    stop(a);
    stop(b);
    std::printf("groups: most active at once over %lld looks: solo %lld, duo-a %lld, duo-b %lld\n", looks, most["solo"],
                most["duo-a"], most["duo-b"]);
    EXPECT_EQ(most["solo"], 1) << "the group's own limit";
    EXPECT_EQ(most["duo-a"], 2) << "the default limit, reached and never passed";
    EXPECT_EQ(most["duo-b"], 2);
    EXPECT_EQ(q.groups().total, 1) << "only the group with its own limit stays listed once its jobs are done";
}

// A paused group starts nothing while the others go on; resumed, it takes its turn again.
// Listing, counts and one group's line follow.
TEST_F(Groups, APausedGroupWaitsWhileTheOthersRun) {
    redkit::queue<int> q(redis, "pausing");
    q.pause_group("a");
    for (int i = 0; i < 3; ++i) {
        (void)q.add("x", i, in_group("a"));
        (void)q.add("x", i, in_group("b"));
    }
    const auto page = q.groups();
    ASSERT_EQ(page.total, 2);
    EXPECT_EQ(page.groups[0].name, "a");
    EXPECT_TRUE(page.groups[0].paused);
    EXPECT_EQ(page.groups[0].waiting, 3);
    EXPECT_FALSE(page.groups[1].paused);
    const auto line = q.group_jobs("a", 0, 10, false);
    ASSERT_EQ(line.total, 3);
    ASSERT_EQ(line.jobs.size(), 3u);
    EXPECT_EQ(line.jobs[0].data(), 0) << "oldest first is the order the group runs in";
    EXPECT_EQ(line.jobs[0].state(), redkit::job_state::waiting);
    EXPECT_EQ(line.jobs[0].group(), "a");
    EXPECT_EQ(q.counts().grouped, 6);
    EXPECT_EQ(q.counts().waiting, 0) << "grouped jobs are counted apart";

    std::mutex m;
    std::vector<std::string> ran;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            std::lock_guard<std::mutex> lock(m);
            ran.push_back(j.group());
        },
        fast(2));
    ASSERT_TRUE(eventually([&] { return q.counts().completed == 3; }));
    std::this_thread::sleep_for(300ms);
    {
        std::lock_guard<std::mutex> lock(m);
        EXPECT_EQ(std::count(ran.begin(), ran.end(), "a"), 0) << "the paused group started a job";
    }
    EXPECT_EQ(q.group("a")->waiting, 3);
    q.resume_group("a");
    ASSERT_TRUE(eventually([&] { return q.counts().completed == 6; })) << "resumed, the group ran";
    EXPECT_FALSE(q.group("a")) << "a group with nothing left is no longer listed";
    EXPECT_EQ(q.counts().grouped, 0);
}

// The per-group rate limit: at most 2 starts of a group in any 400 ms, by the server's start
// times, while another group runs beside it under its own.
TEST_F(Groups, RateLimitPerGroupHoldsEachGroupToItsWindow) {
    redkit::queue<int> q(redis, "limited");
    q.set_group_rate_limit(2, 400ms);
    ASSERT_TRUE(q.groups().rate_limit);
    EXPECT_EQ(q.groups().rate_limit->max, 2);
    for (int i = 0; i < 6; ++i) {
        (void)q.add("x", i, in_group("a"));
        (void)q.add("x", i, in_group("b"));
    }
    std::mutex m;
    std::map<std::string, std::vector<long long>> starts;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            std::lock_guard<std::mutex> lock(m);
            starts[j.group()].push_back(j.processed_at());
        },
        fast(4));
    ASSERT_TRUE(eventually([&] { return q.counts().completed == 12; }, 10s));
    w.close();
    for (auto& [g, t] : starts) {
        std::sort(t.begin(), t.end());
        ASSERT_EQ(t.size(), 6u);
        for (std::size_t i = 2; i < t.size(); ++i) {
            EXPECT_GE(t[i] - t[i - 2], 400) << "group " << g << ": a third start within the window";
        }
        EXPECT_LT(t.back() - t.front(), 1600) << "group " << g << " waited no more than its limit asks";
    }
    q.remove_group_rate_limit();
    EXPECT_FALSE(q.groups().rate_limit);
}

// A grouped job that fails is retried in its group; a delayed one joins its group when due; a
// worker killed mid-job frees its group's slot once the stalled check recovers the job.
TEST_F(Groups, RetriesDelaysAndAKilledWorkerStayInTheGroupAndFreeItsSlot) {
    redkit::queue<int> q(redis, "mixed");
    q.set_group_concurrency(1);
    redkit::job_options o = in_group("t");
    o.attempts = 2;
    const std::string flaky = q.add("flaky", 1, o).id;
    o.attempts = 1;
    o.delay = 300ms;
    const std::string later = q.add("later", 2, o).id;
    EXPECT_EQ(q.get_job(later)->state(), redkit::job_state::delayed);
    EXPECT_EQ(q.get_job(flaky)->state(), redkit::job_state::waiting);

    // a worker process takes the flaky job and dies in its handler
    const pid_t child = spawn_worker("mixed", 1, 60s);
    ASSERT_TRUE(eventually([&] { return redis.command<std::optional<std::string>>("GET", "started") == "1"; }));
    stop(child);
    EXPECT_EQ(q.group("t")->active, 1);

    std::atomic<int> runs{0};
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            ++runs;
            if (j.name() == "flaky" && j.attempts_made() == 0) throw std::runtime_error("first attempt fails");
        },
        fast(2));
    ASSERT_TRUE(eventually([&] { return q.counts().completed == 2; }, 15s))
        << "the group's slot was never freed, or a job was lost";
    EXPECT_EQ(q.get_job(flaky)->state(), redkit::job_state::completed);
    EXPECT_EQ(q.get_job(later)->state(), redkit::job_state::completed);
    EXPECT_EQ(q.get_job(flaky)->stalls(), 1);
    EXPECT_FALSE(q.group("t")) << "nothing left of the group";
}

// remove() and drain() take grouped jobs out of their lines (and the counts); bad options and
// names are refused before anything is written.
TEST_F(Groups, RemoveDrainAndBadInput) {
    redkit::queue<int> q(redis, "admin");
    const std::string one = q.add("x", 1, in_group("g1")).id;
    (void)q.add("x", 2, in_group("g1"));
    (void)q.add("x", 3, in_group("g:2 *"));  // hostile characters are escaped in the key
    (void)q.add("x", 4);
    EXPECT_EQ(q.remove(one), redkit::remove_result::removed);
    EXPECT_EQ(q.group("g1")->waiting, 1);
    EXPECT_EQ(q.counts().grouped, 2);
    EXPECT_EQ(q.group("g:2 *")->waiting, 1);
    EXPECT_EQ(q.drain(), 3u);
    EXPECT_EQ(q.counts().grouped, 0);
    EXPECT_EQ(q.groups().total, 0);

    redkit::job_options o = in_group("g");
    o.priority = 3;
    EXPECT_THROW(q.add("x", 1, o), std::invalid_argument);
    EXPECT_THROW(q.add("x", 1, in_group(std::string(513, 'g'))), std::invalid_argument);
    redkit::flow_job root;
    root.name = "root";
    root.options = in_group("g");
    EXPECT_THROW(q.add_flow(root), std::invalid_argument);
    redkit::scheduler_options every;
    every.every = 1s;
    EXPECT_THROW(q.upsert_scheduler("s", every, "x", 1, in_group("g")), std::invalid_argument);
    EXPECT_THROW(q.pause_group(""), std::invalid_argument);
    EXPECT_THROW(q.set_group_concurrency("g", -1), std::invalid_argument);
    EXPECT_THROW(q.set_group_rate_limit(0, 1s), std::invalid_argument);
    EXPECT_EQ(q.counts().waiting, 0);
    EXPECT_EQ(q.counts().grouped, 0);
}

// A grouped job whose hash was deleted behind the queue's back is skipped without holding its
// group's slot: the next job of a group limited to one still runs.
TEST_F(Groups, AJobDeletedBehindTheQueuesBackDoesNotHoldItsGroupsSlot) {
    redkit::queue<int> q(redis, "deleted");
    q.set_group_concurrency(1);
    const std::string gone = q.add("x", 1, in_group("g")).id;
    const std::string next = q.add("x", 2, in_group("g")).id;
    ASSERT_EQ(redis.command<long long>("DEL", "queue:{deleted}:job:" + gone), 1);
    redkit::worker<int> w(
        q, [](redkit::job<int>&) {}, fast());
    ASSERT_TRUE(eventually([&] { return q.counts().completed == 1; }))
        << "the deleted job's lease count kept the group at its limit";
    EXPECT_EQ(q.get_job(next)->state(), redkit::job_state::completed);
    EXPECT_EQ(q.counts().grouped, 0);
}
