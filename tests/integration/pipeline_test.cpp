// SPDX-License-Identifier: MIT
// Pipelines, transactions and scripts inside them, against a real redis-server.
#include <redkit/redkit.hpp>

#include "support/allocation_failure.hpp"
#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <new>
#include <string>
#include <type_traits>
#include <vector>

using redkit_test::shared_server;

namespace {
class Pipeline : public redkit_test::fresh_database {
protected:
    long long calls(const std::string& command) { return redkit_test::command_calls(redis, command); }
};
}  // namespace

TEST_F(Pipeline, RepliesComeBackInOrder) {
    redkit::pipeline p(redis);
    p.command("SET", "a", 1).command("INCR", "a").command("GET", "a").command("GET", "missing");
    EXPECT_EQ(p.size(), 4u);
    const auto r = p.exec();
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[0].as<std::string>(), "OK");
    EXPECT_EQ(r[1].as<long long>(), 2);
    EXPECT_EQ(r[2].as<long long>(), 2);
    EXPECT_TRUE(r[3].is_nil());
    EXPECT_EQ(p.size(), 0u);
}

TEST_F(Pipeline, ErrorReplyDoesNotStopTheOthers) {
    redis.command<void>("RPUSH", "list", "x");
    redkit::pipeline p(redis);
    p.command("SET", "a", "1").command("GET", "list").command("GET", "a");
    const auto r = p.exec();
    ASSERT_EQ(r.size(), 3u);
    EXPECT_TRUE(r[1].is_error());
    EXPECT_THROW(r[1].as<std::string>(), redkit::server_error);
    EXPECT_EQ(r[2].as<std::string>(), "1");
}

TEST_F(Pipeline, ReusableOnTheSameConnection) {
    redkit::pipeline p(redis);
    p.command("CLIENT", "ID");
    const auto first = p.exec().at(0).as<long long>();
    p.command("CLIENT", "ID");
    EXPECT_EQ(p.exec().at(0).as<long long>(), first);
    EXPECT_TRUE(p.exec().empty());
}

TEST_F(Pipeline, DroppedWithoutExecLeavesConnectionClean) {
    redkit::client one(shared_server().url("", "pool_size=1"));
    {
        redkit::pipeline p(one);
        p.command("SET", "never", "sent");
    }
    EXPECT_EQ(one.command<std::optional<std::string>>("GET", "never"), std::nullopt);
    EXPECT_EQ(one.command<std::string>("PING"), "PONG");
}

TEST_F(Pipeline, ManyCommandsOneWrite) {
    redkit::pipeline p(redis);
    for (int i = 0; i < 2000; ++i) p.command("RPUSH", "l", i);
    const auto r = p.exec();
    ASSERT_EQ(r.size(), 2000u);
    EXPECT_EQ(r.back().as<long long>(), 2000);
}

TEST_F(Pipeline, ScriptsLoadThemselvesInOrder) {
    static const redkit::script incr("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    redis.command<void>("SCRIPT", "FLUSH");
    redkit::pipeline p(redis);
    p.command("SET", "c", 10).eval(incr, {"c"}, 5).command("GET", "c").eval(incr, {"c"}, 1);
    const auto r = p.exec();
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[1].as<long long>(), 15);
    EXPECT_EQ(r[2].as<long long>(), 15);  // the script ran before the GET, as queued
    EXPECT_EQ(r[3].as<long long>(), 16);

    // a second pipeline on the same connection does not reload it
    const long long loads = calls("script|load");
    p.eval(incr, {"c"}, 1);
    EXPECT_EQ(p.exec().at(0).as<long long>(), 17);
    EXPECT_EQ(calls("script|load"), loads);
}

TEST_F(Pipeline, ScriptAfterFlushReportsNoscriptThenRecovers) {
    static const redkit::script one("return 1");
    redkit::client single(shared_server().url("", "pool_size=1"));
    redkit::pipeline p(single);
    p.eval(one, {});
    EXPECT_EQ(p.exec().at(0).as<long long>(), 1);
    redis.command<void>("SCRIPT", "FLUSH");
    p.eval(one, {});
    const auto r = p.exec();
    EXPECT_TRUE(r.at(0).is_error());  // the documented race: flushed between pipelines
    p.eval(one, {});
    EXPECT_EQ(p.exec().at(0).as<long long>(), 1);  // reloaded automatically
}

