// SPDX-License-Identifier: MIT
// Reply conversion from raw RESP bytes, parsed by hiredis's own reader: no server needed.
#include <redkit/core/io/hiredis.hpp>
#include <redkit/reply.hpp>

#include <gtest/gtest.h>

#include <clocale>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

template <class T>
T convert(std::string_view resp) {
    const auto r = redkit::detail::parse_resp(resp);
    return redkit::detail::convert_reply<T>(r.get(), {"GET", "k"});
}

redkit::reply owned(std::string_view resp) { return convert<redkit::reply>(resp); }

}  // namespace

TEST(Reply, HiredisVersionIsTheOneExpected) {
#ifdef REDKIT_EXPECT_HIREDIS_MAJOR
    EXPECT_EQ(HIREDIS_MAJOR, REDKIT_EXPECT_HIREDIS_MAJOR);
#endif
    EXPECT_EQ(REDKIT_HIREDIS_1X, HIREDIS_MAJOR >= 1 ? 1 : 0);
}

TEST(Reply, Strings) {
    EXPECT_EQ(convert<std::string>("$5\r\nhello\r\n"), "hello");
    EXPECT_EQ(convert<std::string>("+OK\r\n"), "OK");
    EXPECT_EQ(convert<std::string>("$0\r\n\r\n"), "");
    const std::string binary = convert<std::string>(std::string_view("$3\r\na\0b\r\n", 9));
    EXPECT_EQ(binary, std::string("a\0b", 3));
}

TEST(Reply, NilIsNulloptNotAnError) {
    EXPECT_EQ(convert<std::optional<std::string>>("$-1\r\n"), std::nullopt);
    EXPECT_EQ(convert<std::optional<std::string>>("$2\r\nhi\r\n"), "hi");
    EXPECT_EQ(convert<std::optional<long long>>("*-1\r\n"), std::nullopt);
    EXPECT_THROW(convert<std::string>("$-1\r\n"), redkit::error);
}

TEST(Reply, Integers) {
    EXPECT_EQ(convert<long long>(":42\r\n"), 42);
    EXPECT_EQ(convert<long long>(":-9223372036854775808\r\n"), INT64_MIN);
    EXPECT_EQ(convert<long long>("$3\r\n123\r\n"), 123);  // GET of a counter
    EXPECT_EQ(convert<int>(":7\r\n"), 7);
    EXPECT_THROW(convert<int>(":4294967296\r\n"), redkit::error);
    EXPECT_THROW(convert<unsigned>(":-1\r\n"), redkit::error);
    EXPECT_THROW(convert<long long>("$3\r\n12x\r\n"), redkit::error);
    EXPECT_THROW(convert<long long>("*0\r\n"), redkit::error);
}

TEST(Reply, Doubles) {
    EXPECT_DOUBLE_EQ(convert<double>("$4\r\n3.25\r\n"), 3.25);
    EXPECT_DOUBLE_EQ(convert<double>(":3\r\n"), 3.0);
    EXPECT_TRUE(std::isinf(convert<double>("$3\r\ninf\r\n")));
    EXPECT_THROW(convert<double>("$3\r\nabc\r\n"), redkit::error);
}

TEST(Reply, DoublesReadTheSameInADecimalCommaLocale) {
    // strtod read "3.25" as 3 under a decimal-comma C locale (checked when the machine has one:
    // de_DE or fr_FR); Redis always writes a point
    const char* const comma = std::setlocale(LC_NUMERIC, "de_DE.UTF-8")   ? "de_DE.UTF-8"
                              : std::setlocale(LC_NUMERIC, "fr_FR.UTF-8") ? "fr_FR.UTF-8"
                                                                          : nullptr;
    EXPECT_DOUBLE_EQ(convert<double>("$4\r\n3.25\r\n"), 3.25) << (comma ? comma : "C locale only");
    EXPECT_DOUBLE_EQ(convert<double>("$6\r\n-1e-05\r\n"), -1e-05);
    EXPECT_TRUE(std::isinf(convert<double>("$4\r\n-inf\r\n")));
    std::setlocale(LC_NUMERIC, "C");
    // strtod's extras are not numbers Redis writes: hexadecimal, leading spaces
    EXPECT_THROW(convert<double>("$5\r\n0x1p3\r\n"), redkit::error);
    EXPECT_THROW(convert<double>("$3\r\n 42\r\n"), redkit::error);
}

