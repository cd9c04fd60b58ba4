// SPDX-License-Identifier: MIT
#include <redkit/key.hpp>
#include <redkit/stream.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

using namespace std::string_literals;

TEST(Key, JoinsPartsWithColons) {
    EXPECT_EQ(redkit::make_key("user", 123, "profile"), "user:123:profile");
    EXPECT_EQ(redkit::make_key("products", "featured"), "products:featured");
    EXPECT_EQ(redkit::make_key("n", -5), "n:-5");
}

TEST(Key, PrefixComesFirst) {
    const redkit::key_space keys("shop:prod");
    EXPECT_EQ(keys.key("user", 42, "sessions"), "shop:prod:user:42:sessions");
    EXPECT_EQ(keys.child("cache").key("products", "featured"), "shop:prod:cache:products:featured");
}

TEST(Key, HostilePartsCannotForgeStructure) {
    // A user id that tries to reach another user's key or change the cluster slot.
    const std::string evil = "42:admin";
    EXPECT_EQ(redkit::make_key("user", evil, "profile"), "user:42%3Aadmin:profile");
    EXPECT_EQ(redkit::make_key("user", "{x}"), "user:%7Bx%7D");
    EXPECT_EQ(redkit::make_key("ip", "::1"), "ip:%3A%3A1");
    EXPECT_EQ(redkit::make_key("a", "100%"), "a:100%25");
    EXPECT_EQ(redkit::make_key("a", "x y\n"), "a:x%20y%0A");
    EXPECT_EQ(redkit::make_key("a", "nul\0byte"s), "a:nul%00byte");
    // UTF-8 passes through untouched
    EXPECT_EQ(redkit::make_key("name", "Zoë"), "name:Zoë");
}

TEST(Key, EscapeRoundTrips) {
    for (const std::string& s : {"plain"s, "a:b{c}d%e"s, "\x01\x7f x"s, "::1"s, "100%25"s}) {
        EXPECT_EQ(redkit::unescape_key_part(redkit::escape_key_part(s)), s);
    }
    EXPECT_THROW(redkit::unescape_key_part("bad%G1"), std::invalid_argument);
    EXPECT_THROW(redkit::unescape_key_part("trunc%4"), std::invalid_argument);
}

TEST(Key, EmptyPartsAreRejectedByPosition) {
    try {
        (void)redkit::make_key("user", "", "profile");
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("part 2"), std::string::npos) << e.what();
    }
    EXPECT_THROW(redkit::key_space("app::prod"), std::invalid_argument);
    EXPECT_THROW(redkit::key_space(":app"), std::invalid_argument);
}

TEST(Key, HashTagGroupsKeys) {
    EXPECT_EQ(redkit::make_key("queue", redkit::hash_tag("mail"), "wait"), "queue:{mail}:wait");
    // the tag's content is escaped too, so it cannot close early
    EXPECT_EQ(redkit::make_key(redkit::hash_tag("a}b")), "{a%7Db}");
    EXPECT_THROW(redkit::make_key(redkit::hash_tag("a"), redkit::hash_tag("b")), std::invalid_argument);
    EXPECT_THROW(redkit::make_key(redkit::hash_tag("")), std::invalid_argument);
    EXPECT_THROW(redkit::key_space("app:{x}"), std::invalid_argument);
}

TEST(Key, PatternsEscapeGlobCharacters) {
    const redkit::key_space keys("app");
    EXPECT_EQ(keys.pattern("user", 42, redkit::wildcard), "app:user:42:*");
    // a hostile id full of glob characters matches only itself
    EXPECT_EQ(keys.pattern("user", "*", redkit::wildcard), "app:user:\\*:*");
    EXPECT_EQ(keys.pattern("user", "a?[b]\\", "x"), "app:user:a\\?\\[b\\]\\\\:x");
    EXPECT_EQ(redkit::escape_glob("h*llo"), "h\\*llo");
    EXPECT_THROW((void)keys.key("user", redkit::wildcard), std::invalid_argument);
}

// A stream consumer parks poison entries in a dead-letter stream with MULTI (XADD + XACK): on a
// cluster both keys must hash to one slot, whatever the stream key's braces ("a}b" and "x{}y{z}"
// used to get a dead-letter key in another slot: CROSSSLOT).
TEST(KeyNaming, ADeadLetterStreamSharesItsStreamsSlot) {
    for (const std::string key : {"orders:events", "{orders}:events", "a}b", "x{}y{z}", "}", "{", "{}", "a{b}c}d",
                                  "{{x}}", "user:42%7D", "}}{{"}) {
        const std::string dead = redkit::detail::dead_letter_key(key);
        EXPECT_EQ(redkit::key_slot(dead), redkit::key_slot(key)) << key << " -> " << dead;
        EXPECT_NE(dead, key);
        EXPECT_NE(dead.find(key), std::string::npos) << "the dead-letter key names its stream: " << dead;
    }
    EXPECT_EQ(redkit::detail::dead_letter_key("orders:events"), "{orders:events}:dead");
    EXPECT_EQ(redkit::detail::dead_letter_key("{orders}:events"), "{orders}:events:dead");
}
