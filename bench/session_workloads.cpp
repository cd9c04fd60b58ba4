// SPDX-License-Identifier: MIT
// Session workload: session_get, one session_store::get per operation on one connection (the
// token is checked and hashed, one EVALSHA slides the idle timeout and returns the session, the
// JSON data is decoded into a string map), next to a hand-written raw-hiredis baseline that does
// the same work: SHA-256 of the token (the same function), the same key, EVALSHA of the same
// script text with the same arguments, the ten reply fields read and the same nlohmann decode.
#include <redkit/detail/hash.hpp>
#include <redkit/session.hpp>
#include <redkit/session/detail/lua.hpp>

#include "bench.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace redkit_bench {
namespace {

using session_data = std::map<std::string, std::string>;

struct session_state {
    std::unique_ptr<redkit::client> one;  // a pool of one connection
    std::unique_ptr<redkit::session_store<>> store;
    redisContext* raw = nullptr;
    std::string raw_sha;
    std::string token;
    ~session_state() {
        if (raw) redisFree(raw);
    }
};

struct raw_session {
    std::string user_id, id;
    session_data data;
    long long version = 0, created = 0, seen = 0, expires = 0, absolute = 0;
};

long long to_ll(const redisReply* e) {
    long long v = 0;
    const auto r = std::from_chars(e->str, e->str + e->len, v);
    if (r.ec != std::errc{}) throw std::runtime_error("raw session: bad number");
    return v;
}

// The baseline: what a careful engineer writes with hiredis alone for the same store layout.
bool raw_get(const session_state& st, const std::string& token, raw_session& out) {
    if (token.size() != 44) return false;
    const std::string hash = redkit::detail::sha256_hex(token);
    const std::string bucket = token.substr(0, 2);
    const std::string key = "bench:session:{" + bucket + "}:" + hash;
    const std::string suffix = ":{" + bucket + "}:sessions";
    const char* argv[] = {"EVALSHA",     st.raw_sha.c_str(), "1",          key.c_str(),
                          "bench:user:", suffix.c_str(),     hash.c_str(), "get"};
    const size_t lens[] = {7, st.raw_sha.size(), 1, key.size(), 11, suffix.size(), hash.size(), 3};
    auto* r = static_cast<redisReply*>(redisCommandArgv(st.raw, 8, argv, lens));
    if (!r) throw std::runtime_error("raw EVALSHA failed");
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return false;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 10 ||
        std::string(r->element[0]->str, r->element[0]->len) != "ok") {
        freeReplyObject(r);
        throw std::runtime_error("raw EVALSHA: unexpected reply");
    }
    out.user_id.assign(r->element[2]->str, r->element[2]->len);
    out.id.assign(r->element[3]->str, r->element[3]->len);
    out.data = nlohmann::json::parse(r->element[4]->str, r->element[4]->str + r->element[4]->len).get<session_data>();
    out.version = to_ll(r->element[5]);
    out.created = to_ll(r->element[6]);
    out.seen = to_ll(r->element[7]);
    out.expires = to_ll(r->element[8]);
    out.absolute = to_ll(r->element[9]);
    freeReplyObject(r);
    return true;
}

void add_session(context& ctx, std::vector<workload>& out) {
    auto st = std::make_shared<session_state>();
    auto one = ctx.base;
    one.pool_size = 1;
    st->one = std::make_unique<redkit::client>(one);
    st->store = std::make_unique<redkit::session_store<>>(
        *st->one, redkit::session_options{std::chrono::minutes(30), std::chrono::hours(8), redkit::key_space("bench")});
    st->raw = raw_connect(ctx.base);

    // A typical session: who, where from, what for (about 300 bytes of JSON).
    const session_data data = {
        {"device", "Firefox 128 on Linux x86_64"},
        {"ip", "203.0.113.7"},
        {"locale", "en-GB"},
        {"role", "customer"},
        {"csrf", "q3VhZ9tB0m2f5XkR1cLw8yPnA4sJ6dHe"},
        {"cart_id", "cart_8f14e45fceea167a5a36dedd4bea2543"},
        {"mfa", "totp"},
        {"login_at", "2024-05-01T09:30:00Z"},
    };
    st->token = st->store->create("user-1042", data);

    redisReply* r = raw_command(
        st->raw,
        {"SCRIPT", "LOAD",
         redkit::detail::static_script<redkit::detail::session_lua::prelude, redkit::detail::session_lua::read>()
             .source()});
    const bool loaded = r->type == REDIS_REPLY_STRING;
    if (loaded) st->raw_sha.assign(r->str, r->len);
    freeReplyObject(r);
    if (!loaded) throw std::runtime_error("raw SCRIPT LOAD failed");

    out.push_back({"session_get",
                   3000 * ctx.scale,
                   {{"hiredis",
                     [st](long long n) {
                         raw_session s;
                         for (long long i = 0; i < n; ++i) {
                             if (!raw_get(*st, st->token, s)) throw std::runtime_error("raw session vanished");
                             sink = sink + s.data.size() + static_cast<std::size_t>(s.version);
                         }
                     }},
                    {"redkit", [st](long long n) {
                         for (long long i = 0; i < n; ++i) {
                             const auto s = st->store->get(st->token);
                             if (!s) throw std::runtime_error("session vanished");
                             sink = sink + s->data.size() + static_cast<std::size_t>(s->version);
                         }
                     }}}});
}

const registrar reg(30, "session", &add_session);

}  // namespace
}  // namespace redkit_bench