TEST_F(Pipeline, TransactionRunsAtomically) {
    redkit::transaction tx(redis);
    // keys of one transaction share a hash tag: they must, on a cluster (REDKIT_TEST_CLUSTER=1)
    tx.command("INCR", "{o}orders").command("LPUSH", "{o}recent", "o1").command("GET", "{o}orders");
    const auto r = tx.exec();
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0].as<long long>(), 1);
    EXPECT_EQ(r[1].as<long long>(), 1);
    EXPECT_EQ(r[2].as<long long>(), 1);
    EXPECT_EQ(calls("multi"), 1);
    EXPECT_EQ(calls("exec"), 1);
}

TEST_F(Pipeline, TransactionAbortsWhenACommandCannotBeQueued) {
    redkit::transaction tx(redis);
    tx.command("SET", "{t}", "1").command("NOSUCHCOMMAND", "{t}x");
    try {
        tx.exec();
        FAIL();
    } catch (const redkit::server_error& e) {
        EXPECT_EQ(e.prefix(), "EXECABORT");
        EXPECT_NE(std::string(e.what()).find("unknown command"), std::string::npos) << e.what();
    }
    EXPECT_EQ(redis.command<std::optional<std::string>>("GET", "{t}"), std::nullopt);  // nothing ran
}

TEST_F(Pipeline, TransactionRuntimeErrorIsPerCommand) {
    redis.command<void>("RPUSH", "{l}list", "x");
    redkit::transaction tx(redis);
    tx.command("SET", "{l}a", "1").command("INCR", "{l}list").command("SET", "{l}b", "2");
    const auto r = tx.exec();
    ASSERT_EQ(r.size(), 3u);
    EXPECT_TRUE(r[1].is_error());
    EXPECT_EQ(redis.command<std::string>("GET", "{l}b"), "2");
}

TEST_F(Pipeline, AnEmptyCommandIsRefusedAndLaterRepliesStayInStep) {
    const std::vector<std::string> nothing;
    redkit::pipeline p(redis);
    p.command("SET", "a", "1");
    EXPECT_THROW(p.command(nothing), std::invalid_argument);
    p.command("GET", "a");
    const auto r = p.exec();
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[1].as<std::string>(), "1");

    redkit::transaction tx(redis);
    tx.command("INCR", "n");
    EXPECT_THROW(tx.command(nothing), std::invalid_argument);
    tx.command("INCR", "n");
    const auto t = tx.exec();
    ASSERT_EQ(t.size(), 2u);
    EXPECT_EQ(t[1].as<long long>(), 2);
}

TEST_F(Pipeline, AThrowWhileRepliesAreReadNeverHandsTheConnectionOn) {
    auto o = shared_server().options();
    o.pool_size = 1;  // the next command must use the very connection the pipeline held
    redkit::client c(o);
    const std::string big(9000, 'v');
    c.command<void>("SET", "big", big);
    {
        redkit::pipeline p(c);
        for (int i = 0; i < 50; ++i) p.command("GET", "big");
        redkit_test::fail_large_allocation_after(10, 8000);  // the 11th reply copied out of hiredis's tree
        EXPECT_THROW(p.exec(), std::bad_alloc);
        redkit_test::fail_large_allocation_after(-1, 0);
    }
    // 39 replies were never read: a connection handed on would answer ECHO with one of them
    EXPECT_EQ(c.command<std::string>("ECHO", "mine"), "mine");
    EXPECT_EQ(c.command<std::string>("GET", "big"), big);
}

TEST_F(Pipeline, ATransactionIsNotAPipeline) {
    // pipeline p = std::move(tx) used to compile and drop MULTI/EXEC
    static_assert(!std::is_constructible_v<redkit::pipeline, redkit::transaction&&>);
    static_assert(!std::is_convertible_v<redkit::transaction*, redkit::pipeline*>);
    static_assert(std::is_final_v<redkit::pipeline> && std::is_final_v<redkit::transaction>);
    const long long multis = calls("multi");
    redkit::transaction tx(redis);
    tx.command("SET", "t", "1");
    redkit::transaction moved = std::move(tx);
    const auto r = moved.exec();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(calls("multi"), multis + 1);
}

TEST_F(Pipeline, ErrorsOfAScriptWithoutKeysNeverQuoteItsBody) {
    const std::string body = "return redis.error_reply('refused') -- body-marker";
    try {
        redis.command<void>("EVAL", body, 0);
        FAIL() << "no error";
    } catch (const redkit::server_error& e) {
        EXPECT_EQ(std::string(e.what()).find("body-marker"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
    }
    const redkit::script s(body);
    try {
        redis.eval<void>(s, std::initializer_list<std::string_view>{});
        FAIL() << "no error";
    } catch (const redkit::server_error& e) {
        EXPECT_EQ(std::string(e.what()).find("body-marker"), std::string::npos) << e.what();
    }
}