TEST(Reply, UnsignedIntegersReadTheirWholeRange) {
    // a bulk string above LLONG_MAX fits an unsigned long long (it was refused on the way through
    // long long); negative text does not
    EXPECT_EQ(convert<unsigned long long>("$20\r\n18446744073709551615\r\n"), 18446744073709551615ULL);
    EXPECT_EQ(convert<std::uint64_t>("$19\r\n9223372036854775808\r\n"), 9223372036854775808ULL);
    EXPECT_THROW(convert<unsigned long long>("$2\r\n-1\r\n"), redkit::error);
    EXPECT_THROW(convert<unsigned long long>("$20\r\n18446744073709551616\r\n"), redkit::error);
    EXPECT_THROW(convert<std::uint8_t>("$3\r\n256\r\n"), redkit::error);
    EXPECT_EQ(convert<std::uint8_t>("$3\r\n255\r\n"), 255);
    EXPECT_THROW(convert<unsigned>(":-1\r\n"), redkit::error);
}

TEST(Reply, Booleans) {
    EXPECT_TRUE(convert<bool>(":1\r\n"));
    EXPECT_FALSE(convert<bool>(":0\r\n"));
    EXPECT_TRUE(convert<bool>("+OK\r\n"));
    EXPECT_FALSE(convert<bool>("$-1\r\n"));  // SET NX that did not set
}

TEST(Reply, ArraysAndNesting) {
    EXPECT_EQ(convert<std::vector<std::string>>("*2\r\n$1\r\na\r\n$1\r\nb\r\n"), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(convert<std::vector<std::optional<std::string>>>("*2\r\n$1\r\na\r\n$-1\r\n"),
              (std::vector<std::optional<std::string>>{"a", std::nullopt}));
    const auto scan = convert<std::pair<std::string, std::vector<std::string>>>("*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n");
    EXPECT_EQ(scan.first, "0");
    EXPECT_EQ(scan.second, std::vector<std::string>{"k"});
    EXPECT_THROW(convert<std::vector<std::string>>("$1\r\na\r\n"), redkit::error);
}

TEST(Reply, MapsFromFlatArrays) {
    const auto m =
        convert<std::unordered_map<std::string, std::string>>("*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n");
    EXPECT_EQ(m.at("a"), "1");
    EXPECT_EQ(m.at("b"), "2");
    const auto ordered = convert<std::map<std::string, long long>>("*2\r\n$1\r\nx\r\n:5\r\n");
    EXPECT_EQ(ordered.at("x"), 5);
    EXPECT_THROW((convert<std::unordered_map<std::string, std::string>>("*1\r\n$1\r\na\r\n")), redkit::error);
}

TEST(Reply, ServerErrorKeepsPrefixAndMessage) {
    try {
        convert<std::string>("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
        FAIL();
    } catch (const redkit::server_error& e) {
        EXPECT_EQ(e.prefix(), "WRONGTYPE");
        EXPECT_EQ(e.server_message(), "WRONGTYPE Operation against a key holding the wrong kind of value");
        EXPECT_EQ(std::string(e.what()),
                  "redkit: GET k: WRONGTYPE Operation against a key holding the wrong kind of value");
        EXPECT_EQ(e.kind(), redkit::errc::server_error);
    }
}

TEST(Reply, TypeMismatchNamesBothShapes) {
    try {
        convert<long long>("*1\r\n:1\r\n");
        FAIL();
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::type_mismatch);
        EXPECT_NE(std::string(e.what()).find("expected integer reply, got array"), std::string::npos) << e.what();
    }
}

TEST(Reply, OwningReplyKeepsEverything) {
    const auto r = owned("*3\r\n:1\r\n$3\r\nabc\r\n*1\r\n-ERR nested\r\n");
    ASSERT_TRUE(r.is_array());
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0].integer(), 1);
    EXPECT_EQ(r[1].text(), "abc");
    EXPECT_TRUE(r[2][0].is_error());
    EXPECT_EQ(r[1].as<std::string>(), "abc");
    EXPECT_THROW(r[2][0].as<std::string>(), redkit::server_error);
    EXPECT_EQ(r.as<std::vector<redkit::reply>>().size(), 3u);
    EXPECT_TRUE(owned("$-1\r\n").is_nil());
}

TEST(Reply, MalformedRespIsAProtocolError) {
    try {
        (void)redkit::detail::parse_resp("?what\r\n");
        FAIL();
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::protocol_error);
    }
    EXPECT_THROW((void)redkit::detail::parse_resp("$5\r\nab"), redkit::error);  // incomplete
}

TEST(Reply, ErrorsCopyWithoutThrowing) {
    // exceptions are copied while being thrown and caught: a copy that throws terminates
    static_assert(std::is_nothrow_copy_constructible_v<redkit::error>);
    static_assert(std::is_nothrow_copy_constructible_v<redkit::server_error>);
    const redkit::server_error e("WRONGTYPE Operation against a key",
                                 "redkit: GET k: WRONGTYPE Operation against a key");
    const redkit::server_error copy = e;
    EXPECT_EQ(copy.prefix(), "WRONGTYPE");
    EXPECT_EQ(&copy.server_message(), &e.server_message());  // shared, not copied
}
