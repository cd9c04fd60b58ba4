// SPDX-License-Identifier: MIT
#include <redkit/client.hpp>
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
        "127.0.0.1:6379",          // no scheme
        "http://h",                // wrong scheme
        "redis://h:0",             // port out of range
        "redis://h:65536",         // port out of range
        "redis://h:63x9",          // junk in port
        "redis://h:",              // empty port
        "redis://h/abc",           // db not a number
        "redis://h/-1",            // negative db
        "redis://:p@",             // empty host
        "redis://h?timeout=soon",  // bad duration
        "redis://h?colour=blue",   // unknown option
        "redis://h?db",            // option without value
        "redis://u:%zz@h",         // bad escape
        "redis://u:%4@h",          // truncated escape
        "redis://[::1",            // unterminated IPv6
        "unix://relative.sock",    // not absolute
        "redis://h ost",           // space in host
    };
    for (const char* url : bad) {
        EXPECT_THROW(parse_url(url), std::invalid_argument) << url;
    }
}

TEST(Url, RedissIsTlsOrAClearErrorSayingHowToGetIt) {
    if (!redkit::tls_available) {
        try {
            parse_url("rediss://h:6380");
            FAIL() << "rediss:// accepted by a build without TLS";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find("needs TLS"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("hiredis_ssl"), std::string::npos) << e.what();
        }
        redkit::client_options o;
        o.tls.enabled = true;
        EXPECT_THROW(redkit::client{o}, std::invalid_argument);
        return;
    }
    const auto o = parse_url(
        "rediss://u:p@cache.internal:6380/2?tls_ca_file=/etc/ca.pem&tls_cert=/c.pem&tls_key=/k.pem"
        "&tls_server_name=redis.example&tls_verify=no&tls_ca_dir=/etc/certs");
    EXPECT_TRUE(o.tls.enabled);
    EXPECT_EQ(o.port, 6380);
    EXPECT_EQ(o.db, 2);
    EXPECT_EQ(o.tls.ca_file, "/etc/ca.pem");
    EXPECT_EQ(o.tls.ca_dir, "/etc/certs");
    EXPECT_EQ(o.tls.cert_file, "/c.pem");
    EXPECT_EQ(o.tls.key_file, "/k.pem");
    EXPECT_EQ(o.tls.server_name, "redis.example");
    EXPECT_FALSE(o.tls.verify);
    EXPECT_TRUE(parse_url("rediss://h").tls.verify);  // verification is on unless turned off
}

