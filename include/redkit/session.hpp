// SPDX-License-Identifier: MIT
// redkit::session_store<T>: server-side sessions in Redis, revocable at once, done the way the
// OWASP Session Management Cheat Sheet asks.
//
// Tokens. 44 URL-safe base64 characters (33 bytes): two characters of user bucket, then 252 bits
// from the OS CSPRNG (getrandom(2), else /dev/urandom). The bucket is the first 12 bits of
// SHA-256(user id): one of 4096 groups, the same for all of a user's sessions, so a token tells
// nothing useful about its user. Only SHA-256(token) reaches Redis, as part of the key, so a dump,
// MONITOR or SCAN yields no usable token. A token that is not exactly 44 base64url characters is
// "no session" without any round trip; a well-formed token is looked up under the hash of all of
// it, so editing its bucket characters only leads to a key that does not exist.
//
// Keys (every part escaped by key_space, prefix from session_options::keys):
//   session:{B}:<sha256(token) hex>   hash: user, id, data (JSON), version, created, seen,
//                                     absolute, idle, index; PEXPIREAT min(seen + idle, absolute)
//   user:<user id>:{B}:sessions       sorted set: token hash -> that same expiry (ms); expires with
//                                     the latest absolute deadline of its sessions
// B is the bucket. All of a user's keys carry the same hash tag {B}, hence one Redis Cluster slot,
// and get(token) finds the slot from the token alone: every call is ONE Lua script, atomic, one
// round trip, cluster-safe (keys reached through the index or the stored index name share {B}).
//
// Timeouts: idle (each get/touch/update slides it) and absolute (fixed at create; nothing extends
// it), both on the server clock, both enforced by the key's TTL and re-checked by the scripts (an
// expired session found before Redis evicts it is deleted on the spot) and by this code.
//
// Concurrent writers: update() is a compare-and-set on the session's version; a stale version
// writes nothing and returns the current session (update_status::conflict); modify() re-applies a
// function until it wins. get/touch never change the version, so they never cause a conflict.
//
// Thread safety: every member function may be called from any thread at once.
#pragma once

#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/detail/epoch.hpp>
#include <redkit/detail/hash.hpp>
#include <redkit/detail/random.hpp>
#include <redkit/error.hpp>
#include <redkit/key.hpp>
#include <redkit/script.hpp>
#include <redkit/session/detail/lua.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// How sessions behave. The timeouts apply to sessions created afterwards (each session stores
/// its own).
struct session_options {
    /// A session unused for this long ends (get, touch and update slide it). OWASP: 15-30 min for
    /// most applications, 2-5 min for high-value ones.
    std::chrono::milliseconds idle_timeout{std::chrono::minutes(30)};
    /// A session ends this long after create, however active (rotate keeps the deadline).
    std::chrono::milliseconds absolute_timeout{std::chrono::hours(8)};
    /// Where the keys live (e.g. key_space("shop:prod")).
    key_space keys{};
};

/// A live session as stored. Carries no token: what list() returns can go to a page as it is.
template <class T>
struct session {
    std::string id;                                   ///< public session id: stable across rotate, not a credential
    std::string user_id;                              ///< as given to create
    T data{};                                         ///< the application's data
    std::uint64_t version = 0;                        ///< 1 at create, +1 per successful update
    std::chrono::system_clock::time_point created;    ///< server clock
    std::chrono::system_clock::time_point last_seen;  ///< last get/touch/update (server clock)
    std::chrono::system_clock::time_point expires;    ///< min(last_seen + idle, absolute_expiry)
    std::chrono::system_clock::time_point absolute_expiry;  ///< created + absolute timeout
};

enum class update_status {
    updated,   ///< written: version incremented, idle timeout slid
    conflict,  ///< the session's version was not the expected one; nothing written
    not_found  ///< no live session for this token
};

/// The outcome of update() or modify().
template <class T>
struct [[nodiscard]] update_result {
    update_status status = update_status::not_found;
    /// updated: the session as written; conflict: the session as it is now (data included);
    /// not_found: empty.
    std::optional<session<T>> current;

    explicit operator bool() const noexcept { return status == update_status::updated; }
};

/// Sessions of T (any type nlohmann/json converts; the default is a string map).
///
/// @code
/// redkit::session_store<> sessions(redis, {std::chrono::minutes(20), std::chrono::hours(8)});
/// std::string token = sessions.create(user_id, {{"device", "Firefox on Linux"}});  // cookie value
/// if (auto s = sessions.get(cookie)) { /* s->user_id, s->data */ } else { /* 401 */ }
/// std::string fresh = *sessions.rotate(cookie);   // after login or a privilege change
/// sessions.revoke_all(user_id);                   // "log out everywhere"
/// @endcode
template <class T = std::map<std::string, std::string>>
class session_store {
public:
    using data_type = T;
    using session_type = session<T>;

