// SPDX-License-Identifier: MIT
// Core workloads: GET/SET of 100-byte values on one connection, pipelined batches of 16, 16
// submits in flight from one thread, and 50 threads sharing the process-wide client. `get` and
// `get_threads50` also run with a counting observer (redkit::metrics, client_options::observer):
// the `redkit+metrics` rows, to compare with the `redkit` rows of the same run; and, where
// OpenTelemetry's API headers are (REDKIT_BENCH_OTEL), with redkit/otel.hpp's adapter on the API's
// no-op providers (what an application that links no SDK pays): the `redkit+otel` rows.
#include <redkit/core/io/observe.hpp>
#if REDKIT_BENCH_OTEL
#include <redkit/otel.hpp>
#endif

#include "bench.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace redkit_bench {
namespace {

struct core_state {
    std::unique_ptr<redkit::client> one;        // a pool of one connection
    std::unique_ptr<redkit::client> counted;    // the same, observed by a redkit::metrics
    std::unique_ptr<redkit::client> counted50;  // a pool of 50, observed
    std::unique_ptr<redkit::client> traced;     // a pool of one, observed by an otel_observer (no-op providers)
    std::unique_ptr<redkit::client> traced50;   // a pool of 50, the same
    redisContext* raw = nullptr;
    std::vector<redisContext*> raw50;
    ~core_state() {
        if (raw) redisFree(raw);
        for (auto* c : raw50) redisFree(c);
    }
};

void add_core(context& ctx, std::vector<workload>& out) {
    auto st = std::make_shared<core_state>();
    auto one = ctx.base;
    one.pool_size = 1;
    st->one = std::make_unique<redkit::client>(one);
    one.observer = std::make_shared<redkit::metrics>();
    st->counted = std::make_unique<redkit::client>(one);
#if REDKIT_BENCH_OTEL
    one.observer = std::make_shared<redkit::otel_observer>();
    st->traced = std::make_unique<redkit::client>(one);
#endif
    st->raw = raw_connect(ctx.base);

    const std::string value100(100, 'v');
    const std::string key = "bench:key";
    raw_set(st->raw, key, value100);
    std::vector<std::string> keys16;
    for (int i = 0; i < 16; ++i) {
        keys16.push_back("bench:key:" + std::to_string(i));
        raw_set(st->raw, keys16.back(), value100);
    }

    out.push_back({"get",
                   3000 * ctx.scale,
                   {{"hiredis",
                     [st, key](long long n) {
                         for (long long i = 0; i < n; ++i) sink = sink + raw_get(st->raw, key).size();
                     }},
                    {"redkit",
                     [st, key](long long n) {
                         for (long long i = 0; i < n; ++i)
                             sink = sink + st->one->command<std::string>("GET", key).size();
                     }},
                    {"redkit+metrics",
                     [st, key](long long n) {
                         for (long long i = 0; i < n; ++i)
                             sink = sink + st->counted->command<std::string>("GET", key).size();
                     }},
                    {"redkit+otel", [st, key](long long n) {
                         for (long long i = 0; i < n; ++i)
                             sink = sink + st->traced->command<std::string>("GET", key).size();
                     }}}});

    out.push_back({"set",
                   3000 * ctx.scale,
                   {{"hiredis",
                     [st, key, value100](long long n) {
                         for (long long i = 0; i < n; ++i) raw_set(st->raw, key, value100);
                     }},
                    {"redkit", [st, key, value100](long long n) {
                         for (long long i = 0; i < n; ++i) st->one->command<void>("SET", key, value100);
                     }}}});

    out.push_back({"get_pipelined16",
                   16 * 300 * ctx.scale,
                   {{"hiredis",
                     [st, keys16](long long n) {
                         for (long long b = 0; b < n / 16; ++b) sink = sink + raw_get_pipelined(st->raw, keys16);
                     }},
                    {"redkit", [st, keys16](long long n) {
                         for (long long b = 0; b < n / 16; ++b) {
                             redkit::pipeline p(*st->one);
                             for (const auto& k : keys16) p.command("GET", k);
                             for (const auto& r : p.exec()) sink = sink + r.text().size();
                         }
                     }}}});

    // One thread with 16 commands in flight through client::submit (futures over the shared
    // connection) vs the same 16 GETs pipelined by hand on a raw context.
    out.push_back({"get_submit16",
                   16 * 300 * ctx.scale,
                   {{"hiredis",
                     [st, keys16](long long n) {
                         for (long long b = 0; b < n / 16; ++b) sink = sink + raw_get_pipelined(st->raw, keys16);
                     }},
                    {"redkit", [st, keys16](long long n) {
                         std::vector<redkit::future<std::string>> replies;
                         replies.reserve(keys16.size());
                         for (long long b = 0; b < n / 16; ++b) {
                             for (const auto& k : keys16) replies.push_back(st->one->submit<std::string>("GET", k));
                             for (auto& f : replies) sink = sink + f.get().size();
                             replies.clear();
                         }
                     }}}});

    // 50 threads sharing the process-wide client (a pool of 50) vs 50 threads each with a raw context.
    constexpr int threads = 50;
    auto shared = ctx.base;
    shared.pool_size = threads;
    redkit::set_default_client(redkit::client(shared));
    shared.observer = std::make_shared<redkit::metrics>();
    st->counted50 = std::make_unique<redkit::client>(shared);
#if REDKIT_BENCH_OTEL
    shared.observer = std::make_shared<redkit::otel_observer>();
    st->traced50 = std::make_unique<redkit::client>(shared);
#endif
    for (int t = 0; t < threads; ++t) st->raw50.push_back(raw_connect(ctx.base));
    const auto run_threads = [](long long n, const std::function<void(int, long long)>& per_thread) {
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t) ts.emplace_back(per_thread, t, n / threads);
        for (auto& t : ts) t.join();
    };
    out.push_back({"get_threads50",
                   5000 * ctx.scale,
                   {{"hiredis",
                     [st, key, run_threads](long long n) {
                         run_threads(n, [&](int t, long long m) {
                             redisContext* c = st->raw50[static_cast<std::size_t>(t)];
                             for (long long i = 0; i < m; ++i) sink = sink + raw_get(c, key).size();
                         });
                     }},
                    {"redkit",
                     [key, run_threads](long long n) {
                         run_threads(n, [&](int, long long m) {
                             for (long long i = 0; i < m; ++i) {
                                 sink = sink + redkit::default_client().command<std::string>("GET", key).size();
                             }
                         });
                     }},
                    {"redkit+metrics",
                     [st, key, run_threads](long long n) {
                         run_threads(n, [&](int, long long m) {
                             for (long long i = 0; i < m; ++i) {
                                 sink = sink + st->counted50->command<std::string>("GET", key).size();
                             }
                         });
                     }},
                    {"redkit+otel", [st, key, run_threads](long long n) {
                         run_threads(n, [&](int, long long m) {
                             for (long long i = 0; i < m; ++i) {
                                 sink = sink + st->traced50->command<std::string>("GET", key).size();
                             }
                         });
                     }}}});
}

