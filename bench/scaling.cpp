// SPDX-License-Identifier: MIT
// redkit_scaling: GET throughput against the number of threads, for the ways a service can call
// Redis from many threads at once, measured in one sitting against one redis-server:
//   hiredis          a raw hiredis context per thread (what hand-written code does)
//   pooled           a redkit client with multiplex = false and a connection per thread
//   multiplexed      a redkit client with the default options (client_options::multiplex): the
//                    threads share one connection and their commands go out in batches (while
//                    few threads call, some spill to the pool's free connections)
//   redis-benchmark  redis-benchmark -c T -P 1 -t get (the reference the targets are set against)
//   callbacks        no application threads: T chains of GET in flight on a default client, each
//                    reply's callback (future::then) sending its chain's next GET; the one thread
//                    that started them sleeps (what an event loop gets from then())
//   coroutines       (C++20 builds) the same with T coroutines, each a loop of co_await GET
//   cluster          (only when named in --impls) a redkit client with the default options on a
//                    Redis Cluster of 3 primaries and 3 replicas started for the run; each thread
//                    GETs a key of its own, so the keys spread over the primaries
// Each (threads, implementation) point runs for a fixed time; the points are interleaved and
// repeated (--rounds, default 3), and the median is reported. Per point: ops/s, the client's CPU
// per op (this process's user+sys; for redis-benchmark its own), the slowest and fastest thread's
// op count (starvation shows as a large spread), p99 and worst latency.
//
// Usage: redkit_scaling [--threads 1,8,50,200] [--seconds 3] [--rounds 3] [--impls a,b] [--json FILE]
// (--impls: by default all but cluster; coroutines only in a C++20 build)
// Output: one JSON line per point and round, then a table of medians and the ratios to
// redis-benchmark; --json writes the medians for scripts/plot-scaling.
#include <redkit/redkit.hpp>

#include "support/redis_cluster.hpp"
#if REDKIT_COROUTINES
#include "support/detached.hpp"
#endif
#include "support/redis_server.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

namespace {

using clock_type = std::chrono::steady_clock;

struct point {
    double ops_per_s = 0;
    double cpu_us_per_op = 0;
    long long min_thread_ops = 0, max_thread_ops = 0;
    double p99_us = 0, max_us = 0;
};

double cpu_seconds(int who) {
    rusage u{};
    getrusage(who, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// The GETs of one thread, or of one chain in flight (a callback's or a coroutine's): their count
// and latencies, touched only by whichever thread runs it at the moment.
struct chain {
    long long n = 0;
    std::vector<float> latencies;
    void record(clock_type::time_point sent) {
        latencies.push_back(
            static_cast<float>(std::chrono::duration<double, std::micro>(clock_type::now() - sent).count()));
        ++n;
    }
};

// A point from its threads' or chains' records, `elapsed` seconds and `cpu` seconds of this process.
point summarize(const std::vector<chain>& state, double elapsed, double cpu) {
    point p;
    long long total = 0;
    std::vector<float> all;
    p.min_thread_ops = state.front().n;
    for (const auto& ch : state) {
        total += ch.n;
        p.min_thread_ops = std::min(p.min_thread_ops, ch.n);
        p.max_thread_ops = std::max(p.max_thread_ops, ch.n);
        all.insert(all.end(), ch.latencies.begin(), ch.latencies.end());
    }
    p.ops_per_s = static_cast<double>(total) / elapsed;
    p.cpu_us_per_op = total > 0 ? cpu * 1e6 / static_cast<double>(total) : 0;
    if (!all.empty()) {
        const auto at = std::min(static_cast<std::size_t>(static_cast<double>(all.size()) * 0.99), all.size() - 1);
        std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(at), all.end());
        p.p99_us = all[at];
        p.max_us = *std::max_element(all.begin(), all.end());
    }
    return p;
}

// Runs `threads` threads calling get() for `seconds`; each thread's latencies are recorded.
point run_threads(int threads, double seconds, const std::function<std::function<void()>(int)>& make_get) {
    std::vector<std::function<void()>> gets;
    for (int t = 0; t < threads; ++t) gets.push_back(make_get(t));
    std::vector<chain> state(static_cast<std::size_t>(threads));
    std::atomic<int> ready{0};
    std::atomic<bool> go{false}, stop{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            chain& mine = state[static_cast<std::size_t>(t)];
            mine.latencies.reserve(1 << 16);
            ++ready;
            while (!go.load()) std::this_thread::yield();
            while (!stop.load(std::memory_order_relaxed)) {
                const auto a = clock_type::now();
                gets[static_cast<std::size_t>(t)]();
                mine.record(a);
            }
        });
    }
    while (ready.load() < threads) std::this_thread::yield();
    const double cpu0 = cpu_seconds(RUSAGE_SELF);
    const auto start = clock_type::now();
    go = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : ts) t.join();
    const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
    return summarize(state, elapsed, cpu_seconds(RUSAGE_SELF) - cpu0);
}

