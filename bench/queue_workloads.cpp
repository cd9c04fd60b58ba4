// SPDX-License-Identifier: MIT
// Queue workloads: adding jobs in bulk, and processing no-op jobs with concurrency 1 and 16. The
// payload is bench/fixtures/order.json (an order update, ~230 bytes of JSON), as nlohmann::json.
//
// Baselines ("hiredis"), what a careful engineer writes by hand for a plain Redis list queue:
//   queue_add_bulk      encode the payload, then LPUSH wait <payload>, pipelined 1000 per write
//                       (no job record, no id, no options: the floor of "put bytes in a list").
//   queue_process_c*    the reliable-queue pattern from the Redis docs: LMOVE wait processing
//                       RIGHT LEFT, parse the JSON, LREM processing 1 <payload>: two round trips
//                       per job, one connection per thread (16 threads for c16). No lease, no
//                       retry, no stalled-job recovery, no result stored.
// redkit does a job hash per job, leases with a token and deadline, stores the result and keeps
// the completed job (retention keep-all), one script round trip per batch.
//
// queue_process_c1 runs the worker with its defaults, which poll the socket for up to 100 us for
// each reply while jobs flow (worker_options::reply_spin); queue_process_c1_nospin turns that off.
// The raw loops never poll.
//
// queue_process_rate_limited runs the c16 worker on a queue limited to 100 x scale job starts per
// 200 ms (set_rate_limit), so the 10 windows of a repetition take at least 9 x 200 ms: its figure
// can reach at most 1000 x scale / 1.8 s (5.6k jobs/s in a full run). It fails the run when any
// 200 ms window started more jobs than the limit (server times of the starts, job::processed_at).
// Its baseline is the same worker without a limit (queue_process_c16's).
//
// Each repetition starts from a fresh queue filled (untimed, in before_each) with the jobs to
// process; a processing repetition is timed from the worker's construction until every job was
// reported completed (on_completed), close() included.
#include <redkit/queue.hpp>

