// SPDX-License-Identifier: MIT
// redkit::session_store against a real, private redis-server (and a private single-node cluster).
#include <redkit/session.hpp>

#include "support/fresh_database.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace {

using store = redkit::session_store<>;
using data_map = std::map<std::string, std::string>;

// Typed session data for the concurrency test.
struct tally {
    long long total = 0;
    std::map<std::string, long long> by_thread;
};
void to_json(nlohmann::json& j, const tally& t) { j = nlohmann::json{{"total", t.total}, {"by_thread", t.by_thread}}; }
void from_json(const nlohmann::json& j, tally& t) {
    j.at("total").get_to(t.total);
    j.at("by_thread").get_to(t.by_thread);
}

class Sessions : public ::testing::Test {
protected:
    void SetUp() override {
        redkit::client_options o = shared_server().options();
        o.pool_size = 20;
        o.on_error = [this](const redkit::error& e) {
            std::lock_guard<std::mutex> lock(errors_mutex);
            errors.emplace_back(e.kind(), e.what());
        };
        redis = redkit::client(o);
        redis.command<void>("FLUSHALL");
    }

    store make(std::chrono::milliseconds idle = 30min, std::chrono::milliseconds absolute = 8h,
               redkit::key_space keys = {}) {
        return store(redis, redkit::session_options{idle, absolute, std::move(keys)});
    }

    static std::string session_key(const std::string& token, const std::string& prefix = "") {
        return prefix + "session:{" + token.substr(0, 2) + "}:" + redkit::detail::sha256_hex(token);
    }

    long long server_ms() {
        const auto t = redis.command<std::vector<long long>>("TIME");
        return t.at(0) * 1000 + t.at(1) / 1000;
    }

    static long long ms(std::chrono::system_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    }

    std::vector<std::string> all_keys() {
        std::vector<std::string> keys;
        for (const auto& k : redis.scan("*", 1000)) keys.push_back(k);
        return keys;
    }

    // Calls of one command so far, from INFO commandstats.
    long long calls(const std::string& command) { return redkit_test::command_calls(redis, command); }

    std::vector<std::pair<redkit::errc, std::string>> reported() {
        std::lock_guard<std::mutex> lock(errors_mutex);
        return errors;
    }
    void clear_reported() {
        std::lock_guard<std::mutex> lock(errors_mutex);
        errors.clear();
    }

    redkit::client redis{redkit::client_options{}};
    std::mutex errors_mutex;
    std::vector<std::pair<redkit::errc, std::string>> errors;
};

// A user id in the same bucket (hence the same hash tag and slot) as `user`, but another user.
std::string bucket_mate(const std::string& user) {
    const std::string b = redkit::detail::session_bucket(user);
    for (int i = 0;; ++i) {
        std::string candidate = "mate" + std::to_string(i);
        if (redkit::detail::session_bucket(candidate) == b) return candidate;
    }
}

}  // namespace

TEST_F(Sessions, CreateThenGetReturnsTheSession) {
    auto sessions = make(10min, 1h);
    const long long before = server_ms();
    const std::string token = sessions.create("42", {{"device", "laptop"}, {"ip", "192.0.2.1"}});
    const long long after = server_ms();

    EXPECT_EQ(token.size(), 44u);
    const auto s = sessions.get(token);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->user_id, "42");
    EXPECT_EQ(s->data, (data_map{{"device", "laptop"}, {"ip", "192.0.2.1"}}));
    EXPECT_EQ(s->version, 1u);
    EXPECT_EQ(s->id.size(), 22u);
    EXPECT_GE(ms(s->created), before);
    EXPECT_LE(ms(s->created), after);
    EXPECT_GE(s->last_seen, s->created);
    EXPECT_EQ(ms(s->absolute_expiry) - ms(s->created), 3600000);
    EXPECT_EQ(ms(s->expires) - ms(s->last_seen), 600000);
    EXPECT_EQ(sessions.peek(token)->id, s->id);
    EXPECT_TRUE(sessions.touch(token));
    EXPECT_TRUE(reported().empty());
}

