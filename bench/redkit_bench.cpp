// SPDX-License-Identifier: MIT
// redkit_bench: redkit next to hand-written raw hiredis (and nlohmann/json where JSON is
// involved), measured in the same run, interleaved, several repetitions, median reported.
//
// Starts a throw-away redis-server on a free loopback port (or uses REDIS_URL). For every workload
// and implementation it prints one JSON line:
//   {"workload": "get", "impl": "redkit", "ops_per_s": N, "ops": N, "cpu_us_per_op": N}
// where cpu_us_per_op is this process's user+sys CPU time (getrusage) per operation. Then a table
// with redkit/hiredis ratios of throughput and CPU per operation, and the peak RSS.
//
// Usage: redkit_bench [--quick] [--reps N] [--only WORKLOAD[,WORKLOAD...]]
#include <redkit/redkit.hpp>

#include "support/redis_server.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>

namespace {

using clock_type = std::chrono::steady_clock;

struct sample {
    double ops_per_s = 0;
    double cpu_us_per_op = 0;
    long long ops = 0;
};

double cpu_seconds(int who) {
    rusage ru{};
    getrusage(who, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Runs body(ops) once and measures wall and CPU time around it.
sample measure(long long ops, const std::function<void(long long)>& body) {
    const double cpu0 = cpu_seconds(RUSAGE_SELF);
    const auto t0 = clock_type::now();
    body(ops);
    const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
    const double cpu = cpu_seconds(RUSAGE_SELF) - cpu0;
    return {static_cast<double>(ops) / wall, cpu * 1e6 / static_cast<double>(ops), ops};
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// ---- raw hiredis helpers (the baseline is what a careful engineer would write by hand) ----

redisContext* raw_connect(const redkit::client_options& o) {
    timeval tv{1, 0};
    redisContext* c = o.unix_socket.empty() ? redisConnectWithTimeout(o.host.c_str(), o.port, tv)
                                            : redisConnectUnixWithTimeout(o.unix_socket.c_str(), tv);
    if (!c || c->err) throw std::runtime_error("raw hiredis connect failed");
    redisSetTimeout(c, tv);
    return c;
}

std::string raw_get(redisContext* c, const std::string& key) {
    const char* argv[] = {"GET", key.c_str()};
    const size_t lens[] = {3, key.size()};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 2, argv, lens));
    if (!r) throw std::runtime_error("raw GET failed");
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        throw std::runtime_error("raw GET: unexpected reply");
    }
    std::string out(r->str, r->len);
    freeReplyObject(r);
    return out;
}

void raw_set(redisContext* c, const std::string& key, const std::string& value) {
    const char* argv[] = {"SET", key.c_str(), value.c_str()};
    const size_t lens[] = {3, key.size(), value.size()};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 3, argv, lens));
    if (!r) throw std::runtime_error("raw SET failed");
    const bool ok = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!ok) throw std::runtime_error("raw SET: unexpected reply");
}

struct impl_run {
    std::string impl;
    std::function<void(long long)> body;
};

struct workload {
    std::string name;
    long long ops;
    std::vector<impl_run> impls;  // the first is the baseline the others are compared with
};

struct result_row {
    std::string workload, impl;
    sample s;
};

