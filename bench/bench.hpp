// SPDX-License-Identifier: MIT
// Shared pieces of redkit_bench: the workload registry, the run context, and raw-hiredis helpers
// for the baselines. Each pattern adds its workloads in a file of its own (<pattern>_workloads.cpp)
// with a static redkit_bench::registrar.
#pragma once

#include <redkit/redkit.hpp>

#include <hiredis/hiredis.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace redkit_bench {

/// One implementation of a workload: body(ops) performs exactly `ops` operations.
struct impl_run {
    std::string impl;  // "hiredis" (the baseline, listed first), "redkit", ...
    std::function<void(long long)> body;
    /// This implementation runs ops * repeat operations per repetition (one much faster than the
    /// baseline then still runs long enough to time); rates are per operation either way.
    long long repeat = 1;
};

struct workload {
    std::string name;
    long long ops;                           // operations per repetition
    std::vector<impl_run> impls;             // the first is the baseline the others are compared with
    std::function<void()> before_each = {};  // optional: reset state before every timed repetition (untimed)
    /// Non-empty when the baseline does less work than redkit (no equivalent in raw hiredis): the
    /// ratio is then informative only, and the note says what the baseline is.
    std::string baseline_note = {};
};

struct context {
    redkit::client_options base;  // options of the bench's redis-server
    std::string url;
    bool quick = false;
    long long scale = 1;       // 1 in --quick, 10 in a full run
    std::string fixtures_dir;  // product.json, order.json
    bool own_server = false;   // true when the bench started the server (redis-benchmark may run)
};

using adder = void (*)(context&, std::vector<workload>&);

struct registration {
    int order;
    const char* group;
    adder add;
};

inline std::vector<registration>& registry() {
    static std::vector<registration> r;
    return r;
}

/// Registers a group of workloads; lower `order` runs first.
struct registrar {
    registrar(int order, const char* group, adder add) { registry().push_back({order, group, add}); }
};

/// Reads a whole file (the benchmark fixtures).
std::string read_file(const std::string& path);

// ---- raw hiredis baseline helpers: what a careful engineer writes by hand ----

redisContext* raw_connect(const redkit::client_options& o);

/// One command by argv; returns the reply (caller frees), throws on transport failure.
redisReply* raw_command(redisContext* c, const std::vector<std::string>& args);

std::string raw_get(redisContext* c, const std::string& key);
void raw_set(redisContext* c, const std::string& key, const std::string& value);

/// GET of every key appended at once, then the replies read (a hand-written pipeline); returns
/// the bytes of the values.
std::size_t raw_get_pipelined(redisContext* c, const std::vector<std::string>& keys);

/// Keeps results observable so nothing is optimised away.
extern volatile std::size_t sink;

}  // namespace redkit_bench
