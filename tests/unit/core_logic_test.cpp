// SPDX-License-Identifier: MIT
// The core's decisions that need no server: the retry rule (core/dispatch/executor.hpp), the
// MOVED/ASK grammar (detail/redirect.hpp), the command table (core/commands.hpp), key positions
// (core/topology/slots.hpp) and the cluster's merged replies (core/topology/cluster.hpp), built
// from RESP parsed by hiredis's own reader.
#include <redkit/core/commands.hpp>
#include <redkit/core/dispatch/executor.hpp>
#include <redkit/core/io/raw.hpp>
#include <redkit/core/topology/cluster.hpp>
#include <redkit/core/topology/slots.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/detail/hash.hpp>
#include <redkit/detail/redirect.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace corelogic = redkit::detail;

// The argument indexes key_positions finds in `args`.
std::vector<std::size_t> corelogic_key_indexes(std::initializer_list<std::string_view> args,
                                               corelogic::route_kind want = corelogic::route_kind::keyed) {
    corelogic::argv a;
    for (const auto s : args) a.push_all(s);
    const corelogic::key_positions k(a);
    EXPECT_EQ(static_cast<int>(k.kind()), static_cast<int>(want)) << a.command_name();
    return k.keys();
}

using corelogic_idx = std::vector<std::size_t>;

bool corelogic_parse(std::string_view text, std::string_view word, corelogic::redirect& out) {
    return corelogic::parse_redirect(text, word, out);
}

// The strings of an array reply (nil as "(nil)").
std::vector<std::string> corelogic_texts(const corelogic::raw_node* r) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < corelogic::raw_size(r); ++i) {
        const corelogic::raw_node* e = corelogic::raw_at(r, i);
        if (e == nullptr) {
            out.emplace_back("(null)");
        } else if (corelogic::raw_type(e) == redkit::reply_type::nil) {
            out.emplace_back("(nil)");
        } else {
            out.emplace_back(corelogic::raw_str(e));
        }
    }
    return out;
}

using corelogic_strings = std::vector<std::string>;

}  // namespace

// ---- the retry rule ----

TEST(RetryRule, DecidesEveryCombination) {
    redkit::client_options o;
    o.max_retries = 3;
    const redkit::errc codes[] = {redkit::errc::io_error,          redkit::errc::timeout,
                                  redkit::errc::connection_closed, redkit::errc::protocol_error,
                                  redkit::errc::connect_failed,    redkit::errc::pool_exhausted};
    int cases = 0;
    for (const redkit::errc code : codes) {
        for (const bool maybe_sent : {false, true}) {
            for (const bool read_only : {false, true}) {
                for (const bool idempotent : {false, true}) {
                    corelogic::command_traits t;
                    t.read_only = read_only;
                    const corelogic::retry_rule rule(o, t, idempotent);
                    const corelogic::io_status st{code, maybe_sent, "failure"};
                    // a deadline is a deadline; an empty pool is no transport failure
                    const bool never = code == redkit::errc::timeout || code == redkit::errc::pool_exhausted;
                    // sent, perhaps run: again only when running it twice does no harm
                    const bool could_run_twice = maybe_sent && !read_only && !idempotent;
                    const bool expected = !never && !could_run_twice;
                    SCOPED_TRACE("code " + std::to_string(static_cast<int>(code)) + " maybe_sent " +
                                 std::to_string(maybe_sent) + " read_only " + std::to_string(read_only) +
                                 " idempotent " + std::to_string(idempotent));
                    EXPECT_EQ(rule.safe(st), expected);
                    EXPECT_EQ(rule.after_failure(st), expected);
                    EXPECT_TRUE(rule.after_refusal());
                    EXPECT_EQ(rule.attempt(), 0);
                    ++cases;
                }
            }
        }
    }
    EXPECT_EQ(cases, 48);
}

