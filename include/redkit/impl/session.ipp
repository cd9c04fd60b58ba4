// SPDX-License-Identifier: MIT
// redkit::session_store: out-of-line definitions of what does not depend on the data type (session.hpp).
#pragma once

#include <redkit/detail/epoch.hpp>
#include <redkit/detail/hash.hpp>
#include <redkit/detail/random.hpp>
#include <redkit/script.hpp>
#include <redkit/session.hpp>
#include <redkit/session/detail/lua.hpp>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

inline constexpr std::size_t session_token_length = 44;

// The session script whose body is Body, after the shared prelude.
template <const std::string_view& Body>
const script& session_script() {
    return static_script<session_lua::prelude, Body>();
}

// Every read re-checks that the stored user hashes to the token's bucket, so the same user's id
// is hashed again and again by the thread serving its requests: the last answer is kept per
// thread (a cache of a pure function; a different user id costs one SHA-256 as before).
REDKIT_DECL std::string session_bucket(std::string_view user_id) {
    thread_local std::string last_user;
    thread_local char last_bucket[2] = {0, 0};
    if (last_bucket[0] != 0 && last_user == user_id) return std::string(last_bucket, 2);
    const auto d = sha256_digest(user_id);
    std::string b(2, 'A');
    b[0] = base64url_alphabet[d[0] >> 2];
    b[1] = base64url_alphabet[((d[0] & 0x3) << 4) | (d[1] >> 4)];
    last_user.assign(user_id.data(), user_id.size());
    last_bucket[0] = b[0];
    last_bucket[1] = b[1];
    return b;
}

/// A new token: the bucket's two characters, then 42 characters (252 bits) from the CSPRNG.
inline std::string make_session_token(std::string_view bucket) {
    unsigned char r[32];
    random_bytes(r, sizeof r);
    std::string t(bucket);
    t.reserve(session_token_length);
    std::uint32_t acc = 0;
    int bits = 0;
    std::size_t next = 0;
    while (t.size() < session_token_length) {
        if (bits < 6) {
            acc = (acc << 8) | r[next++];
            bits += 8;
        }
        bits -= 6;
        t += base64url_alphabet[(acc >> bits) & 0x3F];
    }
    return t;
}

inline bool parse_ms(std::string_view s, long long& out) noexcept {
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && r.ec == std::errc{} && r.ptr == s.data() + s.size();
}

REDKIT_DECL session_engine::session_engine(client redis, session_options options)
    : redis_(std::move(redis)), options_(std::move(options)) {
    if (options_.idle_timeout.count() <= 0) {
        throw std::invalid_argument("redkit: session_options.idle_timeout must be positive");
    }
    if (options_.absolute_timeout.count() <= 0) {
        throw std::invalid_argument("redkit: session_options.absolute_timeout must be positive");
    }
    if (options_.idle_timeout > options_.absolute_timeout) {
        throw std::invalid_argument("redkit: session_options.idle_timeout must not exceed absolute_timeout");
    }
    index_prefix_ = options_.keys.key("user") + ":";
    session_key_prefix_ = options_.keys.key("session") + ":";
}

REDKIT_DECL void session_engine::require_user(std::string_view user_id, const char* method) {
    if (user_id.empty())
        throw std::invalid_argument(std::string("redkit: session_store::") + method + ": user_id is empty");
}

REDKIT_DECL void session_engine::corrupt(const std::string& key, std::string_view why) const {
    redis_.report(
        error(errc::decode_error, "redkit: session " + key + ": corrupt stored session: " + std::string(why)));
}

REDKIT_DECL auto session_engine::parse(std::string_view token) const -> std::optional<token_ref> {
    // Checked before anything is hashed or sent: hostile input never builds a key.
    if (token.size() != session_token_length) return std::nullopt;
    for (char c : token) {
        if (base64url_value(c) < 0) return std::nullopt;
    }
    token_ref t;
    t.bucket = std::string(token.substr(0, 2));
    t.hash = sha256_hex(token);
    t.key = session_key(t.bucket, t.hash);
    return t;
}

