// SPDX-License-Identifier: MIT
// redkit::client against a real, private redis-server.
#include <redkit/redkit.hpp>

#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"
#include "support/watchdog.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace {

class Client : public redkit_test::fresh_database {};

struct point {
    double lon, lat;
};

}  // namespace

template <>
struct redkit::reply_traits<point> {
    static point convert(redkit::reply_view v) {
        if (!v.is_array() || v.size() != 2) v.mismatch("longitude/latitude pair");
        return {v[0].as<double>(), v[1].as<double>()};
    }
};

// The server matrix (REDKIT_TEST_SERVER, scripts/fetch-servers): the suites really talk to the
// server asked for, and its version is printed with the results.
TEST_F(Client, TheServerIsTheOneTheMatrixAskedFor) {
    const std::string info = redis.command<std::string>("INFO", "server");
    const auto field = [&](const std::string& name) {
        const auto at = info.find("\n" + name + ":");
        if (at == std::string::npos) return std::string();
        const auto from = at + name.size() + 2;
        return info.substr(from, info.find_first_of("\r\n", from) - from);
    };
    const std::string valkey = field("valkey_version"), redis_version = field("redis_version");
    std::printf("[ figures  ] server: %s\n",
                valkey.empty() ? ("Redis " + redis_version).c_str() : ("Valkey " + valkey).c_str());
    const char* env = std::getenv("REDKIT_TEST_SERVER");
    const std::string asked = env ? env : "";
    if (asked == "valkey-8.1") {
        EXPECT_EQ(valkey.rfind("8.1.", 0), 0u) << info;
    } else if (asked == "redis-8.0") {
        EXPECT_TRUE(valkey.empty()) << info;
        EXPECT_EQ(redis_version.rfind("8.0.", 0), 0u) << info;
    } else if (!shared_server().external()) {
        EXPECT_TRUE(valkey.empty()) << "Debian 12's redis-server, not Valkey: " << info;
    }
}

TEST_F(Client, StringsRoundTripBinarySafe) {
    const std::string value("a\0b\r\n\xff", 6);
    redis.command<void>("SET", "bin", value);
    EXPECT_EQ(redis.command<std::string>("GET", "bin"), value);
    EXPECT_EQ(redis.command<long long>("STRLEN", "bin"), 6);
}

TEST_F(Client, NilIsNullopt) {
    EXPECT_EQ(redis.command<std::optional<std::string>>("GET", "missing"), std::nullopt);
    redis.command<void>("SET", "present", "x");
    EXPECT_EQ(redis.command<std::optional<std::string>>("GET", "present"), "x");
}

TEST_F(Client, IntegersDoublesAndDurations) {
    EXPECT_EQ(redis.command<long long>("INCRBY", "n", 41), 41);
    EXPECT_EQ(redis.command<long long>("INCR", "n"), 42);
    EXPECT_EQ(redis.command<long long>("GET", "n"), 42);
    EXPECT_DOUBLE_EQ(redis.command<double>("INCRBYFLOAT", "f", 2.5), 2.5);
    redis.command<void>("SET", "ttl", "v", "PX", 5000ms);
    const auto pttl = redis.command<long long>("PTTL", "ttl");
    EXPECT_GT(pttl, 4000);
    EXPECT_LE(pttl, 5000);
    EXPECT_TRUE(redis.command<bool>("EXPIRE", "ttl", 60s));
    EXPECT_EQ(redis.command<long long>("TTL", "ttl"), 60);
}

TEST_F(Client, Booleans) {
    EXPECT_TRUE(redis.command<bool>("SET", "lock", "t", "NX", "PX", 1000));
    EXPECT_FALSE(redis.command<bool>("SET", "lock", "t", "NX", "PX", 1000));
    EXPECT_TRUE(redis.command<bool>("EXISTS", "lock"));
    EXPECT_FALSE(redis.command<bool>("EXISTS", "nolock"));
}

