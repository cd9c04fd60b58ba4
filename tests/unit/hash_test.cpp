// SPDX-License-Identifier: MIT
// SHA-256 (detail/hash.hpp) against the NIST FIPS 180-4 example vectors, plus the padding
// boundaries and incremental hashing; base64url (detail/random.hpp) round trips.
#include <redkit/detail/hash.hpp>
#include <redkit/detail/random.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

using redkit::detail::sha256;
using redkit::detail::sha256_hex;

TEST(Sha256, NistVectors) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(
        sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                   "mnopqrstnopqrstu"),
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundaries) {
    // Lengths where the 0x80 byte and the 64-bit length do or do not fit in the last block.
    const std::vector<std::pair<std::size_t, const char*>> cases = {
        {55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
        {56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
        {63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
        {64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
        {65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
        {119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
        {120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
        {128, "24da1b81d0b16df6428eee73c69fcb2a93c76bc6df706f0c6670fe6bfe800464"},
    };
    for (const auto& [n, hex] : cases) EXPECT_EQ(sha256_hex(std::string(n, 'x')), hex) << n << " bytes";
}

TEST(Sha256, IncrementalEqualsOneShotAtEverySplit) {
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    const auto whole = redkit::detail::sha256_digest(all);
    for (std::size_t split = 0; split <= all.size(); ++split) {
        sha256 h;
        h.update(std::string_view(all).substr(0, split));
        h.update(std::string_view(all).substr(split));
        ASSERT_EQ(h.digest(), whole) << "split at " << split;
    }
    EXPECT_EQ(sha256_hex(all), "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880");
}

TEST(Base64Url, Rfc4648VectorsWithoutPadding) {
    using redkit::detail::base64url_decode;
    using redkit::detail::base64url_encode;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff\xbf", "-_-_"},
    };
    for (const auto& [raw, text] : cases) {
        EXPECT_EQ(base64url_encode(raw.data(), raw.size()), text);
        EXPECT_EQ(base64url_decode(text), raw);
    }
    EXPECT_EQ(base64url_decode("Zm9v="), std::nullopt);  // padding is not part of the alphabet
    EXPECT_EQ(base64url_decode("Zm9+"), std::nullopt);   // standard base64, not URL-safe
    EXPECT_EQ(base64url_decode("Z"), std::nullopt);      // impossible length
    EXPECT_EQ(base64url_decode("Zh"), std::nullopt);     // non-zero trailing bits
}

TEST(RandomBytes, FillsAndDiffers) {
    unsigned char a[32] = {};
    unsigned char b[32] = {};
    redkit::detail::random_bytes(a, sizeof a);
    redkit::detail::random_bytes(b, sizeof b);
    EXPECT_NE(std::string(reinterpret_cast<char*>(a), sizeof a), std::string(reinterpret_cast<char*>(b), sizeof b));
    EXPECT_NE(std::string(reinterpret_cast<char*>(a), sizeof a), std::string(sizeof a, '\0'));

    // the /dev/urandom fallback on its own
    unsigned char c[32] = {};
    unsigned char d[32] = {};
    redkit::detail::read_urandom(c, sizeof c);
    redkit::detail::read_urandom(d, sizeof d);
    EXPECT_NE(std::string(reinterpret_cast<char*>(c), sizeof c), std::string(reinterpret_cast<char*>(d), sizeof d));
}