TEST_F(Sessions, KeysFollowTheConventionAndCarryOnlyTheTokenHash) {
    auto sessions = make(10min, 1h, redkit::key_space("app:test"));
    const std::string token = sessions.create("42", {});
    const std::string bucket = redkit::detail::session_bucket("42");
    EXPECT_EQ(token.substr(0, 2), bucket);

    const std::string skey = session_key(token, "app:test:");
    const std::string ikey = "app:test:user:42:{" + bucket + "}:sessions";
    std::vector<std::string> keys = all_keys();
    std::sort(keys.begin(), keys.end());
    std::vector<std::string> expected = {skey, ikey};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(keys, expected);

    EXPECT_EQ(redis.command<std::string>("TYPE", skey), "hash");
    EXPECT_EQ(redis.command<std::string>("HGET", skey, "index"), ikey);
    const auto pttl = redis.command<long long>("PTTL", skey);
    EXPECT_GT(pttl, 590000);
    EXPECT_LE(pttl, 600000);
    const auto members = redis.command<std::vector<std::string>>("ZRANGE", ikey, 0, -1);
    ASSERT_EQ(members.size(), 1u);
    EXPECT_EQ(members[0], redkit::detail::sha256_hex(token));
    // index score == the session's expiry; the index outlives it until the absolute deadline
    const long long score = redis.command<long long>("ZSCORE", ikey, members[0]);
    EXPECT_EQ(score, ms(sessions.peek(token)->expires));
    EXPECT_GT(redis.command<long long>("PTTL", ikey), 3590000);
}

TEST_F(Sessions, GetSlidesTheIdleTimeoutAndPeekDoesNot) {
    auto sessions = make(400ms, 1min);
    const std::string token = sessions.create("42", {});
    const std::string key = session_key(token);
    std::this_thread::sleep_for(150ms);
    EXPECT_LT(redis.command<long long>("PTTL", key), 300);
    ASSERT_TRUE(sessions.peek(token));
    EXPECT_LT(redis.command<long long>("PTTL", key), 300);  // peek did not slide
    const auto s = sessions.get(token);
    ASSERT_TRUE(s);
    EXPECT_GT(redis.command<long long>("PTTL", key), 300);  // get did
    EXPECT_GT(s->last_seen, s->created);
    std::this_thread::sleep_for(150ms);
    EXPECT_TRUE(sessions.touch(token));
    EXPECT_GT(redis.command<long long>("PTTL", key), 300);  // touch did
}

TEST_F(Sessions, IdleTimeoutExpiresAnUntouchedSession) {
    auto sessions = make(250ms, 1min);
    const std::string idle = sessions.create("42", {});
    const std::string busy = sessions.create("42", {});
    const auto until = std::chrono::steady_clock::now() + 600ms;
    while (std::chrono::steady_clock::now() < until) {
        ASSERT_TRUE(sessions.touch(busy));
        std::this_thread::sleep_for(25ms);
    }
    EXPECT_EQ(sessions.get(idle), std::nullopt);
    EXPECT_FALSE(redis.command<bool>("EXISTS", session_key(idle)));
    EXPECT_TRUE(sessions.get(busy));
    const auto listed = sessions.list("42");
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].id, sessions.peek(busy)->id);
    const std::string index = "user:42:{" + redkit::detail::session_bucket("42") + "}:sessions";
    EXPECT_EQ(redis.command<long long>("ZCARD", index), 1);  // the dead one was pruned
}

TEST_F(Sessions, AbsoluteTimeoutHoldsWhileTouchedContinuously) {
    auto sessions = make(300ms, 900ms);
    const std::string token = sessions.create("42", {});
    const auto first = sessions.get(token);
    ASSERT_TRUE(first);
    const long long absolute = ms(first->absolute_expiry);
    EXPECT_EQ(absolute - ms(first->created), 900);

    long long last_alive = 0;
    int alive = 0;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the session outlived its absolute timeout";
        const auto s = sessions.get(token);
        if (!s) break;
        ++alive;
        last_alive = ms(s->last_seen);
        EXPECT_EQ(ms(s->absolute_expiry), absolute);  // nothing extends it
        EXPECT_LE(ms(s->expires), absolute);
        const long long pttl = redis.command<long long>("PTTL", session_key(token));
        EXPECT_LE(pttl, absolute - last_alive);  // the Redis TTL never reaches past the deadline
        std::this_thread::sleep_for(20ms);
    }
    const long long died = server_ms();
    EXPECT_GE(died, absolute);                        // not before the absolute deadline...
    EXPECT_LT(last_alive, absolute);                  // ...never alive after it...
    EXPECT_GE(last_alive - ms(first->created), 600);  // ...and kept alive well past the idle timeout
    EXPECT_GT(alive, 10);
    EXPECT_FALSE(sessions.touch(token));
    EXPECT_TRUE(sessions.list("42").empty());
}

