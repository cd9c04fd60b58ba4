// SPDX-License-Identifier: MIT
// redkit::json_fields and its one-pass decoder: the same values as nlohmann's DOM on valid
// documents (the benchmark's product fixture, escapes, Unicode, nesting, any field order), and a
// clear error on every kind of bad input nlohmann refuses too.
#include <redkit/codec.hpp>
#include <redkit/json_fields.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace catalog {
struct dimensions {
    double width = 0, height = 0;
    bool operator==(const dimensions& o) const { return width == o.width && height == o.height; }
};
struct product {
    std::string id, name, description;
    double price = 0;
    long long stock = 0;
    bool in_stock = false;
    std::vector<std::string> tags;
    std::optional<std::string> note;
    std::optional<dimensions> size;
    std::vector<dimensions> boxes;
    std::map<std::string, int> counts;
    nlohmann::json extra;
    std::uint8_t small = 0;
};
// The benchmark's fixture (bench/fixtures/product.json), fields in camelCase.
struct listing {
    std::string id, sku, name, slug, description, brand, category;
    double price = 0, compare_at_price = 0;
    std::string currency;
    double rating = 0;
    long long review_count = 0, stock = 0;
    bool in_stock = false, featured = false;
    long long weight_grams = 0;
    std::vector<std::string> tags;
    std::string image_url, created_at, updated_at;
};
}  // namespace catalog

template <>
struct redkit::json_fields<catalog::listing> {
    using l = catalog::listing;
    static constexpr auto value = redkit::fields(
        redkit::field("id", &l::id), redkit::field("sku", &l::sku), redkit::field("name", &l::name),
        redkit::field("slug", &l::slug), redkit::field("description", &l::description),
        redkit::field("brand", &l::brand), redkit::field("category", &l::category), redkit::field("price", &l::price),
        redkit::field("compareAtPrice", &l::compare_at_price), redkit::field("currency", &l::currency),
        redkit::field("rating", &l::rating), redkit::field("reviewCount", &l::review_count),
        redkit::field("stock", &l::stock), redkit::field("inStock", &l::in_stock),
        redkit::field("featured", &l::featured), redkit::field("weightGrams", &l::weight_grams),
        redkit::field("tags", &l::tags), redkit::field("imageUrl", &l::image_url),
        redkit::field("createdAt", &l::created_at), redkit::field("updatedAt", &l::updated_at));
};

template <>
struct redkit::json_fields<catalog::dimensions> {
    static constexpr auto value = redkit::fields(redkit::field("width", &catalog::dimensions::width),
                                                 redkit::field("height", &catalog::dimensions::height));
};
template <>
struct redkit::json_fields<catalog::product> {
    using p = catalog::product;
    static constexpr auto value = redkit::fields(
        redkit::field("id", &p::id), redkit::field("name", &p::name), redkit::field("description", &p::description),
        redkit::field("price", &p::price), redkit::field("stock", &p::stock), redkit::field("inStock", &p::in_stock),
        redkit::field("tags", &p::tags), redkit::field("note", &p::note), redkit::field("size", &p::size),
        redkit::field("boxes", &p::boxes), redkit::field("counts", &p::counts), redkit::field("extra", &p::extra),
        redkit::field("small", &p::small));
};

namespace {

using catalog::product;

const char* full_doc = R"({"id":"p1","name":"Caf\u00e9 \"Noir\" \ud83d\ude00 ÅŞ","description":"line\nbreak\t/\\",
  "price":-12.5e1,"stock":1e3,"inStock":true,"tags":["a","b",""],"note":null,"size":{"width":1.5,"height":2},
  "boxes":[{"height":3,"width":4,"ignored":[1,{"x":null}]}],"counts":{"x":1,"y":-2},"extra":{"any":[1,"two",null]},
  "small":255,"unknown":{"deep":[[[]]]}})";