    /// Throws std::invalid_argument naming the field when a timeout is not positive or the idle
    /// timeout exceeds the absolute one.
    explicit session_store(client redis, session_options options = {});

    /// Uses redkit::default_client().
    explicit session_store(session_options options = {}) : session_store(default_client(), std::move(options)) {}

    /// Starts a session and returns its new token (give it to the client, e.g. as a Secure,
    /// HttpOnly, SameSite cookie; it is never stored). One EVALSHA (HSET + PEXPIREAT of the session,
    /// ZREMRANGEBYSCORE + ZADD + PEXPIREAT of the user's index), atomic, one round trip.
    /// Throws std::invalid_argument for an empty user id or data that does not encode (non-UTF-8
    /// text), redkit::error on transport failure, std::system_error when the OS CSPRNG fails.
    [[nodiscard]] std::string create(std::string_view user_id, const T& data = T{}) const;

    /// The session of a token, and marks activity: last seen = now, TTL = min(idle, absolute
    /// remaining). nullopt for a malformed token (no round trip), an unknown, expired or revoked
    /// one, and for a stored session that is corrupt (reported to client_options::on_error with
    /// errc::decode_error). One EVALSHA (HMGET, HSET, PEXPIREAT, ZADD), atomic, one round trip.
    /// Throws redkit::error on transport failure.
    [[nodiscard]] std::optional<session_type> get(std::string_view token) const { return read(token, "get"); }

    /// Like get() without marking activity (no slide): for admin views and checks.
    [[nodiscard]] std::optional<session_type> peek(std::string_view token) const { return read(token, "peek"); }

    /// Marks activity like get() without sending the data back (one EVALSHA, one round trip).
    /// True when the session is live; false as get() would give nullopt.
    bool touch(std::string_view token) const;

    /// Replaces the data if the session's version is still expected_version (compare-and-set),
    /// increments the version and slides the idle timeout. On a version mismatch nothing is
    /// written and the result holds the current session: re-apply the change and try again (or
    /// use modify). One EVALSHA, atomic, one round trip. Throws std::invalid_argument when the
    /// data does not encode, redkit::error on transport failure.
    update_result<T> update(std::string_view token, const T& data, std::uint64_t expected_version) const;

    /// Read-modify-write that loses nothing under concurrency: fn(T&) edits a copy of the current
    /// data, update() writes it; on conflict fn runs again on the newer data, up to max_attempts
    /// times (then the conflict is returned). 1 + attempts round trips. fn may run several times,
    /// so it must not have side effects beyond its argument. Throws std::invalid_argument when
    /// max_attempts < 1, and whatever fn throws.
    template <class F>
    update_result<T> modify(std::string_view token, F&& fn, int max_attempts = 32) const;

    /// Ends the session of a token (logout). True when a live session was deleted. One EVALSHA
    /// (DEL + ZREM), atomic. A corrupt stored session is deleted too, reported, and counts as true.
    bool revoke(std::string_view token) const;

    /// Ends one session of a user by its public id (the "sign out that device" button); pass the
    /// signed-in user's id, so one user cannot end another's sessions. True when it was live.
    /// One EVALSHA over the user's index (HGET per session, DEL + ZREM), O(sessions of the user),
    /// atomic. Throws std::invalid_argument for an empty user id.
    bool revoke_by_id(std::string_view user_id, std::string_view session_id) const;

    /// Ends every session of a user ("log out everywhere", password change): deletes all of them
    /// and the index in one EVALSHA (ZRANGE, DEL per session), atomic (also on Redis Cluster: one
    /// slot). Returns how many live sessions were deleted. Throws std::invalid_argument for an
    /// empty user id, redkit::server_error when the index key holds another type.
    std::size_t revoke_all(std::string_view user_id) const;

    /// The user's live sessions, most recently seen first, without tokens (for a "your devices"
    /// page; session::id names one for revoke_by_id). Prunes expired index entries; slides nothing.
    /// A corrupt stored session is skipped and reported. One EVALSHA (ZREMRANGEBYSCORE, ZRANGE,
    /// HMGET per session), atomic.
    [[nodiscard]] std::vector<session_type> list(std::string_view user_id) const;