TEST_F(Sessions, TimeoutsAreRecheckedWhenTheTtlIsLost) {
    auto sessions = make(100ms, 1min);
    const std::string idle = sessions.create("42", {});
    const std::string capped = sessions.create("42", {});
    redis.command<void>("PERSIST", session_key(idle));  // as if the TTL had been lost
    redis.command<void>("PERSIST", session_key(capped));
    redis.command<void>("HSET", session_key(capped), "absolute", server_ms() - 1);
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(sessions.get(idle), std::nullopt);
    EXPECT_EQ(sessions.get(capped), std::nullopt);
    EXPECT_FALSE(redis.command<bool>("EXISTS", session_key(idle)));  // deleted on the spot
    EXPECT_FALSE(redis.command<bool>("EXISTS", session_key(capped)));
    EXPECT_TRUE(reported().empty());
}

TEST_F(Sessions, RevokeAllRemovesEveryOneOfTheUsersSessionsAndNoOther) {
    auto sessions = make();
    const std::string mate = bucket_mate("alice");  // same hash tag, another user
    std::vector<std::string> alice, others;
    for (int i = 0; i < 3; ++i) alice.push_back(sessions.create("alice", {{"n", std::to_string(i)}}));
    others.push_back(sessions.create("bob", {}));
    others.push_back(sessions.create("bob", {}));
    others.push_back(sessions.create(mate, {}));
    others.push_back(sessions.create("alice:x", {}));
    ASSERT_EQ(sessions.list("alice").size(), 3u);

    EXPECT_EQ(sessions.revoke_all("alice"), 3u);
    for (const auto& t : alice) {
        EXPECT_EQ(sessions.get(t), std::nullopt);
        EXPECT_FALSE(redis.command<bool>("EXISTS", session_key(t)));
    }
    for (const auto& t : others) EXPECT_TRUE(sessions.get(t));
    EXPECT_TRUE(sessions.list("alice").empty());
    EXPECT_EQ(sessions.list("bob").size(), 2u);
    EXPECT_EQ(sessions.list(mate).size(), 1u);
    EXPECT_EQ(sessions.list("alice:x").size(), 1u);
    EXPECT_EQ(sessions.revoke_all("alice"), 0u);
    EXPECT_EQ(sessions.revoke_all("nobody"), 0u);
}

TEST_F(Sessions, RevokeEndsOneSession) {
    auto sessions = make();
    const std::string a = sessions.create("42", {});
    const std::string b = sessions.create("42", {});
    EXPECT_TRUE(sessions.revoke(a));
    EXPECT_EQ(sessions.get(a), std::nullopt);
    EXPECT_TRUE(sessions.get(b));
    EXPECT_FALSE(sessions.revoke(a));
    EXPECT_EQ(sessions.list("42").size(), 1u);
}

TEST_F(Sessions, ListShowsDevicesWithoutTokensAndRevokesById) {
    auto sessions = make();
    const std::string laptop = sessions.create("42", {{"device", "laptop"}});
    std::this_thread::sleep_for(5ms);
    const std::string phone = sessions.create("42", {{"device", "phone"}});
    (void)sessions.create("7", {{"device", "other user"}});

    auto devices = sessions.list("42");
    ASSERT_EQ(devices.size(), 2u);
    EXPECT_EQ(devices[0].data.at("device"), "phone");  // most recently seen first
    EXPECT_EQ(devices[1].data.at("device"), "laptop");
    for (const auto& d : devices) {
        EXPECT_EQ(d.user_id, "42");
        EXPECT_EQ(d.id.find(laptop), std::string::npos);
        EXPECT_EQ(d.id.find(phone), std::string::npos);
    }
    std::this_thread::sleep_for(5ms);
    ASSERT_TRUE(sessions.get(laptop));
    EXPECT_EQ(sessions.list("42")[0].data.at("device"), "laptop");  // get moved it to the top

    const std::string phone_id = sessions.peek(phone)->id;
    EXPECT_FALSE(sessions.revoke_by_id("7", phone_id));  // another user's id does nothing
    EXPECT_FALSE(sessions.revoke_by_id("42", "no-such-id"));
    EXPECT_TRUE(sessions.revoke_by_id("42", phone_id));
    EXPECT_EQ(sessions.get(phone), std::nullopt);
    EXPECT_TRUE(sessions.get(laptop));
    EXPECT_EQ(sessions.list("42").size(), 1u);
}