void expect_same(const product& a, const product& b) {
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.description, b.description);
    EXPECT_EQ(a.price, b.price);
    EXPECT_EQ(a.stock, b.stock);
    EXPECT_EQ(a.in_stock, b.in_stock);
    EXPECT_EQ(a.tags, b.tags);
    EXPECT_EQ(a.note, b.note);
    EXPECT_EQ(a.size, b.size);
    EXPECT_EQ(a.boxes, b.boxes);
    EXPECT_EQ(a.counts, b.counts);
    EXPECT_EQ(a.extra, b.extra);
    EXPECT_EQ(a.small, b.small);
}

TEST(json_fields, decodes_what_nlohmann_decodes) {
    const product fast = redkit::read_json<product>(full_doc);
    const product dom = nlohmann::json::parse(full_doc).get<product>();
    expect_same(fast, dom);
    EXPECT_EQ(fast.name, "Caf\xc3\xa9 \"Noir\" \xf0\x9f\x98\x80 \xc3\x85\xc5\x9e");
    EXPECT_EQ(fast.description, "line\nbreak\t/\\");
    EXPECT_EQ(fast.price, -125.0);
    EXPECT_EQ(fast.stock, 1000);
    ASSERT_TRUE(fast.size);
    EXPECT_EQ(fast.size->width, 1.5);
    ASSERT_EQ(fast.boxes.size(), 1U);
    EXPECT_EQ(fast.boxes[0].width, 4);
    EXPECT_EQ(fast.counts.at("y"), -2);
    EXPECT_EQ(fast.extra["any"][1], "two");
    EXPECT_EQ(fast.small, 255);
}

TEST(json_fields, round_trips_through_the_codec_in_any_field_order) {
    product p = redkit::read_json<product>(full_doc);
    const std::string bytes = redkit::encode(p);  // nlohmann writes the keys sorted
    EXPECT_EQ(bytes, nlohmann::json(p).dump());
    expect_same(redkit::decode<product>(bytes), p);
    p.note = "set";
    p.size.reset();
    expect_same(redkit::decode<product>(redkit::encode(p)), p);
}

