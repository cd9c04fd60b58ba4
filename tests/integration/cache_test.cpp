// SPDX-License-Identifier: MIT
// redkit::cache against a real redis-server: hits and misses, single flight across 50 threads and
// a cross-process lock across two forked processes, a killed and restarted server, timeouts,
// corrupt values, negative caching, XFetch with a fixed seed, and the bytes other services read.
#include <redkit/cache.hpp>
#include <redkit/redkit.hpp>

#include "support/error_log.hpp"
#include "support/eventually.hpp"
#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace shop {
struct product {
    long long id = 0;
    std::string name;
    double price = 0;
    bool featured = false;
    std::vector<std::string> tags;
    bool operator==(const product& o) const {
        return id == o.id && name == o.name && price == o.price && featured == o.featured && tags == o.tags;
    }
};
void to_json(nlohmann::json& j, const product& p) {
    j = {{"id", p.id}, {"name", p.name}, {"price", p.price}, {"featured", p.featured}, {"tags", p.tags}};
}
void from_json(const nlohmann::json& j, product& p) {
    j.at("id").get_to(p.id);
    j.at("name").get_to(p.name);
    j.at("price").get_to(p.price);
    j.at("featured").get_to(p.featured);
    j.at("tags").get_to(p.tags);
}
}  // namespace shop

namespace {

using shop::product;

product chair(long long id = 42, std::string name = "Ergonomic Chair") {
    return product{id, std::move(name), 349.5, true, {"office", "mesh"}};
}

using redkit_test::error_log;

using redkit_test::eventually;

// Stored bytes carrying given XFetch metadata, as the cache writes them.
std::string with_meta(const std::string& json, long long expiry_ms, long long delta_us) {
    std::string out = json;
    redkit::detail::append_cache_trailer(out, redkit::detail::cache_meta{expiry_ms, delta_us});
    return out;
}

long long now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class Cache : public ::testing::Test {
protected:
    void SetUp() override {
        if (!shared_server().running() && !shared_server().external()) shared_server().start();
        admin = redkit::client(shared_server().url());
        admin.command<void>("FLUSHALL");
    }

    redkit::client client(error_log* log = nullptr, std::size_t pool = 8) {
        auto o = shared_server().options();
        o.pool_size = pool;
        if (log) o.on_error = log->callback();
        return redkit::client(o);
    }

    std::optional<std::string> raw(const std::string& key) {
        return admin.command<std::optional<std::string>>("GET", key);
    }

    redkit::client admin{redkit::client_options{}};
};

}  // namespace