TEST_F(Sessions, RotateKillsTheOldTokenAtOnce) {
    auto sessions = make(10min, 1h);
    const std::string old_token = sessions.create("42", {{"role", "guest"}});
    const auto before = sessions.get(old_token);
    ASSERT_TRUE(before);

    const auto fresh = sessions.rotate(old_token);
    ASSERT_TRUE(fresh);
    EXPECT_NE(*fresh, old_token);
    EXPECT_EQ(fresh->size(), 44u);
    EXPECT_EQ(sessions.get(old_token), std::nullopt);
    EXPECT_FALSE(redis.command<bool>("EXISTS", session_key(old_token)));
    EXPECT_EQ(sessions.rotate(old_token), std::nullopt);

    const auto after = sessions.get(*fresh);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->id, before->id);
    EXPECT_EQ(after->data, before->data);
    EXPECT_EQ(after->created, before->created);
    EXPECT_EQ(after->absolute_expiry, before->absolute_expiry);  // rotation extends nothing
    EXPECT_GT(redis.command<long long>("PTTL", session_key(*fresh)), 590000);

    const auto listed = sessions.list("42");
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].id, before->id);
    EXPECT_EQ(sessions.revoke_all("42"), 1u);  // the index follows the new token
    EXPECT_EQ(sessions.get(*fresh), std::nullopt);
}

TEST_F(Sessions, NoKeyOrStoredValueHoldsARawToken) {
    auto sessions = make(10min, 1h, redkit::key_space("app"));
    std::vector<std::string> tokens;
    for (int i = 0; i < 4; ++i) tokens.push_back(sessions.create(i % 2 ? "alice" : "bob", {{"i", std::to_string(i)}}));
    const auto rotated = sessions.rotate(tokens[0]);
    ASSERT_TRUE(rotated);
    tokens.push_back(*rotated);
    (void)sessions.modify(tokens[1], [](data_map& d) { d["cart"] = "3 items"; });
    (void)sessions.get(tokens[2]);

    std::string everything;  // every key name and every stored byte
    int hashes_found = 0;
    for (const std::string& key : all_keys()) {
        everything += key + '\n';
        const std::string type = redis.command<std::string>("TYPE", key);
        std::vector<std::string> parts;
        if (type == "hash") {
            for (const auto& [f, v] : redis.command<std::map<std::string, std::string>>("HGETALL", key))
                parts.push_back(f + '=' + v);
        } else if (type == "zset") {
            parts = redis.command<std::vector<std::string>>("ZRANGE", key, 0, -1, "WITHSCORES");
        } else {
            parts.push_back(redis.command<std::string>("DUMP", key));
        }
        for (const auto& p : parts) everything += p + '\n';
    }
    for (const auto& t : tokens) {
        EXPECT_EQ(everything.find(t), std::string::npos);
        EXPECT_EQ(everything.find(t.substr(2)), std::string::npos);  // nor its random part
        if (everything.find(redkit::detail::sha256_hex(t)) != std::string::npos) ++hashes_found;
    }
    EXPECT_EQ(hashes_found, 4);  // positive control: the live sessions are there, by hash
}