    /// Moves the session to a new token and kills the old one in the same atomic step (do it at
    /// login and on every privilege change). Data, id, version and both deadlines are kept.
    /// nullopt when the token has no live session (or it is corrupt: reported). One EVALSHA
    /// (ZREM, ZADD, RENAME), atomic, one round trip. Throws redkit::error on transport failure.
    [[nodiscard]] std::optional<std::string> rotate(std::string_view token) const;

    const session_options& options() const noexcept { return options_; }

private:
    struct token_ref {
        std::string bucket;  // the token's first two characters (validated alphabet)
        std::string hash;    // SHA-256 of the whole token, hex
        std::string key;     // the session key
    };

    // The session script whose body is Body, after the shared prelude.
    template <const std::string_view& Body>
    static const script& lua() {
        return detail::static_script<detail::session_scripts::prelude, Body>();
    }

    std::optional<token_ref> parse(std::string_view token) const;
    std::optional<session_type> read(std::string_view token, const char* mode) const;
    std::optional<session_type> to_session(std::vector<std::string>& r, std::size_t at, long long now,
                                           const std::string& key, std::string_view bucket, const T* written) const;
    void corrupt(const std::string& key, std::string_view why) const;
    static void require_user(std::string_view user_id, const char* method);

    std::string index_key(std::string_view user_id, const std::string& bucket) const {
        return options_.keys.key("user", user_id, hash_tag(bucket), "sessions");
    }
    // "<prefix>:session:{B}:" -- what keys.key("session", hash_tag(B), ...) renders: the bucket
    // (base64url) and the hash (hex) hold no character key_space escapes, so it is built directly.
    std::string session_prefix(std::string_view bucket) const {
        std::string out = session_key_prefix_;
        out += '{';
        out += bucket;
        out += "}:";
        return out;
    }
    std::string session_key(std::string_view bucket, std::string_view hash) const {
        return session_prefix(bucket).append(hash.data(), hash.size());
    }
    static std::string index_suffix(const std::string& bucket) { return ":{" + bucket + "}:sessions"; }

    client redis_;
    session_options options_;
    std::string index_prefix_;        // "<prefix>:user:" — the stored index key must start with it
    std::string session_key_prefix_;  // "<prefix>:session:"
};

// ---- implementation ----