TEST(RetryRule, AttemptsRunOut) {
    redkit::client_options o;
    o.max_retries = 2;
    o.retry_backoff = std::chrono::milliseconds(0);  // pause() sleeps nothing
    o.retry_backoff_max = std::chrono::milliseconds(0);
    const corelogic::command_traits get = corelogic::traits_of("GET");
    corelogic::retry_rule rule(o, get, false);
    const corelogic::io_status reset{redkit::errc::connection_closed, true, "reset"};
    for (int i = 0; i < 2; ++i) {
        EXPECT_EQ(rule.attempt(), i);
        EXPECT_TRUE(rule.attempts_left());
        EXPECT_TRUE(rule.after_failure(reset)) << "attempt " << i;
        EXPECT_TRUE(rule.after_refusal());
        rule.pause();
    }
    EXPECT_EQ(rule.attempt(), 2);
    EXPECT_FALSE(rule.attempts_left());
    EXPECT_TRUE(rule.safe(reset));  // still safe, but no attempt left
    EXPECT_FALSE(rule.after_failure(reset));
    EXPECT_FALSE(rule.after_refusal());
}

TEST(RetryRule, NoRetriesMeansNone) {
    redkit::client_options o;
    o.max_retries = 0;
    const corelogic::command_traits t = corelogic::traits_of("GET");
    const corelogic::retry_rule rule(o, t, true);
    const corelogic::io_status refused{redkit::errc::connect_failed, false, "refused"};
    EXPECT_TRUE(rule.safe(refused));
    EXPECT_FALSE(rule.after_failure(refused));
    EXPECT_FALSE(rule.after_refusal());
}

TEST(RetryRule, ReadOnlyComesFromTheCommandTable) {
    redkit::client_options o;
    const corelogic::io_status lost{redkit::errc::connection_closed, true, "lost"};
    const corelogic::command_traits get = corelogic::traits_of("get");
    const corelogic::command_traits incr = corelogic::traits_of("INCR");
    EXPECT_TRUE(corelogic::retry_rule(o, get, false).after_failure(lost));
    EXPECT_FALSE(corelogic::retry_rule(o, incr, false).after_failure(lost));  // it may have run
    EXPECT_TRUE(corelogic::retry_rule(o, incr, true).after_failure(lost));    // marked idempotent
}

// ---- MOVED / ASK ----

TEST(Redirect, ParsesMovedAndAsk) {
    corelogic::redirect r;
    ASSERT_TRUE(corelogic_parse("MOVED 3999 127.0.0.1:6381", "MOVED", r));
    EXPECT_EQ(r.slot, 3999);
    EXPECT_EQ(r.host, "127.0.0.1");
    EXPECT_EQ(r.port, 6381);

    corelogic::redirect a;
    ASSERT_TRUE(corelogic_parse("ASK 0 redis-7.example.internal:7000", "ASK", a));
    EXPECT_EQ(a.slot, 0);
    EXPECT_EQ(a.host, "redis-7.example.internal");
    EXPECT_EQ(a.port, 7000);

    corelogic::redirect edge;
    ASSERT_TRUE(corelogic_parse("MOVED 16383 h:65535", "MOVED", edge));
    EXPECT_EQ(edge.slot, 16383);
    EXPECT_EQ(edge.port, 65535);
    ASSERT_TRUE(corelogic_parse("MOVED 7 h:1", "MOVED", edge));
    EXPECT_EQ(edge.slot, 7);
    EXPECT_EQ(edge.port, 1);
}

TEST(Redirect, StripsIpv6Brackets) {
    corelogic::redirect r;
    ASSERT_TRUE(corelogic_parse("MOVED 12 [::1]:7000", "MOVED", r));
    EXPECT_EQ(r.host, "::1");
    EXPECT_EQ(r.port, 7000);
    ASSERT_TRUE(corelogic_parse("ASK 12182 [2001:db8::42]:6380", "ASK", r));
    EXPECT_EQ(r.slot, 12182);
    EXPECT_EQ(r.host, "2001:db8::42");
    EXPECT_EQ(r.port, 6380);
    // without brackets the last colon still separates the port
    ASSERT_TRUE(corelogic_parse("MOVED 1 fe80::1:7001", "MOVED", r));
    EXPECT_EQ(r.host, "fe80::1");
    EXPECT_EQ(r.port, 7001);
}