// r[at .. at+7] = user, id, data, version, created, seen, expires, absolute.
REDKIT_DECL std::optional<stored_session> session_engine::check(std::vector<std::string>& r, std::size_t at,
                                                                long long now, const std::string& key,
                                                                std::string_view bucket) const {
    if (r.size() < at + 8) {
        corrupt(key, "short reply");
        return std::nullopt;
    }
    long long version = 0, created = 0, seen = 0, expires = 0, absolute = 0;
    if (!parse_ms(r[at + 3], version) || !parse_ms(r[at + 4], created) || !parse_ms(r[at + 5], seen) ||
        !parse_ms(r[at + 6], expires) || !parse_ms(r[at + 7], absolute)) {
        corrupt(key, "non-numeric version or time");
        return std::nullopt;
    }
    // The scripts enforce the timeouts; these re-checks catch a session edited behind our back.
    // (created <= seen <= now is not required: a server clock stepped back breaks it harmlessly.)
    if (version < 1 || now >= expires || expires > absolute) {
        corrupt(key, "inconsistent version or times");
        return std::nullopt;
    }
    if (r[at].empty() || r[at + 1].empty()) {
        corrupt(key, "empty user or session id");
        return std::nullopt;
    }
    if (!bucket.empty() && session_bucket(r[at]) != bucket) {
        corrupt(key, "user does not belong to the token's bucket");
        return std::nullopt;
    }
    stored_session s;
    s.user_id = std::move(r[at]);
    s.id = std::move(r[at + 1]);
    s.data = std::move(r[at + 2]);
    s.version = static_cast<std::uint64_t>(version);
    s.created = from_epoch_ms(created);
    s.last_seen = from_epoch_ms(seen);
    s.expires = from_epoch_ms(expires);
    s.absolute_expiry = from_epoch_ms(absolute);
    s.key = key;
    return s;
}

REDKIT_DECL std::string session_engine::fresh_token(std::string_view user_id, std::string& hash, std::string& id,
                                                    std::string& key, std::string& index) const {
    const std::string bucket = session_bucket(user_id);
    index = index_key(user_id, bucket);
    unsigned char id_bytes[16];
    random_bytes(id_bytes, sizeof id_bytes);
    id = base64url_encode(id_bytes, sizeof id_bytes);
    std::string token = make_session_token(bucket);
    hash = sha256_hex(token);
    key = session_key(bucket, hash);
    return token;
}

REDKIT_DECL std::string session_engine::create(std::string_view user_id, const std::string& json) const {
    // A collision of 252 random bits does not happen; the loop only guards a broken CSPRNG from
    // silently joining two logins into one session.
    for (int attempt = 0; attempt < 3; ++attempt) {
        std::string hash, id, key, index;
        std::string token = fresh_token(user_id, hash, id, key, index);
        const auto r = redis_.eval<std::vector<std::string>>(session_script<session_lua::create>(), {key, index}, hash,
                                                             user_id, id, json, options_.idle_timeout.count(),
                                                             options_.absolute_timeout.count());
        if (!r.empty() && r[0] == "ok") return token;
    }
    throw error(errc::invalid_state,
                "redkit: session_store::create: fresh tokens keep colliding; the OS CSPRNG is broken");
}

REDKIT_DECL future<std::string> session_engine::async_create(std::string_view user_id, const std::string& json) const {
    std::string hash, id, key, index;
    std::string token = fresh_token(user_id, hash, id, key, index);
    auto sent = client_access::submit_lasting_eval<std::vector<std::string>>(
        redis_, session_script<session_lua::create>(), {std::string_view(key), std::string_view(index)}, hash, user_id,
        id, json, options_.idle_timeout.count(), options_.absolute_timeout.count());
    return chain<std::string>(
        std::move(sent),
        [token = std::move(token)](future<std::vector<std::string>> f) {
            const auto r = f.get();
            // (one attempt: the blocking create() retries a collision of 252 random bits, which
            // only a broken CSPRNG makes)
            if (r.empty() || r[0] != "ok") {
                throw error(errc::invalid_state,
                            "redkit: session_store::async_create: a fresh token collided; the OS CSPRNG is broken");
            }
            return token;
        },
        redis_.options().on_error);
}