TEST_F(Sessions, TenThousandTokensAreDistinctAndCarryAtLeast128Bits) {
    auto sessions = make(1min, 1min);
    constexpr int count = 10000;
    std::set<std::string> seen;
    std::array<int, 252> ones{};  // per bit of the random part
    const std::string bucket = redkit::detail::session_bucket("42");
    for (int i = 0; i < count; ++i) {
        const std::string t = sessions.create("42", {});
        ASSERT_EQ(t.size(), 44u);
        ASSERT_EQ(t.substr(0, 2), bucket);
        const auto raw = redkit::detail::base64url_decode(t);
        ASSERT_TRUE(raw);
        ASSERT_GE(raw->size() * 8, 128u);
        EXPECT_EQ(raw->size(), 33u);
        for (std::size_t c = 2; c < t.size(); ++c) {
            const int v = redkit::detail::base64url_value(t[c]);
            for (int bit = 0; bit < 6; ++bit) ones[(c - 2) * 6 + static_cast<std::size_t>(bit)] += (v >> bit) & 1;
        }
        seen.insert(t);
    }
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(count));
    // Every random bit is a fair coin: 10000 draws, sd 50; 6 sd leaves no room for a stuck bit.
    for (std::size_t b = 0; b < ones.size(); ++b) {
        EXPECT_GT(ones[b], 4700) << "bit " << b;
        EXPECT_LT(ones[b], 5300) << "bit " << b;
    }
    EXPECT_EQ(redis.command<long long>("DBSIZE"), count + 1);
}

TEST_F(Sessions, StaleVersionUpdateIsRejectedAndWritesNothing) {
    auto sessions = make();
    const std::string token = sessions.create("42", {{"cart", "empty"}});
    const auto s = sessions.get(token);
    ASSERT_TRUE(s);

    const auto first = sessions.update(token, {{"cart", "1 book"}}, s->version);
    EXPECT_EQ(first.status, redkit::update_status::updated);
    ASSERT_TRUE(first.current);
    EXPECT_EQ(first.current->version, 2u);
    EXPECT_EQ(first.current->data.at("cart"), "1 book");

    const auto stale = sessions.update(token, {{"cart", "1 lamp"}}, s->version);
    EXPECT_EQ(stale.status, redkit::update_status::conflict);
    EXPECT_FALSE(stale);
    ASSERT_TRUE(stale.current);
    EXPECT_EQ(stale.current->version, 2u);
    EXPECT_EQ(stale.current->data.at("cart"), "1 book");  // the current data, to merge with
    EXPECT_EQ(sessions.get(token)->data.at("cart"), "1 book");

    EXPECT_EQ(sessions.update("not-a-token", {}, 1).status, redkit::update_status::not_found);
    EXPECT_THROW((void)sessions.modify(
                     token, [](data_map&) {}, 0),
                 std::invalid_argument);
}

TEST_F(Sessions, SixteenThreadsModifyingOneSessionLoseNoWrite) {
    redkit::session_store<tally> sessions(redis, redkit::session_options{});
    const std::string token = sessions.create("42", tally{});
    constexpr int threads = 16;
    constexpr int per_thread = 25;

    std::atomic<int> applied{0};  // fn runs: one per attempt
    std::vector<std::future<std::pair<int, int>>> done;
    for (int t = 0; t < threads; ++t) {
        done.push_back(std::async(std::launch::async, [&sessions, &token, &applied, t] {
            int updated = 0, conflicts = 0;
            const std::string me = "t" + std::to_string(t);
            while (updated < per_thread) {
                const auto r = sessions.modify(
                    token,
                    [&](tally& d) {
                        ++applied;
                        ++d.total;
                        ++d.by_thread[me];
                    },
                    4);
                if (r.status == redkit::update_status::updated) {
                    ++updated;
                } else if (r.status == redkit::update_status::conflict) {
                    ++conflicts;  // documented: reported, nothing written
                } else {
                    throw std::runtime_error("session vanished");
                }
            }
            return std::make_pair(updated, conflicts);
        }));
    }
    int total_conflicts = 0;
    for (auto& f : done) {
        ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
        const auto [updated, conflicts] = f.get();
        EXPECT_EQ(updated, per_thread);
        total_conflicts += conflicts;
    }
    const auto s = sessions.get(token);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->data.total, threads * per_thread);  // every successful update landed
    EXPECT_EQ(s->version, static_cast<std::uint64_t>(threads * per_thread + 1));
    for (int t = 0; t < threads; ++t) EXPECT_EQ(s->data.by_thread.at("t" + std::to_string(t)), per_thread);
    // The writers did collide (so the test saw compare-and-set at work), and a collision cost a
    // retry, never an increment.
    EXPECT_GT(applied.load(), threads * per_thread);
    std::printf("16 writers: %d successful updates, %d fn runs, %d modify calls gave up after 4 attempts\n",
                threads * per_thread, applied.load(), total_conflicts);
}