TEST(Redirect, RefusesBadSlotsAndPorts) {
    corelogic::redirect r;
    EXPECT_FALSE(corelogic_parse("MOVED 16384 127.0.0.1:6381", "MOVED", r));  // slots end at 16383
    EXPECT_FALSE(corelogic_parse("MOVED 99999 127.0.0.1:6381", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 99999999999999999999 h:1", "MOVED", r));  // no overflow
    EXPECT_FALSE(corelogic_parse("MOVED -1 h:6379", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 1x h:6379", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 1 127.0.0.1", "MOVED", r));   // no port
    EXPECT_FALSE(corelogic_parse("MOVED 1 127.0.0.1:", "MOVED", r));  // empty port
    EXPECT_FALSE(corelogic_parse("MOVED 1 h:0", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 1 h:65536", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 1 h:99999999999999999999", "MOVED", r));  // no overflow
    EXPECT_FALSE(corelogic_parse("MOVED 1 h:63a9", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 1 h:-5", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 1 :6379", "MOVED", r));  // no host
    EXPECT_FALSE(corelogic_parse("MOVED 1 h:6379 extra", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED  127.0.0.1:6381", "MOVED", r));  // an empty slot is no slot 0
    EXPECT_FALSE(corelogic_parse("MOVED 1 []:7000", "MOVED", r));        // brackets around nothing
}

TEST(Redirect, ARefusalLeavesTheTargetAlone) {
    corelogic::redirect r;
    ASSERT_TRUE(corelogic_parse("MOVED 3999 10.0.0.5:6381", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 1 :6379", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 2 []:7000", "MOVED", r));
    EXPECT_EQ(r.slot, 3999);
    EXPECT_EQ(r.host, "10.0.0.5");
    EXPECT_EQ(r.port, 6381);
}

TEST(Redirect, RefusesOtherWordsAndGarbage) {
    corelogic::redirect r;
    EXPECT_FALSE(corelogic_parse("", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED ", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVED 3999", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVEDX 3999 127.0.0.1:6381", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("MOVE 3999 127.0.0.1:6381", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("moved 3999 127.0.0.1:6381", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("ASKING 3999 127.0.0.1:6381", "ASK", r));
    EXPECT_FALSE(corelogic_parse("MOVED 3999 127.0.0.1:6381", "ASK", r));
    EXPECT_FALSE(corelogic_parse("ERR wrong number of arguments", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("TRYAGAIN Multiple keys request during rehashing of slot", "MOVED", r));
    EXPECT_FALSE(corelogic_parse("\x01\x02 1 h:1", "MOVED", r));
}

TEST(Redirect, ClusterBusyReplies) {
    EXPECT_TRUE(corelogic::cluster_busy("TRYAGAIN Multiple keys request during rehashing of slot"));
    EXPECT_TRUE(corelogic::cluster_busy("CLUSTERDOWN The cluster is down"));
    EXPECT_TRUE(corelogic::cluster_busy("CLUSTERDOWN Hash slot not served"));
    EXPECT_TRUE(corelogic::cluster_busy("LOADING Redis is loading the dataset in memory"));
    EXPECT_TRUE(corelogic::cluster_busy("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is no"));
    EXPECT_FALSE(corelogic::cluster_busy(""));
    EXPECT_FALSE(corelogic::cluster_busy("TRYAGAIN"));  // the word alone is not the reply Redis sends
    EXPECT_FALSE(corelogic::cluster_busy("CLUSTERDOWNX y"));
    EXPECT_FALSE(corelogic::cluster_busy("tryagain later"));
    EXPECT_FALSE(corelogic::cluster_busy("ERR unknown command"));
    EXPECT_FALSE(corelogic::cluster_busy("MOVED 3999 127.0.0.1:6381"));
    EXPECT_FALSE(corelogic::cluster_busy("READONLY You can't write against a read only replica."));
    EXPECT_FALSE(corelogic::cluster_busy("WRONGTYPE Operation against a key holding the wrong kind of value"));
}

// ---- the command table ----

TEST(CommandTable, ReadsInAnyCase) {
    for (const std::string_view name : {"get", "GET", "Get", "gEt"}) {
        const corelogic::command_traits t = corelogic::traits_of(name);
        EXPECT_TRUE(t.read_only) << name;
        EXPECT_TRUE(t.shareable) << name;
        EXPECT_FALSE(t.home) << name;
        EXPECT_EQ(t.keys, corelogic::key_rule::first) << name;
        EXPECT_EQ(t.spread, corelogic::fan_out::none) << name;
    }
    EXPECT_FALSE(corelogic::traits_of("set").read_only);
    EXPECT_TRUE(corelogic::traits_of("set").shareable);
}

TEST(CommandTable, ReadOnlyVariantsAndSetReadsAreReads) {
    for (const std::string_view name : {"EVAL_RO", "EVALSHA_RO", "FCALL_RO", "SINTER", "SUNION", "SDIFF", "ZINTER",
                                        "ZUNION", "ZDIFF", "SINTERCARD", "ZINTERCARD", "LCS", "RANDOMKEY"}) {
        EXPECT_TRUE(corelogic::traits_of(name).read_only) << name;
    }
    for (const std::string_view name : {"EVAL", "FCALL", "SINTERSTORE", "ZUNIONSTORE", "SDIFFSTORE"}) {
        EXPECT_FALSE(corelogic::traits_of(name).read_only) << name;
    }
}

TEST(CommandTable, BlockingAndStatefulCommandsDoNotShare) {
    const corelogic::command_traits blpop = corelogic::traits_of("BLPOP");
    EXPECT_FALSE(blpop.shareable);
    EXPECT_FALSE(blpop.read_only);
    EXPECT_EQ(blpop.keys, corelogic::key_rule::all_but_last);
    EXPECT_EQ(corelogic::traits_of("bzpopmin").keys, corelogic::key_rule::all_but_last);
    for (const std::string_view name : {"MULTI", "WATCH", "SUBSCRIBE", "SELECT", "blmove", "XREADGROUP", "WAIT"}) {
        EXPECT_FALSE(corelogic::traits_of(name).shareable) << name;
    }
}

TEST(CommandTable, KeyRules) {
    const corelogic::command_traits eval = corelogic::traits_of("eval");
    EXPECT_EQ(eval.keys, corelogic::key_rule::numkeys_at_2);
    EXPECT_FALSE(eval.read_only);
    EXPECT_TRUE(eval.shareable);
    EXPECT_TRUE(corelogic::traits_of("EVAL_RO").read_only);
    EXPECT_EQ(corelogic::traits_of("MSET").keys, corelogic::key_rule::pairs);
    EXPECT_EQ(corelogic::traits_of("XREADGROUP").keys, corelogic::key_rule::streams);
    EXPECT_EQ(corelogic::traits_of("xread").keys, corelogic::key_rule::streams);
    EXPECT_EQ(corelogic::traits_of("BITOP").keys, corelogic::key_rule::from_2);
    EXPECT_EQ(corelogic::traits_of("ZUNIONSTORE").keys, corelogic::key_rule::store_numkeys);
    EXPECT_EQ(corelogic::traits_of("ZUNION").keys, corelogic::key_rule::numkeys_at_1);
    EXPECT_EQ(corelogic::traits_of("RENAME").keys, corelogic::key_rule::two);
    EXPECT_EQ(corelogic::traits_of("DEL").keys, corelogic::key_rule::all);
    EXPECT_EQ(corelogic::traits_of("PING").keys, corelogic::key_rule::none);
}

TEST(CommandTable, FanOutPerCommand) {
    EXPECT_EQ(corelogic::traits_of("MGET").spread, corelogic::fan_out::split_merge);
    EXPECT_TRUE(corelogic::traits_of("MGET").read_only);
    EXPECT_EQ(corelogic::traits_of("DEL").spread, corelogic::fan_out::split_sum);
    EXPECT_EQ(corelogic::traits_of("exists").spread, corelogic::fan_out::split_sum);
    EXPECT_EQ(corelogic::traits_of("FLUSHALL").spread, corelogic::fan_out::broadcast);
    EXPECT_EQ(corelogic::traits_of("DBSIZE").spread, corelogic::fan_out::sum);
    EXPECT_EQ(corelogic::traits_of("KEYS").spread, corelogic::fan_out::join);
    EXPECT_EQ(corelogic::traits_of("SCRIPT", "LOAD").spread, corelogic::fan_out::broadcast);
    EXPECT_EQ(corelogic::traits_of("MSET").spread, corelogic::fan_out::none);  // not split: not atomic then
    EXPECT_TRUE(corelogic::traits_of("PUBLISH").home);
    EXPECT_FALSE(corelogic::traits_of("GET").home);
}

TEST(CommandTable, SubcommandsDecide) {
    // CONFIG SET / RESETSTAT / REWRITE reach every primary; CONFIG GET reads one, keyless
    for (const std::string_view sub : {"SET", "set", "ReSetStat", "REWRITE"}) {
        const corelogic::command_traits t = corelogic::traits_of("config", sub);
        EXPECT_EQ(t.spread, corelogic::fan_out::broadcast) << sub;
        EXPECT_EQ(t.keys, corelogic::key_rule::none) << sub;
    }
    EXPECT_EQ(corelogic::traits_of("CONFIG", "GET").spread, corelogic::fan_out::none);
    EXPECT_EQ(corelogic::traits_of("CONFIG", "GET").keys, corelogic::key_rule::none);
    EXPECT_EQ(corelogic::traits_of("CONFIG").spread, corelogic::fan_out::none);
    EXPECT_EQ(corelogic::traits_of("CONFIG", "SETX").spread, corelogic::fan_out::none);
    EXPECT_EQ(corelogic::traits_of("CONFIG", "SET-AND-A-VERY-LONG-TAIL").spread, corelogic::fan_out::none);

    const corelogic::command_traits list = corelogic::traits_of("CLIENT", "list");
    EXPECT_EQ(list.spread, corelogic::fan_out::join_text);
    EXPECT_FALSE(list.shareable);
    EXPECT_EQ(corelogic::traits_of("client", "PAUSE").spread, corelogic::fan_out::broadcast);
    EXPECT_EQ(corelogic::traits_of("CLIENT", "ID").spread, corelogic::fan_out::none);

    EXPECT_EQ(corelogic::traits_of("MEMORY", "USAGE").keys, corelogic::key_rule::subcommand);
    EXPECT_EQ(corelogic::traits_of("memory", "usage").keys, corelogic::key_rule::subcommand);
    EXPECT_EQ(corelogic::traits_of("MEMORY", "STATS").keys, corelogic::key_rule::none);
    EXPECT_EQ(corelogic::traits_of("MEMORY", "doctor").keys, corelogic::key_rule::none);
    EXPECT_EQ(corelogic::traits_of("OBJECT", "ENCODING").keys, corelogic::key_rule::subcommand);
    EXPECT_EQ(corelogic::traits_of("XINFO", "HELP").keys, corelogic::key_rule::none);
}

TEST(CommandTable, UnknownCommandIsASharedWriteKeyedAtOne) {
    for (const std::string_view name : {"FOOBAR", "", "ZZZZ", "AAA", "JSON.SET", "GETX"}) {
        const corelogic::command_traits t = corelogic::traits_of(name);
        EXPECT_FALSE(t.read_only) << name;
        EXPECT_TRUE(t.shareable) << name;
        EXPECT_FALSE(t.home) << name;
        EXPECT_EQ(t.keys, corelogic::key_rule::first) << name;
        EXPECT_EQ(t.spread, corelogic::fan_out::none) << name;
    }
}

TEST(CommandTable, NamesPastSixteenBytesAreUnknown) {
    // ZREVRANGEBYSCORE is 16 bytes, the longest name the table holds
    EXPECT_TRUE(corelogic::traits_of("ZREVRANGEBYSCORE").read_only);
    EXPECT_TRUE(corelogic::traits_of("zrevrangebyscore").read_only);
    const corelogic::command_traits longer = corelogic::traits_of("ZREVRANGEBYSCOREX");
    EXPECT_FALSE(longer.read_only);
    EXPECT_TRUE(longer.shareable);
    EXPECT_EQ(longer.keys, corelogic::key_rule::first);
    const corelogic::command_traits huge = corelogic::traits_of(std::string(300, 'G'));
    EXPECT_FALSE(huge.read_only);
    EXPECT_EQ(huge.keys, corelogic::key_rule::first);
}

// ---- key positions ----

TEST(KeyPositions, FollowEachKeyRule) {
    using rk = corelogic::route_kind;
    EXPECT_EQ(corelogic_key_indexes({"GET", "k"}), corelogic_idx{1});
    EXPECT_EQ(corelogic_key_indexes({"EVAL", "return 1", "2", "a", "b", "arg"}), (corelogic_idx{3, 4}));
    EXPECT_EQ(corelogic_key_indexes({"EVAL", "return 1", "5", "a"}), corelogic_idx{3});  // count past the end
    EXPECT_EQ(corelogic_key_indexes({"EVAL", "return 1", "0", "x"}, rk::keyless), corelogic_idx{});
    EXPECT_EQ(corelogic_key_indexes({"XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "0"}), (corelogic_idx{4, 5}));
    EXPECT_EQ(corelogic_key_indexes({"XREAD", "COUNT", "1"}, rk::keyless), corelogic_idx{});  // no STREAMS
    EXPECT_EQ(corelogic_key_indexes({"BITOP", "AND", "d", "a", "b"}), (corelogic_idx{2, 3, 4}));
    EXPECT_EQ(corelogic_key_indexes({"ZUNIONSTORE", "d", "2", "a", "b"}), (corelogic_idx{1, 3, 4}));
    EXPECT_EQ(corelogic_key_indexes({"ZUNION", "2", "a", "b", "WITHSCORES"}), (corelogic_idx{2, 3}));
    EXPECT_EQ(corelogic_key_indexes({"MSET", "a", "1", "b", "2", "c", "3"}), (corelogic_idx{1, 3, 5}));
    EXPECT_EQ(corelogic_key_indexes({"BLPOP", "a", "b", "5"}), (corelogic_idx{1, 2}));
    EXPECT_EQ(corelogic_key_indexes({"RENAME", "a", "b"}), (corelogic_idx{1, 2}));
    EXPECT_EQ(corelogic_key_indexes({"DEL", "a", "b", "c"}), (corelogic_idx{1, 2, 3}));
    EXPECT_EQ(corelogic_key_indexes({"MEMORY", "USAGE", "k"}), corelogic_idx{2});
    EXPECT_EQ(corelogic_key_indexes({"MEMORY", "STATS"}, rk::keyless), corelogic_idx{});
    EXPECT_EQ(corelogic_key_indexes({"KEYS", "*"}, rk::broadcast), corelogic_idx{});
    EXPECT_EQ(corelogic_key_indexes({"DBSIZE"}, rk::broadcast), corelogic_idx{});
    EXPECT_EQ(corelogic_key_indexes({"CLIENT", "LIST"}, rk::broadcast), corelogic_idx{});
    EXPECT_EQ(corelogic_key_indexes({"PING"}, rk::keyless), corelogic_idx{});
    EXPECT_EQ(corelogic_key_indexes({"FOO", "k", "v"}), corelogic_idx{1});  // unknown: key at 1
}

TEST(KeyPositions, GivenTraitsOverrideTheTable) {
    corelogic::argv a;
    a.push_all("GET", "x", "y", "z");
    corelogic::command_traits all;
    all.keys = corelogic::key_rule::all;
    EXPECT_EQ(corelogic::key_positions(a, all).keys(), (corelogic_idx{1, 2, 3}));
    corelogic::command_traits everywhere;
    everywhere.spread = corelogic::fan_out::join_text;
    const corelogic::key_positions b(a, everywhere);
    EXPECT_EQ(b.kind(), corelogic::route_kind::broadcast);
    EXPECT_TRUE(b.keys().empty());
}

TEST(KeyPositions, CrossSlotKeysAreRefusedByName) {
    corelogic::argv a;
    a.push_all("MGET", "a", "b");
    ASSERT_NE(corelogic::slot_of("a"), corelogic::slot_of("b"));
    const corelogic::key_positions k(a);
    EXPECT_EQ(k.kind(), corelogic::route_kind::keyed);
    EXPECT_TRUE(k.spans_slots());
    try {
        (void)k.single_slot();
        ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("MGET"), std::string::npos) << what;
        EXPECT_NE(what.find("a (" + std::to_string(corelogic::slot_of("a")) + ")"), std::string::npos) << what;
        EXPECT_NE(what.find("b (" + std::to_string(corelogic::slot_of("b")) + ")"), std::string::npos) << what;
    }
    // the first two keys share a slot, the third does not
    corelogic::argv late;
    late.push_all("DEL", "{x}1", "{x}2", "b");
    EXPECT_TRUE(corelogic::key_positions(late).spans_slots());
    EXPECT_THROW((void)corelogic::key_positions(late).single_slot(), std::invalid_argument);
}

TEST(KeyPositions, HashTaggedKeysShareOneSlot) {
    corelogic::argv a;
    a.push_all("MGET", "{user:42}:cart", "{user:42}:orders", "{user:42}");
    const corelogic::key_positions k(a);
    EXPECT_FALSE(k.spans_slots());
    EXPECT_EQ(k.single_slot(), corelogic::slot_of("user:42"));
    corelogic::argv one;
    one.push_all("GET", "solo");
    EXPECT_FALSE(corelogic::key_positions(one).spans_slots());
    EXPECT_EQ(corelogic::key_positions(one).single_slot(), corelogic::slot_of("solo"));
    corelogic::argv none;
    none.push_all("PING");
    EXPECT_EQ(corelogic::key_positions(none).single_slot(), -1);
}

// ---- merged replies ----

// MGET a b c d split as {a, c} and {b, d}: the values come back in the caller's order, moved.
TEST(ClusterMerge, MergeInOrderRestoresTheCallersOrder) {
    std::vector<corelogic::reply_ptr> parts;
    parts.push_back(corelogic::parse_resp("*2\r\n$2\r\nva\r\n$2\r\nvc\r\n"));
    parts.push_back(corelogic::parse_resp("*2\r\n$2\r\nvb\r\n$-1\r\n"));
    const std::vector<std::vector<std::size_t>> groups{{1, 3}, {2, 4}};
    const std::vector<std::size_t> keys{1, 2, 3, 4};
    const corelogic::raw_node* va = corelogic::raw_at(parts[0].get(), 0);
    const corelogic::raw_node* vb = corelogic::raw_at(parts[1].get(), 0);
    const corelogic::raw_node* vc = corelogic::raw_at(parts[0].get(), 1);
    const corelogic::raw_node* nil_d = corelogic::raw_at(parts[1].get(), 1);

    const corelogic::reply_ptr out = corelogic::merge_in_order(parts, groups, keys);
    ASSERT_EQ(corelogic::raw_type(out.get()), redkit::reply_type::array);
    EXPECT_EQ(corelogic_texts(out.get()), (corelogic_strings{"va", "vb", "vc", "(nil)"}));
    // moved, not copied: the same nodes, gone from the parts (freed once, by `out`)
    EXPECT_EQ(corelogic::raw_at(out.get(), 0), va);
    EXPECT_EQ(corelogic::raw_at(out.get(), 1), vb);
    EXPECT_EQ(corelogic::raw_at(out.get(), 2), vc);
    EXPECT_EQ(corelogic::raw_at(out.get(), 3), nil_d);
    EXPECT_EQ(corelogic::raw_at(parts[0].get(), 0), nullptr);
    EXPECT_EQ(corelogic::raw_at(parts[0].get(), 1), nullptr);
    EXPECT_EQ(corelogic::raw_at(parts[1].get(), 0), nullptr);
    EXPECT_EQ(corelogic::raw_at(parts[1].get(), 1), nullptr);
}

TEST(ClusterMerge, MergeInOrderFillsWhatIsMissingWithNil) {
    std::vector<corelogic::reply_ptr> parts;
    parts.push_back(corelogic::parse_resp("*1\r\n$1\r\nz\r\n"));  // asked for 3 and 1, answered one
    parts.push_back(corelogic::parse_resp("*3\r\n$1\r\nx\r\n$1\r\ny\r\n$5\r\nextra\r\n"));  // one too many
    // groups[2] has no part at all
    const std::vector<std::vector<std::size_t>> groups{{3, 1}, {2, 5}, {4}};
    const std::vector<std::size_t> keys{1, 2, 3, 4, 5};
    const corelogic::reply_ptr out = corelogic::merge_in_order(parts, groups, keys);
    EXPECT_EQ(corelogic_texts(out.get()), (corelogic_strings{"(nil)", "x", "z", "(nil)", "y"}));
    // the element nobody asked for stays in its part (freed with it)
    ASSERT_NE(corelogic::raw_at(parts[1].get(), 2), nullptr);
    EXPECT_EQ(std::string(corelogic::raw_str(corelogic::raw_at(parts[1].get(), 2))), "extra");
}

TEST(ClusterMerge, MergeInOrderFollowsTheCallersKeyOrder) {
    // keys at argument indexes 1..3, the caller's order 3, 1, 2
    std::vector<corelogic::reply_ptr> parts;
    parts.push_back(corelogic::parse_resp("*3\r\n$2\r\nv1\r\n$2\r\nv2\r\n$2\r\nv3\r\n"));
    const std::vector<std::vector<std::size_t>> groups{{1, 2, 3}};
    const std::vector<std::size_t> keys{3, 1, 2};
    const corelogic::reply_ptr out = corelogic::merge_in_order(parts, groups, keys);
    EXPECT_EQ(corelogic_texts(out.get()), (corelogic_strings{"v3", "v1", "v2"}));
}

TEST(ClusterMerge, SumIntegers) {
    std::vector<corelogic::reply_ptr> parts;
    parts.push_back(corelogic::parse_resp(":3\r\n"));
    parts.push_back(corelogic::parse_resp(":40\r\n"));
    parts.push_back(corelogic::parse_resp(":-2\r\n"));
    const corelogic::reply_ptr out = corelogic::sum_integers(parts);
    ASSERT_EQ(corelogic::raw_type(out.get()), redkit::reply_type::integer);
    EXPECT_EQ(corelogic::raw_integer(out.get()), 41);
    const std::vector<corelogic::reply_ptr> none;
    EXPECT_EQ(corelogic::raw_integer(corelogic::sum_integers(none).get()), 0);
}

TEST(ClusterMerge, JoinArraysInOrderMovingTheElements) {
    std::vector<corelogic::reply_ptr> parts;
    parts.push_back(corelogic::parse_resp("*2\r\n$1\r\na\r\n$1\r\nb\r\n"));
    parts.push_back(corelogic::parse_resp("*0\r\n"));
    parts.push_back(corelogic::parse_resp("*1\r\n$1\r\nc\r\n"));
    const corelogic::raw_node* b = corelogic::raw_at(parts[0].get(), 1);
    const corelogic::raw_node* c = corelogic::raw_at(parts[2].get(), 0);
    const corelogic::reply_ptr out = corelogic::join_arrays(parts);
    ASSERT_EQ(corelogic::raw_type(out.get()), redkit::reply_type::array);
    EXPECT_EQ(corelogic_texts(out.get()), (corelogic_strings{"a", "b", "c"}));
    EXPECT_EQ(corelogic::raw_at(out.get(), 1), b);
    EXPECT_EQ(corelogic::raw_at(out.get(), 2), c);
    EXPECT_EQ(corelogic::raw_at(parts[0].get(), 0), nullptr);
    EXPECT_EQ(corelogic::raw_at(parts[0].get(), 1), nullptr);
    EXPECT_EQ(corelogic::raw_at(parts[2].get(), 0), nullptr);
    std::vector<corelogic::reply_ptr> empty;
    EXPECT_EQ(corelogic::raw_size(corelogic::join_arrays(empty).get()), 0u);
}

TEST(ClusterMerge, JoinTexts) {
    std::vector<corelogic::reply_ptr> parts;
    parts.push_back(corelogic::parse_resp("$12\r\nid=1 name=a\n\r\n"));
    parts.push_back(corelogic::parse_resp("$12\r\nid=7 name=b\n\r\n"));
    const corelogic::reply_ptr out = corelogic::join_texts(parts);
    ASSERT_EQ(corelogic::raw_type(out.get()), redkit::reply_type::string);
    EXPECT_EQ(std::string(corelogic::raw_str(out.get())), "id=1 name=a\nid=7 name=b\n");
    EXPECT_EQ(std::string(corelogic::raw_str(parts[0].get())), "id=1 name=a\n");  // the parts are left alone
}
