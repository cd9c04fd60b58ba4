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
#include "bench.hpp"
#include "support/redis_server.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <sys/resource.h>

namespace redkit_bench {

volatile std::size_t sink = 0;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

redisContext* raw_connect(const redkit::client_options& o) {
    timeval tv{5, 0};
    redisContext* c = o.unix_socket.empty() ? redisConnectWithTimeout(o.host.c_str(), o.port, tv)
                                            : redisConnectUnixWithTimeout(o.unix_socket.c_str(), tv);
    if (!c || c->err) throw std::runtime_error("raw hiredis connect failed");
    redisSetTimeout(c, tv);
    return c;
}

redisReply* raw_command(redisContext* c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
    if (!r) throw std::runtime_error(std::string("raw hiredis: ") + c->errstr);
    return r;
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

std::size_t raw_get_pipelined(redisContext* c, const std::vector<std::string>& keys) {
    for (const auto& k : keys) {
        const char* av[] = {"GET", k.c_str()};
        const size_t lens[] = {3, k.size()};
        redisAppendCommandArgv(c, 2, av, lens);
    }
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        void* r = nullptr;
        if (redisGetReply(c, &r) != REDIS_OK) throw std::runtime_error("raw pipeline failed");
        auto* rr = static_cast<redisReply*>(r);
        const std::string v(rr->str, rr->len);  // the value leaves hiredis's reply, as redkit's does
        bytes += v.size();
        freeReplyObject(rr);
    }
    return bytes;
}

}  // namespace redkit_bench