TEST_F(Cache, MissLoadsAndStoresThenHitDecodesWithoutTheLoader) {
    redkit::cache cache(client());
    int loads = 0;
    const auto loader = [&] {
        ++loads;
        return chair();
    };
    EXPECT_EQ(cache.get_or_set<product>("product:42", loader, 60s), chair());
    EXPECT_EQ(loads, 1);
    const auto pttl = admin.command<long long>("PTTL", "product:42");
    EXPECT_GT(pttl, 50'000);  // 60 s minus at most 10% jitter
    EXPECT_LE(pttl, 60'000);
    EXPECT_EQ(cache.get_or_set<product>("product:42", loader, 60s), chair());
    EXPECT_EQ(loads, 1);
    const auto st = cache.stats();
    EXPECT_EQ(st.hits, 1u);
    EXPECT_EQ(st.misses, 1u);
    EXPECT_EQ(st.loader_calls, 1u);
    EXPECT_EQ(st.errors, 0u);
    // The type may come from the loader.
    const product p = cache.get_or_set("product:42", loader);
    EXPECT_EQ(p, chair());
}

TEST_F(Cache, HitPathSendsExactlyOneCommand) {
    auto c = client(nullptr, 1);
    redkit::cache cache(c);
    cache.set("product:7", chair(7), 60s);
    c.ping();  // the pooled connection exists; no setup commands below
    admin.command<void>("CONFIG", "RESETSTAT");
    const product p = cache.get_or_set<product>(
        "product:7", [] { return chair(0, "never"); }, 60s);
    EXPECT_EQ(p, chair(7));
    std::map<std::string, long long> calls = redkit_test::command_stats(admin);
    for (auto it = calls.begin(); it != calls.end();) {  // drop the admin's own CONFIG and INFO
        it = it->first.rfind("config", 0) == 0 || it->first.rfind("info", 0) == 0 ? calls.erase(it) : std::next(it);
    }
    std::string seen;
    for (const auto& [command, n] : calls) seen += command + "=" + std::to_string(n) + " ";
    ASSERT_EQ(calls.size(), 1u) << seen;
    EXPECT_EQ(calls["get"], 1);
}

TEST_F(Cache, StoredBytesArePlainJsonForOtherServices) {
    redkit::cache cache(client());
    static_cast<void>(cache.get_or_set<product>(
        "product:1", [] { return chair(1); }, 60s));
    const std::string bytes = *raw("product:1");
    const std::string compact = nlohmann::json(chair(1)).dump();
    // A JSON parser reads exactly the value; the metadata is JSON whitespace after it.
    EXPECT_EQ(nlohmann::json::parse(bytes), nlohmann::json(chair(1)));
    EXPECT_EQ(bytes.compare(0, compact.size(), compact), 0);
    EXPECT_EQ(bytes.find_first_not_of(" \t\r\n", compact.size()), std::string::npos);

    // What a Node service does: JSON.parse(await redis.get(key)).
    if (std::system("command -v node >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/redkit-cache-interop-XXXXXX";
        const int fd = ::mkstemp(path);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
        ::close(fd);
        const std::string cmd =
            std::string(
                "node -e 'const v = JSON.parse(require(\"fs\").readFileSync(process.argv[1], \"utf8\"));"
                " process.stdout.write(JSON.stringify(v))' ") +
            path;
        std::string out;
        if (FILE* p = ::popen(cmd.c_str(), "r")) {
            char buf[512];
            std::size_t n;
            while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
            EXPECT_EQ(::pclose(p), 0);
        }
        ::unlink(path);
        EXPECT_EQ(out, compact);
    }

    // And what Node writes (JSON.stringify, no metadata) is a hit here.
    admin.command<void>("SET", "product:2", compact);
    int loads = 0;
    EXPECT_EQ(cache.get_or_set<product>(
                  "product:2", [&] { return ++loads, chair(0, "db"); }, 60s),
              chair(1));
    EXPECT_EQ(loads, 0);
}

TEST_F(Cache, WithoutMetadataTheBytesAreExactlyTheJson) {
    redkit::cache_options o;
    o.store_metadata = false;
    o.ttl_jitter = 0;
    redkit::cache cache(client(), o);
    static_cast<void>(cache.get_or_set<product>(
        "product:3", [] { return chair(3); }, 30s));
    EXPECT_EQ(*raw("product:3"), nlohmann::json(chair(3)).dump());
    EXPECT_LE(admin.command<long long>("PTTL", "product:3"), 30'000);
    EXPECT_EQ(cache.get<product>("product:3"), chair(3));
}

TEST_F(Cache, FiftyThreadsMissingOneKeyCallTheLoaderOnce) {
    redkit::cache cache(client(nullptr, 16));
    constexpr int threads = 50;
    std::atomic<int> loads{0};
    std::promise<void> go;
    std::shared_future<void> start = go.get_future().share();
    const auto loader = [&] {
        ++loads;
        // Hold the recompute until every thread has missed: each one is then either this loader or
        // waiting for it, with no timing assumption.
        EXPECT_TRUE(eventually([&] { return cache.stats().misses >= threads; }));
        return chair(99);
    };
    std::vector<std::future<product>> results;
    for (int i = 0; i < threads; ++i) {
        results.push_back(std::async(std::launch::async, [&] {
            start.wait();
            return cache.get_or_set<product>("product:99", loader, 60s);
        }));
    }
    go.set_value();
    for (auto& r : results) {
        ASSERT_EQ(r.wait_for(20s), std::future_status::ready);
        EXPECT_EQ(r.get(), chair(99));
    }
    EXPECT_EQ(loads.load(), 1);
    EXPECT_EQ(cache.stats().loader_calls, 1u);
    EXPECT_EQ(nlohmann::json::parse(*raw("product:99")), nlohmann::json(chair(99)));
}

TEST_F(Cache, LoaderExceptionReachesEveryWaiterAndNothingIsCached) {
    redkit::cache cache(client());
    constexpr int threads = 10;
    std::atomic<int> loads{0};
    const auto failing = [&]() -> product {
        ++loads;
        EXPECT_TRUE(eventually([&] { return cache.stats().misses >= threads; }));
        throw std::runtime_error("database down");
    };
    std::vector<std::future<void>> results;
    for (int i = 0; i < threads; ++i) {
        results.push_back(std::async(std::launch::async,
                                     [&] { static_cast<void>(cache.get_or_set<product>("product:5", failing, 60s)); }));
    }
    for (auto& r : results) {
        ASSERT_EQ(r.wait_for(20s), std::future_status::ready);
        EXPECT_THROW(r.get(), std::runtime_error);
    }
    EXPECT_EQ(loads.load(), 1);
    EXPECT_EQ(admin.command<long long>("EXISTS", "product:5"), 0);
    // The failed flight is gone: the next call loads again.
    EXPECT_EQ(cache.get_or_set<product>(
                  "product:5", [] { return chair(5); }, 60s),
              chair(5));
}

TEST_F(Cache, TwoProcessesWithTheLockCallTheLoaderOnce) {
    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    const std::string url = shared_server().url();
    std::vector<pid_t> children;
    for (int i = 0; i < 2; ++i) {
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            int code = 1;
            try {
                ::close(go[1]);
                char b = 0;
                if (::read(go[0], &b, 1) != 1) ::_exit(4);
                redkit::client c(url);
                redkit::cache_options o;
                o.lock = true;
                o.lock_wait = 10s;
                redkit::cache cache(c, o);
                const auto value = cache.get_or_set<std::string>(
                    "report:daily",
                    [&] {
                        c.command<long long>("INCR", "report:daily:loads");  // counted by the server, across processes
                        std::this_thread::sleep_for(300ms);  // a slow recompute: the other process must wait
                        return std::string("computed");
                    },
                    60s);
                code = value == "computed" ? 0 : 2;
            } catch (...) {
                code = 3;
            }
            ::_exit(code);
        }
        children.push_back(pid);
    }
    ::close(go[0]);
    ASSERT_EQ(::write(go[1], "xx", 2), 2);  // both start together
    ::close(go[1]);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (const pid_t pid : children) {
        int status = 0;
        while (::waitpid(pid, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &status, 0);
                FAIL() << "child " << pid << " did not finish";
            }
            std::this_thread::sleep_for(5ms);
        }
        ASSERT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0);
    }
    EXPECT_EQ(admin.command<long long>("GET", "report:daily:loads"), 1);
    EXPECT_EQ(admin.command<long long>("EXISTS", "report:daily:lock"), 0);  // released
}

TEST_F(Cache, LockHeldElsewhereServesTheStaleValueAfterWaiting) {
    redkit::cache_options o;
    o.lock = true;
    o.lock_wait = 100ms;
    o.stale_for = 10s;
    redkit::cache cache(client(), o);
    const std::string old_json = nlohmann::json(chair(8, "Old Chair")).dump();
    admin.command<void>("SET", "product:8", with_meta(old_json, now_ms() - 1000, 1000), "PX", 10'000);
    admin.command<void>("SET", "product:8:lock", "another-process", "PX", 5000);
    int loads = 0;
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(cache.get_or_set<product>(
                  "product:8", [&] { return ++loads, chair(8); }, 60s),
              chair(8, "Old Chair"));
    EXPECT_GE(std::chrono::steady_clock::now() - started, 100ms);
    EXPECT_EQ(loads, 0);
    EXPECT_EQ(cache.stats().stale_serves, 1u);
    EXPECT_EQ(*raw("product:8:lock"), "another-process");  // never deleted another holder's lock
}

TEST_F(Cache, LockHeldElsewhereWithNothingStaleComputesAnyway) {
    redkit::cache_options o;
    o.lock = true;
    o.lock_wait = 100ms;
    redkit::cache cache(client(), o);
    admin.command<void>("SET", "product:9:lock", "another-process", "PX", 5000);
    int loads = 0;
    EXPECT_EQ(cache.get_or_set<product>(
                  "product:9", [&] { return ++loads, chair(9); }, 60s),
              chair(9));
    EXPECT_EQ(loads, 1);
    EXPECT_EQ(nlohmann::json::parse(*raw("product:9")), nlohmann::json(chair(9)));
    EXPECT_EQ(*raw("product:9:lock"), "another-process");
}

TEST_F(Cache, LockHeldElsewhereWaitsForTheHoldersValue) {
    redkit::cache_options o;
    o.lock = true;
    o.lock_wait = 10s;
    redkit::cache cache(client(), o);
    admin.command<void>("SET", "product:10:lock", "another-process", "PX", 5000);
    // The "other process" stores its value a little later.
    auto holder = std::async(std::launch::async, [&] {
        redkit::client other(shared_server().url());
        std::this_thread::sleep_for(50ms);
        redkit::cache(other).set("product:10", chair(10, "From Holder"), 60s);
    });
    int loads = 0;
    EXPECT_EQ(cache.get_or_set<product>(
                  "product:10", [&] { return ++loads, chair(10); }, 60s),
              chair(10, "From Holder"));
    EXPECT_EQ(loads, 0);
    ASSERT_EQ(holder.wait_for(10s), std::future_status::ready);
}

TEST_F(Cache, LockIsReleasedWhenTheLoaderThrows) {
    redkit::cache_options o;
    o.lock = true;
    redkit::cache cache(client(), o);
    EXPECT_THROW(static_cast<void>(cache.get_or_set<product>(
                     "product:11", []() -> product { throw std::runtime_error("boom"); }, 60s)),
                 std::runtime_error);
    EXPECT_EQ(admin.command<long long>("EXISTS", "product:11:lock"), 0);
    EXPECT_EQ(admin.command<long long>("EXISTS", "product:11"), 0);
}

TEST_F(Cache, KilledServerFallsBackToTheLoaderAndRecovers) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "needs a private redis-server to kill";
    error_log log;
    auto co = server.options();
    co.on_error = log.callback();
    co.connect_timeout = 200ms;
    co.command_timeout = 200ms;
    co.max_retries = 0;
    redkit::client c(co);
    redkit::cache_options o;
    o.outage_backoff = 100ms;
    redkit::cache cache(c, o);
    std::atomic<int> loads{0};
    const auto loader = [&] { return ++loads, chair(12); };

    EXPECT_EQ(cache.get_or_set<product>("product:12", loader, 60s), chair(12));
    EXPECT_EQ(cache.get_or_set<product>("product:12", loader, 60s), chair(12));
    EXPECT_EQ(loads.load(), 1);

    server.kill();
    product served;
    EXPECT_NO_THROW(served = cache.get_or_set<product>("product:12", loader, 60s));
    EXPECT_EQ(served, chair(12));
    EXPECT_EQ(loads.load(), 2);
    EXPECT_GE(cache.stats().errors, 1u);
    EXPECT_TRUE(log.contains("serving from the loader"));
    // Within the backoff Redis is skipped, without waiting on it.
    EXPECT_NO_THROW(served = cache.get_or_set<product>("product:12", loader, 60s));
    EXPECT_EQ(loads.load(), 3);

    server.start();
    const auto hits_before = cache.stats().hits;
    EXPECT_TRUE(eventually([&] {
        static_cast<void>(cache.get_or_set<product>("product:12", loader, 60s));
        return cache.stats().hits > hits_before;
    }));
    redkit::client fresh(server.url());
    EXPECT_EQ(nlohmann::json::parse(fresh.command<std::string>("GET", "product:12")), nlohmann::json(chair(12)));
}

TEST_F(Cache, ThrowPolicyThrowsWhenTheServerIsDown) {
    redkit_test::redis_server server;
    if (server.external()) GTEST_SKIP() << "needs a private redis-server to kill";
    auto co = server.options();
    co.connect_timeout = 200ms;
    co.max_retries = 0;
    redkit::cache_options o;
    o.on_failure = redkit::cache_failure_policy::throw_error;
    redkit::cache cache(redkit::client(co), o);
    server.kill();
    int loads = 0;
    try {
        static_cast<void>(cache.get_or_set<product>(
            "product:13", [&] { return ++loads, chair(13); }, 60s));
        FAIL() << "expected redkit::error";
    } catch (const redkit::error& e) {
        EXPECT_TRUE(e.is_transport()) << e.what();
    }
    EXPECT_EQ(loads, 0);
    EXPECT_THROW(static_cast<void>(cache.get<product>("product:13")), redkit::error);
    EXPECT_EQ(cache.stats().errors, 2u);
}

TEST_F(Cache, TimeoutServesFromTheLoaderAndReportsIt) {
    error_log log;
    auto co = shared_server().options();
    co.on_error = log.callback();
    co.command_timeout = 100ms;
    co.max_retries = 0;
    redkit::client c(co);
    c.ping();
    redkit::cache cache(c);
    // Pause every client on the server: the cache's GET cannot be answered in time.
    admin.command<void>("CLIENT", "PAUSE", 300, "ALL");
    int loads = 0;
    product served;
    EXPECT_NO_THROW(served = cache.get_or_set<product>(
                        "product:14", [&] { return ++loads, chair(14); }, 60s));
    EXPECT_EQ(served, chair(14));
    EXPECT_EQ(loads, 1);
    EXPECT_TRUE(log.has_kind(redkit::errc::timeout));
    EXPECT_TRUE(log.contains("redkit: cache: GET product:14 failed"));
}

TEST_F(Cache, CorruptValuesAreReportedAndReplaced) {
    error_log log;
    redkit::cache cache(client(&log));
    int loads = 0;
    const auto loader = [&] { return ++loads, chair(15); };

    admin.command<void>("SET", "product:15", "{not json");
    EXPECT_EQ(cache.get_or_set<product>("product:15", loader, 60s), chair(15));
    EXPECT_EQ(nlohmann::json::parse(*raw("product:15")), nlohmann::json(chair(15)));

    admin.command<void>("SET", "product:15", "[1,2,3]");  // JSON, but an older schema
    EXPECT_EQ(cache.get_or_set<product>("product:15", loader, 60s), chair(15));
    EXPECT_EQ(nlohmann::json::parse(*raw("product:15")), nlohmann::json(chair(15)));

    admin.command<void>("DEL", "product:15");
    admin.command<void>("RPUSH", "product:15", "x");  // not even a string
    EXPECT_EQ(cache.get_or_set<product>("product:15", loader, 60s), chair(15));
    EXPECT_EQ(admin.command<std::string>("TYPE", "product:15"), "string");

    EXPECT_EQ(loads, 3);
    EXPECT_EQ(cache.stats().errors, 3u);
    EXPECT_TRUE(log.has_kind(redkit::errc::decode_error));
    EXPECT_TRUE(log.contains("product:15: stored value does not decode"));
    // get() reports and misses without touching the value.
    admin.command<void>("SET", "product:16", "{oops");
    EXPECT_EQ(cache.get<product>("product:16"), std::nullopt);
    EXPECT_EQ(*raw("product:16"), "{oops");
}

TEST_F(Cache, ACallerOfAnotherTypeGetsTheSameOutcomeConcurrentlyAsSequentially) {
    // A product is cached under a key another caller reads as a list of tags: the product's JSON
    // does not decode as that type. Sequentially that is a miss: the second caller loads.
    error_log log;
    redkit::cache cache(client(&log));
    using tags = std::vector<std::string>;
    const tags fresh_tags{"new", "shiny"};
    EXPECT_EQ(cache.get_or_set<product>(
                  "mixed:seq", [] { return chair(1); }, 60s),
              chair(1));
    EXPECT_EQ(cache.get_or_set<tags>(
                  "mixed:seq", [&] { return fresh_tags; }, 60s),
              fresh_tags);

    // Concurrently: the second caller joins the first one's recompute, and must load too.
    std::promise<void> loading;
    std::promise<void> release;
    auto release_future = release.get_future().share();
    auto first = std::async(std::launch::async, [&] {
        return cache.get_or_set<product>(
            "mixed:con",
            [&] {
                loading.set_value();
                release_future.wait();
                return chair(2);
            },
            60s);
    });
    ASSERT_EQ(loading.get_future().wait_for(5s), std::future_status::ready);
    auto second = std::async(std::launch::async, [&] {
        return cache.get_or_set<tags>(
            "mixed:con", [&] { return fresh_tags; }, 60s);
    });
    // the second caller is waiting on the first one's flight (or about to); then let it finish
    std::this_thread::sleep_for(100ms);
    release.set_value();
    EXPECT_EQ(first.get(), chair(2));
    tags got;
    ASSERT_NO_THROW(got = second.get());
    EXPECT_EQ(got, fresh_tags);
    EXPECT_TRUE(log.contains("mixed:con: stored value does not decode"));
}

TEST_F(Cache, NegativeCachingStoresAbsenceWithItsOwnTtl) {
    redkit::cache_options o;
    o.negative_ttl = 200ms;
    redkit::cache cache(client(), o);
    int loads = 0;
    const auto find = [&]() -> std::optional<product> {
        ++loads;
        return std::nullopt;
    };
    EXPECT_EQ(cache.get_or_set("user:404", find, 60s), std::nullopt);
    EXPECT_EQ(cache.get_or_set("user:404", find, 60s), std::nullopt);
    EXPECT_EQ(loads, 1);
    EXPECT_EQ(cache.stats().hits, 1u);
    EXPECT_EQ(*raw("user:404"), "!redkit:absent");
    const auto pttl = admin.command<long long>("PTTL", "user:404");
    EXPECT_GT(pttl, 0);
    EXPECT_LE(pttl, 200);
    // Cached absence is not a miss.
    const auto absent = cache.get<std::optional<product>>("user:404");
    ASSERT_TRUE(absent.has_value());
    EXPECT_FALSE(absent->has_value());
    EXPECT_FALSE(cache.get<std::optional<product>>("user:405").has_value());

    ASSERT_TRUE(eventually([&] { return admin.command<long long>("EXISTS", "user:404") == 0; }));
    EXPECT_EQ(cache.get_or_set("user:404", find, 60s), std::nullopt);
    EXPECT_EQ(loads, 2);
    // A found value is cached with the normal TTL.
    EXPECT_EQ(cache.get_or_set<std::optional<product>>(
                  "user:406", [] { return chair(406); }, 60s),
              chair(406));
    EXPECT_GT(admin.command<long long>("PTTL", "user:406"), 50'000);

    redkit::cache_options off;
    off.negative_ttl = 0ms;
    redkit::cache no_negative(client(), off);
    EXPECT_EQ(no_negative.get_or_set("user:407", find, 60s), std::nullopt);
    EXPECT_EQ(admin.command<long long>("EXISTS", "user:407"), 0);
}

TEST_F(Cache, MetadataRecordsTheRecomputeTimeAndLogicalExpiry) {
    redkit::cache_options o;
    o.ttl_jitter = 0;
    o.stale_for = 5s;
    redkit::cache cache(client(), o);
    const long long before = now_ms();
    static_cast<void>(cache.get_or_set<product>(
        "product:17",
        [] {
            std::this_thread::sleep_for(20ms);
            return chair(17);
        },
        60s));
    const long long after = now_ms();
    redkit::detail::cache_meta m;
    bool has = false;
    const std::string bytes = *raw("product:17");
    static_cast<void>(redkit::detail::split_cache_entry(bytes, m, has));
    ASSERT_TRUE(has);
    EXPECT_GE(m.delta_us, 20'000);
    EXPECT_LT(m.delta_us, 5'000'000);
    EXPECT_GE(m.expiry_ms, before + 60'000);
    EXPECT_LE(m.expiry_ms, after + 60'000);
    const auto pttl = admin.command<long long>("PTTL", "product:17");
    EXPECT_GT(pttl, 60'000);  // the Redis TTL covers the logical TTL plus stale_for
    EXPECT_LE(pttl, 65'000);
}

TEST_F(Cache, XFetchRecomputesEarlyNearExpiryAndNeverFarFromIt) {
    auto engine = std::make_shared<std::mt19937_64>(20240601);
    redkit::cache_options o;
    o.beta = 1.0;
    o.random = [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
    redkit::cache cache(client(), o);
    const std::string old_json = nlohmann::json(chair(18, "Old")).dump();
    constexpr long long delta_us = 10'000'000;  // the last recompute took 10 s
    constexpr int rounds = 200;
    // Refreshes out of `rounds` reads made `remaining_ms` before the logical expiry. Each round
    // restores the entry, so every read sees the same metadata. With delta = 10 s, the few ms
    // between SET and GET are noise: the outcome depends on the seeded draws only.
    const auto refreshes_at = [&](long long remaining_ms) {
        int refreshed = 0;
        for (int i = 0; i < rounds; ++i) {
            admin.command<void>("SET", "product:18", with_meta(old_json, now_ms() + remaining_ms, delta_us), "PX",
                                600'000);
            bool loaded = false;
            const product p = cache.get_or_set<product>(
                "product:18",
                [&] {
                    loaded = true;
                    return chair(18, "New");
                },
                60s);
            EXPECT_EQ(p.name, loaded ? "New" : "Old");
            refreshed += loaded ? 1 : 0;
        }
        return refreshed;
    };
    // P(refresh) = exp(-remaining / (delta * beta)).
    EXPECT_GE(refreshes_at(1'000), 165);        // p = 0.90
    const int at_delta = refreshes_at(10'000);  // p = 0.37
    EXPECT_GE(at_delta, 45);
    EXPECT_LE(at_delta, 105);
    EXPECT_LE(refreshes_at(40'000), 15);  // p = 0.018
    EXPECT_EQ(refreshes_at(250'000), 0);  // beyond 20.7 * delta * beta: never, whatever the draw
    EXPECT_EQ(cache.stats().early_refreshes, cache.stats().loader_calls);

    redkit::cache_options off = o;
    off.beta = 0;
    redkit::cache no_xfetch(client(), off);
    admin.command<void>("SET", "product:18", with_meta(old_json, now_ms() + 50, delta_us), "PX", 600'000);
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(no_xfetch
                      .get_or_set<product>(
                          "product:18", [] { return chair(18, "New"); }, 60s)
                      .name,
                  "Old");
    }
    EXPECT_EQ(no_xfetch.stats().loader_calls, 0u);
}

TEST_F(Cache, EarlyRefreshDefersToAProcessHoldingTheLock) {
    redkit::cache_options o;
    o.lock = true;
    o.random = [] { return 1e-6; };  // always draws "refresh now"
    redkit::cache cache(client(), o);
    const std::string old_json = nlohmann::json(chair(19, "Current")).dump();
    admin.command<void>("SET", "product:19", with_meta(old_json, now_ms() + 5'000, 10'000'000), "PX", 60'000);
    admin.command<void>("SET", "product:19:lock", "another-process", "PX", 5000);
    int loads = 0;
    EXPECT_EQ(cache
                  .get_or_set<product>(
                      "product:19", [&] { return ++loads, chair(19); }, 60s)
                  .name,
              "Current");
    EXPECT_EQ(loads, 0);
    admin.command<void>("DEL", "product:19:lock");
    EXPECT_EQ(cache
                  .get_or_set<product>(
                      "product:19", [&] { return ++loads, chair(19, "Fresh"); }, 60s)
                  .name,
              "Fresh");
    EXPECT_EQ(loads, 1);
    EXPECT_EQ(cache.stats().early_refreshes, 1u);
}

TEST_F(Cache, TtlJitterSpreadsExpiries) {
    redkit::cache_options o;
    o.ttl_jitter = 0.5;
    redkit::cache cache(client(), o);
    std::set<long long> ttls;
    for (int i = 0; i < 40; ++i) {
        const std::string key = "j:" + std::to_string(i);
        cache.set(key, i, 10s);
        const auto pttl = admin.command<long long>("PTTL", key);
        EXPECT_GT(pttl, 4'900);
        EXPECT_LE(pttl, 10'000);
        ttls.insert(pttl / 100);
    }
    EXPECT_GE(ttls.size(), 10u);
}

TEST_F(Cache, InvalidateForcesAReload) {
    redkit::cache cache(client());
    int loads = 0;
    const auto loader = [&] { return ++loads, chair(20, "v" + std::to_string(loads)); };
    EXPECT_EQ(cache.get_or_set<product>("product:20", loader, 60s).name, "v1");
    EXPECT_EQ(cache.get_or_set<product>("product:20", loader, 60s).name, "v1");
    EXPECT_TRUE(cache.invalidate("product:20"));
    EXPECT_FALSE(cache.invalidate("product:20"));
    EXPECT_EQ(cache.get_or_set<product>("product:20", loader, 60s).name, "v2");
    EXPECT_EQ(loads, 2);
}

TEST_F(Cache, InvalidateDuringARecomputeKeepsItsOutdatedResultOut) {
    redkit::cache cache(client());
    std::promise<void> loading, release;
    auto released = release.get_future().share();
    auto reader = std::async(std::launch::async, [&] {
        return cache.get_or_set<product>(
            "product:21",
            [&] {
                loading.set_value();
                released.wait();
                return chair(21, "read before the write");
            },
            60s);
    });
    ASSERT_EQ(loading.get_future().wait_for(10s), std::future_status::ready);
    EXPECT_FALSE(cache.invalidate("product:21"));  // the database changed meanwhile
    release.set_value();
    ASSERT_EQ(reader.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(reader.get().name, "read before the write");
    EXPECT_EQ(admin.command<long long>("EXISTS", "product:21"), 0);
}

TEST_F(Cache, GetManyAndSetMany) {
    error_log log;
    redkit::cache cache(client(&log));
    cache.set_many<product>({{"product:30", chair(30)}, {"product:31", chair(31)}}, 60s);
    admin.command<void>("SET", "product:33", "{bad");
    const auto got = cache.get_many<product>({"product:30", "product:32", "product:31", "product:33"});
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(got[0], chair(30));
    EXPECT_EQ(got[1], std::nullopt);
    EXPECT_EQ(got[2], chair(31));
    EXPECT_EQ(got[3], std::nullopt);
    EXPECT_EQ(cache.stats().hits, 2u);
    EXPECT_EQ(cache.stats().misses, 2u);
    EXPECT_EQ(cache.stats().errors, 1u);
    EXPECT_GT(admin.command<long long>("PTTL", "product:31"), 50'000);
    const std::vector<std::string> keys = {"product:31"};
    EXPECT_EQ(cache.get_many<product>(keys).at(0), chair(31));
    EXPECT_TRUE(cache.get_many<product>(std::vector<std::string>{}).empty());
}

TEST_F(Cache, KeySpacePrefixesEveryKey) {
    redkit::cache_options o;
    o.keys = redkit::key_space("shop:test");
    o.lock = true;
    redkit::cache cache(client(), o);
    EXPECT_EQ(cache.key("product:1"), "shop:test:product:1");
    static_cast<void>(cache.get_or_set<product>(
        "product:1", [] { return chair(1); }, 60s));
    EXPECT_EQ(admin.command<long long>("EXISTS", "shop:test:product:1"), 1);
    EXPECT_EQ(admin.command<long long>("EXISTS", "product:1"), 0);
    EXPECT_EQ(cache.get<product>("product:1"), chair(1));
}

TEST_F(Cache, DefaultClientIsUsedByDefault) {
    redkit::set_default_client(client());
    redkit::cache cache;
    cache.set("greeting", std::string("hello"), 60s);
    EXPECT_EQ(nlohmann::json::parse(*raw("greeting")), "hello");
    EXPECT_EQ(cache.get<std::string>("greeting"), "hello");
    redkit::reset_default_client();
}

TEST_F(Cache, BadArgumentsThrowNamingTheField) {
    const auto rejects = [&](const std::function<void(redkit::cache_options&)>& change, const std::string& field) {
        redkit::cache_options o;
        change(o);
        try {
            redkit::cache c(client(), o);
            ADD_FAILURE() << field << " accepted";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
        }
    };
    rejects([](auto& o) { o.ttl_jitter = 1.0; }, "ttl_jitter");
    rejects([](auto& o) { o.ttl_jitter = -0.1; }, "ttl_jitter");
    rejects([](auto& o) { o.beta = -1; }, "beta");
    rejects([](auto& o) { o.default_ttl = 0ms; }, "default_ttl");
    rejects([](auto& o) { o.negative_ttl = -1ms; }, "negative_ttl");
    rejects([](auto& o) { o.lock_ttl = 0ms; }, "lock_ttl");
    rejects([](auto& o) { o.lock_wait = -1ms; }, "lock_wait");
    rejects([](auto& o) { o.outage_backoff = -1ms; }, "outage_backoff");
    rejects(
        [](auto& o) {
            o.store_metadata = false;
            o.stale_for = 1s;
        },
        "stale_for");
    redkit::cache cache(client());
    EXPECT_THROW(static_cast<void>(cache.get_or_set<int>(
                     "k", [] { return 1; }, 0ms)),
                 std::invalid_argument);
    EXPECT_THROW(static_cast<void>(cache.get_or_set<int>(
                     "", [] { return 1; }, 1s)),
                 std::invalid_argument);
    EXPECT_THROW(cache.set("k", 1, -1s), std::invalid_argument);
}

// client_options::observer hears of each call once, with how it was answered: a miss that loads,
// a hit, get()'s miss, 8 threads on one key (one loads, seven wait), a loader that throws, a
// lock held by another process (waited, with the wait), a stale value served, a near hit, and
// async_get_or_set.
TEST_F(Cache, EachCallReachesTheObserverOnceWithItsOutcome) {
    struct calls : redkit::observer {
        void on_cache(const redkit::cache_event& e) override {
            std::lock_guard<std::mutex> lock(mutex);
            seen.push_back(
                {std::string(e.cache), std::string(e.key), e.outcome, e.early_refresh, e.duration, e.lock_waited});
        }
        struct call {
            std::string cache, key;
            redkit::cache_outcome outcome;
            bool early;
            std::chrono::nanoseconds duration, lock_waited;
        };
        std::vector<call> take() {
            std::lock_guard<std::mutex> lock(mutex);
            return std::exchange(seen, {});
        }
        std::mutex mutex;
        std::vector<call> seen;
    };
    using outcome = redkit::cache_outcome;
    const auto watched = std::make_shared<calls>();
    auto co = shared_server().options();
    co.observer = watched;
    co.observe_keys = true;
    redkit::client observed(co);
    redkit::cache_options o;
    o.keys = redkit::key_space("shop");
    redkit::cache cache(observed, o);

    EXPECT_EQ(cache.get_or_set<product>(
                  "product:1", [] { return chair(1); }, 60s),
              chair(1));
    EXPECT_EQ(cache.get_or_set<product>(
                  "product:1", [] { return chair(1); }, 60s),
              chair(1));
    EXPECT_FALSE(cache.get<product>("product:none").has_value());
    auto seen = watched->take();
    ASSERT_EQ(seen.size(), 3U);
    EXPECT_EQ(seen[0].outcome, outcome::miss);
    EXPECT_EQ(seen[0].cache, "shop");
    EXPECT_EQ(seen[0].key, "shop:product:1");
    EXPECT_GT(seen[0].duration, 0ns);
    EXPECT_EQ(seen[1].outcome, outcome::hit);
    EXPECT_EQ(seen[2].outcome, outcome::miss);
    EXPECT_EQ(seen[2].key, "shop:product:none");

    // 8 threads, one key, a slow loader: one loads, the others wait for it
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([&] {
            (void)cache.get_or_set<product>(
                "product:2", [] { return std::this_thread::sleep_for(100ms), chair(2); }, 60s);
        });
    }
    for (auto& t : threads) t.join();
    seen = watched->take();
    ASSERT_EQ(seen.size(), 8U);
    std::map<outcome, int> by;
    for (const auto& c : seen) ++by[c.outcome];
    EXPECT_EQ(by[outcome::miss], 1);
    EXPECT_EQ(by[outcome::waited] + by[outcome::hit], 7);  // a late thread may read the stored value
    EXPECT_GE(by[outcome::waited], 1);

    EXPECT_THROW((void)cache.get_or_set<product>(
                     "product:3", []() -> product { throw std::runtime_error("db down"); }, 60s),
                 std::runtime_error);
    seen = watched->take();
    ASSERT_EQ(seen.size(), 1U);
    EXPECT_EQ(seen[0].outcome, outcome::failed);

    // another process holds the lock: this call waits for its value
    redkit::cache_options locked = o;
    locked.lock = true;
    locked.lock_wait = 5s;
    locked.stale_for = 10s;
    redkit::cache careful(observed, locked);
    admin.command<void>("SET", "shop:product:4:lock", "another-process", "PX", 5000);
    auto holder = std::async(std::launch::async, [&] {
        std::this_thread::sleep_for(80ms);
        redkit::cache(redkit::client(shared_server().url()), o).set("product:4", chair(4), 60s);
    });
    EXPECT_EQ(careful.get_or_set<product>(
                  "product:4", [] { return chair(4, "Mine"); }, 60s),
              chair(4));
    ASSERT_EQ(holder.wait_for(10s), std::future_status::ready);
    seen = watched->take();
    ASSERT_EQ(seen.size(), 1U);
    EXPECT_EQ(seen[0].outcome, outcome::waited);
    EXPECT_GE(seen[0].lock_waited, 50ms);
    EXPECT_LE(seen[0].lock_waited, seen[0].duration);

    // ... and past its lock_wait, a logically expired value is served stale
    locked.lock_wait = 50ms;
    redkit::cache hurried(observed, locked);
    admin.command<void>("SET", "shop:product:5",
                        with_meta(nlohmann::json(chair(5, "Old")).dump(), now_ms() - 1000, 1000), "PX", 10'000);
    admin.command<void>("SET", "shop:product:5:lock", "another-process", "PX", 5000);
    EXPECT_EQ(hurried.get_or_set<product>(
                  "product:5", [] { return chair(5); }, 60s),
              chair(5, "Old"));
    seen = watched->take();
    ASSERT_EQ(seen.size(), 1U);
    EXPECT_EQ(seen[0].outcome, outcome::stale);
    EXPECT_GE(seen[0].lock_waited, 40ms);

    // async: a miss, then a hit, each reported before its future is ready
    auto m = cache.async_get_or_set<product>(
        "product:6", [] { return chair(6); }, 60s);
    EXPECT_EQ(m.get(), chair(6));
    EXPECT_EQ(watched->take().at(0).outcome, outcome::miss);
    EXPECT_EQ(cache
                  .async_get_or_set<product>(
                      "product:6", [] { return chair(6); }, 60s)
                  .get(),
              chair(6));
    EXPECT_EQ(watched->take().at(0).outcome, outcome::hit);

    // a near cache's hit (once its invalidation channel is up, values read are kept near)
    redkit::cache_options near = o;
    near.near.enabled = true;
    redkit::cache nearby(observed, near);
    bool near_hit = false;
    for (int i = 0; i < 200 && !near_hit; ++i) {
        EXPECT_EQ(nearby.get_or_set<product>(
                      "product:1", [] { return chair(1); }, 60s),
                  chair(1));
        seen = watched->take();
        ASSERT_EQ(seen.size(), 1U);
        near_hit = seen[0].outcome == outcome::near_hit;
        if (!near_hit) {
            EXPECT_EQ(seen[0].outcome, outcome::hit);
        }
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(near_hit);
}