// Starts `count` chains from this thread (start(i, chain, stop, live) sends chain i's first GET;
// each chain sends its next until `stop`, then decrements `live`), sleeps `seconds`, waits for
// them to end, and sums them up.
point run_chains(int count, double seconds,
                 const std::function<void(std::size_t, chain&, const std::atomic<bool>&, std::atomic<int>&)>& start) {
    std::vector<chain> state(static_cast<std::size_t>(count));
    for (auto& ch : state) ch.latencies.reserve(1 << 14);
    std::atomic<bool> stop{false};
    std::atomic<int> live{count};
    const double cpu0 = cpu_seconds(RUSAGE_SELF);
    const auto begin = clock_type::now();
    for (std::size_t i = 0; i < state.size(); ++i) start(i, state[i], stop, live);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    while (live.load() > 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
    const double elapsed = std::chrono::duration<double>(clock_type::now() - begin).count();
    return summarize(state, elapsed, cpu_seconds(RUSAGE_SELF) - cpu0);
}

// then(): each reply's callback records it and sends its chain's next GET.
void send_chained(const redkit::client& c, const std::string& key, chain& ch, const std::atomic<bool>& stop,
                  std::atomic<int>& live) {
    const auto sent = clock_type::now();
    c.submit<std::string>("GET", key).then([&c, &key, &ch, &stop, &live, sent](redkit::future<std::string> f) {
        try {
            if (f.get().size() != 100) std::abort();
        } catch (const std::exception& e) {
            std::cerr << "redkit_scaling: callbacks: " << e.what() << '\n';
            std::abort();
        }
        ch.record(sent);
        if (!stop.load(std::memory_order_relaxed)) {
            send_chained(c, key, ch, stop, live);
        } else {
            --live;
        }
    });
}

#if REDKIT_COROUTINES
// co_await: a loop of GETs, resumed on the thread that read each reply.
redkit_test::detached get_loop(const redkit::client& c, const std::string& key, chain& ch,
                               const std::atomic<bool>& stop, std::atomic<int>& live) {
    while (!stop.load(std::memory_order_relaxed)) {
        const auto sent = clock_type::now();
        const std::string v = co_await c.submit<std::string>("GET", key);
        if (v.size() != 100) std::abort();
        ch.record(sent);
    }
    --live;
}
#endif

point run_redis_benchmark(int port, int threads, double seconds, double expected_rate) {
    // enough requests for about `seconds` at the rate the other implementations reached
    const long long n = std::max<long long>(20000, static_cast<long long>(expected_rate * seconds));
    const std::string cmd = "redis-benchmark -h 127.0.0.1 -p " + std::to_string(port) + " -c " +
                            std::to_string(threads) + " -P 1 -d 100 -n " + std::to_string(n) + " -t get -q 2>/dev/null";
    const double cpu0 = cpu_seconds(RUSAGE_CHILDREN);
    std::string out;
    if (FILE* f = popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, f)) out += buf;
        pclose(f);
    }
    point p;
    const auto at = out.rfind("GET: ");
    if (at == std::string::npos) return p;
    p.ops_per_s = std::atof(out.c_str() + at + 5);
    p.cpu_us_per_op = (cpu_seconds(RUSAGE_CHILDREN) - cpu0) * 1e6 / static_cast<double>(n);
    return p;
}

