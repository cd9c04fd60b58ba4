// SPDX-License-Identifier: MIT
// redkit::queue and redkit::worker against a real, private redis-server: delays and backoff on
// the server clock, priorities, a worker killed with SIGKILL mid-job, 10k jobs through 4 workers
// x 8 threads, pause, graceful close, retention, bad payloads, stalled jobs, management.
#include <redkit/queue.hpp>

#include "support/error_log.hpp"
#include "support/eventually.hpp"
#include "support/fresh_database.hpp"
#include "support/queue_options.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using redkit_test::shared_server;
using json = nlohmann::json;

namespace {

/// A counter threads bump and the test waits on, with a deadline.
class counter {
public:
    void add(int n = 1) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            value_ += n;
        }
        cv_.notify_all();
    }
    bool wait_for(int target, std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(mutex_);
        return cv_.wait_for(lock, timeout, [&] { return value_ >= target; });
    }
    int value() {
        std::lock_guard<std::mutex> lock(mutex_);
        return value_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int value_ = 0;
};

/// Thread-safe list of strings (ids in the order something happened).
class recorder {
public:
    void push(std::string s) {
        std::lock_guard<std::mutex> lock(mutex_);
        items_.push_back(std::move(s));
    }
    std::vector<std::string> items() {
        std::lock_guard<std::mutex> lock(mutex_);
        return items_;
    }

private:
    std::mutex mutex_;
    std::vector<std::string> items_;
};

struct order {
    std::string sku;
    int qty = 0;
};
void to_json(json& j, const order& o) { j = json{{"sku", o.sku}, {"qty", o.qty}}; }
void from_json(const json& j, order& o) {
    j.at("sku").get_to(o.sku);
    j.at("qty").get_to(o.qty);
}

template <class T>
redkit::worker_options<T> fast_options(std::size_t concurrency = 1) {
    return redkit_test::quick_worker<T>(concurrency, 2000ms);
}

class Queue : public redkit_test::fresh_database {
protected:
    long long server_ms() {
        const auto t = redis.command<std::vector<long long>>("TIME");
        return t.at(0) * 1000 + t.at(1) / 1000;
    }

    /// Waits (up to 5 s) until n connections sit in BZPOPMIN; returns how many do.
    std::size_t wait_until_blocked(std::size_t n) {
        const auto blocked = [&] {
            const auto list = redis.command<std::string>("CLIENT", "LIST");
            std::size_t count = 0;
            for (auto at = list.find("cmd=bzpopmin"); at != std::string::npos; at = list.find("cmd=bzpopmin", at + 1)) {
                ++count;
            }
            return count;
        };
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (blocked() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
        return blocked();
    }
};

}  // namespace

TEST_F(Queue, AddedJobCompletesWithItsReturnValue) {
    redkit::queue<order> q(redis, "basic");
    const auto added = q.add("ship", order{"A-1", 3});
    EXPECT_TRUE(added.created);
    EXPECT_EQ(q.counts().waiting, 1);

    counter done;
    auto o = fast_options<order>();
    o.on_completed = [&](const redkit::job<order>& j) {
        EXPECT_EQ(j.id(), added.id);
        EXPECT_EQ(j.return_value()["shipped"], 3);
        done.add();
    };
    redkit::worker<order> w(
        q,
        [](redkit::job<order>& j) {
            return json{{"shipped", j.data().qty}};
        },
        o);
    ASSERT_TRUE(done.wait_for(1, 5s));
    EXPECT_TRUE(w.close(5s));

    const auto j = q.get_job(added.id);
    ASSERT_TRUE(j);
    EXPECT_EQ(j->state(), redkit::job_state::completed);
    EXPECT_EQ(j->name(), "ship");
    EXPECT_EQ(j->data().sku, "A-1");
    EXPECT_EQ(j->attempts_made(), 1);
    EXPECT_EQ(j->return_value()["shipped"], 3);
    EXPECT_GE(j->finished_at(), j->processed_at());
    EXPECT_GE(j->processed_at(), j->created_at());
    const auto c = q.counts();
    EXPECT_EQ(c.completed, 1);
    EXPECT_EQ(c.waiting + c.active + c.delayed + c.failed, 0);
    EXPECT_EQ(q.get_job("999"), std::nullopt);
}

TEST_F(Queue, ACallbackThatThrowsIsReportedAndTheWorkerGoesOn) {
    // on_completed, on_failed and on_stalled must not throw into the worker's threads: what they
    // throw is reported through on_error as handler_failed (it was swallowed without a word)
    redkit::queue<order> q(redis, "throwing-callbacks");
    std::mutex m;
    std::vector<std::string> reported;
    counter done;
    auto o = fast_options<order>();
    o.on_completed = [&](const redkit::job<order>&) {
        done.add();
        throw std::runtime_error("dashboard unreachable");
    };
    o.on_failed = [&](const redkit::job<order>&, const redkit::job_failure&) {
        done.add();
        throw 42;  // not even an exception
    };
    o.on_error = [&](const redkit::error& e) {
        std::lock_guard<std::mutex> lock(m);
        if (e.code() == redkit::errc::handler_failed) reported.push_back(e.what());
    };
    redkit::worker<order> w(
        q,
        [](redkit::job<order>& j) {
            if (j.data().qty < 0) throw std::invalid_argument("negative quantity");
            return json{{"shipped", j.data().qty}};
        },
        o);
    (void)q.add("ship", order{"A-1", 3});
    (void)q.add("ship", order{"A-2", -1});
    (void)q.add("ship", order{"A-3", 5});
    ASSERT_TRUE(done.wait_for(3, 5s));
    ASSERT_TRUE(redkit_test::eventually([&] {
        std::lock_guard<std::mutex> lock(m);
        return reported.size() >= 3;
    }));
    EXPECT_TRUE(w.close(5s));
    EXPECT_EQ(q.counts().completed, 2);  // the worker went on after each
    EXPECT_EQ(q.counts().failed, 1);
    std::lock_guard<std::mutex> lock(m);
    EXPECT_EQ(std::count(reported.begin(), reported.end(),
                         "redkit: worker throwing-callbacks: on_completed threw: dashboard unreachable"),
              2);
    EXPECT_EQ(std::count(reported.begin(), reported.end(), "redkit: worker throwing-callbacks: on_failed threw"), 1);
}

TEST_F(Queue, DelayedJobsRunNoEarlierThanTheirDelay) {
    redkit::queue<int> q(redis, "delayed");
    recorder ran;
    counter done;
    std::map<std::string, long long> wait_ms;
    std::mutex m;
    auto o = fast_options<int>(2);
    o.block_timeout = 5000ms;  // the delay must be honoured by the worker's own timer, not a block timeout
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            {
                std::lock_guard<std::mutex> lock(m);
                wait_ms[j.id()] = j.processed_at() - j.created_at();
            }
            done.add();
        },
        o);
    redkit::job_options d300, d100;
    d300.delay = 300ms;
    d100.delay = 100ms;
    const auto a = q.add("later", 1, d300);
    const auto b = q.add("soon", 2, d100);
    EXPECT_EQ(q.counts().delayed, 2);
    ASSERT_TRUE(done.wait_for(2, 5s));
    std::lock_guard<std::mutex> lock(m);
    EXPECT_GE(wait_ms[a.id], 300);
    EXPECT_GE(wait_ms[b.id], 100);
    EXPECT_LT(wait_ms[a.id], 300 + 1500);  // and promptly (not at a block timeout)
    EXPECT_LT(wait_ms[b.id], 100 + 1500);
}