TEST_F(Client, VectorsAndRanges) {
    const std::vector<std::string> items = {"a", "b", "c"};
    EXPECT_EQ(redis.command<long long>("RPUSH", "list", items), 3);
    EXPECT_EQ(redis.command<std::vector<std::string>>("LRANGE", "list", 0, -1), items);
    redis.command<void>("MSET", "k1", "v1", "k3", "v3");
    const auto got =
        redis.command<std::vector<std::optional<std::string>>>("MGET", std::vector<std::string>{"k1", "k2", "k3"});
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], "v1");
    EXPECT_EQ(got[1], std::nullopt);
    EXPECT_EQ(got[2], "v3");
}

TEST_F(Client, HashesAsMaps) {
    redis.command<void>("HSET", "user:1", "name", "Ada", "lang", "en");
    const auto h = redis.command<std::unordered_map<std::string, std::string>>("HGETALL", "user:1");
    EXPECT_EQ(h.size(), 2u);
    EXPECT_EQ(h.at("name"), "Ada");
    using hash = std::unordered_map<std::string, std::string>;
    EXPECT_TRUE(redis.command<hash>("HGETALL", "nobody").empty());
    EXPECT_EQ(redis.command<long long>("ZADD", "z", 1, "a"), 1);
    const auto z = redis.command<std::map<std::string, double>>("ZRANGE", "z", 0, -1, "WITHSCORES");
    EXPECT_DOUBLE_EQ(z.at("a"), 1.0);
}

TEST_F(Client, GenericReplyForAnythingElse) {
    redis.command<void>("RPUSH", "l", "x");
    const redkit::reply r = redis.command("LRANGE", "l", 0, -1);
    ASSERT_TRUE(r.is_array());
    EXPECT_EQ(r[0].text(), "x");
    const redkit::reply info = redis.command("INFO", "server");
    EXPECT_NE(info.text().find("redis_version"), std::string::npos);
}

TEST_F(Client, WrongTypeThrowsServerErrorWithPrefixCommandAndKey) {
    redis.command<void>("RPUSH", "user:42", "x");
    try {
        redis.command<std::optional<std::string>>("GET", "user:42");
        FAIL();
    } catch (const redkit::server_error& e) {
        EXPECT_EQ(e.prefix(), "WRONGTYPE");
        EXPECT_EQ(std::string(e.what()).rfind("redkit: GET user:42: WRONGTYPE", 0), 0u) << e.what();
    }
    // the connection is still good afterwards
    EXPECT_EQ(redis.command<long long>("LLEN", "user:42"), 1);
}

TEST_F(Client, WrongShapeThrowsTypeMismatch) {
    redis.command<void>("RPUSH", "l", "x");
    try {
        redis.command<long long>("LRANGE", "l", 0, -1);
        FAIL();
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::type_mismatch);
    }
}

TEST_F(Client, PingAndReachability) {
    EXPECT_NO_THROW(redis.ping());
    EXPECT_TRUE(redis.is_reachable());
    redkit::client_options nowhere;
    nowhere.port = redkit_test::free_loopback_port();
    nowhere.max_retries = 0;
    redkit::client down(nowhere);
    EXPECT_FALSE(down.is_reachable());
    EXPECT_THROW(down.ping(), redkit::error);
}

TEST_F(Client, EagerConnectThrowsAtConstruction) {
    redkit::client_options o;
    o.port = redkit_test::free_loopback_port();
    o.lazy_connect = false;
    try {
        redkit::client c(o);
        FAIL();
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::connect_failed);
        EXPECT_NE(std::string(e.what()).find(std::to_string(o.port)), std::string::npos) << e.what();
    }
}

TEST_F(Client, LazyConnectOpensOnFirstUse) {
    redkit::client c(shared_server().url());
    EXPECT_EQ(c.open_connections(), 0u);
    c.ping();
    EXPECT_EQ(c.open_connections(), 1u);
}

