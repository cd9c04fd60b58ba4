// SPDX-License-Identifier: MIT
#include <redkit/options.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

using redkit::parse_url;

TEST(Url, DefaultsWhenOnlyHostGiven) {
    const auto o = parse_url("redis://cache.internal");
    EXPECT_EQ(o.host, "cache.internal");
    EXPECT_EQ(o.port, 6379);
    EXPECT_EQ(o.db, 0);
    EXPECT_TRUE(o.user.empty());
    EXPECT_TRUE(o.password.empty());
    EXPECT_TRUE(o.unix_socket.empty());
}

TEST(Url, FullTcpForm) {
    const auto o = parse_url("redis://app:s3cret@10.1.2.3:6380/4");
    EXPECT_EQ(o.user, "app");
    EXPECT_EQ(o.password, "s3cret");
    EXPECT_EQ(o.host, "10.1.2.3");
    EXPECT_EQ(o.port, 6380);
    EXPECT_EQ(o.db, 4);
}

TEST(Url, PasswordOnlyUserInfo) {
    EXPECT_EQ(parse_url("redis://secret@localhost").password, "secret");
    const auto empty_user = parse_url("redis://:secret@localhost");
    EXPECT_EQ(empty_user.user, "");
    EXPECT_EQ(empty_user.password, "secret");
}

TEST(Url, PercentDecodesUserAndPassword) {
    const auto o = parse_url("redis://us%40er:p%3Aa%2Fss%25@h:1");
    EXPECT_EQ(o.user, "us@er");
    EXPECT_EQ(o.password, "p:a/ss%");
}

TEST(Url, PasswordMayContainAtSign) {
    // the last '@' ends the user info
    EXPECT_EQ(parse_url("redis://u:p@ss@host").password, "p@ss");
}

TEST(Url, Ipv6Literal) {
    const auto o = parse_url("redis://[::1]:7000/2");
    EXPECT_EQ(o.host, "::1");
    EXPECT_EQ(o.port, 7000);
    EXPECT_EQ(o.db, 2);
    EXPECT_EQ(parse_url("redis://[fe80::1]").port, 6379);
}

TEST(Url, UnixSocketWithDb) {
    const auto o = parse_url("unix:///run/redis/redis.sock?db=3");
    EXPECT_EQ(o.unix_socket, "/run/redis/redis.sock");
    EXPECT_EQ(o.db, 3);
    EXPECT_EQ(parse_url("redis+unix:///tmp/r.sock").unix_socket, "/tmp/r.sock");
}

TEST(Url, QueryTimeoutsAndPool) {
    const auto o = parse_url("redis://h/1?connect_timeout=250ms&timeout=2s&pool_size=16&max_retries=0&client_name=api");
    EXPECT_EQ(o.connect_timeout.count(), 250);
    EXPECT_EQ(o.command_timeout.count(), 2000);
    EXPECT_EQ(o.pool_size, 16u);
    EXPECT_EQ(o.max_retries, 0);
    EXPECT_EQ(o.client_name, "api");
    EXPECT_EQ(parse_url("redis://h?timeout=0.5").command_timeout.count(), 500);
}

TEST(Url, RejectsMalformed) {
    const char* bad[] = {
        "127.0.0.1:6379",               // no scheme
        "http://h",                     // wrong scheme
        "redis://h:0",                  // port out of range
        "redis://h:65536",              // port out of range
        "redis://h:63x9",               // junk in port
        "redis://h:",                   // empty port
        "redis://h/abc",                // db not a number
        "redis://h/-1",                 // negative db
        "redis://:p@",                  // empty host
        "redis://h?timeout=soon",       // bad duration
        "redis://h?colour=blue",        // unknown option
        "redis://h?db",                 // option without value
        "redis://u:%zz@h",              // bad escape
        "redis://u:%4@h",               // truncated escape
        "redis://[::1",                 // unterminated IPv6
        "unix://relative.sock",         // not absolute
        "redis://h ost",                // space in host
    };
    for (const char* url : bad) {
        EXPECT_THROW(parse_url(url), std::invalid_argument) << url;
    }
}

TEST(Url, RedissIsAClearError) {
    try {
        parse_url("rediss://h:6380");
        FAIL() << "rediss:// accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("TLS"), std::string::npos) << e.what();
    }
}

TEST(Url, ErrorNamesTheField) {
    try {
        parse_url("redis://h:99999");
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("port"), std::string::npos) << e.what();
    }
}