// What a command pays for being observed, without its round trip: its watch (two clock reads, the
// start and end calls, one allocation) and the shared connection's write event, with an observer
// that does nothing and with redkit::metrics. 1e9 / ops_per_s is the cost in ns per command.
void add_observer_cost(context& ctx, std::vector<workload>& out) {
    auto noop = std::make_shared<redkit::client_options>(ctx.base);
    struct noop_observer final : redkit::observer {};
    noop->observer = std::make_shared<noop_observer>();
    auto counted = std::make_shared<redkit::client_options>(ctx.base);
    counted->observer = std::make_shared<redkit::metrics>();
    const auto observe = [](const redkit::client_options& o, long long n) {
        for (long long i = 0; i < n; ++i) {
            const auto w = redkit::detail::watch_command(o, "GET", "bench:key", {}, 1, redkit::command_path::shared);
            w->end_with(nullptr);
            redkit::batch_event b;
            b.commands = 1;
            redkit::detail::observe(o.observer.get(), &redkit::observer::on_batch, b);
        }
        sink = sink + 1;
    };
    workload w{"observer_cost",
               100000 * ctx.scale,
               {{"observer-noop", [noop, observe](long long n) { observe(*noop, n); }},
                {"redkit+metrics", [counted, observe](long long n) { observe(*counted, n); }}},
               {},
               "no round trip: the observer's own CPU per command (1e9 / ops_per_s ns); baseline: an "
               "observer whose members do nothing"};
#if REDKIT_BENCH_OTEL
    auto traced = std::make_shared<redkit::client_options>(ctx.base);
    traced->observer = std::make_shared<redkit::otel_observer>();
    w.impls.push_back({"redkit+otel", [traced, observe](long long n) { observe(*traced, n); }});
#endif
    out.push_back(std::move(w));
}

#if !REDKIT_BENCH_OTEL
// Built without OpenTelemetry's headers: no redkit+otel rows.
void drop_otel_rows(std::vector<workload>& out) {
    for (auto& w : out) {
        auto& v = w.impls;
        v.erase(std::remove_if(v.begin(), v.end(), [](const impl_run& r) { return r.impl == "redkit+otel"; }), v.end());
    }
}
#endif

void add_core_rows(context& ctx, std::vector<workload>& out) {
    add_core(ctx, out);
#if !REDKIT_BENCH_OTEL
    drop_otel_rows(out);
#endif
}

const registrar reg(0, "core", &add_core_rows);
const registrar reg_observer(0, "observer", &add_observer_cost);

}  // namespace
}  // namespace redkit_bench