std::vector<int> parse_list(const std::string& s) {
    std::vector<int> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');) out.push_back(std::atoi(item.c_str()));
    return out;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<int> thread_counts{1, 8, 50, 200};
    double seconds = 3;
    int rounds = 3;
    std::string json_path;
    std::vector<std::string> impls{"hiredis", "pooled", "multiplexed", "callbacks", "redis-benchmark"};
#if REDKIT_COROUTINES
    impls.insert(impls.end() - 1, "coroutines");
#endif
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--threads" && i + 1 < argc) {
            thread_counts = parse_list(argv[++i]);
        } else if (a == "--seconds" && i + 1 < argc) {
            seconds = std::atof(argv[++i]);
        } else if (a == "--rounds" && i + 1 < argc) {
            rounds = std::atoi(argv[++i]);
        } else if (a == "--impls" && i + 1 < argc) {
            impls.clear();
            std::stringstream in(argv[++i]);
            for (std::string item; std::getline(in, item, ',');) impls.push_back(item);
        } else if (a == "--json" && i + 1 < argc) {
            json_path = argv[++i];
        } else {
            std::cerr << "usage: redkit_scaling [--threads 1,8,50,200] [--seconds 3] [--rounds 3] [--impls a,b] "
                         "[--json FILE]\n";
            return 2;
        }
    }
    redkit_test::redis_server server({}, redkit_test::tls_mode::off);
    const int port = redkit::parse_url(server.url()).port;
    const std::string key = "bench:scaling:key";
    const std::string value(100, 'v');
    {
        redkit::client setup(server.url());
        setup.command<void>("SET", key, value);
        // a second of warm-up, not reported: a fresh server and process answer the first
        // thousands of commands slower, which went to whichever point ran first
        const auto until = clock_type::now() + std::chrono::seconds(1);
        while (clock_type::now() < until) (void)setup.command<std::string>("GET", key);
    }
    std::cout << "redkit_scaling: server " << server.url() << ", " << seconds << " s per point, " << rounds
              << " rounds, median reported\n";

    std::unique_ptr<redkit_test::redis_cluster> cluster;  // made for the "cluster" implementation
    std::unique_ptr<redkit::client> cluster_client;
    if (std::find(impls.begin(), impls.end(), "cluster") != impls.end()) {
        cluster = std::make_unique<redkit_test::redis_cluster>();
        cluster_client = std::make_unique<redkit::client>(cluster->url());
        const int most = *std::max_element(thread_counts.begin(), thread_counts.end());
        for (int t = 0; t < most; ++t) cluster_client->command<void>("SET", key + ":" + std::to_string(t), value);
        std::cout << "redkit_scaling: cluster " << cluster->url() << "\n";
    }

    std::map<std::pair<int, std::string>, std::vector<point>> results;
    for (int round = 0; round < rounds; ++round) {
        for (const int threads : thread_counts) {
            // the order rotates per round, so that no implementation always runs first
            for (std::size_t k = 0; k < impls.size(); ++k) {
                const std::string& impl = impls[(k + static_cast<std::size_t>(round)) % impls.size()];
                point p;
                if (impl == "hiredis") {
                    std::vector<redisContext*> raw;
                    for (int t = 0; t < threads; ++t) {
                        timeval tv{5, 0};
                        raw.push_back(redisConnectWithTimeout("127.0.0.1", port, tv));
                    }
                    p = run_threads(threads, seconds, [&](int t) {
                        redisContext* c = raw[static_cast<std::size_t>(t)];
                        return [c, &key] {
                            auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size()));
                            if (!r || r->len != 100) std::abort();
                            freeReplyObject(r);
                        };
                    });
                    for (auto* c : raw) redisFree(c);
                } else if (impl == "pooled" || impl == "multiplexed") {
                    auto o = redkit::parse_url(server.url());
                    o.multiplex = impl == "multiplexed";
                    // pooled: a connection per thread; multiplexed: the default client's options
                    if (!o.multiplex) o.pool_size = static_cast<std::size_t>(threads);
                    redkit::client c(o);
                    p = run_threads(threads, seconds, [&](int) {
                        return [&c, &key] {
                            if (c.command<std::string>("GET", key).size() != 100) std::abort();
                        };
                    });
                } else if (impl == "callbacks") {
                    redkit::client c(server.url());
                    p = run_chains(threads, seconds, [&](std::size_t, chain& ch, const auto& stop, auto& live) {
                        send_chained(c, key, ch, stop, live);
                    });
                } else if (impl == "coroutines") {
#if REDKIT_COROUTINES
                    redkit::client c(server.url());
                    p = run_chains(threads, seconds, [&](std::size_t, chain& ch, const auto& stop, auto& live) {
                        get_loop(c, key, ch, stop, live);
                    });
#else
                    std::cerr << "redkit_scaling: coroutines: built without C++20 coroutines\n";
                    return 2;
#endif
                } else if (impl == "cluster") {
                    redkit::client& c = *cluster_client;
                    p = run_threads(threads, seconds, [&](int t) {
                        return [&c, k = key + ":" + std::to_string(t)] {
                            if (c.command<std::string>("GET", k).size() != 100) std::abort();
                        };
                    });
                } else {
                    double best = 0;
                    for (const auto& [k2, pts] : results) {
                        if (k2.first == threads) {
                            for (const auto& q : pts) best = std::max(best, q.ops_per_s);
                        }
                    }
                    p = run_redis_benchmark(port, threads, seconds, std::max(best / 3, 30000.0));
                }
                results[{threads, impl}].push_back(p);
                std::printf(
                    "{\"threads\": %d, \"impl\": \"%s\", \"round\": %d, \"ops_per_s\": %.0f, \"cpu_us_per_op\": %.2f, "
                    "\"min_thread_ops\": %lld, \"max_thread_ops\": %lld, \"p99_us\": %.0f, \"max_us\": %.0f}\n",
                    threads, impl.c_str(), round, p.ops_per_s, p.cpu_us_per_op, p.min_thread_ops, p.max_thread_ops,
                    p.p99_us, p.max_us);
                std::fflush(stdout);
            }
        }
    }

    std::printf("\n%8s %-16s %10s %10s %12s %10s %10s %12s\n", "threads", "impl", "ops/s", "cpu us/op", "thread spread",
                "p99 us", "max us", "x redis-bm");
    std::ostringstream json;
    json << "{\"points\": [";
    bool first = true;
    for (const int threads : thread_counts) {
        std::vector<double> bm;
        for (const auto& p : results[{threads, "redis-benchmark"}]) bm.push_back(p.ops_per_s);
        const double reference = median(bm);
        for (const auto& impl : impls) {
            const auto& pts = results[{threads, impl}];
            std::vector<double> ops, cpu, p99, worst, spread;
            for (const auto& p : pts) {
                ops.push_back(p.ops_per_s);
                cpu.push_back(p.cpu_us_per_op);
                p99.push_back(p.p99_us);
                worst.push_back(p.max_us);
                spread.push_back(p.min_thread_ops > 0
                                     ? static_cast<double>(p.max_thread_ops) / static_cast<double>(p.min_thread_ops)
                                     : 0);
            }
            const double m = median(ops);
            std::printf("%8d %-16s %10.0f %10.2f %12.2f %10.0f %10.0f %12.2f\n", threads, impl.c_str(), m, median(cpu),
                        median(spread), median(p99), median(worst), reference > 0 ? m / reference : 0);
            json << (first ? "" : ", ") << "{\"threads\": " << threads << ", \"impl\": \"" << impl
                 << "\", \"ops_per_s\": " << m << ", \"cpu_us_per_op\": " << median(cpu)
                 << ", \"p99_us\": " << median(p99) << "}";
            first = false;
        }
    }
    json << "]}\n";
    if (!json_path.empty()) std::ofstream(json_path) << json.str();
    return 0;
}