volatile std::size_t sink = 0;  // keeps results observable so nothing is optimised away

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    int reps = 0;
    std::string only;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--quick") {
            quick = true;
        } else if (a == "--reps" && i + 1 < argc) {
            reps = std::atoi(argv[++i]);
        } else if (a == "--only" && i + 1 < argc) {
            only = argv[++i];
        } else {
            std::cerr << "usage: redkit_bench [--quick] [--reps N] [--only w1,w2]\n";
            return 2;
        }
    }
    if (reps <= 0) reps = quick ? 3 : 7;
    const long long scale = quick ? 1 : 10;

    try {
        std::unique_ptr<redkit_test::redis_server> server;
        const char* env_url = std::getenv("REDIS_URL");
        std::string url;
        if (env_url && *env_url) {
            url = env_url;
        } else {
            server = std::make_unique<redkit_test::redis_server>();
            url = server->url();
        }
        redkit::client_options base = redkit::parse_url(url);
        std::cerr << "redkit_bench: server " << url << (quick ? " (quick)" : "") << ", " << reps << " repetitions\n";

        const std::string value100(100, 'v');
        const std::string key = "bench:key";
        {
            redisContext* c = raw_connect(base);
            raw_set(c, key, value100);
            for (int i = 0; i < 16; ++i) raw_set(c, "bench:key:" + std::to_string(i), value100);
            redisFree(c);
        }

        auto one = base;
        one.pool_size = 1;
        redkit::client rk(one);
        redisContext* raw = raw_connect(base);

        std::vector<workload> workloads;

        workloads.push_back({"get", 3000 * scale,
                             {{"hiredis", [&](long long n) {
                                   for (long long i = 0; i < n; ++i) sink = sink + raw_get(raw, key).size();
                               }},
                              {"redkit", [&](long long n) {
                                   for (long long i = 0; i < n; ++i) sink = sink + rk.command<std::string>("GET", key).size();
                               }}}});

        workloads.push_back({"set", 3000 * scale,
                             {{"hiredis", [&](long long n) {
                                   for (long long i = 0; i < n; ++i) raw_set(raw, key, value100);
                               }},
                              {"redkit", [&](long long n) {
                                   for (long long i = 0; i < n; ++i) rk.command<void>("SET", key, value100);
                               }}}});

        std::vector<std::string> keys16;
        for (int i = 0; i < 16; ++i) keys16.push_back("bench:key:" + std::to_string(i));
        workloads.push_back({"get_pipelined16", 16 * 300 * scale,
                             {{"hiredis", [&](long long n) {
                                   for (long long b = 0; b < n / 16; ++b) {
                                       for (const auto& k : keys16) {
                                           const char* av[] = {"GET", k.c_str()};
                                           const size_t lens[] = {3, k.size()};
                                           redisAppendCommandArgv(raw, 2, av, lens);
                                       }
                                       for (int i = 0; i < 16; ++i) {
                                           void* r = nullptr;
                                           if (redisGetReply(raw, &r) != REDIS_OK) throw std::runtime_error("raw pipeline");
                                           auto* rr = static_cast<redisReply*>(r);
                                           std::string v(rr->str, rr->len);
                                           sink = sink + v.size();
                                           freeReplyObject(rr);
                                       }
                                   }
                               }},
                              {"redkit", [&](long long n) {
                                   for (long long b = 0; b < n / 16; ++b) {
                                       redkit::pipeline p(rk);
                                       for (const auto& k : keys16) p.command("GET", k);
                                       for (const auto& r : p.exec()) sink = sink + r.text().size();
                                   }
                               }}}});

        // 50 threads sharing the process-wide client vs 50 threads with a raw context each.
        constexpr int threads50 = 50;
        auto shared = base;
        shared.pool_size = threads50;
        redkit::set_default_client(redkit::client(shared));
        const auto run_threads = [&](long long n, const std::function<void(long long)>& per_thread) {
            std::vector<std::thread> ts;
            for (int t = 0; t < threads50; ++t) ts.emplace_back(per_thread, n / threads50);
            for (auto& t : ts) t.join();
        };
        std::vector<redisContext*> raw50;
        for (int t = 0; t < threads50; ++t) raw50.push_back(raw_connect(base));
        std::atomic<int> next_raw{0};
        workloads.push_back({"get_threads50", 5000 * scale,
                             {{"hiredis", [&](long long n) {
                                   next_raw = 0;
                                   run_threads(n, [&](long long m) {
                                       redisContext* c = raw50[static_cast<std::size_t>(next_raw++)];
                                       for (long long i = 0; i < m; ++i) sink = sink + raw_get(c, key).size();
                                   });
                               }},
                              {"redkit", [&](long long n) {
                                   run_threads(n, [&](long long m) {
                                       for (long long i = 0; i < m; ++i) {
                                           sink = sink + redkit::default_client().command<std::string>("GET", key).size();
                                       }
                                   });
                               }}}});

        std::vector<result_row> rows;
        for (auto& w : workloads) {
            if (!only.empty() && ("," + only + ",").find("," + w.name + ",") == std::string::npos) continue;
            std::map<std::string, std::vector<double>> thr, cpu;
            for (int r = 0; r < reps; ++r) {
                // alternate the order so neither implementation always runs on a warmer machine
                for (std::size_t k = 0; k < w.impls.size(); ++k) {
                    const auto& run = w.impls[(k + static_cast<std::size_t>(r)) % w.impls.size()];
                    const sample s = measure(w.ops, run.body);
                    thr[run.impl].push_back(s.ops_per_s);
                    cpu[run.impl].push_back(s.cpu_us_per_op);
                }
            }
            for (const auto& run : w.impls) {
                result_row row{w.name, run.impl, {median(thr[run.impl]), median(cpu[run.impl]), w.ops}};
                std::printf("{\"workload\": \"%s\", \"impl\": \"%s\", \"ops_per_s\": %.0f, \"ops\": %lld, \"cpu_us_per_op\": %.3f}\n",
                            row.workload.c_str(), row.impl.c_str(), row.s.ops_per_s, row.s.ops, row.s.cpu_us_per_op);
                std::fflush(stdout);
                rows.push_back(row);
            }
            // redis-benchmark as the reference for the 50-thread workload, when installed
            if (w.name == "get_threads50" && server && std::system("command -v redis-benchmark >/dev/null 2>&1") == 0) {
                const std::string cmd = "redis-benchmark -h 127.0.0.1 -p " + std::to_string(base.port) + " -c 50 -P 1 -n " +
                                        std::to_string(w.ops) + " -t get -q 2>/dev/null";
                const double cpu0 = cpu_seconds(RUSAGE_CHILDREN);
                std::string out;
                if (FILE* p = popen(cmd.c_str(), "r")) {
                    char buf[512];
                    while (std::fgets(buf, sizeof buf, p)) out += buf;
                    pclose(p);
                }
                const double child_cpu = cpu_seconds(RUSAGE_CHILDREN) - cpu0;
                const auto at = out.rfind("GET: ");
                if (at != std::string::npos) {
                    const double rps = std::atof(out.c_str() + at + 5);
                    result_row row{w.name, "redis-benchmark", {rps, child_cpu * 1e6 / static_cast<double>(w.ops), w.ops}};
                    std::printf("{\"workload\": \"%s\", \"impl\": \"redis-benchmark\", \"ops_per_s\": %.0f, \"ops\": %lld, \"cpu_us_per_op\": %.3f}\n",
                                row.workload.c_str(), row.s.ops_per_s, row.s.ops, row.s.cpu_us_per_op);
                    rows.push_back(row);
                }
            }
        }

        for (auto* c : raw50) redisFree(c);
        redisFree(raw);
        redkit::reset_default_client();

        // the human-readable table
        std::printf("\n%-24s %-16s %12s %14s %10s %10s\n", "workload", "impl", "ops/s", "cpu us/op", "thr ratio", "cpu ratio");
        std::map<std::string, sample> baseline;
        double worst_thr = 1e9, worst_cpu = 0;
        std::string worst_thr_name, worst_cpu_name;
        for (const auto& row : rows) {
            if (row.impl == "hiredis") baseline[row.workload] = row.s;
            const auto b = baseline.find(row.workload);
            if (row.impl == "redkit" && b != baseline.end()) {
                const double tr = row.s.ops_per_s / b->second.ops_per_s;
                const double cr = row.s.cpu_us_per_op / b->second.cpu_us_per_op;
                std::printf("%-24s %-16s %12.0f %14.3f %10.3f %10.3f\n", row.workload.c_str(), row.impl.c_str(),
                            row.s.ops_per_s, row.s.cpu_us_per_op, tr, cr);
                if (tr < worst_thr) worst_thr = tr, worst_thr_name = row.workload;
                if (cr > worst_cpu) worst_cpu = cr, worst_cpu_name = row.workload;
            } else {
                std::printf("%-24s %-16s %12.0f %14.3f %10s %10s\n", row.workload.c_str(), row.impl.c_str(),
                            row.s.ops_per_s, row.s.cpu_us_per_op, "", "");
            }
        }
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        std::printf("\nworst throughput ratio: %.3f (%s); worst cpu ratio: %.3f (%s)\n", worst_thr, worst_thr_name.c_str(),
                    worst_cpu, worst_cpu_name.c_str());
        std::printf("peak RSS: %ld KiB\n", ru.ru_maxrss);
        (void)sink;
    } catch (const std::exception& e) {
        std::cerr << "redkit_bench: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