TEST_F(Queue, ExponentialBackoffSpacingHolds) {
    redkit::queue<int> q(redis, "backoff");
    std::vector<long long> starts;
    std::vector<redkit::job_failure> failures;
    std::mutex m;
    counter done;
    auto o = fast_options<int>();
    o.block_timeout = 5000ms;
    o.on_failed = [&](const redkit::job<int>&, const redkit::job_failure& f) {
        std::lock_guard<std::mutex> lock(m);
        failures.push_back(f);
    };
    o.on_completed = [&](const redkit::job<int>&) { done.add(); };
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            std::lock_guard<std::mutex> lock(m);
            starts.push_back(j.processed_at());
            if (j.attempts_made() < 2)
                throw std::runtime_error("smtp 421, attempt " + std::to_string(j.attempts_made() + 1));
        },
        o);
    redkit::job_options opts;
    opts.attempts = 3;
    opts.backoff = redkit::backoff_policy::exponential(80ms);
    const auto added = q.add("mail", 7, opts);
    ASSERT_TRUE(done.wait_for(1, 10s));
    std::lock_guard<std::mutex> lock(m);
    ASSERT_EQ(starts.size(), 3u);
    EXPECT_GE(starts[1] - starts[0], 80);   // first retry after the base delay
    EXPECT_GE(starts[2] - starts[1], 160);  // second after twice that
    EXPECT_LT(starts[2] - starts[1], 160 + 1500);
    ASSERT_EQ(failures.size(), 2u);
    EXPECT_TRUE(failures[0].will_retry);
    EXPECT_EQ(failures[0].retry_in, 80ms);
    EXPECT_EQ(failures[1].retry_in, 160ms);
    EXPECT_EQ(failures[1].reason, "smtp 421, attempt 2");
    const auto j = q.get_job(added.id);
    ASSERT_TRUE(j);
    EXPECT_EQ(j->state(), redkit::job_state::completed);
    EXPECT_EQ(j->attempts_made(), 3);
    const auto trace = j->trace();
    ASSERT_EQ(trace.size(), 2u);
    EXPECT_NE(trace[0].find("attempt 1: std::runtime_error: smtp 421"), std::string::npos) << trace[0];
}

TEST_F(Queue, FailedAttemptsEndInFailedAfterTheLastOne) {
    redkit::queue<int> q(redis, "failing");
    counter failed_for_good;
    std::atomic<int> runs{0};
    auto o = fast_options<int>();
    o.on_failed = [&](const redkit::job<int>& j, const redkit::job_failure& f) {
        if (!f.will_retry) {
            EXPECT_EQ(j.state(), redkit::job_state::failed);
            failed_for_good.add();
        }
    };
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>&) {
            ++runs;
            throw std::logic_error("always");
        },
        o);
    redkit::job_options opts;
    opts.attempts = 2;
    const auto a = q.add("x", 1, opts);
    ASSERT_TRUE(failed_for_good.wait_for(1, 5s));
    EXPECT_EQ(runs.load(), 2);

    // an unrecoverable error skips the remaining attempts
    redkit::worker<int> w2(
        q, [&](redkit::job<int>&) -> int { throw redkit::unrecoverable_error("bad address"); }, o);
    EXPECT_TRUE(w.close(5s));
    opts.attempts = 5;
    const auto b = q.add("y", 2, opts);
    ASSERT_TRUE(failed_for_good.wait_for(2, 5s));
    const auto jb = q.get_job(b.id);
    ASSERT_TRUE(jb);
    EXPECT_EQ(jb->attempts_made(), 1);
    EXPECT_EQ(jb->failed_reason(), "bad address");
    EXPECT_EQ(q.counts().failed, 2);
}

TEST_F(Queue, PrioritiesAreHonoured) {
    redkit::queue<int> q(redis, "prio");
    const int priorities[] = {5, 1, 0, 3, 2, 1};
    for (int i = 0; i < 6; ++i) {
        redkit::job_options o;
        o.priority = priorities[i];
        (void)q.add("p" + std::to_string(priorities[i]), i, o);
    }
    const auto c = q.counts();
    EXPECT_EQ(c.prioritized, 5);
    EXPECT_EQ(c.waiting, 1);
    recorder order_seen;
    counter done;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            order_seen.push(j.name() + "#" + std::to_string(j.data()));
            done.add();
        },
        fast_options<int>(1));
    ASSERT_TRUE(done.wait_for(6, 5s));
    // no priority first (as BullMQ), then by priority, FIFO among equals
    EXPECT_EQ(order_seen.items(), (std::vector<std::string>{"p0#2", "p1#1", "p1#5", "p2#4", "p3#3", "p5#0"}));
}

TEST_F(Queue, PrioritiesAtBothEndsOfTheRangeKeepFifoOrder) {
    // Ids added in descending text order: if two scores merged, the zset's tie-break (the member
    // text) would reverse them.
    redkit::queue<int> q(redis, "prio-range");
    std::vector<std::string> expected;
    for (const int priority : {1 << 21, 1}) {
        for (int i = 9; i >= 0; --i) {
            redkit::job_options o;
            o.priority = priority;
            o.job_id = (priority == 1 ? "high-" : "low-") + std::to_string(i);
            (void)q.add("p", i, o);
        }
    }
    for (int i = 9; i >= 0; --i) expected.push_back("high-" + std::to_string(i));
    for (int i = 9; i >= 0; --i) expected.push_back("low-" + std::to_string(i));
    recorder seen;
    counter done;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            seen.push(j.id());
            done.add();
        },
        fast_options<int>(1));
    ASSERT_TRUE(done.wait_for(20, 5s));
    EXPECT_EQ(seen.items(), expected);
    redkit::job_options beyond;
    beyond.priority = (1 << 21) + 1;
    EXPECT_THROW((void)q.add("p", 0, beyond), std::invalid_argument);
}