REDKIT_DECL std::optional<stored_session> session_engine::read_reply(std::optional<std::vector<std::string>> r,
                                                                     const token_ref& t) const {
    if (!r) return std::nullopt;
    long long now = 0;
    if (r->size() < 2 || (*r)[0] != "ok" || !parse_ms((*r)[1], now)) {
        corrupt(t.key, r->size() >= 2 && (*r)[0] == "!" ? std::string_view((*r)[1]) : "unexpected reply");
        return std::nullopt;
    }
    return check(*r, 2, now, t.key, t.bucket);
}

REDKIT_DECL std::optional<stored_session> session_engine::read(std::string_view token, const char* mode) const {
    const auto t = parse(token);
    if (!t) return std::nullopt;
    // Reading (and sliding the idle timeout) converges when repeated: safe to retry.
    return read_reply(
        redis_.eval<std::optional<std::vector<std::string>>>(idempotent, session_script<session_lua::read>(), {t->key},
                                                             index_prefix_, index_suffix(t->bucket), t->hash, mode),
        *t);
}

REDKIT_DECL future<std::optional<stored_session>> session_engine::async_read(std::string_view token,
                                                                             const char* mode) const {
    auto t = parse(token);
    if (!t) {
        return ready<std::optional<stored_session>>(std::nullopt);
    }
    auto sent = client_access::submit_lasting_eval<std::optional<std::vector<std::string>>>(
        redis_, session_script<session_lua::read>(), {std::string_view(t->key)}, index_prefix_, index_suffix(t->bucket),
        t->hash, mode);
    return chain<std::optional<stored_session>>(
        std::move(sent),
        [self = *this, t = std::move(*t)](future<std::optional<std::vector<std::string>>> f) {
            return self.read_reply(f.get(), t);
        },
        redis_.options().on_error);
}

REDKIT_DECL std::optional<stored_session> session_engine::update_reply(std::optional<std::vector<std::string>> r,
                                                                       const token_ref& t, bool& written) const {
    if (!r) return std::nullopt;
    long long now = 0;
    const bool updated = r->size() >= 2 && (*r)[0] == "ok";
    const bool conflict = r->size() >= 2 && (*r)[0] == "conflict";
    if ((!updated && !conflict) || !parse_ms((*r)[1], now)) {
        corrupt(t.key, r->size() >= 2 && (*r)[0] == "!" ? std::string_view((*r)[1]) : "unexpected reply");
        return std::nullopt;
    }
    written = updated;
    return check(*r, 2, now, t.key, t.bucket);
}

REDKIT_DECL std::optional<stored_session> session_engine::update(std::string_view token, const std::string& json,
                                                                 std::uint64_t expected_version, bool& written) const {
    const auto t = parse(token);
    if (!t) return std::nullopt;
    return update_reply(redis_.eval<std::optional<std::vector<std::string>>>(
                            session_script<session_lua::update>(), {t->key}, index_prefix_, index_suffix(t->bucket),
                            t->hash, expected_version, json),
                        *t, written);
}

REDKIT_DECL future<std::pair<std::optional<stored_session>, bool>> session_engine::async_update(
    std::string_view token, const std::string& json, std::uint64_t expected_version) const {
    using result = std::pair<std::optional<stored_session>, bool>;
    auto t = parse(token);
    if (!t) {
        return ready(result{std::nullopt, false});
    }
    auto sent = client_access::submit_lasting_eval<std::optional<std::vector<std::string>>>(
        redis_, session_script<session_lua::update>(), {std::string_view(t->key)}, index_prefix_,
        index_suffix(t->bucket), t->hash, expected_version, json);
    return chain<result>(
        std::move(sent),
        [self = *this, t = std::move(*t)](future<std::optional<std::vector<std::string>>> f) {
            bool written = false;
            std::optional<stored_session> s = self.update_reply(f.get(), t, written);
            return result{std::move(s), written};
        },
        redis_.options().on_error);
}

