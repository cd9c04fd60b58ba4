// SPDX-License-Identifier: MIT
// Cluster workloads: the core rows again on a Redis Cluster of 3 primaries and 3 replicas (its
// own, started on loopback, only when the bench started its own server): GET and SET of a 100-byte
// value one at a time, and GET of 16 keys spread over the cluster's slots in one pipeline (split
// into one write per primary). Each row has three implementations: raw hiredis on the bench's
// single server (the baseline), redkit on that single server, and redkit on the cluster.
#include "bench.hpp"
#include "support/redis_cluster.hpp"

#include <memory>
#include <string>
#include <vector>

namespace redkit_bench {
namespace {

struct cluster_state {
    std::unique_ptr<redkit_test::redis_cluster> cluster;
    std::unique_ptr<redkit::client> single;   // the bench's server, a pool of one connection
    std::unique_ptr<redkit::client> sharded;  // the cluster
    redisContext* raw = nullptr;
    ~cluster_state() {
        if (raw) redisFree(raw);
    }
};

void add_cluster(context& ctx, std::vector<workload>& out) {
    if (!ctx.own_server) return;  // starts a cluster of its own
    auto st = std::make_shared<cluster_state>();
    st->cluster = std::make_unique<redkit_test::redis_cluster>();
    auto one = ctx.base;
    one.pool_size = 1;
    st->single = std::make_unique<redkit::client>(one);
    auto sharded = redkit::parse_url(st->cluster->url());
    sharded.pool_size = 1;  // one connection per node, as the single server's pool has one
    st->sharded = std::make_unique<redkit::client>(sharded);
    st->raw = raw_connect(ctx.base);

    const std::string value100(100, 'v');
    const std::string key = "bench:cluster:key";
    std::vector<std::string> keys16;
    for (int i = 0; i < 16; ++i) keys16.push_back("bench:cluster:key:" + std::to_string(i));
    for (auto* c : {st->single.get(), st->sharded.get()}) {
        c->command<void>("SET", key, value100);
        for (const auto& k : keys16) c->command<void>("SET", k, value100);
    }

    const auto get_with = [key](redkit::client& c) {
        return [&c, key](long long n) {
            for (long long i = 0; i < n; ++i) sink = sink + c.command<std::string>("GET", key).size();
        };
    };
    out.push_back({"cluster_get",
                   3000 * ctx.scale,
                   {{"hiredis",
                     [st, key](long long n) {
                         for (long long i = 0; i < n; ++i) sink = sink + raw_get(st->raw, key).size();
                     }},
                    {"redkit", get_with(*st->single)},
                    {"redkit-cluster", get_with(*st->sharded)}}});

    const auto set_with = [key, value100](redkit::client& c) {
        return [&c, key, value100](long long n) {
            for (long long i = 0; i < n; ++i) c.command<void>("SET", key, value100);
        };
    };
    out.push_back({"cluster_set",
                   3000 * ctx.scale,
                   {{"hiredis",
                     [st, key, value100](long long n) {
                         for (long long i = 0; i < n; ++i) raw_set(st->raw, key, value100);
                     }},
                    {"redkit", set_with(*st->single)},
                    {"redkit-cluster", set_with(*st->sharded)}}});

    const auto pipelined_with = [keys16](redkit::client& c) {
        return [&c, keys16](long long n) {
            for (long long b = 0; b < n / 16; ++b) {
                redkit::pipeline p(c);
                for (const auto& k : keys16) p.command("GET", k);
                for (const auto& r : p.exec()) sink = sink + r.text().size();
            }
        };
    };
    out.push_back({"cluster_get_pipelined16",
                   16 * 300 * ctx.scale,
                   {{"hiredis",
                     [st, keys16](long long n) {
                         for (long long b = 0; b < n / 16; ++b) sink = sink + raw_get_pipelined(st->raw, keys16);
                     }},
                    {"redkit", pipelined_with(*st->single)},
                    {"redkit-cluster", pipelined_with(*st->sharded)}}});
}

const registrar reg(6, "cluster", &add_cluster);

}  // namespace
}  // namespace redkit_bench