TEST_F(Queue, WorkerKilledMidJobIsRecoveredAndCompletedOnce) {
    if (shared_server().external()) GTEST_SKIP() << "needs the private server's options in a child";
    redkit::queue<int> q(redis, "crash");
    const auto added = q.add("fragile", 42);
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);

    // No thread of this test process is alive here, so fork() is safe.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(pipe_fds[0]);
        try {
            redkit::client c(shared_server().url());
            redkit::queue<int> cq(c, "crash");
            redkit::worker_options<int> o;
            o.lease_duration = 400ms;
            o.stalled_interval = 100ms;  // one stalled check per interval per queue, whoever runs it
            redkit::worker<int> w(
                cq,
                [&](redkit::job<int>& j) {
                    const std::string msg = j.id() + "\n";
                    [[maybe_unused]] const auto n = ::write(pipe_fds[1], msg.data(), msg.size());
                    std::this_thread::sleep_for(30s);  // "hangs" until killed
                },
                o);
            std::this_thread::sleep_for(30s);
        } catch (...) {
        }
        ::_exit(3);
    }
    ::close(pipe_fds[1]);
    pollfd p{pipe_fds[0], POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the child never started the job";
    char buf[64] = {};
    const auto n = ::read(pipe_fds[0], buf, sizeof buf - 1);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf), added.id + "\n");
    EXPECT_EQ(q.counts().active, 1);
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));

    std::atomic<int> runs{0};
    counter done;
    recorder stalled;
    auto o = fast_options<int>();
    o.stalled_interval = 100ms;
    o.on_stalled = [&](const redkit::stalled_jobs& s) {
        for (const auto& id : s.recovered) stalled.push(id);
    };
    o.on_completed = [&](const redkit::job<int>& j) {
        EXPECT_EQ(j.stalls(), 1);
        done.add();
    };
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            EXPECT_EQ(j.data(), 42);
            ++runs;
        },
        o);
    ASSERT_TRUE(done.wait_for(1, 10s));
    EXPECT_TRUE(w.close(5s));
    EXPECT_EQ(runs.load(), 1);
    EXPECT_EQ(done.value(), 1);
    EXPECT_EQ(stalled.items(), std::vector<std::string>{added.id});
    EXPECT_EQ(::read(pipe_fds[0], buf, sizeof buf), 0);  // the killed child started it once, no more
    ::close(pipe_fds[0]);
    const auto j = q.get_job(added.id);
    ASSERT_TRUE(j);
    EXPECT_EQ(j->state(), redkit::job_state::completed);
    EXPECT_EQ(j->stalls(), 1);
    const auto c = q.counts();
    EXPECT_EQ(c.completed, 1);
    EXPECT_EQ(c.active + c.waiting + c.failed, 0);
}

TEST_F(Queue, TenThousandJobsThroughFourWorkersOfEightThreadsCompleteExactlyOnce) {
    constexpr int jobs = 10000;
    redkit::queue<int> q(redis, "many");
    std::vector<redkit::bulk_job<int>> batch;
    batch.reserve(jobs);
    for (int i = 0; i < jobs; ++i) batch.push_back({"n", i, {}});
    const auto ids = q.add_bulk(batch);
    ASSERT_EQ(ids.size(), static_cast<std::size_t>(jobs));
    EXPECT_EQ(q.counts().waiting, jobs);

    std::vector<std::atomic<int>> handled(jobs);
    std::vector<std::atomic<int>> completed(jobs);
    counter done;
    redkit_test::error_log errors;
    std::vector<std::unique_ptr<redkit::worker<int>>> workers;
    for (int k = 0; k < 4; ++k) {
        auto o = fast_options<int>(8);
        o.lease_duration = 30s;              // no stalls, even under sanitizers
        if (k % 2 == 1) o.reply_spin = 0us;  // half of them sleep for every reply, half may poll
        o.on_completed = [&](const redkit::job<int>& j) {
            ++completed[static_cast<std::size_t>(j.data())];
            done.add();
        };
        o.on_error = errors.callback();
        workers.push_back(std::make_unique<redkit::worker<int>>(
            q, [&](redkit::job<int>& j) { ++handled[static_cast<std::size_t>(j.data())]; }, o));
    }
    ASSERT_TRUE(done.wait_for(jobs, 60s)) << done.value();
    for (auto& w : workers) EXPECT_TRUE(w->close(5s));
    int not_once = 0;
    for (int i = 0; i < jobs; ++i) {
        if (handled[static_cast<std::size_t>(i)] != 1 || completed[static_cast<std::size_t>(i)] != 1) ++not_once;
    }
    EXPECT_EQ(not_once, 0);
    EXPECT_EQ(errors.size(), 0u);
    const auto c = q.counts();
    EXPECT_EQ(c.completed, jobs);
    EXPECT_EQ(c.waiting + c.active + c.failed + c.delayed, 0);
}

TEST_F(Queue, PauseStopsConsumptionAndResumeRestartsIt) {
    redkit::queue<int> q(redis, "paused");
    counter done;
    auto o = fast_options<int>(2);
    o.block_timeout = 100ms;  // the idle worker polls the server often; it still must not take jobs
    o.on_completed = [&](const redkit::job<int>&) { done.add(); };
    redkit::worker<int> w(
        q, [](redkit::job<int>&) {}, o);
    q.pause();
    EXPECT_TRUE(q.is_paused());
    for (int i = 0; i < 5; ++i) (void)q.add("p", i);
    EXPECT_FALSE(done.wait_for(1, 400ms));  // a window of several block timeouts
    auto c = q.counts();
    EXPECT_EQ(c.paused, 5);
    EXPECT_EQ(c.waiting, 0);
    EXPECT_EQ(c.active, 0);
    q.resume();
    EXPECT_FALSE(q.is_paused());
    ASSERT_TRUE(done.wait_for(5, 5s));
    EXPECT_EQ(q.counts().completed, 5);
}

TEST_F(Queue, GracefulCloseFinishesRunningJobsAndTakesNoMore) {
    redkit::queue<int> q(redis, "closing");
    for (int i = 0; i < 8; ++i) (void)q.add("slow", i);
    counter started;
    std::atomic<int> finished{0};
    auto o = fast_options<int>(4);
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>&) {
            started.add();
            std::this_thread::sleep_for(300ms);  // the job's work
            ++finished;
        },
        o);
    ASSERT_TRUE(started.wait_for(4, 5s));
    EXPECT_TRUE(w.close(5s));
    EXPECT_EQ(finished.load(), 4);
    EXPECT_EQ(started.value(), 4);
    const auto c = q.counts();
    EXPECT_EQ(c.completed, 4);
    EXPECT_EQ(c.active, 0);
    EXPECT_EQ(c.waiting, 4);
}