TEST_F(Client, UnixSocketAndSelectDb) {
    if (shared_server().external()) GTEST_SKIP() << "needs the private server's socket";
    redkit::client c(shared_server().unix_url() + "?db=3");
    c.command<void>("SET", "where", "db3");
    EXPECT_EQ(redis.command<std::optional<std::string>>("GET", "where"), std::nullopt);
    redis.command<void>("SELECT", 3);  // on one pooled connection only; read through a fresh client
    redkit::client db3(shared_server().url("/3"));
    EXPECT_EQ(db3.command<std::string>("GET", "where"), "db3");
}

TEST_F(Client, ClientNameIsSetOnEveryConnection) {
    redkit::client c(shared_server().url("", "client_name=redkit-test"));
    EXPECT_EQ(c.command<std::string>("CLIENT", "GETNAME"), "redkit-test");
}

TEST_F(Client, AclUserAndWrongPassword) {
    redis.command<void>("ACL", "SETUSER", "app", "on", ">app-pass", "~app:*", "+@all");
    auto app_options = shared_server().options();
    app_options.user = "app";
    app_options.password = "app-pass";
    redkit::client app(app_options);
    app.command<void>("SET", "app:x", "1");
    EXPECT_EQ(app.command<std::string>("ACL", "WHOAMI"), "app");
    // outside its key pattern: a NOPERM server error, not a transport problem
    EXPECT_THROW(app.command<void>("SET", "other:x", "1"), redkit::server_error);

    auto wrong_options = app_options;
    wrong_options.password = "nope";
    redkit::client wrong(wrong_options);
    try {
        wrong.ping();
        FAIL();
    } catch (const redkit::server_error& e) {
        EXPECT_EQ(e.prefix(), "WRONGPASS");
        EXPECT_NE(std::string(e.what()).find("AUTH"), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find("nope"), std::string::npos) << "password leaked: " << e.what();
    }
    redis.command<void>("ACL", "DELUSER", "app");
}

TEST_F(Client, ScriptsRunBySha) {
    static const redkit::script add(R"lua(
        return redis.call('INCRBY', KEYS[1], ARGV[1])
    )lua");
    EXPECT_EQ(redis.eval<long long>(add, {"counter"}, 5), 5);
    EXPECT_EQ(redis.eval<long long>(add, {"counter"}, 2), 7);
    // the locally computed SHA is the one Redis uses
    EXPECT_EQ(redis.command<std::string>("SCRIPT", "LOAD", add.source()), add.sha1());
}

TEST_F(Client, ScriptsSurviveScriptFlush) {
    static const redkit::script echo("return ARGV[1]");
    EXPECT_EQ(redis.eval<std::string>(echo, std::vector<std::string>{}, "one"), "one");
    redis.command<void>("SCRIPT", "FLUSH");
    EXPECT_FALSE(redis.command<std::vector<long long>>("SCRIPT", "EXISTS", echo.sha1()).at(0));
    EXPECT_EQ(redis.eval<std::string>(echo, std::vector<std::string>{}, "two"), "two");
    EXPECT_TRUE(redis.command<std::vector<long long>>("SCRIPT", "EXISTS", echo.sha1()).at(0));
}

TEST_F(Client, ScriptsReturningAGenericReplyAlsoSurviveScriptFlush) {
    static const redkit::script pair("return {1, 'two'}");
    redis.command<void>("SCRIPT", "FLUSH");
    const redkit::reply r = redis.eval(pair, std::vector<std::string>{});
    ASSERT_TRUE(r.is_array()) << r.text();
    EXPECT_EQ(r[0].integer(), 1);
    EXPECT_EQ(r[1].text(), "two");
    static const redkit::script failing("return redis.error_reply('ERR custom failure')");
    const redkit::reply e = redis.eval(failing, std::vector<std::string>{});
    EXPECT_TRUE(e.is_error());  // an error from the script itself stays a value
    EXPECT_EQ(e.text(), "ERR custom failure");
}