TEST_F(Sessions, CorruptStoredSessionReadsAsNulloptPlusAReport) {
    auto sessions = make();
    std::string foreign = "other";  // a user id of another bucket than "42"
    while (redkit::detail::session_bucket(foreign) == redkit::detail::session_bucket("42")) foreign += "x";
    enum class kind {
        data,       // only the data is bad: update() replaces it
        structure,  // the scripts refuse the key: nothing reads, slides, rotates or updates it
        index,      // the session is fine, its index is not: nothing that writes the index works
        recheck     // caught by the re-checks in C++
    };
    struct damage {
        const char* what;
        kind type;
        std::function<void(const std::string&)> apply;
    };
    const std::vector<damage> cases = {
        {"data is not JSON", kind::data,
         [&](const std::string& k) { redis.command<void>("HSET", k, "data", "{not json"); }},
        {"data of another schema", kind::data,
         [&](const std::string& k) { redis.command<void>("HSET", k, "data", "42"); }},
        {"not a hash", kind::structure,
         [&](const std::string& k) {
             redis.command<void>("DEL", k);
             redis.command<void>("SET", k, "x", "PX", 60000);
         }},
        {"non-numeric time", kind::structure,
         [&](const std::string& k) { redis.command<void>("HSET", k, "seen", "yesterday"); }},
        {"missing field", kind::structure, [&](const std::string& k) { redis.command<void>("HDEL", k, "version"); }},
        {"index moved to another slot", kind::structure,
         [&](const std::string& k) { redis.command<void>("HSET", k, "index", "user:9:{zz}:sessions"); }},
        {"index is not a sorted set", kind::index,
         [&](const std::string&) {
             const std::string index = "user:42:{" + redkit::detail::session_bucket("42") + "}:sessions";
             redis.command<void>("DEL", index);
             redis.command<void>("SET", index, "x");
         }},
        {"version 0", kind::recheck, [&](const std::string& k) { redis.command<void>("HSET", k, "version", 0); }},
        {"user of another bucket", kind::recheck,
         [&](const std::string& k) { redis.command<void>("HSET", k, "user", foreign); }},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        redis.command<void>("FLUSHALL");
        clear_reported();
        const std::string token = sessions.create("42", {{"k", "v"}});
        const std::string key = session_key(token);
        c.apply(key);

        EXPECT_EQ(sessions.get(token), std::nullopt);
        const auto errs = reported();
        ASSERT_EQ(errs.size(), 1u);
        EXPECT_EQ(errs[0].first, redkit::errc::decode_error);
        EXPECT_NE(errs[0].second.find(key), std::string::npos) << errs[0].second;
        EXPECT_EQ(errs[0].second.find(token), std::string::npos) << "a report must never carry the token";
        EXPECT_EQ(sessions.peek(token).has_value(), c.type == kind::index);  // peek reads the session alone
        EXPECT_TRUE(redis.command<bool>("EXISTS", key)) << "reading must not destroy the evidence";

        switch (c.type) {
            case kind::data: {
                const auto fixed = sessions.update(token, {{"k", "fixed"}}, 1);
                EXPECT_EQ(fixed.status, redkit::update_status::updated);
                ASSERT_TRUE(sessions.get(token));
                EXPECT_EQ(sessions.get(token)->data.at("k"), "fixed");
                break;
            }
            case kind::structure:
            case kind::index:
                EXPECT_FALSE(sessions.touch(token));
                EXPECT_EQ(sessions.rotate(token), std::nullopt);
                EXPECT_FALSE(sessions.update(token, {}, 1));
                EXPECT_FALSE(redis.command<bool>("EXISTS", "user:9:{zz}:sessions"));  // nothing written elsewhere
                EXPECT_TRUE(sessions.revoke(token));                                  // logout still removes it
                EXPECT_FALSE(redis.command<bool>("EXISTS", key));
                break;
            case kind::recheck: EXPECT_FALSE(sessions.touch(token)); break;
        }
    }

    // list skips a corrupt session and reports it; revoke and revoke_all still remove it
    redis.command<void>("FLUSHALL");
    clear_reported();
    const std::string good = sessions.create("42", {});
    const std::string bad = sessions.create("42", {});
    redis.command<void>("HSET", session_key(bad), "data", "[");
    const auto listed = sessions.list("42");
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].id, sessions.peek(good)->id);
    EXPECT_EQ(reported().size(), 1u);
    EXPECT_EQ(sessions.revoke_all("42"), 2u);
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 0);
    EXPECT_EQ(sessions.get(bad), std::nullopt);

    // A user index of another type: the calls that start from it fail loudly, writing nothing.
    redis.command<void>("SET", "user:42:{" + redkit::detail::session_bucket("42") + "}:sessions", "x");
    EXPECT_THROW((void)sessions.create("42", {}), redkit::server_error);
    EXPECT_THROW((void)sessions.revoke_all("42"), redkit::server_error);
    EXPECT_THROW((void)sessions.list("42"), redkit::server_error);
    EXPECT_EQ(redis.command<long long>("DBSIZE"), 1);
}