REDKIT_DECL bool session_engine::revoke_reply(const std::optional<std::vector<std::string>>& r,
                                              const token_ref& t) const {
    if (!r) return false;
    if (!r->empty() && (*r)[0] == "ok") return true;
    corrupt(t.key, r->size() >= 2 && (*r)[0] == "!" ? std::string_view((*r)[1]) : "unexpected reply");
    return true;  // the script deleted the key all the same
}

REDKIT_DECL bool session_engine::revoke(std::string_view token) const {
    const auto t = parse(token);
    if (!t) return false;
    return revoke_reply(
        redis_.eval<std::optional<std::vector<std::string>>>(session_script<session_lua::revoke>(), {t->key},
                                                             index_prefix_, index_suffix(t->bucket), t->hash),
        *t);
}

REDKIT_DECL future<bool> session_engine::async_revoke(std::string_view token) const {
    auto t = parse(token);
    if (!t) {
        return ready(false);
    }
    auto sent = client_access::submit_lasting_eval<std::optional<std::vector<std::string>>>(
        redis_, session_script<session_lua::revoke>(), {std::string_view(t->key)}, index_prefix_,
        index_suffix(t->bucket), t->hash);
    return chain<bool>(
        std::move(sent),
        [self = *this, t = std::move(*t)](future<std::optional<std::vector<std::string>>> f) {
            return self.revoke_reply(f.get(), t);
        },
        redis_.options().on_error);
}

REDKIT_DECL bool session_engine::revoke_by_id(std::string_view user_id, std::string_view session_id) const {
    require_user(user_id, "revoke_by_id");
    if (session_id.empty()) return false;
    const std::string bucket = session_bucket(user_id);
    return redis_.eval<long long>(session_script<session_lua::revoke_by_id>(), {index_key(user_id, bucket)},
                                  session_prefix(bucket), session_id) == 1;
}

REDKIT_DECL std::size_t session_engine::revoke_all(std::string_view user_id) const {
    require_user(user_id, "revoke_all");
    const std::string bucket = session_bucket(user_id);
    const long long n = redis_.eval<long long>(session_script<session_lua::revoke_all>(), {index_key(user_id, bucket)},
                                               session_prefix(bucket));
    return static_cast<std::size_t>(std::max(0LL, n));
}

REDKIT_DECL void session_engine::list(std::string_view user_id,
                                      const std::function<void(stored_session&)>& each) const {
    require_user(user_id, "list");
    const std::string bucket = session_bucket(user_id);
    const std::string index = index_key(user_id, bucket);
    const std::string prefix = session_prefix(bucket);
    auto r = redis_.eval<std::vector<std::string>>(session_script<session_lua::list>(), {index}, prefix);
    long long now = 0;
    if (r.empty() || (r.size() - 1) % 9 != 0 || !parse_ms(r[0], now)) {
        throw error(errc::type_mismatch, "redkit: session list " + index + ": unexpected reply");
    }
    for (std::size_t i = 1; i < r.size(); i += 9) {
        if (r[i] != "ok") {
            corrupt(prefix + r[i + 1], r[i + 3]);
            continue;
        }
        std::optional<stored_session> s = check(r, i + 1, now, index, bucket);
        if (!s) continue;  // reported
        each(*s);
    }
}

REDKIT_DECL std::optional<std::string> session_engine::rotate(std::string_view token) const {
    const auto t = parse(token);
    if (!t) return std::nullopt;
    for (int attempt = 0; attempt < 3; ++attempt) {
        std::string fresh = make_session_token(t->bucket);
        const std::string hash = sha256_hex(fresh);
        const auto r = redis_.eval<std::optional<std::vector<std::string>>>(
            session_script<session_lua::rotate>(), {t->key, session_key(t->bucket, hash)}, index_prefix_,
            index_suffix(t->bucket), t->hash, hash);
        if (!r) return std::nullopt;
        if (!r->empty() && (*r)[0] == "ok") return fresh;
        if (!r->empty() && (*r)[0] == "taken") continue;
        corrupt(t->key, r->size() >= 2 && (*r)[0] == "!" ? std::string_view((*r)[1]) : "unexpected reply");
        return std::nullopt;
    }
    throw error(errc::invalid_state,
                "redkit: session_store::rotate: fresh tokens keep colliding; the OS CSPRNG is broken");
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
