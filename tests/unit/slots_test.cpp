// SPDX-License-Identifier: MIT
// Redis Cluster key slots and the key positions of commands (no server; cluster_tests checks the
// slots against CLUSTER KEYSLOT on a real cluster).
#include <redkit/core/topology/slots.hpp>
#include <redkit/key.hpp>
#include <redkit/options.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

std::vector<std::string> keys_of(std::initializer_list<std::string_view> args,
                                 redkit::detail::route_kind want = redkit::detail::route_kind::keyed) {
    redkit::detail::argv a;
    for (const auto s : args) a.push_all(s);
    const redkit::detail::key_positions k(a);
    EXPECT_EQ(static_cast<int>(k.kind()), static_cast<int>(want));
    std::vector<std::string> out;
    for (const auto i : k.keys()) out.emplace_back(a.at(i));
    return out;
}

using v = std::vector<std::string>;

}  // namespace

TEST(Slots, Crc16IsTheXmodemVariant) {
    EXPECT_EQ(redkit::detail::crc16("123456789"), 0x31C3);
    EXPECT_EQ(redkit::detail::crc16(""), 0);
}

TEST(Slots, HashTagsFollowRedisRules) {
    EXPECT_EQ(redkit::key_slot("{user:42}:cart"), redkit::key_slot("{user:42}:orders"));
    EXPECT_EQ(redkit::key_slot("{user:42}:cart"), redkit::key_slot("user:42"));
    EXPECT_EQ(redkit::key_slot("a{}b"), redkit::detail::crc16("a{}b") % 16384);  // empty tag: whole key
    EXPECT_EQ(redkit::key_slot("{a}{b}"), redkit::key_slot("a"));                // the first tag only
    EXPECT_EQ(redkit::key_slot("x{y"), redkit::detail::crc16("x{y") % 16384);    // unclosed: whole key
    for (const std::string& k : std::vector<std::string>{"", "a", "somekey", std::string(1000, 'z')}) {
        EXPECT_GE(redkit::key_slot(k), 0);
        EXPECT_LT(redkit::key_slot(k), 16384);
    }
}

TEST(Slots, KeyPositionsOfCommands) {
    using rk = redkit::detail::route_kind;
    EXPECT_EQ(keys_of({"GET", "k"}), v{"k"});
    EXPECT_EQ(keys_of({"hset", "h", "f", "v"}), v{"h"});
    EXPECT_EQ(keys_of({"MGET", "a", "b", "c"}), (v{"a", "b", "c"}));
    EXPECT_EQ(keys_of({"MSET", "a", "1", "b", "2"}), (v{"a", "b"}));
    EXPECT_EQ(keys_of({"BLPOP", "a", "b", "0"}), (v{"a", "b"}));
    EXPECT_EQ(keys_of({"EVALSHA", "sha", "2", "k1", "k2", "arg"}), (v{"k1", "k2"}));
    EXPECT_EQ(keys_of({"EVAL", "return 1", "0", "arg"}, rk::keyless), v{});
    EXPECT_EQ(keys_of({"ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"}), (v{"d", "a", "b"}));
    EXPECT_EQ(keys_of({"ZINTER", "2", "a", "b"}), (v{"a", "b"}));
    EXPECT_EQ(keys_of({"XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s1", "s2", ">", ">"}),
              (v{"s1", "s2"}));
    EXPECT_EQ(keys_of({"XREAD", "BLOCK", "0", "streams", "s", "$"}), v{"s"});
    EXPECT_EQ(keys_of({"BITOP", "AND", "d", "a", "b"}), (v{"d", "a", "b"}));
    EXPECT_EQ(keys_of({"LMOVE", "a", "b", "LEFT", "RIGHT"}), (v{"a", "b"}));
    EXPECT_EQ(keys_of({"XINFO", "STREAM", "s"}), v{"s"});
    EXPECT_EQ(keys_of({"XINFO", "HELP"}, rk::keyless), v{});
    EXPECT_EQ(keys_of({"OBJECT", "ENCODING", "k"}), v{"k"});
    EXPECT_EQ(keys_of({"PING"}, rk::keyless), v{});
    EXPECT_EQ(keys_of({"PUBLISH", "ch", "msg"}, rk::keyless), v{});
    EXPECT_EQ(keys_of({"CLIENT", "ID"}, rk::keyless), v{});
    EXPECT_EQ(keys_of({"FLUSHALL"}, rk::broadcast), v{});
    EXPECT_EQ(keys_of({"SCRIPT", "LOAD", "return 1"}, rk::broadcast), v{});
    EXPECT_EQ(keys_of({"CONFIG", "SET", "maxmemory", "0"}, rk::broadcast), v{});
    EXPECT_EQ(keys_of({"CONFIG", "GET", "maxmemory"}, rk::keyless), v{});
    EXPECT_EQ(keys_of({"CLIENT", "PAUSE", "10"}, rk::broadcast), v{});
    // a count that does not parse or runs past the end: no key read out of bounds
    EXPECT_EQ(keys_of({"EVALSHA", "sha", "x", "k"}, rk::keyless), v{});
    EXPECT_EQ(keys_of({"EVALSHA", "sha", "9", "k"}), v{"k"});
}

TEST(Slots, CrossSlotMessageNamesKeysAndSlots) {
    redkit::detail::argv a;
    a.push_all("MSET", "a", "1", "b", "2");
    const redkit::detail::key_positions k(a);
    try {
        (void)k.single_slot();
        FAIL();
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("redkit: MSET: keys in different cluster slots"), std::string::npos) << what;
        EXPECT_NE(what.find("a (" + std::to_string(redkit::key_slot("a")) + ")"), std::string::npos) << what;
        EXPECT_NE(what.find("b (" + std::to_string(redkit::key_slot("b")) + ")"), std::string::npos) << what;
        EXPECT_NE(what.find("hash tag"), std::string::npos) << what;
    }
    redkit::detail::argv same;
    same.push_all("MSET", "{t}a", "1", "{t}b", "2");
    EXPECT_EQ(redkit::detail::key_positions(same).single_slot(), redkit::key_slot("t"));
}

TEST(Slots, ClusterUrls) {
    const auto o = redkit::parse_url("redis+cluster://h1:7000,h2?replica_reads=yes");
    EXPECT_EQ(o.cluster.nodes.size(), 2u);
    EXPECT_EQ(o.cluster.nodes[1].port, 6379);
    if (redkit::tls_available) {
        EXPECT_TRUE(redkit::parse_url("rediss+cluster://h1:7000").tls.enabled);
    } else {
        EXPECT_THROW(redkit::parse_url("rediss+cluster://h1:7000"), std::invalid_argument);
    }
    EXPECT_TRUE(o.cluster.replica_reads);
    EXPECT_THROW(redkit::parse_url("redis://h?replica_reads=yes"), std::invalid_argument);
    EXPECT_THROW(redkit::parse_url("redis+cluster://h/1"), std::invalid_argument);
    EXPECT_EQ(redkit::parse_url("redis+cluster://h/0").cluster.nodes.size(), 1u);
    // another scheme after a cluster one forgets the cluster
    EXPECT_FALSE(redkit::parse_url("redis://h", redkit::parse_url("redis+cluster://a,b")).cluster.enabled());
}