#include "bench.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace redkit_bench {
namespace {

struct queue_state {
    std::unique_ptr<redkit::client> redis;
    std::unique_ptr<redkit::queue<nlohmann::json>> q;
    std::unique_ptr<redkit::queue<nlohmann::json>> grouped;  // the grouped rows' jobs, apart
    nlohmann::json payload;
    std::vector<redisContext*> raw;  // raw[0] for single-threaded loops
    const std::string wait_key = "bench:rawq:wait";
    const std::string processing_key = "bench:rawq:processing";
    ~queue_state() {
        for (auto* c : raw) redisFree(c);
    }
};

void check(redisReply* r) {
    if (!r) throw std::runtime_error("raw hiredis: no reply");
    const bool bad = r->type == REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (bad) throw std::runtime_error("raw hiredis: error reply");
}

void raw_fill(queue_state& st, long long n) {
    redisContext* c = st.raw[0];
    check(raw_command(c, {"DEL", st.wait_key, st.processing_key}));
    for (long long first = 0; first < n; first += 1000) {
        const long long m = std::min<long long>(1000, n - first);
        for (long long i = 0; i < m; ++i) {
            const std::string data = st.payload.dump();
            const char* av[] = {"LPUSH", st.wait_key.c_str(), data.c_str()};
            const size_t lens[] = {5, st.wait_key.size(), data.size()};
            redisAppendCommandArgv(c, 3, av, lens);
        }
        for (long long i = 0; i < m; ++i) {
            void* r = nullptr;
            if (redisGetReply(c, &r) != REDIS_OK) throw std::runtime_error("raw LPUSH failed");
            check(static_cast<redisReply*>(r));
        }
    }
}

// LMOVE + parse + LREM until the list is empty; returns jobs done.
long long raw_consume(queue_state& st, redisContext* c) {
    long long done = 0;
    for (;;) {
        const char* av[] = {"LMOVE", st.wait_key.c_str(), st.processing_key.c_str(), "RIGHT", "LEFT"};
        const size_t lens[] = {5, st.wait_key.size(), st.processing_key.size(), 5, 4};
        auto* r = static_cast<redisReply*>(redisCommandArgv(c, 5, av, lens));
        if (!r) throw std::runtime_error("raw LMOVE failed");
        if (r->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            return done;
        }
        const std::string data(r->str, r->len);
        freeReplyObject(r);
        const auto job = nlohmann::json::parse(data);
        sink = sink + job.size();
        const char* rv[] = {"LREM", st.processing_key.c_str(), "1", data.c_str()};
        const size_t rl[] = {4, st.processing_key.size(), 1, data.size()};
        check(static_cast<redisReply*>(redisCommandArgv(c, 4, rv, rl)));
        ++done;
    }
}

// Fills st.q (or st.grouped, with groups > 0: job i in group "tenant-<i mod groups>") with n jobs.
void redkit_fill(queue_state& st, long long n, int groups = 0) {
    redkit::queue<nlohmann::json>& q = groups > 0 ? *st.grouped : *st.q;
    if (!q.obliterate(true)) throw std::runtime_error("obliterate failed");
    std::vector<redkit::bulk_job<nlohmann::json>> jobs(static_cast<std::size_t>(n), {"order-updated", st.payload, {}});
    if (groups > 0) {
        for (std::size_t i = 0; i < jobs.size(); ++i) {
            jobs[i].options.group = "tenant-" + std::to_string(i % static_cast<std::size_t>(groups));
        }
    }
    sink = sink + q.add_bulk(jobs).size();
}

void redkit_process(queue_state& st, long long n, std::size_t concurrency,
                    std::chrono::microseconds reply_spin = redkit::worker_options<nlohmann::json>{}.reply_spin,
                    std::chrono::microseconds lookahead = redkit::worker_options<nlohmann::json>{}.lookahead_below,
                    bool grouped = false) {
    std::mutex m;
    std::condition_variable cv;
    long long completed = 0;
    redkit::worker_options<nlohmann::json> o;
    o.concurrency = concurrency;
    o.reply_spin = reply_spin;
    o.lookahead_below = lookahead;
    o.on_completed = [&](const redkit::job<nlohmann::json>&) {
        std::lock_guard<std::mutex> lock(m);
        if (++completed == n) cv.notify_all();
    };
    redkit::worker<nlohmann::json> w(
        grouped ? *st.grouped : *st.q, [](redkit::job<nlohmann::json>& j) { sink = sink + j.data().size(); }, o);
    {
        std::unique_lock<std::mutex> lock(m);
        if (!cv.wait_for(lock, std::chrono::minutes(5), [&] { return completed == n; })) {
            throw std::runtime_error("queue bench: jobs did not complete");
        }
    }
    w.close(std::chrono::seconds(10));
}

// The c16 worker under a rate limit of `max` starts per `per`; throws if any window started more.
void redkit_process_limited(queue_state& st, long long n, long long max, std::chrono::milliseconds per) {
    st.q->set_rate_limit(max, per);
    std::mutex m;
    std::condition_variable cv;
    std::vector<long long> starts;
    redkit::worker_options<nlohmann::json> o;
    o.concurrency = 16;
    o.on_completed = [&](const redkit::job<nlohmann::json>& j) {
        std::lock_guard<std::mutex> lock(m);
        starts.push_back(j.processed_at());
        if (static_cast<long long>(starts.size()) == n) cv.notify_all();
    };
    redkit::worker<nlohmann::json> w(
        *st.q, [](redkit::job<nlohmann::json>& j) { sink = sink + j.data().size(); }, o);
    {
        std::unique_lock<std::mutex> lock(m);
        if (!cv.wait_for(lock, std::chrono::minutes(5), [&] { return static_cast<long long>(starts.size()) == n; })) {
            throw std::runtime_error("queue bench: rate-limited jobs did not complete");
        }
    }
    w.close(std::chrono::seconds(10));
    st.q->remove_rate_limit();
    std::sort(starts.begin(), starts.end());
    for (std::size_t i = 0; i + static_cast<std::size_t>(max) < starts.size(); ++i) {
        if (starts[i + static_cast<std::size_t>(max)] - starts[i] < per.count()) {
            throw std::runtime_error("queue bench: more than " + std::to_string(max) + " jobs started within " +
                                     std::to_string(per.count()) + " ms: the rate limit did not hold");
        }
    }
}

void raw_process(queue_state& st, long long n, std::size_t threads) {
    std::atomic<long long> done{0};
    std::vector<std::thread> ts;
    for (std::size_t t = 0; t < threads; ++t) ts.emplace_back([&, t] { done += raw_consume(st, st.raw[t]); });
    for (auto& t : ts) t.join();
    if (done != n) throw std::runtime_error("raw queue bench: not every job was processed");
}

void add_queue(context& ctx, std::vector<workload>& out) {
    auto st = std::make_shared<queue_state>();
    auto o = ctx.base;
    o.pool_size = 4;
    st->redis = std::make_unique<redkit::client>(o);
    st->q = std::make_unique<redkit::queue<nlohmann::json>>(*st->redis, "bench-orders");
    st->grouped = std::make_unique<redkit::queue<nlohmann::json>>(*st->redis, "bench-orders-grouped");
    st->payload = nlohmann::json::parse(read_file(ctx.fixtures_dir + "/order.json"));
    for (int i = 0; i < 16; ++i) st->raw.push_back(raw_connect(ctx.base));
    const long long jobs = 1000 * ctx.scale;

    out.push_back({"queue_add_bulk",
                   jobs,
                   {{"hiredis", [st](long long n) { raw_fill(*st, n); }},
                    {"redkit",
                     [st](long long n) {
                         std::vector<redkit::bulk_job<nlohmann::json>> batch(static_cast<std::size_t>(n),
                                                                             {"order-updated", st->payload, {}});
                         sink = sink + st->q->add_bulk(batch).size();
                     }}},
                   [st] {
                       st->q->obliterate(true);
                       check(raw_command(st->raw[0], {"DEL", st->wait_key, st->processing_key}));
                   },
                   "baseline: LPUSH of the payload, pipelined 1000 per write (no job record, no id); target: "
                   "bee-queue's ~65k jobs/s"});

    // Both implementations' queues are refilled before every repetition (untimed).
    const auto refill = [st, jobs] {
        redkit_fill(*st, jobs);
        raw_fill(*st, jobs);
    };
    out.push_back({"queue_process_c1",
                   jobs,
                   {{"hiredis", [st](long long n) { raw_process(*st, n, 1); }},
                    {"redkit", [st](long long n) { redkit_process(*st, n, 1); }}},
                   refill,
                   "baseline: LMOVE + LREM reliable-queue loop (no leases, retries or records); target: 3x BullMQ's "
                   "~3.5k jobs/s"});
    out.push_back(
        {"queue_process_c1_nospin",
         jobs,
         {{"hiredis", [st](long long n) { raw_process(*st, n, 1); }},
          {"redkit", [st](long long n) { redkit_process(*st, n, 1, std::chrono::microseconds(0)); }}},
         refill,
         "as queue_process_c1, with worker_options::reply_spin = 0: the worker sleeps in read() for every reply"});
    out.push_back(
        {"queue_process_c1_nolookahead",
         jobs,
         {{"hiredis", [st](long long n) { raw_process(*st, n, 1); }},
          {"redkit",
           [st](long long n) {
               redkit_process(*st, n, 1, redkit::worker_options<nlohmann::json>{}.reply_spin,
                              std::chrono::microseconds(0));
           }}},
         refill,
         "as queue_process_c1, with worker_options::lookahead_below = 0: each job's outcome and the next take "
         "wait for their round trip"});
    out.push_back({"queue_process_c16",
                   jobs,
                   {{"hiredis", [st](long long n) { raw_process(*st, n, 16); }},
                    {"redkit", [st](long long n) { redkit_process(*st, n, 16); }}},
                   refill,
                   "baseline: the LMOVE + LREM loop on 16 connections; target: 3x BullMQ's ~14k jobs/s"});
    const long long per_window = 100 * ctx.scale;
    out.push_back(
        {"queue_process_rate_limited",
         jobs,
         {{"redkit-unlimited", [st](long long n) { redkit_process(*st, n, 16); }},
          {"redkit", [st, per_window](
                         long long n) { redkit_process_limited(*st, n, per_window, std::chrono::milliseconds(200)); }}},
         [st, jobs] { redkit_fill(*st, jobs); },
         "baseline: the same c16 worker without a limit; limit " + std::to_string(per_window) +
             " starts per 200 ms, so at most " + std::to_string(jobs * 1000 / 1800) +
             " jobs/s here (10 windows, the first starts at once); checked: no window exceeds it"});
    // Groups: the same worker on jobs spread over 100 groups (job_options::group, one queue),
    // against it on jobs without a group (another queue); both are filled before each repetition.
    const auto refill_both = [st, jobs] {
        redkit_fill(*st, jobs);
        redkit_fill(*st, jobs, 100);
    };
    const auto spin = redkit::worker_options<nlohmann::json>{}.reply_spin;
    const auto ahead = redkit::worker_options<nlohmann::json>{}.lookahead_below;
    for (const std::size_t c : {std::size_t{1}, std::size_t{16}}) {
        out.push_back(
            {"queue_process_grouped_c" + std::to_string(c),
             jobs,
             {{"redkit-ungrouped", [st, c](long long n) { redkit_process(*st, n, c); }},
              {"redkit", [st, c, spin, ahead](long long n) { redkit_process(*st, n, c, spin, ahead, true); }}},
             refill_both,
             "baseline: the same worker (concurrency " + std::to_string(c) +
                 ") on jobs without a group; here the jobs are spread over 100 groups, taken in turn"});
    }
}

const registrar reg(50, "queue", &add_queue);

}  // namespace
}  // namespace redkit_bench