TEST_F(Queue, CloseOfAnIdleWorkerIsPrompt) {
    redkit::queue<int> q(redis, "idle");
    auto o = fast_options<int>(2);
    o.block_timeout = 10s;
    redkit::worker<int> w(
        q, [](redkit::job<int>&) {}, o);
    // let it reach its blocking pop
    wait_until_blocked(1);
    ASSERT_NE(redis.command<std::string>("CLIENT", "LIST").find("cmd=bzpopmin"), std::string::npos);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(w.close(5s));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST_F(Queue, IdleWorkerBlocksOnTheServerAndWakesOnAdd) {
    redkit::queue<int> q(redis, "wake");
    counter done;
    auto o = fast_options<int>();
    o.block_timeout = 10s;
    redkit::worker<int> w(
        q, [&](redkit::job<int>&) { done.add(); }, o);
    wait_until_blocked(1);
    const auto evalsha = redkit_test::command_calls(redis, "evalsha");
    const auto bzpopmin = redkit_test::command_calls(redis, "bzpopmin");
    (void)q.add("now", 1);
    ASSERT_TRUE(done.wait_for(1, 2s));  // well before the 10 s block timeout
    // no busy polling: while idle, the worker sent only a handful of commands
    std::this_thread::sleep_for(300ms);
    EXPECT_LE(redkit_test::command_calls(redis, "evalsha") - evalsha, 6);
    EXPECT_LE(redkit_test::command_calls(redis, "bzpopmin") - bzpopmin, 3);
}

TEST_F(Queue, IdleWorkersWakeOneAfterAnother) {
    redkit::queue<int> q(redis, "chain");
    counter started, release;
    auto o = fast_options<int>();
    o.block_timeout = 10s;  // a worker left asleep would sleep past the test's deadline
    const auto slow = [&](redkit::job<int>&) {
        started.add();
        release.wait_for(1, 10s);
    };
    redkit::worker<int> a(q, slow, o);
    redkit::worker<int> b(q, slow, o);
    ASSERT_EQ(wait_until_blocked(2), 2u);
    // one add sets the marker once: the worker it wakes takes one job and sets it again
    std::vector<redkit::bulk_job<int>> jobs{{"one", 1, {}}, {"two", 2, {}}};
    (void)q.add_bulk(jobs);
    EXPECT_TRUE(started.wait_for(2, 3s));
    release.add();
    EXPECT_TRUE(a.close(5s));
    EXPECT_TRUE(b.close(5s));
    EXPECT_EQ(q.counts().completed, 2);
}

TEST_F(Queue, StateOfLeasedJobsIsFoundByTheirLease) {
    redkit::queue<int> q(redis, "states");
    redkit::job_options prio, later, plain;
    prio.job_id = "x*";
    prio.priority = 5;
    later.job_id = "x[1]";
    later.delay = 1h;
    plain.job_id = "x";
    (void)q.add("prioritized", 1, prio);
    (void)q.add("delayed", 2, later);
    (void)q.add("waiting", 3, plain);
    counter started, release;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>&) {
            started.add();
            release.wait_for(1, 10s);
        },
        fast_options<int>(2));
    ASSERT_TRUE(started.wait_for(2, 5s));  // "x" from the line, then "x*" by priority
    redkit::job_options other;
    other.job_id = "x?";  // a glob that would match "x*"'s lease if the pattern were not escaped
    (void)q.add("waits", 4, other);

    const auto state = [&](const char* id) { return q.get_job(id).value().state(); };
    EXPECT_EQ(state("x"), redkit::job_state::active);
    EXPECT_EQ(state("x*"), redkit::job_state::active);
    EXPECT_EQ(state("x[1]"), redkit::job_state::delayed);
    EXPECT_EQ(state("x?"), redkit::job_state::waiting);
    EXPECT_GT(q.get_job("x*")->processed_at(), 0);
    EXPECT_EQ(q.remove("x"), redkit::remove_result::active);
    EXPECT_EQ(q.remove("x*"), redkit::remove_result::active);
    EXPECT_EQ(q.remove("x?"), redkit::remove_result::removed);
    EXPECT_EQ(q.remove("x[1]"), redkit::remove_result::removed);
    EXPECT_EQ(q.counts().active, 2);
    release.add();
    EXPECT_TRUE(w.close(5s));
    EXPECT_EQ(state("x"), redkit::job_state::completed);
    EXPECT_EQ(state("x*"), redkit::job_state::completed);
    EXPECT_EQ(q.counts().active, 0);
}

TEST_F(Queue, RetentionKeepsWhatWasAsked) {
    redkit::queue<int> q(redis, "retention");
    counter done;
    auto o = fast_options<int>();
    o.on_completed = [&](const redkit::job<int>&) { done.add(); };
    o.on_failed = [&](const redkit::job<int>&, const redkit::job_failure&) { done.add(); };
    redkit::worker<int> w(
        q,
        [](redkit::job<int>& j) {
            if (j.data() < 0) throw std::runtime_error("negative");
        },
        o);

    redkit::job_options last2;
    last2.remove_on_complete = redkit::retention::keep_last(2);
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(q.add("k", i, last2).id);
    ASSERT_TRUE(done.wait_for(6, 5s));
    EXPECT_EQ(q.counts().completed, 2);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(q.get_job(ids[static_cast<std::size_t>(i)]), std::nullopt) << i;
    EXPECT_TRUE(q.get_job(ids[4]));
    EXPECT_TRUE(q.get_job(ids[5]));

    redkit::job_options none;
    none.remove_on_complete = redkit::retention::keep_none();
    none.remove_on_fail = redkit::retention::keep_none();
    const auto gone = q.add("n", 1, none);
    const auto gone_failed = q.add("n", -1, none);
    redkit::job_options keep_failed;  // default: keep all failed
    const auto kept_failed = q.add("f", -2, keep_failed);
    ASSERT_TRUE(done.wait_for(9, 5s));
    EXPECT_EQ(q.get_job(gone.id), std::nullopt);
    EXPECT_EQ(q.get_job(gone_failed.id), std::nullopt);
    ASSERT_TRUE(q.get_job(kept_failed.id));
    EXPECT_EQ(q.get_job(kept_failed.id)->state(), redkit::job_state::failed);
    EXPECT_EQ(q.counts().failed, 1);

    redkit::job_options young;
    young.remove_on_complete = redkit::retention::keep_for(100ms);
    const auto old_one = q.add("a", 1, young);
    ASSERT_TRUE(done.wait_for(10, 5s));
    std::this_thread::sleep_for(200ms);  // let old_one age past 100 ms (server clock)
    const auto new_one = q.add("a", 2, young);
    ASSERT_TRUE(done.wait_for(11, 5s));
    EXPECT_EQ(q.get_job(old_one.id), std::nullopt);
    EXPECT_TRUE(q.get_job(new_one.id));
}

TEST_F(Queue, UndecodablePayloadFailsOnlyThatJob) {
    redkit::queue<json> raw(redis, "orders");
    redkit::queue<order> q(redis, "orders");
    redkit::job_options three;
    three.attempts = 3;
    const auto bad = raw.add("ship", json{{"sku", "B-2"}, {"qty", "many"}}, three);
    const auto good = q.add("ship", order{"A-1", 2}, three);
    counter done;
    recorder reasons;
    std::atomic<int> handled{0};
    auto o = fast_options<order>();
    o.on_failed = [&](const redkit::job<order>& j, const redkit::job_failure& f) {
        EXPECT_FALSE(f.will_retry);
        EXPECT_FALSE(j.has_data());
        reasons.push(f.reason);
        done.add();
    };
    o.on_completed = [&](const redkit::job<order>&) { done.add(); };
    redkit::worker<order> w(
        q, [&](redkit::job<order>& j) { handled += j.data().qty; }, o);
    ASSERT_TRUE(done.wait_for(2, 5s));
    EXPECT_EQ(handled.load(), 2);
    ASSERT_EQ(reasons.items().size(), 1u);
    EXPECT_NE(reasons.items()[0].find("job " + bad.id + ": data does not decode"), std::string::npos)
        << reasons.items()[0];
    const auto jb = q.get_job(bad.id);
    ASSERT_TRUE(jb);
    EXPECT_EQ(jb->state(), redkit::job_state::failed);
    EXPECT_EQ(jb->attempts_made(), 1);  // no retry: it would not decode the next time either
    EXPECT_THROW(jb->data(), redkit::error);
    EXPECT_EQ(jb->raw_data(), R"({"qty":"many","sku":"B-2"})");
    EXPECT_EQ(q.get_job(good.id)->state(), redkit::job_state::completed);
}