namespace {

using namespace redkit_bench;

struct sample {
    double ops_per_s = 0;
    double cpu_us_per_op = 0;
    long long ops = 0;
};

struct result_row {
    std::string workload, impl;
    sample s;
};

double cpu_seconds(int who) {
    rusage ru{};
    getrusage(who, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

sample measure(long long ops, const std::function<void(long long)>& body) {
    const double cpu0 = cpu_seconds(RUSAGE_SELF);
    const auto t0 = std::chrono::steady_clock::now();
    body(ops);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds(RUSAGE_SELF) - cpu0;
    return {static_cast<double>(ops) / wall, cpu * 1e6 / static_cast<double>(ops), ops};
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

void print_json(const result_row& row) {
    std::printf(
        "{\"workload\": \"%s\", \"impl\": \"%s\", \"ops_per_s\": %.0f, \"ops\": %lld, \"cpu_us_per_op\": %.3f}\n",
        row.workload.c_str(), row.impl.c_str(), row.s.ops_per_s, row.s.ops, row.s.cpu_us_per_op);
    std::fflush(stdout);
}

// redis-benchmark -c 50 -P 1 on the same server: the reference for get_threads50. Its CPU comes
// from RUSAGE_CHILDREN once it has been reaped.
bool run_redis_benchmark(const context& ctx, long long ops, result_row& row) {
    if (!ctx.own_server || std::system("command -v redis-benchmark >/dev/null 2>&1") != 0) return false;
    const std::string cmd = "redis-benchmark -h 127.0.0.1 -p " + std::to_string(ctx.base.port) + " -c 50 -P 1 -n " +
                            std::to_string(ops) + " -t get -q 2>/dev/null";
    const double cpu0 = cpu_seconds(RUSAGE_CHILDREN);
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        pclose(p);
    }
    const double child_cpu = cpu_seconds(RUSAGE_CHILDREN) - cpu0;
    const auto at = out.rfind("GET: ");
    if (at == std::string::npos) return false;
    row = {"get_threads50",
           "redis-benchmark",
           {std::atof(out.c_str() + at + 5), child_cpu * 1e6 / static_cast<double>(ops), ops}};
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    context ctx;
    int reps = 0;
    std::string only;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--quick") {
            ctx.quick = true;
        } else if (a == "--reps" && i + 1 < argc) {
            reps = std::atoi(argv[++i]);
        } else if (a == "--only" && i + 1 < argc) {
            only = argv[++i];
        } else {
            std::cerr << "usage: redkit_bench [--quick] [--reps N] [--only w1,w2]\n";
            return 2;
        }
    }
    if (reps <= 0) reps = ctx.quick ? 3 : 7;
    ctx.scale = ctx.quick ? 1 : 10;
    ctx.fixtures_dir = REDKIT_BENCH_FIXTURES;

    try {
        std::unique_ptr<redkit_test::redis_server> server;
        const char* env_url = std::getenv("REDIS_URL");
        if (env_url && *env_url) {
            ctx.url = env_url;
        } else {
            server = std::make_unique<redkit_test::redis_server>();
            ctx.url = server->url();
            ctx.own_server = true;
        }
        ctx.base = redkit::parse_url(ctx.url);
        std::cerr << "redkit_bench: server " << ctx.url << (ctx.quick ? " (quick)" : "") << ", " << reps
                  << " repetitions, median reported\n";

        auto regs = registry();
        std::stable_sort(regs.begin(), regs.end(),
                         [](const registration& a, const registration& b) { return a.order < b.order; });
        std::vector<workload> workloads;
        for (const auto& r : regs) r.add(ctx, workloads);

        std::vector<result_row> rows;
        std::map<std::string, std::string> notes;  // workloads whose baseline does less work
        for (auto& w : workloads) {
            if (!only.empty() && ("," + only + ",").find("," + w.name + ",") == std::string::npos) continue;
            if (!w.baseline_note.empty()) notes[w.name] = w.baseline_note;
            std::map<std::string, std::vector<double>> thr, cpu;
            for (int r = 0; r < reps; ++r) {
                // alternate the order so neither implementation always runs on a warmer machine
                for (std::size_t k = 0; k < w.impls.size(); ++k) {
                    const auto& run = w.impls[(k + static_cast<std::size_t>(r)) % w.impls.size()];
                    if (w.before_each) w.before_each();
                    const sample s = measure(w.ops * run.repeat, run.body);
                    thr[run.impl].push_back(s.ops_per_s);
                    cpu[run.impl].push_back(s.cpu_us_per_op);
                }
            }
            for (const auto& run : w.impls) {
                rows.push_back({w.name, run.impl, {median(thr[run.impl]), median(cpu[run.impl]), w.ops * run.repeat}});
                print_json(rows.back());
            }
            if (w.name == "get_threads50") {
                result_row row;
                if (run_redis_benchmark(ctx, w.ops, row)) {
                    rows.push_back(row);
                    print_json(row);
                }
            }
        }
        workloads.clear();  // release connections before the server goes

        std::printf("\n%-24s %-16s %12s %12s %10s %10s\n", "workload", "impl", "ops/s", "cpu us/op", "thr ratio",
                    "cpu ratio");
        std::map<std::string, const result_row*> baseline;  // each workload's first implementation
        double worst_thr = 1e9, worst_cpu = 0;
        std::string worst_thr_name, worst_cpu_name;
        for (const auto& row : rows) {
            const auto b = baseline.emplace(row.workload, &row).first;
            if (b->second != &row) {
                const sample& base = b->second->s;
                const double tr = row.s.ops_per_s / base.ops_per_s;
                const double cr = row.s.cpu_us_per_op / base.cpu_us_per_op;
                std::printf("%-24s %-16s %12.0f %12.3f %10.3f %10.3f\n", row.workload.c_str(), row.impl.c_str(),
                            row.s.ops_per_s, row.s.cpu_us_per_op, tr, cr);
                // only redkit against a like-for-like raw hiredis baseline counts for the worst ratio
                if (row.impl == "redkit" && b->second->impl == "hiredis" && notes.count(row.workload) == 0) {
                    if (tr < worst_thr) worst_thr = tr, worst_thr_name = row.workload;
                    if (cr > worst_cpu) worst_cpu = cr, worst_cpu_name = row.workload;
                }
            } else {
                std::printf("%-24s %-16s %12.0f %12.3f %10s %10s\n", row.workload.c_str(), row.impl.c_str(),
                            row.s.ops_per_s, row.s.cpu_us_per_op, "", "");
            }
        }
        if (!notes.empty()) std::printf("\nratios not comparable (the baseline does less work):\n");
        for (const auto& n : notes) std::printf("  %-22s %s\n", n.first.c_str(), n.second.c_str());
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        if (worst_thr_name.empty()) {
            std::printf("\nno like-for-like workload ran\n");
        } else {
            std::printf("\nworst like-for-like throughput ratio: %.3f (%s); worst like-for-like cpu ratio: %.3f (%s)\n",
                        worst_thr, worst_thr_name.c_str(), worst_cpu, worst_cpu_name.c_str());
        }
        std::printf("peak RSS: %ld KiB\n", ru.ru_maxrss);
    } catch (const std::exception& e) {
        std::cerr << "redkit_bench: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
