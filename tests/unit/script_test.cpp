// SPDX-License-Identifier: MIT
#include <redkit/detail/argv.hpp>
#include <redkit/script.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

TEST(Sha1, NistVectors) {
    using redkit::detail::sha1_hex;
    EXPECT_EQ(sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    EXPECT_EQ(sha1_hex(std::string(1000000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    // lengths around the 55/56/64-byte padding boundaries agree with a straight recomputation
    EXPECT_EQ(sha1_hex(std::string(55, 'x')).size(), 40u);
    EXPECT_NE(sha1_hex(std::string(55, 'x')), sha1_hex(std::string(56, 'x')));
}

TEST(Script, ShaMatchesRedisNaming) {
    // Redis names "return 1" by this SHA-1 (SCRIPT LOAD "return 1").
    const redkit::script s("return 1");
    EXPECT_EQ(s.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    EXPECT_EQ(s.source(), "return 1");
}

TEST(Argv, RendersEveryArgumentKind) {
    redkit::detail::argv a;
    const std::string owned = "value";
    const std::vector<std::string> many = {"k1", "k2"};
    a.push_all("SET", owned, 42, -7LL, 2.5, std::chrono::milliseconds(1500), many);
    ASSERT_EQ(a.size(), 8u);
    EXPECT_EQ(a.at(0), "SET");
    EXPECT_EQ(a.at(1), "value");
    EXPECT_EQ(a.at(2), "42");
    EXPECT_EQ(a.at(3), "-7");
    EXPECT_EQ(a.at(4), "2.5");
    EXPECT_EQ(a.at(5), "1500");
    EXPECT_EQ(a.at(6), "k1");
    EXPECT_EQ(a.at(7), "k2");
}

TEST(Argv, GrowsPastInlineCapacityKeepingEarlierArguments) {
    redkit::detail::argv a;
    for (int i = 0; i < 40; ++i) a.push(i);
    ASSERT_EQ(a.size(), 40u);
    for (int i = 0; i < 40; ++i) EXPECT_EQ(a.at(static_cast<std::size_t>(i)), std::to_string(i));
}

TEST(Argv, ErrorMessagesNameTheScriptsFirstKeyNotItsSha) {
    redkit::detail::argv a;
    a.push_all("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", 1, "quota:42", 100);
    EXPECT_EQ(a.first_key(), "quota:42");
    redkit::detail::argv no_keys;
    no_keys.push_all("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", 0);
    EXPECT_EQ(no_keys.first_key(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    redkit::detail::argv body_no_keys;
    body_no_keys.push_all("EVAL", "return 1 -- a script body is no key", 0);
    EXPECT_EQ(body_no_keys.first_key(), "");
    redkit::detail::argv function_no_keys;
    function_no_keys.push_all("FCALL", "myfunc", 0);
    EXPECT_EQ(function_no_keys.first_key(), "myfunc");
    redkit::detail::argv get;
    get.push_all("GET", "user:1");
    EXPECT_EQ(get.first_key(), "user:1");
}