TEST_F(Queue, AddingAnExistingJobIdIsANoOp) {
    redkit::queue<int> q(redis, "dedupe");
    redkit::job_options o;
    o.job_id = "welcome:ada@example.com";
    const auto first = q.add("welcome", 1, o);
    const auto second = q.add("welcome", 2, o);
    EXPECT_TRUE(first.created);
    EXPECT_FALSE(second.created);
    EXPECT_EQ(first.id, "welcome:ada@example.com");
    EXPECT_EQ(second.id, first.id);
    EXPECT_EQ(q.counts().waiting, 1);
    EXPECT_EQ(q.get_job(first.id)->data(), 1);
    const auto bulk = q.add_bulk({{"welcome", 3, o}, {"other", 4, {}}});
    EXPECT_FALSE(bulk[0].created);
    EXPECT_TRUE(bulk[1].created);
    EXPECT_EQ(q.counts().waiting, 2);
    // the id is escaped into one key part: no stray keys
    EXPECT_EQ(redis.command<long long>("EXISTS", "queue:{dedupe}:job:welcome%3Aada@example.com"), 1);
}

TEST_F(Queue, InvalidOptionsThrowNamingTheField) {
    redkit::queue<int> q(redis, "invalid");
    const auto throws_naming = [&](redkit::job_options o, const std::string& field) {
        try {
            (void)q.add("x", 1, o);
            ADD_FAILURE() << field << " accepted";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
        }
    };
    redkit::job_options o;
    o.attempts = 0;
    throws_naming(o, "job_options.attempts");
    o = {};
    o.delay = -1ms;
    throws_naming(o, "job_options.delay");
    o = {};
    o.priority = (1 << 21) + 1;
    throws_naming(o, "job_options.priority");
    o = {};
    o.backoff = redkit::backoff_policy::exponential(10ms, 1.5);
    throws_naming(o, "job_options.backoff.jitter");
    o = {};
    o.backoff = redkit::backoff_policy::fixed(0ms);
    throws_naming(o, "job_options.backoff.delay");
    o = {};
    o.job_id = "123";
    throws_naming(o, "job_options.job_id");
    o = {};
    o.remove_on_complete = redkit::retention::keep_for(-5ms);
    throws_naming(o, "job_options.remove_on_complete.age");
    EXPECT_EQ(q.counts().waiting, 0);  // nothing was added

    const auto worker_throws = [&](redkit::worker_options<int> wo, const std::string& field) {
        try {
            redkit::worker<int> w(
                q, [](redkit::job<int>&) {}, wo);
            ADD_FAILURE() << field << " accepted";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
        }
    };
    redkit::worker_options<int> wo;
    wo.concurrency = 0;
    worker_throws(wo, "worker_options.concurrency");
    wo = {};
    wo.lease_duration = 0ms;
    worker_throws(wo, "worker_options.lease_duration");
    wo = {};
    wo.lease_renew_interval = wo.lease_duration;
    worker_throws(wo, "worker_options.lease_renew_interval");
    wo = {};
    wo.block_timeout = 0ms;
    worker_throws(wo, "worker_options.block_timeout");
    wo = {};
    wo.max_stalled_count = -1;
    worker_throws(wo, "worker_options.max_stalled_count");
    wo = {};
    wo.reply_spin = -1us;
    worker_throws(wo, "worker_options.reply_spin");
    wo.reply_spin = 11ms;
    worker_throws(wo, "worker_options.reply_spin");
    EXPECT_THROW(redkit::queue<int>(redis, ""), std::invalid_argument);
}

TEST_F(Queue, ProgressIsStoredWhileTheJobRuns) {
    redkit::queue<int> q(redis, "progress");
    const auto added = q.add("p", 1);
    counter reported, release;
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            EXPECT_TRUE(j.update_progress(json{{"percent", 50}}));
            reported.add();
            release.wait_for(1, 5s);
        },
        fast_options<int>());
    ASSERT_TRUE(reported.wait_for(1, 5s));
    const auto running = q.get_job(added.id);
    ASSERT_TRUE(running);
    EXPECT_EQ(running->state(), redkit::job_state::active);
    EXPECT_EQ(running->progress()["percent"], 50);
    EXPECT_THROW((void)const_cast<redkit::job<int>&>(*running).update_progress(1), redkit::error);  // not leased here
    release.add();
    EXPECT_TRUE(w.close(5s));
}

TEST_F(Queue, LeaseIsRenewedWhileALongHandlerRuns) {
    redkit::queue<int> q(redis, "renew");
    const auto added = q.add("long", 1);
    std::atomic<int> runs{0};
    redkit_test::error_log errors;
    counter done, started;
    auto o = fast_options<int>();
    o.lease_duration = 200ms;  // renewed every 100 ms
    o.stalled_interval = 30ms;
    o.on_error = errors.callback();
    o.on_completed = [&](const redkit::job<int>&) { done.add(); };
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>&) {
            ++runs;
            started.add();
            std::this_thread::sleep_for(800ms);  // four leases long
        },
        o);
    ASSERT_TRUE(started.wait_for(1, 5s));
    redkit::worker<int> checker(
        q, [&](redkit::job<int>&) { ++runs; }, o);  // checks for stalls too
    ASSERT_TRUE(done.wait_for(1, 5s));
    EXPECT_EQ(runs.load(), 1);
    EXPECT_EQ(errors.size(), 0u);
    EXPECT_EQ(q.get_job(added.id)->stalls(), 0);
}

TEST_F(Queue, LeasesAreRenewedWhileEveryThreadIsBusy) {
    // nothing but the leases wakes the worker's keeper here: no idle thread to fetch for, no
    // delayed job, its own stalled-job check once an hour
    redkit::queue<int> q(redis, "busy-renew");
    (void)q.add("long", 1);
    (void)q.add("long", 2);
    std::atomic<int> runs{0};
    std::atomic<bool> lost{false};
    counter done, started;
    auto o = fast_options<int>(2);
    o.lease_duration = 200ms;  // renewed every 100 ms
    o.stalled_interval = 1h;
    o.on_completed = [&](const redkit::job<int>&) { done.add(); };
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) {
            ++runs;
            started.add();
            std::this_thread::sleep_for(800ms);  // four leases long
            if (j.lease_lost()) lost = true;
        },
        o);
    ASSERT_TRUE(started.wait_for(2, 5s));
    std::vector<std::string> recovered;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done.wait_for(2, 20ms) && std::chrono::steady_clock::now() < deadline) {
        const auto r = q.check_stalled(5).recovered;
        recovered.insert(recovered.end(), r.begin(), r.end());
    }
    EXPECT_TRUE(recovered.empty());
    EXPECT_FALSE(lost.load());
    EXPECT_EQ(runs.load(), 2);
    EXPECT_EQ(q.counts().completed, 2);
}