TEST_F(Sessions, HostileTokensAreSimplyNoSession) {
    auto sessions = make();
    const std::string real = sessions.create("42", {{"k", "v"}});
    std::string never_issued = real;
    never_issued[10] = never_issued[10] == 'A' ? 'B' : 'A';  // well-formed, not issued
    std::string retagged = real;
    retagged[0] = retagged[0] == 'A' ? 'B' : 'A';  // bucket edited: another slot, no such key

    const std::vector<std::string> malformed = {
        "",
        "a",
        real.substr(0, 43),
        real + "A",
        std::string(100000, 'A'),
        std::string(44, '{'),
        "session:{x}:" + std::string(32, 'a'),
        std::string(43, 'A') + "*",
        std::string(43, 'A') + ":",
        std::string(43, 'A') + std::string(1, '\0'),
        std::string(43, 'A') + "=",
        std::string(43, 'A') + "+",
        std::string(43, 'A') + "/",
        std::string(42, 'A') + "\xc3\xa9",
        real.substr(0, 22) + " " + real.substr(23),
        "\r\n*1\r\n$4\r\nPING\r\n" + std::string(26, 'A'),
    };
    const long long before = calls("evalsha") + calls("eval");
    const long long keys_before = redis.command<long long>("DBSIZE");
    for (const auto& t : malformed) {
        EXPECT_EQ(sessions.get(t), std::nullopt);
        EXPECT_EQ(sessions.peek(t), std::nullopt);
        EXPECT_FALSE(sessions.touch(t));
        EXPECT_FALSE(sessions.revoke(t));
        EXPECT_EQ(sessions.rotate(t), std::nullopt);
        EXPECT_EQ(sessions.update(t, {}, 1).status, redkit::update_status::not_found);
        EXPECT_EQ(sessions.modify(t, [](data_map&) {}).status, redkit::update_status::not_found);
    }
    EXPECT_EQ(calls("evalsha") + calls("eval"), before) << "a malformed token reached Redis";

    for (const auto& t : {never_issued, retagged}) {
        EXPECT_EQ(sessions.get(t), std::nullopt);
        EXPECT_FALSE(sessions.touch(t));
        EXPECT_FALSE(sessions.revoke(t));
        EXPECT_EQ(sessions.rotate(t), std::nullopt);
        EXPECT_EQ(sessions.update(t, {}, 1).status, redkit::update_status::not_found);
    }
    EXPECT_EQ(redis.command<long long>("DBSIZE"), keys_before);  // nothing created
    EXPECT_TRUE(sessions.get(real));                             // the real one untouched
    EXPECT_TRUE(reported().empty());
}

