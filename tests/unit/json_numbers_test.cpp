// SPDX-License-Identifier: MIT
// redkit::json_fields' one-pass decoder on numbers (overflow and underflow of floating point in
// any spelling, integers in any spelling decided exactly from the decimal text, the edges of every
// integer width, and the JSON grammar, checked against nlohmann's parser over generated inputs),
// and on repeated keys and std::vector<bool>.
#include <redkit/codec.hpp>
#include <redkit/json_fields.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace json_numbers_fixture {
template <class T>
struct one_value {
    T v{};
};
struct account {
    long long x = 0;
    std::optional<std::string> y;
    bool operator==(const account& o) const { return x == o.x && y == o.y; }
};
inline void PrintTo(const account& a, std::ostream* os) {
    *os << "{x: " << a.x << ", y: " << a.y.value_or("null") << "}";
}
struct accounts {
    account in;
    std::map<std::string, account> by_name;
    std::unordered_map<std::string, account> by_id;
};
struct switches {
    std::vector<bool> bits;
    std::optional<std::vector<bool>> more;
};
}  // namespace json_numbers_fixture

template <class T>
struct redkit::json_fields<json_numbers_fixture::one_value<T>> {
    static constexpr auto value = redkit::fields(redkit::field("v", &json_numbers_fixture::one_value<T>::v));
};
template <>
struct redkit::json_fields<json_numbers_fixture::account> {
    using a = json_numbers_fixture::account;
    static constexpr auto value = redkit::fields(redkit::field("x", &a::x), redkit::field("y", &a::y));
};
template <>
struct redkit::json_fields<json_numbers_fixture::accounts> {
    using a = json_numbers_fixture::accounts;
    static constexpr auto value = redkit::fields(redkit::field("in", &a::in), redkit::field("by_name", &a::by_name),
                                                 redkit::field("by_id", &a::by_id));
};
template <>
struct redkit::json_fields<json_numbers_fixture::switches> {
    using s = json_numbers_fixture::switches;
    static constexpr auto value = redkit::fields(redkit::field("bits", &s::bits), redkit::field("more", &s::more));
};