TEST(json_fields, optional_fields_may_be_missing_and_others_may_not) {
    const std::string minimal =
        R"({"id":"","name":"","description":"","price":0,"stock":0,"inStock":false,"tags":[],"boxes":[],)"
        R"("counts":{},"extra":null,"small":0})";
    const product p = redkit::read_json<product>(minimal);
    EXPECT_FALSE(p.note);
    EXPECT_FALSE(p.size);
    try {
        (void)redkit::decode<product>(R"({"id":"x"})", "shop:product:1");
        FAIL() << "a document without its fields was accepted";
    } catch (const redkit::error& e) {
        EXPECT_EQ(e.kind(), redkit::errc::decode_error);
        EXPECT_NE(std::string(e.what()).find("missing field 'name'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("shop:product:1"), std::string::npos) << e.what();
    }
}

TEST(json_fields, decodes_the_benchmark_fixture_as_nlohmann_does) {
    std::ifstream in(REDKIT_BENCH_FIXTURES "/product.json");
    ASSERT_TRUE(in) << "bench/fixtures/product.json";
    std::stringstream text;
    text << in.rdbuf();
    const catalog::listing fast = redkit::read_json<catalog::listing>(text.str());
    const auto j = nlohmann::json::parse(text.str());
    EXPECT_EQ(fast.id, j["id"].get<std::string>());
    EXPECT_EQ(fast.sku, j["sku"].get<std::string>());
    EXPECT_EQ(fast.description, j["description"].get<std::string>());
    EXPECT_EQ(fast.price, j["price"].get<double>());
    EXPECT_EQ(fast.compare_at_price, j["compareAtPrice"].get<double>());
    EXPECT_EQ(fast.rating, j["rating"].get<double>());
    EXPECT_EQ(fast.review_count, j["reviewCount"].get<long long>());
    EXPECT_EQ(fast.in_stock, j["inStock"].get<bool>());
    EXPECT_EQ(fast.tags, j["tags"].get<std::vector<std::string>>());
    EXPECT_EQ(fast.updated_at, j["updatedAt"].get<std::string>());
    EXPECT_EQ(nlohmann::json(fast), j) << "and encodes back to the same document";
}

TEST(json_fields, refuses_what_is_not_json_or_does_not_fit) {
    const std::string good = R"({"id":"a","name":"b","description":"c","price":1,"stock":2,"inStock":true,)"
                             R"("tags":[],"boxes":[],"counts":{},"extra":null,"small":1})";
    ASSERT_NO_THROW((void)redkit::read_json<product>(good));
    const auto with = [&](const std::string& field, const std::string& value) {
        const auto at = good.find("\"" + field + "\":");
        const auto from = at + field.size() + 3;
        auto to = good.find_first_of(",}", from);
        if (good[from] == '[') to = good.find(']', from) + 1;
        return good.substr(0, from) + value + good.substr(to);
    };
    const std::vector<std::string> bad = {
        "",
        "{",
        "[]",
        "null",
        good + "x",                                     // trailing text
        good.substr(0, good.size() - 1),                // unterminated object
        with("id", "\"a"),                              // unterminated string
        with("id", "'a'"),                              // not JSON quotes
        with("id", "\"a\x01\""),                        // raw control character
        with("id", "\"\\x\""),                          // bad escape
        with("id", "\"\\u12\""),                        // truncated \u
        with("id", "\"\\ud800\""),                      // lone high surrogate
        with("id", "\"\\udc00\""),                      // lone low surrogate
        with("id", "\"\xc3\""),                         // truncated UTF-8
        with("id", "\"\xc0\xaf\""),                     // overlong UTF-8
        with("id", "\"\xed\xa0\x80\""),                 // UTF-8 surrogate
        with("id", "\"\xf4\x90\x80\x80\""),             // past U+10FFFF
        with("id", "\"\xff\""),                         // never UTF-8
        with("id", "1"),                                // wrong type
        with("price", "01"),                            // leading zero
        with("price", "1."),                            // no digit after '.'
        with("price", "-"),                             // no digit
        with("price", "1e"),                            // no exponent digits
        with("price", "+1"),                            // no plus sign in JSON
        with("price", "1e999"),                         // out of double's range
        with("price", "NaN"),                           // not JSON
        with("inStock", "tru"),                         // truncated literal
        with("inStock", "1"),                           // not a bool
        with("tags", "[\"a\",]"),                       // trailing comma
        with("tags", "[\"a\" \"b\"]"),                  // missing comma
        with("tags", "{}"),                             // wrong type
        std::string(600, '[') + std::string(600, ']'),  // too deep
    };
    for (const std::string& text : bad) {
        EXPECT_THROW((void)redkit::decode<product>(text, "k"), redkit::error) << text;
        EXPECT_ANY_THROW((void)nlohmann::json::parse(text).get<product>()) << "nlohmann accepts: " << text;
    }
    // numbers that do not fit their field: nlohmann truncates or wraps them silently; refused here
    for (const std::string& text :
         {with("stock", "1.5"), with("stock", "99999999999999999999"), with("small", "256"), with("small", "-1")}) {
        EXPECT_THROW((void)redkit::decode<product>(text, "k"), redkit::error) << text;
    }
    EXPECT_EQ(redkit::read_json<product>(with("stock", "2.0")).stock, 2) << "an integral number in any notation";
    EXPECT_EQ(redkit::read_json<product>(with("price", "1e-400")).price, 0.0) << "underflow reads as zero";
    EXPECT_EQ(redkit::read_json<product>(with("price", "-0")).price, 0.0);
    // hostile nesting in a skipped field is refused, not a stack overflow
    const std::string deep =
        good.substr(0, good.size() - 1) + ",\"unknown\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
    EXPECT_THROW((void)redkit::decode<product>(deep), redkit::error);
}

}  // namespace