// Looking ahead (worker_options::lookahead_below) at concurrency 1: after a short job the worker
// leases up to 8 jobs ahead and sends outcomes without waiting, in batches; an outcome waiting
// behind a long job is sent while it runs (the keeper's flush); every job still runs once, in
// order; a long job turns it off (the job after it is taken alone), and 0 never leases ahead.
TEST_F(Queue, LookingAheadRecordsEachOutcomeAtOnceAndStopsAfterALongJob) {
    for (const auto lookahead : {1000us, 0us}) {
        redkit::queue<int> q(redis, "ahead-" + std::to_string(lookahead.count()));
        std::vector<std::string> ids;
        for (int i = 0; i < 30; ++i) ids.push_back(q.add("short", i).id);
        const std::string long_one = q.add("long", 30).id;
        for (int i = 31; i < 36; ++i) ids.push_back(q.add("short", i).id);
        recorder ran;
        std::atomic<long long> most_active{0}, active_during_long{0};
        std::atomic<bool> previous_recorded{false}, long_recorded{false};
        auto o = fast_options<int>();
        o.lookahead_below = lookahead;
        redkit::client watcher(shared_server().url());  // reads the server's record while jobs run
        redkit::worker<int> w(
            q,
            [&](redkit::job<int>& j) {
                ran.push(j.id());
                const long long active = redkit::queue<int>(watcher, q.name()).counts().active;
                if (active > most_active) most_active = active;
                if (j.id() == ids[30]) {
                    // the long job's outcome too, though this job was leased ahead of it
                    for (int k = 0; k < 200 && !long_recorded; ++k) {
                        long_recorded = redkit::queue<int>(watcher, q.name()).get_job(long_one)->state() ==
                                        redkit::job_state::completed;
                        if (!long_recorded) std::this_thread::sleep_for(1ms);
                    }
                }
                if (j.name() == "long") {
                    // the take sent as this job started (leasing the next ahead) may still be on its way
                    long long now_active = active;
                    for (int k = 0; k < 100 && lookahead.count() > 0 && now_active < 2; ++k) {
                        std::this_thread::sleep_for(1ms);
                        now_active = redkit::queue<int>(watcher, q.name()).counts().active;
                    }
                    active_during_long = now_active;
                    if (now_active > most_active) most_active = now_active;
                    // the job before it is recorded as completed while this one runs
                    const std::string before = ids[29];
                    for (int k = 0; k < 200 && !previous_recorded; ++k) {
                        previous_recorded = redkit::queue<int>(watcher, q.name()).get_job(before)->state() ==
                                            redkit::job_state::completed;
                        if (!previous_recorded) std::this_thread::sleep_for(1ms);
                    }
                    std::this_thread::sleep_for(300ms);
                }
            },
            o);
        for (int k = 0; k < 1000 && q.counts().completed < 36; ++k) std::this_thread::sleep_for(5ms);
        EXPECT_TRUE(w.close(5s));
        EXPECT_EQ(q.counts().completed, 36);
        std::vector<std::string> expected(ids.begin(), ids.begin() + 30);
        expected.push_back(long_one);
        expected.insert(expected.end(), ids.begin() + 30, ids.end());
        EXPECT_EQ(ran.items(), expected) << "each job once, in the queue's order";
        EXPECT_TRUE(previous_recorded.load());
        EXPECT_TRUE(long_recorded.load());
        if (lookahead.count() > 0) {
            EXPECT_GE(active_during_long.load(), 2) << "leased ahead after the short jobs: the long one and more";
            EXPECT_LE(most_active.load(), 9) << "the job running and at most 8 ahead";
        } else {
            EXPECT_EQ(most_active.load(), 1) << "without lookahead a worker of concurrency 1 holds one job";
        }
    }
}

TEST_F(Queue, JobThatStallsTooOftenFails) {
    struct steps : redkit::observer {  // what the stalled-job check reports: "<stage> <id> <reason>"
        void on_job(const redkit::job_event& e) override {
            if (e.stage == redkit::job_stage::added) return;
            std::lock_guard<std::mutex> lock(mutex);
            seen.push_back(std::to_string(static_cast<int>(e.stage)) + " " + std::string(e.id) + " " +
                           std::string(e.reason));
        }
        std::vector<std::string> take() {
            std::lock_guard<std::mutex> lock(mutex);
            return std::exchange(seen, {});
        }
        std::mutex mutex;
        std::vector<std::string> seen;
    };
    const auto watched = std::make_shared<steps>();
    auto observed = redis.options();
    observed.observer = watched;
    redkit::queue<int> q(redkit::client(observed), "stalls");
    const auto added = q.add("ghost", 1);
    const redkit::detail::queue_core core(redis, "stalls", redkit::key_space{});  // the same keys as q's
    // a "worker" that leases the job and then vanishes: the move script with a 50 ms lease
    std::string ghost_lease;
    const auto lease = [&] {
        std::vector<std::string> args{core.job_prefix, "ghost-token", "50", "1", "0", "0"};
        const auto r = redis.eval<std::vector<redkit::reply>>(
            redkit::detail::queue_script<redkit::detail::queue_lua::move>(), core.keys, args);
        ASSERT_EQ(r.at(1).size(), 2u);
        EXPECT_EQ(r[1][0].text(), added.id);
        ghost_lease = std::to_string(r[2].integer()) + "|ghost-token";
    };
    const auto wait_past_lease = [&] {
        const auto until = server_ms() + 60;
        while (server_ms() < until) std::this_thread::sleep_for(5ms);
    };
    lease();
    EXPECT_TRUE(q.check_stalled(1).recovered.empty());  // lease still valid
    wait_past_lease();
    auto s = q.check_stalled(1);
    EXPECT_EQ(s.recovered, std::vector<std::string>{added.id});
    EXPECT_EQ(q.counts().waiting, 1);
    const auto stage = [](redkit::job_stage st) { return std::to_string(static_cast<int>(st)) + " "; };
    EXPECT_EQ(watched->take(), std::vector<std::string>{stage(redkit::job_stage::stalled) + added.id + " "});
    lease();
    wait_past_lease();
    s = q.check_stalled(1);
    EXPECT_TRUE(s.recovered.empty());
    EXPECT_EQ(s.failed, std::vector<std::string>{added.id});
    EXPECT_EQ(watched->take(), std::vector<std::string>{stage(redkit::job_stage::failed) + added.id + " stalled"});
    const auto j = q.get_job(added.id);
    EXPECT_EQ(j->state(), redkit::job_state::failed);
    EXPECT_EQ(j->stalls(), 2);
    EXPECT_NE(j->failed_reason().find("stalled more than 1"), std::string::npos);

    // the ghost's late completion is refused: the token no longer holds the job
    // move: prefix, token, lease ms, want 0, rearm 0, one outcome of 11 fields (see
    // queue/detail/lua/take.hpp)
    std::vector<std::string> args{core.job_prefix, "t2", "1000", "0", "0", "1"};
    for (const char* f : {"c", "null", "", "0", "1", "", "", "0", ""}) args.emplace_back(f);
    args.insert(args.begin() + 6, {added.id, ghost_lease});
    const auto r = redis.eval<std::vector<redkit::reply>>(
        redkit::detail::queue_script<redkit::detail::queue_lua::move>(), core.keys, args);
    EXPECT_EQ(r.at(0)[0].integer(), 0);
    EXPECT_EQ(q.get_job(added.id)->state(), redkit::job_state::failed);
}