namespace {

using json_numbers_fixture::one_value;

/// The number `text` read into a field of type T, through read_json.
template <class T>
T jn_read(const std::string& text) {
    return redkit::read_json<one_value<T>>("{\"v\":" + text + "}").v;
}

/// The same, through the codec (what redkit::decode calls).
template <class T>
T jn_decode(const std::string& text) {
    return redkit::codec<one_value<T>>::decode("{\"v\":" + text + "}").v;
}

std::string jn_zeros(std::size_t n) { return std::string(n, '0'); }

TEST(JsonNumbers, NegativeExponentOverflowIsRefused) {
    // 1e399, spelt with 400 digits and a negative exponent
    EXPECT_THROW((void)jn_read<double>("1" + jn_zeros(400) + "e-1"), std::invalid_argument);
    EXPECT_THROW((void)jn_read<double>("-1" + jn_zeros(400) + "e-1"), std::invalid_argument);
    EXPECT_THROW((void)jn_decode<double>("1" + jn_zeros(400) + "e-80"), std::invalid_argument);
    EXPECT_THROW((void)jn_read<float>("1" + jn_zeros(50) + "e-2"), std::invalid_argument);
    // the same digits scaled back into range are a number
    EXPECT_EQ(jn_read<double>("1" + jn_zeros(400) + "e-100"), 1e300);
}

TEST(JsonNumbers, UnderflowWithoutExponentReadsAsZero) {
    const std::string tiny = "0." + jn_zeros(400) + "1";
    EXPECT_EQ(jn_read<double>(tiny), 0.0);
    EXPECT_EQ(jn_decode<double>("-" + tiny), 0.0);
    EXPECT_TRUE(std::signbit(jn_read<double>("-" + tiny))) << "the sign is kept";
    EXPECT_EQ(jn_read<double>(tiny + "e-3"), 0.0);
    EXPECT_EQ(jn_read<double>(tiny + "e+30"), 0.0) << "still 1e-371";
    EXPECT_EQ(jn_read<float>("0." + jn_zeros(50) + "1"), 0.0F);
    EXPECT_EQ(jn_read<double>("1e-401"), 0.0);
    EXPECT_EQ(jn_read<double>("1e-99999999999999999999"), 0.0) << "a saturated exponent";
    EXPECT_THROW((void)jn_read<double>("1e99999999999999999999"), std::invalid_argument);
    EXPECT_EQ(jn_read<double>(tiny + "e400"), 1e-1) << "in range after the exponent";
}

TEST(JsonNumbers, IntegralFloatsAtTheTopOfSmallTypesAreAccepted) {
    EXPECT_EQ(jn_read<std::int8_t>("127.0"), 127);
    EXPECT_EQ(jn_read<std::int8_t>("1.27e2"), 127);
    EXPECT_EQ(jn_read<std::int8_t>("-128.0"), -128);
    EXPECT_EQ(jn_read<std::uint8_t>("255.0"), 255);
    EXPECT_EQ(jn_read<std::uint8_t>("25500e-2"), 255);
    EXPECT_EQ(jn_read<std::uint16_t>("65535.000"), 65535);
    EXPECT_EQ(jn_read<int>("2147483647.0"), 2147483647);
    EXPECT_EQ(jn_decode<std::uint32_t>("4294967295E0"), 4294967295U);
    EXPECT_EQ(jn_read<long long>("9223372036854775807.0"), std::numeric_limits<long long>::max());
    EXPECT_EQ(jn_read<long long>("-9223372036854775808.0"), std::numeric_limits<long long>::min());
    EXPECT_EQ(jn_read<std::uint64_t>("1.8446744073709551615e19"), std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(jn_read<int>("1.5e1"), 15);
    EXPECT_EQ(jn_read<int>("0e999999999"), 0);
    EXPECT_EQ(jn_read<int>("-0.0"), 0);
    EXPECT_EQ(jn_read<unsigned>("-0.0e-7"), 0U);
    EXPECT_EQ(jn_read<int>("0.00012e5"), 12);
    EXPECT_THROW((void)jn_read<int>("0.00012e4"), std::invalid_argument) << "1.2";
    EXPECT_EQ(jn_read<int>("1" + jn_zeros(400) + "e-400"), 1);
    for (const std::string text : {"1.05e1", "1e-400", "128.0", "-129.0", "9223372036854775808.0",
                                   "18446744073709551616.0", "0.5", "-0.5", "1e99999999999999999999"}) {
        EXPECT_THROW((void)jn_read<std::int8_t>(text), std::invalid_argument) << text;
    }
    EXPECT_THROW((void)jn_read<long long>("9223372036854775808.0"), std::invalid_argument);
    EXPECT_THROW((void)jn_read<long long>("9.2233720368547758071e18"), std::invalid_argument);
    EXPECT_THROW((void)jn_read<std::uint64_t>("18446744073709551616.0"), std::invalid_argument);
    EXPECT_THROW((void)jn_read<std::uint8_t>("-1.0"), std::invalid_argument);
    EXPECT_THROW((void)jn_read<int>("1.0000000000000000000001"), std::invalid_argument) << "1.0 as a double";
}

TEST(JsonNumbers, IntegerBelowInt64MinIsRefused) {
    EXPECT_EQ(jn_read<long long>("-9223372036854775808"), std::numeric_limits<long long>::min());
    for (const std::string text : {"-9223372036854775809", "-9223372036854776832", "-9223372036854776833",
                                   "-9223372036854775809.0", "-92233720368547758090e-1"}) {
        EXPECT_THROW((void)jn_read<long long>(text), std::invalid_argument) << text;
        EXPECT_THROW((void)jn_decode<std::int64_t>(text), std::invalid_argument) << text;
    }
    EXPECT_THROW((void)jn_read<std::int32_t>("-2147483649"), std::invalid_argument);
}

TEST(JsonNumbers, DocumentedExamplesHold) {
    // the examples of json_fields.hpp's comment and the docs (keys-and-values.md), as they state them
    for (const std::string text : {"01", "+1", ".5", "NaN", "Infinity", "-Infinity"}) {
        EXPECT_THROW((void)jn_read<double>(text), std::invalid_argument) << text;
        EXPECT_THROW((void)jn_read<int>(text), std::invalid_argument) << text;
    }
    for (const std::string text : {"127", "127.0", "1.27e2", "12700e-2"}) EXPECT_EQ(jn_read<std::int8_t>(text), 127);
    EXPECT_EQ(jn_read<int>("-0"), 0);
    for (const std::string text : {"1.5", "1e-400"}) EXPECT_THROW((void)jn_read<int>(text), std::invalid_argument);
    EXPECT_THROW((void)jn_read<std::int8_t>("128"), std::invalid_argument);
    EXPECT_THROW((void)jn_read<std::int64_t>("-9223372036854775809"), std::invalid_argument);
    EXPECT_EQ(jn_read<double>("0.1"), 0.1);
    EXPECT_EQ(jn_read<double>("1e-400"), 0.0);
    EXPECT_TRUE(std::signbit(jn_read<double>("-1e-400")));
    EXPECT_THROW((void)jn_read<double>("1e400"), std::invalid_argument);
    EXPECT_THROW((void)jn_read<double>("-1e400"), std::invalid_argument);
}

TEST(JsonFieldsDuplicates, LastNestedStructWinsWhole) {
    using json_numbers_fixture::accounts;
    const std::string base = R"("by_name":{},"by_id":{})";
    const std::string doc = R"({"in":{"x":1,"y":"admin"},"in":{"x":2},)" + base + "}";
    const accounts fast = redkit::read_json<accounts>(doc);
    EXPECT_EQ(fast.in.x, 2);
    EXPECT_EQ(fast.in.y, std::nullopt) << "a value from neither object";
    EXPECT_EQ(nlohmann::json::parse(doc).get<accounts>().in, fast.in) << "as nlohmann reads it";

    const std::string maps = R"({"in":{"x":0},"by_name":{"a":{"x":1,"y":"admin"},"b":{"x":3},"a":{"x":2}},)"
                             R"("by_id":{"k":{"x":1,"y":"root"},"k":{"x":4}}})";
    const accounts m = redkit::codec<accounts>::decode(maps);
    ASSERT_EQ(m.by_name.size(), 2U);
    EXPECT_EQ(m.by_name.at("a"), (json_numbers_fixture::account{2, std::nullopt}));
    EXPECT_EQ(m.by_name.at("b").x, 3);
    ASSERT_EQ(m.by_id.size(), 1U);
    EXPECT_EQ(m.by_id.at("k"), (json_numbers_fixture::account{4, std::nullopt}));
    const accounts dom = nlohmann::json::parse(maps).get<accounts>();
    EXPECT_EQ(dom.by_name, m.by_name);
    EXPECT_EQ(dom.by_id, m.by_id);

    // a repeated scalar or container field: the last one, as before
    const accounts s = redkit::read_json<accounts>(R"({"in":{"x":1,"x":5,"y":"a","y":null},"by_name":{"a":{"x":1}},)"
                                                   R"("by_name":{"b":{"x":2}},"by_id":{}})");
    EXPECT_EQ(s.in, (json_numbers_fixture::account{5, std::nullopt}));
    ASSERT_EQ(s.by_name.size(), 1U);
    EXPECT_EQ(s.by_name.at("b").x, 2);
}

TEST(JsonFieldsVectorBool, DecodesAndEncodes) {
    using json_numbers_fixture::switches;
    const switches s = redkit::read_json<switches>(R"({"bits":[true,false,true],"more":[false]})");
    EXPECT_EQ(s.bits, (std::vector<bool>{true, false, true}));
    ASSERT_TRUE(s.more);
    EXPECT_EQ(*s.more, std::vector<bool>{false});
    const std::string bytes = redkit::codec<switches>::encode(s);
    EXPECT_EQ(bytes, R"({"bits":[true,false,true],"more":[false]})");
    EXPECT_EQ(redkit::codec<switches>::decode(bytes).bits, s.bits);
    EXPECT_EQ(nlohmann::json::parse(bytes).get<switches>().bits, s.bits);
    EXPECT_TRUE(redkit::read_json<switches>(R"({"bits":[]})").bits.empty());
    EXPECT_THROW((void)redkit::read_json<switches>(R"({"bits":[1]})"), std::invalid_argument);
    EXPECT_THROW((void)redkit::read_json<switches>(R"({"bits":[true,]})"), std::invalid_argument);
}

// ---- generated numbers, checked against nlohmann's parser ----

/// The decimal digits of a non-negative integer (no leading zeros) plus one.
std::string jn_increment(std::string digits) {
    for (auto i = digits.size(); i-- > 0;) {
        if (digits[i] != '9') {
            ++digits[i];
            return digits;
        }
        digits[i] = '0';
    }
    return "1" + digits;
}
/// The decimal digits of a positive integer minus one.
std::string jn_decrement(std::string digits) {
    for (auto i = digits.size(); i-- > 0;) {
        if (digits[i] != '0') {
            --digits[i];
            break;
        }
        digits[i] = '9';
    }
    const auto nonzero = digits.find_first_not_of('0');
    return nonzero == std::string::npos ? "0" : digits.substr(nonzero);
}
/// A signed decimal integer plus `step` (+1 or -1), as text.
std::string jn_step(const std::string& n, int step) {
    const bool negative = n[0] == '-';
    const std::string digits = negative ? n.substr(1) : n;
    if (digits == "0") return step > 0 ? "1" : "-1";
    if (negative == (step < 0)) return (negative ? "-" : "") + jn_increment(digits);
    const std::string d = jn_decrement(digits);
    return (negative && d != "0" ? "-" : "") + d;
}

/// Spellings of a signed decimal integer `n`, valid and not, integral and not.
void jn_spell(const std::string& n, std::vector<std::string>& out) {
    const std::string sign = n[0] == '-' ? "-" : "";
    const std::string m = sign.empty() ? n : n.substr(1);
    const std::size_t len = m.size();
    const std::string head = m.substr(0, 1), tail = m.substr(1);
    for (const std::string& s :
         {n, n + ".0", n + ".000", n + "e0", n + "E+0", n + "e-0", n + "e+00", sign + m + "00e-2", sign + m + "000E-3",
          sign + "0." + m + "e" + std::to_string(len),
          sign + head + "." + (tail.empty() ? "0" : tail) + "e" + std::to_string(len - 1),
          sign + head + "." + tail + "0e+" + std::to_string(len - 1), sign + "0.0" + m + "e" + std::to_string(len + 1),
          sign + m + "0e-1", n + ".5", n + ".0000000000000000000001", n + ".9999999999999999999999", sign + m + "e-1",
          sign + m + "1e-1", n + "e1", n + "e20", n + "e-20",
          // not JSON
          sign + "0" + m, "+" + m, n + ".", n + "e", n + "e+", sign + "." + m, n + ".e1", sign + m + "-", "--" + m,
          n + "x", sign + "0x" + m}) {
        out.push_back(s);
    }
    // the trailing zeros as an exponent: 100 as 1e2, 127 as 127e0
    const auto last = m.find_last_not_of('0');
    if (last != std::string::npos) out.push_back(sign + m.substr(0, last + 1) + "e" + std::to_string(len - 1 - last));
}

std::vector<std::string> jn_generated_numbers() {
    std::vector<std::string> out;
    // every integer width's edges: min-1, min, max, max+1
    const std::vector<std::pair<std::string, std::string>> bounds = {
        {std::to_string(std::numeric_limits<std::int8_t>::min()),
         std::to_string(std::numeric_limits<std::int8_t>::max())},
        {"0", std::to_string(std::numeric_limits<std::uint8_t>::max())},
        {std::to_string(std::numeric_limits<std::int16_t>::min()),
         std::to_string(std::numeric_limits<std::int16_t>::max())},
        {"0", std::to_string(std::numeric_limits<std::uint16_t>::max())},
        {std::to_string(std::numeric_limits<std::int32_t>::min()),
         std::to_string(std::numeric_limits<std::int32_t>::max())},
        {"0", std::to_string(std::numeric_limits<std::uint32_t>::max())},
        {std::to_string(std::numeric_limits<std::int64_t>::min()),
         std::to_string(std::numeric_limits<std::int64_t>::max())},
        {"0", std::to_string(std::numeric_limits<std::uint64_t>::max())},
    };
    for (const auto& [lo, hi] : bounds) {
        for (const std::string& n : {jn_step(lo, -1), lo, hi, jn_step(hi, +1)}) jn_spell(n, out);
    }
    for (const std::string n : {"0", "-0", "1", "-1", "10", "-100", "1024", "9223372036854776832",
                                "-9223372036854776832", "-9223372036854776833", "36893488147419103232"}) {
        jn_spell(n, out);
    }
    // overflow and underflow of double, in every spelling
    for (const std::size_t n : {300U, 307U, 308U, 309U, 310U, 330U, 400U}) {
        const std::string big = "1" + jn_zeros(n), tiny = "0." + jn_zeros(n) + "1", e = std::to_string(n);
        for (const std::string& s : {big,
                                     big + ".0",
                                     big + "e-1",
                                     big + "e-10",
                                     big + "e-" + e,
                                     big + "e+1",
                                     std::string(n + 1, '9'),
                                     std::string(n + 1, '9') + "." + std::string(n, '9'),
                                     tiny,
                                     tiny + "e-5",
                                     tiny + "e+5",
                                     tiny + "e" + e,
                                     tiny + "e" + std::to_string(2 * n),
                                     "0.0e" + e,
                                     "1e" + e,
                                     "1e-" + e,
                                     "1.5e" + e,
                                     "1.5E-" + e,
                                     "0.001e" + e,
                                     "1000e-" + e,
                                     "1e+" + e,
                                     "1E" + e,
                                     "0." + jn_zeros(n) + "e" + e,
                                     big + "." + jn_zeros(n) + "1e-" + e,
                                     "1." + jn_zeros(n) + "e" + e}) {
            out.push_back(s);
            out.push_back("-" + s);
        }
    }
    for (const std::string s : {"1e99999999999999999999",
                                "1e-99999999999999999999",
                                "0e99999999999999999999",
                                "0.0e-99999999999999999999",
                                "1e2147483648",
                                "1e-2147483649",
                                "1e4294967296",
                                "1e-4294967297",
                                "0.0000000001e99999999999999999999",
                                "1e308",
                                "1e309",
                                "1e-324",
                                "1e-323",
                                "1.7976931348623157e308",
                                "1.7976931348623158e308",
                                "1.7976931348623159e308",
                                "4.9406564584124654e-324",
                                "2.4703282292062328e-324",
                                "2.4703282292062327e-324",
                                "2.2250738585072011e-308",
                                "2.2250738585072014e-308",
                                "3e-320",
                                "1e-400",
                                "1e400",
                                "1e-1000",
                                "1e1000"}) {
        out.push_back(s);
        out.push_back("-" + std::string(s));
    }
    out.push_back("17976931348623157" + jn_zeros(292));
    out.push_back("17976931348623159" + jn_zeros(292));
    out.push_back("0." + jn_zeros(323) + "24703282292062328");
    out.push_back("0." + jn_zeros(323) + "24703282292062327");
    for (const std::string s : {"", "-", "+", ".", "e1", "NaN", "-Infinity", "0x1p3", "1_000", "1e1.5", "- 1"}) {
        out.push_back(s);
    }

    // random numbers, valid and not (a fixed seed: the same inputs on every run)
    std::mt19937 random(20261207);
    const auto below = [&](unsigned n) { return static_cast<unsigned>(random() % n); };
    const auto digits = [&](unsigned count, bool first_nonzero) {
        std::string d;
        for (unsigned i = 0; i < count; ++i) {
            // zeros more often than the others: runs of them are where the spellings differ
            const unsigned r = below(14);
            d.push_back(r >= 10 ? '0' : static_cast<char>('0' + r));
        }
        if (first_nonzero && !d.empty() && d[0] == '0') d[0] = static_cast<char>('1' + below(9));
        return d;
    };
    for (int i = 0; i < 2000; ++i) {
        std::string s;
        const unsigned sign = below(50);
        if (sign < 12) s = "-";
        if (sign == 12) s = "+";
        const unsigned whole = below(100);
        if (whole < 15) {
            s += "0";
        } else if (whole < 17) {
            s += "0" + digits(1 + below(3), false);  // a leading zero: not JSON
        } else if (whole < 22) {
            s += digits(295 + below(30), true);
        } else {
            s += digits(1 + below(25), true);
        }
        const unsigned fraction = below(100);
        if (fraction < 2) {
            s += ".";  // no digit after '.': not JSON
        } else if (fraction < 10) {
            s += "." + jn_zeros(300 + below(40)) + digits(1 + below(3), true);
        } else if (fraction < 55) {
            s += "." + digits(1 + below(25), false);
        }
        const unsigned exponent = below(100);
        if (exponent < 50) {
            s += below(2) != 0 ? "e" : "E";
            const unsigned esign = below(3);
            if (esign == 1) s += "+";
            if (esign == 2) s += "-";
            const unsigned size = below(100);
            if (size < 2) {
                // no digit: not JSON
            } else if (size < 7) {
                s += digits(20, true);
            } else if (size < 12) {
                s += jn_zeros(1 + below(3)) + std::to_string(below(30));
            } else {
                s += std::to_string(below(420));
            }
        }
        out.push_back(s);
    }
    // random 64-bit integers in random spellings
    std::vector<std::string> spelt;
    for (int i = 0; i < 40; ++i) {
        const std::uint64_t n = (static_cast<std::uint64_t>(random()) << 32 | random()) >> below(64);
        spelt.clear();
        jn_spell((below(2) != 0 ? "-" : "") + std::to_string(n), spelt);
        for (int k = 0; k < 8; ++k) out.push_back(spelt[below(static_cast<unsigned>(spelt.size()))]);
    }
    return out;
}

/// The integer a number's text (valid JSON) names, as a signed decimal string without leading
/// zeros; nullopt when it names a fraction. Exact: it moves the decimal point in the text, no
/// arithmetic that could overflow or round.
std::optional<std::string> jn_integer_named(const std::string& text) {
    std::size_t i = 0;
    const bool negative = text[i] == '-';
    if (negative) ++i;
    std::string whole, fraction;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') whole += text[i++];
    if (i < text.size() && text[i] == '.') {
        ++i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') fraction += text[i++];
    }
    long long exponent = 0;
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        ++i;
        const bool down = text[i] == '-';
        if (text[i] == '-' || text[i] == '+') ++i;
        // past 10^6 (the inputs are far shorter) the exact exponent no longer matters
        for (; i < text.size(); ++i) exponent = std::min(exponent * 10 + (text[i] - '0'), 1000000LL);
        if (down) exponent = -exponent;
    }
    const std::string all = whole + fraction;
    if (all.find_first_not_of('0') == std::string::npos) return "0";
    const long long point = static_cast<long long>(whole.size()) + exponent;  // digits before the point
    if (point <= 0) return std::nullopt;
    std::string integer;
    if (point >= static_cast<long long>(all.size())) {
        integer = all + jn_zeros(static_cast<std::size_t>(point) - all.size());
    } else {
        if (all.find_first_not_of('0', static_cast<std::size_t>(point)) != std::string::npos) return std::nullopt;
        integer = all.substr(0, static_cast<std::size_t>(point));
    }
    integer = integer.substr(integer.find_first_not_of('0'));
    return (negative ? "-" : "") + integer;
}

/// a < b, for signed decimal integers without leading zeros.
bool jn_less(const std::string& a, const std::string& b) {
    const bool an = a[0] == '-', bn = b[0] == '-';
    if (an != bn) return an;
    const std::string x = an ? b.substr(1) : a, y = an ? a.substr(1) : b;  // compare magnitudes, swapped if negative
    return x.size() != y.size() ? x.size() < y.size() : x < y;
}

struct jn_outcome {
    std::size_t checked = 0, mismatches = 0;
    std::string first;
    void mismatch(const std::string& input, const std::string& what) {
        if (mismatches++ == 0)
            first = "input '" + input.substr(0, 120) + "' (" + std::to_string(input.size()) + " bytes): " + what;
    }
};

/// Checks an integer field of type T on `text`; `json_ok`: whether nlohmann accepts it as JSON.
template <class T>
void jn_check_integer(const std::string& text, bool json_ok, const char* type, jn_outcome& outcome) {
    ++outcome.checked;
    std::optional<std::string> want;
    if (json_ok) {
        want = jn_integer_named(text);
        if (want && (jn_less(*want, std::to_string(std::numeric_limits<T>::min())) ||
                     jn_less(std::to_string(std::numeric_limits<T>::max()), *want))) {
            want.reset();
        }
    }
    try {
        const T got = jn_read<T>(text);
        const std::string got_text = std::to_string(got);
        if (!want) {
            outcome.mismatch(text, std::string(type) + " read " + got_text + ", expected a refusal");
        } else if (got_text != *want) {
            outcome.mismatch(text, std::string(type) + " read " + got_text + ", expected " + *want);
        }
    } catch (const std::invalid_argument& e) {
        if (want) outcome.mismatch(text, std::string(type) + " refused (" + e.what() + "), expected " + *want);
    } catch (const std::exception& e) {
        outcome.mismatch(text, std::string(type) + " threw something else than invalid_argument: " + e.what());
    }
}

TEST(JsonNumbers, AgreesWithNlohmannOnGeneratedNumbers) {
    const std::vector<std::string> inputs = jn_generated_numbers();
    ASSERT_GT(inputs.size(), 3000U);
    jn_outcome outcome;
    std::size_t valid = 0, overflow = 0;
    for (const std::string& text : inputs) {
        // nlohmann's verdict: a number, not JSON (parse_error), or too large for a double (406)
        bool json_ok = false, too_large = false;
        double want = 0;
        try {
            const nlohmann::json j = nlohmann::json::parse(text);
            ASSERT_TRUE(j.is_number()) << text;
            json_ok = true;
            want = j.get<double>();
        } catch (const nlohmann::json::out_of_range& e) {
            ASSERT_EQ(e.id, 406) << text;
            json_ok = too_large = true;
        } catch (const nlohmann::json::parse_error&) {
        }
        valid += json_ok ? 1 : 0;
        overflow += too_large ? 1 : 0;

        ++outcome.checked;
        try {
            const double got = jn_read<double>(text);
            if (!json_ok || too_large) {
                outcome.mismatch(text, "double read " + nlohmann::json(got).dump() + ", nlohmann " +
                                           (too_large ? "reports overflow" : "refuses it"));
            } else if (got != want) {
                outcome.mismatch(
                    text, "double read " + nlohmann::json(got).dump() + ", nlohmann " + nlohmann::json(want).dump());
            }
        } catch (const std::invalid_argument& e) {
            if (json_ok && !too_large) {
                outcome.mismatch(
                    text, std::string("double refused (") + e.what() + "), nlohmann " + nlohmann::json(want).dump());
            }
        }
        jn_check_integer<std::int8_t>(text, json_ok, "int8", outcome);
        jn_check_integer<std::uint8_t>(text, json_ok, "uint8", outcome);
        jn_check_integer<std::int16_t>(text, json_ok, "int16", outcome);
        jn_check_integer<std::uint16_t>(text, json_ok, "uint16", outcome);
        jn_check_integer<std::int32_t>(text, json_ok, "int32", outcome);
        jn_check_integer<std::uint32_t>(text, json_ok, "uint32", outcome);
        jn_check_integer<std::int64_t>(text, json_ok, "int64", outcome);
        jn_check_integer<std::uint64_t>(text, json_ok, "uint64", outcome);
    }
    EXPECT_EQ(outcome.mismatches, 0U) << outcome.mismatches << " of " << outcome.checked
                                      << " checks differ; the first: " << outcome.first;
    // the generator covers both sides of every rule
    EXPECT_GT(valid, inputs.size() / 2);
    EXPECT_LT(valid, inputs.size());
    EXPECT_GT(overflow, 100U);
    std::cout << inputs.size() << " generated inputs (" << valid << " JSON numbers, " << overflow
              << " too large for a double), " << outcome.checked << " checks\n";
}

}  // namespace