TEST_F(Client, ScriptErrorsAreServerErrors) {
    static const redkit::script bad("return redis.call('NOPE')");
    EXPECT_THROW(redis.eval<long long>(bad, {}), redkit::server_error);
}

TEST_F(Client, ScanVisitsEveryKeyOfTenThousand) {
    {
        redkit::pipeline p(redis);
        for (int i = 0; i < 10000; ++i) p.command("SET", redkit::make_key("scan", i), i);
        p.command("SET", "other:1", 1);
        p.exec();
    }
    std::set<std::string> seen;
    for (const std::string& key : redis.scan("scan:*", 500)) seen.insert(key);
    EXPECT_EQ(seen.size(), 10000u);
    EXPECT_EQ(seen.count("other:1"), 0u);
    EXPECT_EQ(seen.count("scan:9999"), 1u);

    // an input iterator: *it++ reads the key it was at (it++ returned nothing before), and the
    // standard algorithms that use it work
    std::set<std::string> again;
    auto range = redis.scan("scan:*", 500);
    for (auto it = range.begin(); it != range.end();) again.insert(*it++);
    EXPECT_EQ(again, seen);
    auto copied = redis.scan("scan:*", 500);
    std::vector<std::string> keys;
    std::copy(copied.begin(), copied.end(), std::back_inserter(keys));
    EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), seen);
}

TEST_F(Client, ScanPatternFromHostileInputMatchesOnlyItself) {
    const redkit::key_space keys("app");
    redis.command<void>("SET", keys.key("user", "*", "a"), 1);
    redis.command<void>("SET", keys.key("user", "victim", "a"), 1);
    std::vector<std::string> found;
    for (const auto& k : redis.scan(keys.pattern("user", "*", redkit::wildcard))) found.push_back(k);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0], "app:user:*:a");
}

TEST_F(Client, ScanByTypeAndEmpty) {
    redis.command<void>("SET", "s", 1);
    redis.command<void>("RPUSH", "l", 1);
    std::vector<std::string> lists;
    for (const auto& k : redis.scan("*", 10, "list")) lists.push_back(k);
    EXPECT_EQ(lists, std::vector<std::string>{"l"});
    int n = 0;
    for (const auto& k : redis.scan("nothing:*")) {
        (void)k;
        ++n;
    }
    EXPECT_EQ(n, 0);
}

TEST_F(Client, DefaultClientComesFromRedisUrlAndIsReplaceable) {
    ::setenv("REDIS_URL", shared_server().url("/5").c_str(), 1);
    redkit::reset_default_client();
    redkit::default_client().command<void>("SET", "singleton", "yes");
    redkit::client db5(shared_server().url("/5"));
    EXPECT_EQ(db5.command<std::string>("GET", "singleton"), "yes");

    redkit::set_default_client(redkit::client(shared_server().url("/6")));
    EXPECT_EQ(redkit::default_client().command<std::optional<std::string>>("GET", "singleton"), std::nullopt);

    ::setenv("REDIS_URL", "redis://host:notaport", 1);
    redkit::reset_default_client();
    EXPECT_THROW(redkit::default_client(), std::invalid_argument);
    ::unsetenv("REDIS_URL");
    redkit::reset_default_client();
}

TEST_F(Client, InvalidOptionsNameTheField) {
    redkit::client_options o;
    o.pool_size = 0;
    try {
        redkit::client c(o);
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("pool_size"), std::string::npos);
    }
}

TEST_F(Client, AnEmptyCommandIsRefusedBeforeAnythingIsWritten) {
    auto o = shared_server().options();
    o.pool_size = 1;
    o.command_timeout = 500ms;
    redkit::client c(o);
    const std::vector<std::string> nothing;
    EXPECT_THROW(c.command<void>(nothing), std::invalid_argument);
    EXPECT_THROW(c.command<void>(redkit::idempotent, nothing), std::invalid_argument);
    // the one pooled connection is free and in step: the next reply is its own
    EXPECT_EQ(c.command<std::string>("ECHO", "after"), "after");

    redkit::connection conn(o);
    EXPECT_THROW(conn.command<void>(nothing), std::invalid_argument);
    EXPECT_FALSE(conn.broken());
    EXPECT_EQ(conn.command<std::string>("ECHO", "still in step"), "still in step");
}