TEST(Url, TlsOptionsNeedRediss) {
    EXPECT_FALSE(parse_url("redis://h").tls.enabled);
    EXPECT_THROW(parse_url("redis://h?tls_ca_file=/ca.pem"), std::invalid_argument);
    if (redkit::tls_available) {
        EXPECT_THROW(parse_url("rediss://h?tls_verify=maybe"), std::invalid_argument);
        EXPECT_THROW(parse_url("rediss://h?tls_colour=red"), std::invalid_argument);
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

TEST(Url, ErrorsNeverQuoteThePassword) {
    const char* bad[] = {
        "user:s3cretpw@cache.internal:6379",                // no scheme: quoted, but without user info
        "s3cretpw@cache.internal",                          // password-only user info, no scheme
        "http://user:s3cretpw@cache.internal",              // wrong scheme
        "redis://user:s3cretpw@cache.internal:99999",       // bad port
        "redis://user:s3cretpw@cache.internal?colour=red",  // unknown option
        "cache.internal?password=s3cretpw&db=x",            // no scheme, password as an option
        "redis://user:s3cretpw@::1:6379",                   // unbracketed IPv6
    };
    for (const char* url : bad) {
        try {
            parse_url(url);
            ADD_FAILURE() << "accepted: " << url;
        } catch (const std::invalid_argument& e) {
            EXPECT_EQ(std::string(e.what()).find("s3cretpw"), std::string::npos) << e.what();
        }
    }
}

TEST(Url, ErrorsStayShortForHugeInput) {
    const std::string huge_scheme_less(1 << 20, 'a');
    const std::string huge_port = "redis://h:" + std::string(3000, '9');
    const std::string huge_option = "redis://h?" + std::string(3000, 'x') + "=1";
    for (const std::string& url : {huge_scheme_less, huge_port, huge_option}) {
        try {
            parse_url(url);
            ADD_FAILURE() << "accepted a " << url.size() << "-byte url";
        } catch (const std::invalid_argument& e) {
            EXPECT_LT(std::string(e.what()).size(), 200u) << std::string(e.what()).substr(0, 300);
        }
    }
}

TEST(Url, HostAndUrlLengthsAreBounded) {
    const std::string longest_name(253, 'h');
    EXPECT_EQ(parse_url("redis://" + longest_name + ":1").host, longest_name);
    try {
        parse_url("redis://" + std::string(254, 'h'));
        FAIL() << "254-byte host accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("host longer than 253"), std::string::npos) << e.what();
    }
    // a URL of 1 MB is refused before it is parsed, whatever its parts
    EXPECT_THROW(parse_url("redis://h/0?client_name=" + std::string(1 << 20, 'n')), std::invalid_argument);
    EXPECT_NO_THROW(parse_url("redis://h/0?client_name=" + std::string(4000, 'n')));
    EXPECT_THROW(parse_url("unix:///" + std::string(200, 's')), std::invalid_argument);
}

TEST(Url, UnbracketedIpv6SaysToUseBrackets) {
    for (const char* url : {"redis://::1:6379", "redis://fe80::1", "redis://2001:db8::7/0"}) {
        try {
            parse_url(url);
            ADD_FAILURE() << "accepted " << url;
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find("brackets"), std::string::npos) << url << ": " << e.what();
        }
    }
}

TEST(Url, SentinelForm) {
    const auto o = parse_url(
        "redis+sentinel://app:s3cret@10.0.0.1:26380,[::1],sentinel.internal/mymaster/2?sentinel_password=sp"
        "&sentinel_user=watcher&timeout=250ms");
    EXPECT_EQ(o.sentinel.master, "mymaster");
    ASSERT_EQ(o.sentinel.nodes.size(), 3u);
    EXPECT_EQ(o.sentinel.nodes[0].host, "10.0.0.1");
    EXPECT_EQ(o.sentinel.nodes[0].port, 26380);
    EXPECT_EQ(o.sentinel.nodes[1].host, "::1");
    EXPECT_EQ(o.sentinel.nodes[1].port, 26379);  // the sentinels' default port
    EXPECT_EQ(o.sentinel.nodes[2].host, "sentinel.internal");
    EXPECT_EQ(o.sentinel.user, "watcher");
    EXPECT_EQ(o.sentinel.password, "sp");
    EXPECT_EQ(o.user, "app");  // the primary's credentials
    EXPECT_EQ(o.password, "s3cret");
    EXPECT_EQ(o.db, 2);
    EXPECT_EQ(o.command_timeout.count(), 250);
    EXPECT_FALSE(o.tls.enabled);
    EXPECT_TRUE(parse_url("redis://h").sentinel.master.empty());
    for (const char* bad : {"redis+sentinel://h1,h2", "redis+sentinel://h1,h2/", "redis+sentinel://h1,,h2/m",
                            "redis+sentinel://h1:0/m", "redis://h?sentinel_password=x"}) {
        EXPECT_THROW(parse_url(bad), std::invalid_argument) << bad;
    }
}

TEST(Url, MultiplexIsAYesNoOption) {
    EXPECT_TRUE(parse_url("redis://h").multiplex);  // on unless turned off
    EXPECT_TRUE(parse_url("redis://h?multiplex=yes").multiplex);
    EXPECT_TRUE(parse_url("redis://h/3?pool_size=2&multiplex=true").multiplex);
    EXPECT_FALSE(parse_url("redis://h?multiplex=no").multiplex);
    EXPECT_THROW(parse_url("redis://h?multiplex=sometimes"), std::invalid_argument);
}