TEST_F(Queue, RetryRemoveDrainAndObliterate) {
    redkit::queue<int> q(redis, "manage");
    counter finished;
    std::atomic<bool> fail{true};
    auto o = fast_options<int>();
    o.on_completed = [&](const redkit::job<int>&) { finished.add(); };
    o.on_failed = [&](const redkit::job<int>&, const redkit::job_failure&) { finished.add(); };
    auto w = std::make_unique<redkit::worker<int>>(
        q,
        [&](redkit::job<int>&) {
            if (fail) throw std::runtime_error("down");
        },
        o);
    const auto a = q.add("a", 1);
    const auto b = q.add("b", 2);
    ASSERT_TRUE(finished.wait_for(2, 5s));
    EXPECT_EQ(q.counts().failed, 2);
    fail = false;
    EXPECT_TRUE(q.retry(a.id));
    EXPECT_FALSE(q.retry("nope"));
    ASSERT_TRUE(finished.wait_for(3, 5s));
    EXPECT_EQ(q.get_job(a.id)->state(), redkit::job_state::completed);
    EXPECT_EQ(q.retry_failed(), 1u);
    ASSERT_TRUE(finished.wait_for(4, 5s));
    EXPECT_EQ(q.counts().completed, 2);
    EXPECT_TRUE(w->close(5s));
    w.reset();

    const auto c = q.add("c", 3);
    redkit::job_options later;
    later.delay = 1h;
    (void)q.add("d", 4, later);
    EXPECT_EQ(q.remove(c.id), redkit::remove_result::removed);
    EXPECT_EQ(q.remove(c.id), redkit::remove_result::not_found);
    EXPECT_EQ(q.remove(b.id), redkit::remove_result::removed);
    EXPECT_EQ(q.get_job(b.id), std::nullopt);
    for (int i = 0; i < 5; ++i) (void)q.add("e", i);
    EXPECT_EQ(q.drain(), 5u);
    EXPECT_EQ(q.counts().delayed, 1);
    EXPECT_EQ(q.drain(true), 1u);

    // an active job is neither removed nor obliterated without force
    const auto busy = q.add("busy", 9);
    counter started, release;
    redkit::worker<int> holder(
        q,
        [&](redkit::job<int>&) {
            started.add();
            release.wait_for(1, 5s);
        },
        fast_options<int>());
    ASSERT_TRUE(started.wait_for(1, 5s));
    EXPECT_EQ(q.remove(busy.id), redkit::remove_result::active);
    EXPECT_FALSE(q.obliterate());
    release.add();
    EXPECT_TRUE(holder.close(5s));
    EXPECT_TRUE(q.obliterate());
    std::size_t left = 0;
    for (const auto& key : redis.scan("queue:{manage}:*")) {
        ADD_FAILURE() << "left behind: " << key;
        ++left;
    }
    EXPECT_EQ(left, 0u);
}

TEST_F(Queue, WorkerSurvivesItsConnectionsBeingKilled) {
    if (shared_server().external()) GTEST_SKIP() << "kills connections";
    redkit::queue<int> q(redis, "survive");
    counter done;
    redkit_test::error_log errors;
    auto o = fast_options<int>(2);
    o.on_error = errors.callback();
    o.on_completed = [&](const redkit::job<int>&) { done.add(); };
    redkit::worker<int> w(
        q, [](redkit::job<int>&) {}, o);
    (void)q.add("one", 1);
    ASSERT_TRUE(done.wait_for(1, 5s));
    // kill every other connection (the worker's blocking one included)
    redkit::connection admin(shared_server().options());
    admin.command<long long>("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
    redkit::queue<int> fresh(redkit::client(shared_server().url()), "survive");  // this test's pool was killed too
    (void)fresh.add("two", 2);
    ASSERT_TRUE(done.wait_for(2, 10s));
    EXPECT_GE(errors.size(), 1u);  // the lost connection was reported
    EXPECT_TRUE(w.close(5s));
}

TEST_F(Queue, LateOutcomeOfALostLeaseIsRefusedAndReported) {
    redkit::queue<int> q(redis, "lost");
    const auto added = q.add("slow", 1);
    counter started, release, lost_seen, completed;
    redkit_test::error_log errors;
    auto o = fast_options<int>();
    o.lease_duration = 300ms;  // renewed every 150 ms: the renewal learns the lease is gone
    o.stalled_interval = 60s;  // its own check runs once at start: only this test recovers the job
    o.on_error = errors.callback();
    redkit::worker<int> first(
        q,
        [&](redkit::job<int>& j) {
            started.add();
            const auto deadline = std::chrono::steady_clock::now() + 5s;
            while (!j.lease_lost() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
            if (j.lease_lost()) lost_seen.add();
            release.wait_for(1, 5s);
            return "first";
        },
        o);
    ASSERT_TRUE(started.wait_for(1, 5s));
    // the worker's own stalled-job check (once at start: it holds the lock for 60 s) must have
    // run before the lease is expired below, or it could recover the job first (its keeper
    // thread may start late under a sanitizer)
    const redkit::detail::queue_core core(redis, q.name(), redkit::key_space{});
    ASSERT_TRUE(redkit_test::eventually(
        [&] { return redis.command<long long>("EXISTS", core.key(redkit::detail::queue_key::stalled_check)) == 1; },
        5s));
    // the lease "expires" (as if the first worker had hung past it) and the job is recovered
    const auto active = core.key(redkit::detail::queue_key::active);
    const auto leases = redis.command<std::vector<std::string>>("ZRANGE", active, 0, -1);
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].rfind(added.id + ":", 0), 0u);  // "<id>:<lease>"
    // a renewal landing between the ZADD and the check puts the deadline back: try again (a slow
    // sanitizer build can lose that race)
    std::vector<std::string> recovered;
    for (int i = 0; i < 50 && recovered.empty(); ++i) {
        redis.command<long long>("ZADD", active, "XX", 0, leases[0]);
        recovered = q.check_stalled(5).recovered;
    }
    EXPECT_EQ(recovered, std::vector<std::string>{added.id});
    auto o2 = fast_options<int>();
    o2.on_completed = [&](const redkit::job<int>&) { completed.add(); };
    redkit::worker<int> second(
        q, [](redkit::job<int>&) { return "second"; }, o2);
    ASSERT_TRUE(completed.wait_for(1, 5s));
    ASSERT_TRUE(lost_seen.wait_for(1, 5s));
    release.add();
    EXPECT_TRUE(first.close(5s));
    EXPECT_EQ(errors.size(), 1u);
    EXPECT_TRUE(errors.contains("job " + added.id + ": lease lost"));
    const auto j = q.get_job(added.id);
    EXPECT_EQ(j->state(), redkit::job_state::completed);
    EXPECT_EQ(j->return_value(), "second");
    EXPECT_EQ(j->stalls(), 1);
    EXPECT_EQ(q.counts().completed, 1);
}