namespace detail {

inline constexpr std::size_t session_token_length = 44;

/// The user's bucket: the first 12 bits of SHA-256(user id) as two base64url characters.
/// Every read re-checks that the stored user hashes to the token's bucket, so the same user's id
/// is hashed again and again by the thread serving its requests: the last answer is kept per
/// thread (a cache of a pure function; a different user id costs one SHA-256 as before).
inline std::string session_bucket(std::string_view user_id) {
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

}  // namespace detail

template <class T>
session_store<T>::session_store(client redis, session_options options)
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

template <class T>
void session_store<T>::require_user(std::string_view user_id, const char* method) {
    if (user_id.empty())
        throw std::invalid_argument(std::string("redkit: session_store::") + method + ": user_id is empty");
}

template <class T>
void session_store<T>::corrupt(const std::string& key, std::string_view why) const {
    redis_.report(
        error(errc::decode_error, "redkit: session " + key + ": corrupt stored session: " + std::string(why)));
}

template <class T>
auto session_store<T>::parse(std::string_view token) const -> std::optional<token_ref> {
    // Checked before anything is hashed or sent: hostile input never builds a key.
    if (token.size() != detail::session_token_length) return std::nullopt;
    for (char c : token) {
        if (detail::base64url_value(c) < 0) return std::nullopt;
    }
    token_ref t;
    t.bucket = std::string(token.substr(0, 2));
    t.hash = detail::sha256_hex(token);
    t.key = session_key(t.bucket, t.hash);
    return t;
}

// r[at .. at+7] = user, id, data, version, created, seen, expires, absolute.
template <class T>
auto session_store<T>::to_session(std::vector<std::string>& r, std::size_t at, long long now, const std::string& key,
                                  std::string_view bucket, const T* written) const -> std::optional<session_type> {
    if (r.size() < at + 8) {
        corrupt(key, "short reply");
        return std::nullopt;
    }
    long long version = 0, created = 0, seen = 0, expires = 0, absolute = 0;
    if (!detail::parse_ms(r[at + 3], version) || !detail::parse_ms(r[at + 4], created) ||
        !detail::parse_ms(r[at + 5], seen) || !detail::parse_ms(r[at + 6], expires) ||
        !detail::parse_ms(r[at + 7], absolute)) {
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
    if (!bucket.empty() && detail::session_bucket(r[at]) != bucket) {
        corrupt(key, "user does not belong to the token's bucket");
        return std::nullopt;
    }
    session_type s;
    s.user_id = std::move(r[at]);
    s.id = std::move(r[at + 1]);
    s.version = static_cast<std::uint64_t>(version);
    s.created = detail::from_epoch_ms(created);
    s.last_seen = detail::from_epoch_ms(seen);
    s.expires = detail::from_epoch_ms(expires);
    s.absolute_expiry = detail::from_epoch_ms(absolute);
    if (written) {
        s.data = *written;
    } else {
        try {
            s.data = decode<T>(r[at + 2], key);
        } catch (const error& e) {
            corrupt(key, e.what());
            return std::nullopt;
        }
    }
    return s;
}

template <class T>
std::string session_store<T>::create(std::string_view user_id, const T& data) const {
    require_user(user_id, "create");
    const std::string json = encode(data);
    const std::string bucket = detail::session_bucket(user_id);
    const std::string index = index_key(user_id, bucket);
    unsigned char id_bytes[16];
    detail::random_bytes(id_bytes, sizeof id_bytes);
    const std::string id = detail::base64url_encode(id_bytes, sizeof id_bytes);
    // A collision of 252 random bits does not happen; the loop only guards a broken CSPRNG from
    // silently joining two logins into one session.
    for (int attempt = 0; attempt < 3; ++attempt) {
        std::string token = detail::make_session_token(bucket);
        const std::string hash = detail::sha256_hex(token);
        const auto r = redis_.eval<std::vector<std::string>>(
            lua<detail::session_scripts::create>(), {session_key(bucket, hash), index}, hash, user_id, id, json,
            options_.idle_timeout.count(), options_.absolute_timeout.count());
        if (!r.empty() && r[0] == "ok") return token;
    }
    throw error(errc::invalid_state,
                "redkit: session_store::create: fresh tokens keep colliding; the OS CSPRNG is broken");
}

template <class T>
auto session_store<T>::read(std::string_view token, const char* mode) const -> std::optional<session_type> {
    const auto t = parse(token);
    if (!t) return std::nullopt;
    // Reading (and sliding the idle timeout) converges when repeated: safe to retry.
    auto r =
        redis_.eval<std::optional<std::vector<std::string>>>(idempotent, lua<detail::session_scripts::read>(), {t->key},
                                                             index_prefix_, index_suffix(t->bucket), t->hash, mode);
    if (!r) return std::nullopt;
    long long now = 0;
    if (r->size() < 2 || (*r)[0] != "ok" || !detail::parse_ms((*r)[1], now)) {
        corrupt(t->key, r->size() >= 2 && (*r)[0] == "!" ? std::string_view((*r)[1]) : "unexpected reply");
        return std::nullopt;
    }
    return to_session(*r, 2, now, t->key, t->bucket, nullptr);
}

template <class T>
bool session_store<T>::touch(std::string_view token) const {
    const auto t = parse(token);
    if (!t) return false;
    auto r =
        redis_.eval<std::optional<std::vector<std::string>>>(idempotent, lua<detail::session_scripts::read>(), {t->key},
                                                             index_prefix_, index_suffix(t->bucket), t->hash, "touch");
    if (!r) return false;
    long long now = 0;
    if (r->size() < 2 || (*r)[0] != "ok" || !detail::parse_ms((*r)[1], now)) {
        corrupt(t->key, r->size() >= 2 && (*r)[0] == "!" ? std::string_view((*r)[1]) : "unexpected reply");
        return false;
    }
    const T no_data{};  // touch carries no data: check the rest of the session only
    return to_session(*r, 2, now, t->key, t->bucket, &no_data).has_value();
}

template <class T>
update_result<T> session_store<T>::update(std::string_view token, const T& data, std::uint64_t expected_version) const {
    const std::string json = encode(data);
    const auto t = parse(token);
    if (!t) return {};
    auto r = redis_.eval<std::optional<std::vector<std::string>>>(lua<detail::session_scripts::update>(), {t->key},
                                                                  index_prefix_, index_suffix(t->bucket), t->hash,
                                                                  expected_version, json);
    if (!r) return {};
    long long now = 0;
    const bool updated = r->size() >= 2 && (*r)[0] == "ok";
    const bool conflict = r->size() >= 2 && (*r)[0] == "conflict";
    if ((!updated && !conflict) || !detail::parse_ms((*r)[1], now)) {
        corrupt(t->key, r->size() >= 2 && (*r)[0] == "!" ? std::string_view((*r)[1]) : "unexpected reply");
        return {};
    }
    update_result<T> out;
    out.current = to_session(*r, 2, now, t->key, t->bucket, updated ? &data : nullptr);
    if (!out.current) return {};  // reported
    out.status = updated ? update_status::updated : update_status::conflict;
    return out;
}

template <class T>
template <class F>
update_result<T> session_store<T>::modify(std::string_view token, F&& fn, int max_attempts) const {
    if (max_attempts < 1) throw std::invalid_argument("redkit: session_store::modify: max_attempts must be at least 1");
    std::optional<session_type> current = read(token, "peek");
    if (!current) return {};
    for (int attempt = 1;; ++attempt) {
        T next = current->data;
        fn(next);
        update_result<T> r = update(token, next, current->version);
        if (r.status != update_status::conflict || attempt >= max_attempts) return r;
        current = std::move(r.current);  // the newer session, data included: no extra read
    }
}

template <class T>
bool session_store<T>::revoke(std::string_view token) const {
    const auto t = parse(token);
    if (!t) return false;
    const auto r = redis_.eval<std::optional<std::vector<std::string>>>(
        lua<detail::session_scripts::revoke>(), {t->key}, index_prefix_, index_suffix(t->bucket), t->hash);
    if (!r) return false;
    if (!r->empty() && (*r)[0] == "ok") return true;
    corrupt(t->key, r->size() >= 2 && (*r)[0] == "!" ? std::string_view((*r)[1]) : "unexpected reply");
    return true;  // the script deleted the key all the same
}

template <class T>
bool session_store<T>::revoke_by_id(std::string_view user_id, std::string_view session_id) const {
    require_user(user_id, "revoke_by_id");
    if (session_id.empty()) return false;
    const std::string bucket = detail::session_bucket(user_id);
    return redis_.eval<long long>(lua<detail::session_scripts::revoke_by_id>(), {index_key(user_id, bucket)},
                                  session_prefix(bucket), session_id) == 1;
}

template <class T>
std::size_t session_store<T>::revoke_all(std::string_view user_id) const {
    require_user(user_id, "revoke_all");
    const std::string bucket = detail::session_bucket(user_id);
    const long long n = redis_.eval<long long>(lua<detail::session_scripts::revoke_all>(), {index_key(user_id, bucket)},
                                               session_prefix(bucket));
    return static_cast<std::size_t>(std::max(0LL, n));
}

template <class T>
auto session_store<T>::list(std::string_view user_id) const -> std::vector<session_type> {
    require_user(user_id, "list");
    const std::string bucket = detail::session_bucket(user_id);
    const std::string index = index_key(user_id, bucket);
    const std::string prefix = session_prefix(bucket);
    auto r = redis_.eval<std::vector<std::string>>(lua<detail::session_scripts::list>(), {index}, prefix);
    long long now = 0;
    if (r.empty() || (r.size() - 1) % 9 != 0 || !detail::parse_ms(r[0], now)) {
        throw error(errc::type_mismatch, "redkit: session list " + index + ": unexpected reply");
    }
    std::vector<session_type> out;
    out.reserve((r.size() - 1) / 9);
    for (std::size_t i = 1; i < r.size(); i += 9) {
        if (r[i] != "ok") {
            corrupt(prefix + r[i + 1], r[i + 3]);
            continue;
        }
        std::optional<session_type> s = to_session(r, i + 1, now, index, bucket, nullptr);
        if (!s) continue;  // reported
        if (s->user_id != user_id) {
            corrupt(index, "holds a session of another user");
            continue;
        }
        out.push_back(std::move(*s));
    }
    std::sort(out.begin(), out.end(), [](const session_type& a, const session_type& b) {
        return a.last_seen != b.last_seen ? a.last_seen > b.last_seen : a.id < b.id;
    });
    return out;
}

template <class T>
std::optional<std::string> session_store<T>::rotate(std::string_view token) const {
    const auto t = parse(token);
    if (!t) return std::nullopt;
    for (int attempt = 0; attempt < 3; ++attempt) {
        std::string fresh = detail::make_session_token(t->bucket);
        const std::string hash = detail::sha256_hex(fresh);
        const auto r = redis_.eval<std::optional<std::vector<std::string>>>(
            lua<detail::session_scripts::rotate>(), {t->key, session_key(t->bucket, hash)}, index_prefix_,
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

}  // namespace v0
}  // namespace redkit