TEST_F(Client, AnEmptyCommandNeverHangsWithoutATimeout) {
    redkit_test::watchdog guard(10s, "an empty command with command_timeout = 0");
    auto o = shared_server().options();
    o.pool_size = 1;
    o.command_timeout = std::chrono::milliseconds(0);  // wait forever for a reply
    redkit::client c(o);
    EXPECT_THROW(c.command<void>(std::vector<std::string>{}), std::invalid_argument);
    EXPECT_EQ(c.command<std::string>("ECHO", "x"), "x");
}

TEST_F(Client, ReplyTraitsReadYourOwnTypes) {
    redis.command<void>("GEOADD", "shops", 13.361389, 38.115556, "palermo");
    const auto where = redis.command<std::vector<std::optional<point>>>("GEOPOS", "shops", "palermo", "nowhere");
    ASSERT_EQ(where.size(), 2u);
    ASSERT_TRUE(where[0].has_value());
    EXPECT_NEAR(where[0]->lon, 13.361389, 1e-5);
    EXPECT_NEAR(where[0]->lat, 38.115556, 1e-5);
    EXPECT_FALSE(where[1].has_value());
    try {
        redis.command<point>("GET", "shops:missing");  // nil is no pair
        FAIL() << "converted a nil";
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::type_mismatch);
        EXPECT_NE(std::string(e.what()).find("GET shops:missing: expected longitude/latitude pair reply, got nil"),
                  std::string::npos)
            << e.what();
    }
}

TEST_F(Client, ADedicatedConnectionWaitsForRepliesAndAWakerCutsTheWaitShort) {
    redkit::connection conn = redis.dedicated();
    redkit::waker stop;
    // a reply: BLPOP answered by a push from another connection
    conn.send("BLPOP", "jobs", 5);
    std::thread pusher([&] {
        std::this_thread::sleep_for(50ms);
        redis.command<long long>("RPUSH", "jobs", "job-1");
    });
    std::optional<std::string> got;
    auto w = conn.wait_reply(stop, 5s, [&](redkit::reply_view r) {
        if (!r.is_nil()) got = r[1].as<std::string>();
    });
    pusher.join();
    EXPECT_EQ(w, redkit::wait_status::reply);
    EXPECT_EQ(got, "job-1");
    // woken: another thread raises the waker while BLPOP blocks on the server
    conn.send("BLPOP", "jobs", 5);
    std::thread waker_thread([&] {
        std::this_thread::sleep_for(50ms);
        stop.notify();
    });
    const auto start = std::chrono::steady_clock::now();
    w = conn.wait_reply(stop, 5s, [&](redkit::reply_view) { ADD_FAILURE() << "no reply was due yet"; });
    waker_thread.join();
    EXPECT_EQ(w, redkit::wait_status::woken);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    // timeout: the reply is still due, and comes on the next wait
    w = conn.wait_reply(stop, 100ms, [&](redkit::reply_view) { ADD_FAILURE() << "no reply was due yet"; });
    EXPECT_EQ(w, redkit::wait_status::timeout);
    redis.command<long long>("RPUSH", "jobs", "job-2");
    w = conn.wait_reply(stop, 5s, [&](redkit::reply_view r) { got = r[1].as<std::string>(); });
    EXPECT_EQ(w, redkit::wait_status::reply);
    EXPECT_EQ(got, "job-2");
    EXPECT_FALSE(conn.broken());
    EXPECT_EQ(conn.command<std::string>("PING"), "PONG");  // in step
}