TEST_F(Queue, CloseIsPromptWhileRedisIsDown) {
    if (shared_server().external()) GTEST_SKIP() << "kills its own server";
    redkit_test::redis_server own;
    auto copts = own.options();
    copts.connect_timeout = 200ms;
    redkit::client c(copts);
    redkit::queue<int> q(c, "down");
    redkit_test::error_log errors;
    counter done;
    auto o = fast_options<int>(4);
    o.on_error = errors.callback();
    o.on_completed = [&](const redkit::job<int>&) { done.add(); };
    redkit::worker<int> w(
        q, [](redkit::job<int>&) {}, o);
    (void)q.add("one", 1);
    ASSERT_TRUE(done.wait_for(1, 5s));
    own.kill();
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (errors.size() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    EXPECT_GE(errors.size(), 1u);  // the blocking connection's loss was reported
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(w.close(5s));  // nothing running: nothing to record
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
}

// A flow in one queue runs on a single server and on Redis Cluster alike (one slot); a flow
// across queues needs one server: on a cluster it is refused before anything is written.
TEST_F(Queue, FlowInOneQueueRunsEverywhereAndAcrossQueuesOnlyOnOneServer) {
    redkit::queue<json> q(redis, "flow-home");
    redkit::flow_job parent;
    parent.name = "sum";
    parent.data = 0;
    for (int i = 1; i <= 3; ++i) {
        redkit::flow_job child;
        child.name = "part";
        child.data = i;
        parent.children.push_back(child);
    }
    const auto added = q.add_flow(parent);
    counter done;
    auto o = fast_options<json>();
    o.on_completed = [&](const redkit::job<json>& j) {
        if (j.id() == added.id) done.add();
    };
    redkit::worker<json> w(
        q,
        [](redkit::job<json>& j) {
            long long sum = j.data().get<long long>();
            for (const auto& c : j.children_values()) sum += c.value.get<long long>();
            return sum;
        },
        o);
    ASSERT_TRUE(done.wait_for(1, 5s));
    EXPECT_EQ(q.get_job(added.id)->return_value(), 6);

    redkit::flow_job spread = parent;
    spread.children[0].queue = "flow-away";
    if (redkit_test::cluster_mode()) {
        EXPECT_THROW((void)q.add_flow(spread), std::invalid_argument);
        EXPECT_EQ(q.counts().waiting_children, 0);
    } else {
        const auto far = q.add_flow(spread);
        EXPECT_EQ(far.children[0].queue, "flow-away");
        EXPECT_EQ(redkit::queue<json>(redis, "flow-away").counts().waiting, 1);
    }
}

// client_options::observer sees each job's steps: added, each attempt's start and end, with the
// time it waited (by the server's clock) and the time its handler ran.
TEST_F(Queue, EachJobStepReachesTheObserver) {
    struct steps : redkit::observer {
        void on_job(const redkit::job_event& e) override {
            std::lock_guard<std::mutex> lock(mutex);
            seen.push_back({std::string(e.queue), std::string(e.id), std::string(e.name), e.stage, e.attempt, e.waited,
                            e.duration, std::string(e.reason)});
        }
        struct step {
            std::string queue, id, name;
            redkit::job_stage stage;
            int attempt;
            std::chrono::milliseconds waited;
            std::chrono::nanoseconds duration;
            std::string reason;
        };
        std::vector<step> of(const std::string& id) {
            std::lock_guard<std::mutex> lock(mutex);
            std::vector<step> out;
            for (const auto& s : seen) {
                if (s.id == id) out.push_back(s);
            }
            return out;
        }
        std::mutex mutex;
        std::vector<step> seen;
    };
    const auto watched = std::make_shared<steps>();
    auto options = redis.options();
    options.observer = watched;
    redkit::client observed(options);
    redkit::queue<int> q(observed, "observed");
    redkit::job_options retry;
    retry.attempts = 2;
    retry.backoff = redkit::backoff_policy::fixed(10ms);
    const auto ok = q.add("slow", 1);
    const auto flaky = q.add("flaky", 2, retry);
    const auto doomed = q.add("doomed", 3);
    std::this_thread::sleep_for(300ms);  // they wait: the first start says so

    counter finished;
    auto o = fast_options<int>();
    o.on_completed = [&](const redkit::job<int>&) { finished.add(); };
    o.on_failed = [&](const redkit::job<int>&, const redkit::job_failure& f) {
        if (!f.will_retry) finished.add();
    };
    std::atomic<int> flaky_runs{0};
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) -> json {
            if (j.data() == 1) std::this_thread::sleep_for(50ms);
            if (j.data() == 2 && flaky_runs++ == 0) throw std::runtime_error("try again");
            if (j.data() == 3) throw redkit::unrecoverable_error("bad data");
            return j.data();
        },
        o);
    ASSERT_TRUE(finished.wait_for(3, 5s));
    EXPECT_TRUE(w.close(5s));

    using stage = redkit::job_stage;
    const auto first = watched->of(ok.id);
    ASSERT_EQ(first.size(), 3U);
    EXPECT_EQ(first[0].stage, stage::added);
    EXPECT_EQ(first[0].queue, "observed");
    EXPECT_EQ(first[0].name, "slow");
    EXPECT_EQ(first[1].stage, stage::started);
    EXPECT_EQ(first[1].attempt, 1);
    EXPECT_GE(first[1].waited, 250ms);
    EXPECT_EQ(first[2].stage, stage::completed);
    EXPECT_GE(first[2].duration, 50ms);

    const auto second = watched->of(flaky.id);
    ASSERT_EQ(second.size(), 5U);
    EXPECT_EQ(second[1].stage, stage::started);
    EXPECT_EQ(second[2].stage, stage::retrying);
    EXPECT_EQ(second[2].attempt, 1);
    EXPECT_EQ(second[2].reason, "try again");
    EXPECT_EQ(second[3].stage, stage::started);
    EXPECT_EQ(second[3].attempt, 2);
    EXPECT_EQ(second[4].stage, stage::completed);
    EXPECT_EQ(second[4].attempt, 2);

    const auto third = watched->of(doomed.id);
    ASSERT_EQ(third.size(), 3U);
    EXPECT_EQ(third[2].stage, stage::failed);
    EXPECT_EQ(third[2].reason, "bad data");

    // an add that finds its id taken created nothing: no step
    redkit::job_options named;
    named.job_id = "nightly";
    EXPECT_TRUE(q.add("report", 4, named).created);
    EXPECT_FALSE(q.add("report", 4, named).created);
    EXPECT_EQ(watched->of("nightly").size(), 1U);
}

// queue::workers counts the live workers of a queue in every process: each from its start until it
// closes.
TEST_F(Queue, WorkersCountFromTheirStartUntilTheyClose) {
    redkit::queue<int> q(redis, "staffed");
    EXPECT_EQ(q.workers(), 0U);
    auto o = redkit_test::quick_worker<int>(2);
    const auto handler = [](redkit::job<int>& j) -> json { return j.data(); };
    auto first = std::make_unique<redkit::worker<int>>(q, handler, o);
    redkit::worker<int> second(redkit::queue<int>(redkit::client(redis.options()), "staffed"), handler, o);
    ASSERT_TRUE(redkit_test::eventually([&] { return q.workers() == 2; }, 5s)) << q.workers();
    EXPECT_TRUE(first->close(5s));
    first.reset();
    EXPECT_EQ(q.workers(), 1U);
    EXPECT_TRUE(second.close(5s));
    EXPECT_EQ(q.workers(), 0U);
    EXPECT_EQ(redkit::queue<int>(redis, "elsewhere").workers(), 0U);
}