TEST_F(Sessions, UserIdsAreEscapedInKeys) {
    auto sessions = make();
    const std::string hostile = "42:admin{x}*";
    const std::string token = sessions.create(hostile, {});
    const std::string other = sessions.create("42", {});
    const std::string bucket = redkit::detail::session_bucket(hostile);
    EXPECT_TRUE(redis.command<bool>("EXISTS", "user:42%3Aadmin%7Bx%7D*:{" + bucket + "}:sessions"));
    for (const auto& key : all_keys()) EXPECT_EQ(key.find("42:admin"), std::string::npos) << key;

    const auto listed = sessions.list(hostile);
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].user_id, hostile);
    EXPECT_EQ(sessions.get(token)->user_id, hostile);
    EXPECT_EQ(sessions.revoke_all("42"), 1u);
    EXPECT_TRUE(sessions.get(token));
    EXPECT_EQ(sessions.get(other), std::nullopt);
    EXPECT_THROW((void)sessions.create("", {}), std::invalid_argument);
    EXPECT_THROW((void)sessions.list(""), std::invalid_argument);
}

TEST_F(Sessions, BadOptionsThrowNamingTheField) {
    const auto message = [&](std::chrono::milliseconds idle, std::chrono::milliseconds absolute) -> std::string {
        try {
            store s(redis, redkit::session_options{idle, absolute, {}});
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "";
    };
    EXPECT_NE(message(0ms, 1s).find("idle_timeout"), std::string::npos);
    EXPECT_NE(message(1s, -1ms).find("absolute_timeout"), std::string::npos);
    EXPECT_NE(message(2s, 1s).find("idle_timeout must not exceed absolute_timeout"), std::string::npos);
    EXPECT_EQ(message(1s, 1s), "");
}

TEST_F(Sessions, EveryOperationRunsOnASingleNodeCluster) {
    // One node serving all 16384 slots runs every operation with cluster checks on: a script
    // whose declared keys span slots fails with CROSSSLOT. Redis 7.0 does not check the keys a
    // script reaches without declaring them on a node that owns every slot, so the slots of those
    // (a user's sessions and index, one hash tag) are compared with CLUSTER KEYSLOT below.
    // an explicit bus port: the default (port + 10000) does not exist for ports above 55535
    redkit_test::redis_server node({"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port",
                                    std::to_string(redkit_test::free_loopback_port())});
    if (node.external()) GTEST_SKIP() << "needs a private server";
    redkit::client c(node.url());
    c.command<void>("CLUSTER", "ADDSLOTSRANGE", 0, 16383);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (c.command<std::string>("CLUSTER", "INFO").find("cluster_state:ok") == std::string::npos) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "cluster did not become ok";
        std::this_thread::sleep_for(20ms);
    }
    // positive control: this node does reject a script declaring keys of two slots
    EXPECT_THROW(c.command<long long>("EVAL", "return 1", 2, "a{mine}", "b{other}"), redkit::server_error);

    store sessions(c, redkit::session_options{10min, 1h, redkit::key_space("app")});
    const std::string a = sessions.create("alice", {{"d", "laptop"}});
    const std::string b = sessions.create("alice", {{"d", "phone"}});
    const std::string bob = sessions.create("bob", {});
    ASSERT_TRUE(sessions.get(a));
    EXPECT_TRUE(sessions.touch(a));
    EXPECT_TRUE(sessions.modify(a, [](data_map& d) { d["d"] = "laptop 2"; }));
    const auto a2 = sessions.rotate(a);
    ASSERT_TRUE(a2);
    EXPECT_EQ(sessions.list("alice").size(), 2u);
    EXPECT_TRUE(sessions.revoke_by_id("alice", sessions.peek(b)->id));
    EXPECT_TRUE(sessions.revoke(*a2));
    const std::string c3 = sessions.create("alice", {});
    EXPECT_EQ(sessions.revoke_all("alice"), 1u);
    EXPECT_EQ(sessions.get(c3), std::nullopt);
    EXPECT_TRUE(sessions.get(bob));

    // the session key and the index key of a user share a slot
    const std::string token = sessions.create("carol", {});
    const std::string bucket = redkit::detail::session_bucket("carol");
    EXPECT_EQ(c.command<long long>("CLUSTER", "KEYSLOT", session_key(token, "app:")),
              c.command<long long>("CLUSTER", "KEYSLOT", "app:user:carol:{" + bucket + "}:sessions"));
}
