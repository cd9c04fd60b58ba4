// SPDX-License-Identifier: MIT
#include <redkit/codec.hpp>

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace shop {
struct product {
    std::string id;
    double price = 0;
    std::vector<std::string> tags;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(product, id, price, tags)
}  // namespace shop

TEST(Codec, EncodesPlainJsonThatOtherLanguagesRead) {
    const shop::product p{"prod_1", 9.5, {"a", "b"}};
    const std::string bytes = redkit::encode(p);
    EXPECT_EQ(bytes, R"({"id":"prod_1","price":9.5,"tags":["a","b"]})");
    const auto back = redkit::decode<shop::product>(bytes, "products:1");
    EXPECT_EQ(back.id, "prod_1");
    EXPECT_EQ(back.tags.size(), 2u);
    EXPECT_EQ(redkit::encode(std::string("hi")), "\"hi\"");
}

TEST(Codec, CorruptBytesThrowDecodeErrorNamingTheKey) {
    for (const char* bad : {"{not json", "", "[1,2]", R"({"id":5})"}) {
        try {
            (void)redkit::decode<shop::product>(bad, "products:featured");
            FAIL() << bad;
        } catch (const redkit::error& e) {
            EXPECT_EQ(e.kind(), redkit::errc::decode_error);
            EXPECT_NE(std::string(e.what()).find("products:featured"), std::string::npos) << e.what();
        }
    }
}

TEST(Codec, InvalidUtf8IsRejectedOnEncode) {
    EXPECT_THROW(redkit::encode(std::string("\xff\xfe")), std::invalid_argument);
}
