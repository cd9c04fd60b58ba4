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
#include <redkit/config.hpp>
#include <redkit/detail/hash.hpp>
#include <redkit/detail/random.hpp>
#include <redkit/error.hpp>
#include <redkit/future.hpp>
#include <redkit/key.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
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

/// What update() or modify() did.
enum class update_status {
    updated,   ///< written: version incremented, idle timeout slid
    conflict,  ///< the session's version was not the expected one; nothing written
    not_found  ///< no live session for this token
};

/// The outcome of update() or modify().
template <class T>
struct [[nodiscard]] update_result {
    /// What happened: written, a version conflict, or no live session.
    update_status status = update_status::not_found;
    /// updated: the session as written; conflict: the session as it is now (data included);
    /// not_found: empty.
    std::optional<session<T>> current;

    /// Whether the data was written (status == update_status::updated).
    explicit operator bool() const noexcept { return status == update_status::updated; }
};

namespace detail {

/// The user's bucket: the first 12 bits of SHA-256(user id) as two base64url characters.
REDKIT_DECL std::string session_bucket(std::string_view user_id);

/// A stored session as a script returned it, checked, its data still JSON.
struct stored_session {
    std::string user_id;
    std::string id;
    std::string data;  // JSON
    std::uint64_t version = 0;
    std::chrono::system_clock::time_point created;
    std::chrono::system_clock::time_point last_seen;
    std::chrono::system_clock::time_point expires;
    std::chrono::system_clock::time_point absolute_expiry;
    std::string key;  // what a report names: the session key (the user's index for list)
};

/// What session_store<T> does whatever T is: token checks, key names, the scripts' round trips
/// and the checks of what they return. The data is JSON here; the template encodes and decodes it.
class session_engine {
public:
    /// Throws std::invalid_argument naming the field (see session_store's constructor).
    REDKIT_DECL session_engine(client redis, session_options options);

    const session_options& options() const noexcept { return options_; }
    /// The client's error callback (what a callback on an async result throws goes there).
    const std::function<void(const error&)>& on_error() const noexcept { return redis_.options().on_error; }

    /// Throws std::invalid_argument for an empty user id.
    REDKIT_DECL static void require_user(std::string_view user_id, const char* method);
    /// Reports a corrupt stored session (errc::decode_error) to the client's on_error.
    REDKIT_DECL void corrupt(const std::string& key, std::string_view why) const;

    /// The user id is checked by the caller (before the data is encoded).
    REDKIT_DECL std::string create(std::string_view user_id, const std::string& json) const;
    /// mode: "get", "peek" or "touch". nullopt: no live session, or a corrupt one (reported).
    REDKIT_DECL std::optional<stored_session> read(std::string_view token, const char* mode) const;
    /// nullopt: no live session, or a corrupt one (reported); else the session as written
    /// (written == true) or as it is now (a version conflict).
    REDKIT_DECL std::optional<stored_session> update(std::string_view token, const std::string& json,
                                                     std::uint64_t expected_version, bool& written) const;
    REDKIT_DECL bool revoke(std::string_view token) const;
    REDKIT_DECL bool revoke_by_id(std::string_view user_id, std::string_view session_id) const;
    REDKIT_DECL std::size_t revoke_all(std::string_view user_id) const;
    /// Calls each for every checked session of the user's index, in the script's order (corrupt
    /// ones are reported and skipped).
    REDKIT_DECL void list(std::string_view user_id, const std::function<void(stored_session&)>& each) const;
    REDKIT_DECL std::optional<std::string> rotate(std::string_view token) const;

    // The same scripts without waiting (session_store's async_ members).
    REDKIT_DECL future<std::string> async_create(std::string_view user_id, const std::string& json) const;
    REDKIT_DECL future<std::optional<stored_session>> async_read(std::string_view token, const char* mode) const;
    /// The session as update() gives it, and its `written`.
    REDKIT_DECL future<std::pair<std::optional<stored_session>, bool>> async_update(
        std::string_view token, const std::string& json, std::uint64_t expected_version) const;
    REDKIT_DECL future<bool> async_revoke(std::string_view token) const;

private:
    struct token_ref {
        std::string bucket;  // the token's first two characters (validated alphabet)
        std::string hash;    // SHA-256 of the whole token, hex
        std::string key;     // the session key
    };

    REDKIT_DECL std::optional<token_ref> parse(std::string_view token) const;
    REDKIT_DECL std::optional<stored_session> check(std::vector<std::string>& r, std::size_t at, long long now,
                                                    const std::string& key, std::string_view bucket) const;
    // What the read, update and revoke scripts returned, checked (corrupt: reported).
    REDKIT_DECL std::optional<stored_session> read_reply(std::optional<std::vector<std::string>> r,
                                                         const token_ref& t) const;
    REDKIT_DECL std::optional<stored_session> update_reply(std::optional<std::vector<std::string>> r,
                                                           const token_ref& t, bool& written) const;
    REDKIT_DECL bool revoke_reply(const std::optional<std::vector<std::string>>& r, const token_ref& t) const;
    // create's arguments for one fresh token
    REDKIT_DECL std::string fresh_token(std::string_view user_id, std::string& hash, std::string& id, std::string& key,
                                        std::string& index) const;

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

}  // namespace detail

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
    using data_type = T;              ///< the application's data of each session
    using session_type = session<T>;  ///< a session as get(), peek() and list() return it

    /// Throws std::invalid_argument naming the field when a timeout is not positive or the idle
    /// timeout exceeds the absolute one.
    explicit session_store(client redis, session_options options = {}) : core_(std::move(redis), std::move(options)) {}

    /// Uses redkit::default_client().
    explicit session_store(session_options options = {}) : session_store(default_client(), std::move(options)) {}

    /// Starts a session and returns its new token (give it to the client, e.g. as a Secure,
    /// HttpOnly, SameSite cookie; it is never stored). One EVALSHA (HSET + PEXPIREAT of the session,
    /// ZREMRANGEBYSCORE + ZADD + PEXPIREAT of the user's index), atomic, one round trip.
    /// Throws std::invalid_argument for an empty user id or data that does not encode (non-UTF-8
    /// text), redkit::error on transport failure, std::system_error when the OS CSPRNG fails.
    [[nodiscard]] std::string create(std::string_view user_id, const T& data = T{}) const {
        detail::session_engine::require_user(user_id, "create");
        return core_.create(user_id, encode(data));
    }

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
    bool touch(std::string_view token) const { return core_.read(token, "touch").has_value(); }

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
    bool revoke(std::string_view token) const { return core_.revoke(token); }

    /// Ends one session of a user by its public id (the "sign out that device" button); pass the
    /// signed-in user's id, so one user cannot end another's sessions. True when it was live.
    /// One EVALSHA over the user's index (HGET per session, DEL + ZREM), O(sessions of the user),
    /// atomic. Throws std::invalid_argument for an empty user id.
    bool revoke_by_id(std::string_view user_id, std::string_view session_id) const {
        return core_.revoke_by_id(user_id, session_id);
    }

    /// Ends every session of a user ("log out everywhere", password change): deletes all of them
    /// and the index in one EVALSHA (ZRANGE, DEL per session), atomic (also on Redis Cluster: one
    /// slot). Returns how many live sessions were deleted. Throws std::invalid_argument for an
    /// empty user id, redkit::server_error when the index key holds another type.
    std::size_t revoke_all(std::string_view user_id) const { return core_.revoke_all(user_id); }

    /// The user's live sessions, most recently seen first, without tokens (for a "your devices"
    /// page; session::id names one for revoke_by_id). Prunes expired index entries; slides nothing.
    /// A corrupt stored session is skipped and reported. One EVALSHA (ZREMRANGEBYSCORE, ZRANGE,
    /// HMGET per session), atomic.
    [[nodiscard]] std::vector<session_type> list(std::string_view user_id) const;

    /// Moves the session to a new token and kills the old one in the same atomic step (do it at
    /// login and on every privilege change). Data, id, version and both deadlines are kept.
    /// nullopt when the token has no live session (or it is corrupt: reported). One EVALSHA
    /// (ZREM, ZADD, RENAME), atomic, one round trip. Throws redkit::error on transport failure.
    [[nodiscard]] std::optional<std::string> rotate(std::string_view token) const { return core_.rotate(token); }

    /// create(), get(), peek(), touch(), update() and revoke() without waiting: each is the same
    /// one EVALSHA, sent as client::submit() sends a command (the shared connection, never
    /// retried), and the redkit::future holds what the blocking call returns, or its error
    /// (get(), then(), co_await; redkit::async_get for Asio). A malformed token gives a ready
    /// future (nothing sent). What the blocking call throws before sending (an empty user id, data
    /// that does not encode), these throw at once. async_create makes one attempt: the blocking
    /// create() retries a collision of its 252-bit random token (a broken CSPRNG), this fails.
    future<std::string> async_create(std::string_view user_id, const T& data = T{}) const {
        detail::session_engine::require_user(user_id, "async_create");
        return core_.async_create(user_id, encode(data));
    }
    /// get() without waiting (see async_create).
    future<std::optional<session_type>> async_get(std::string_view token) const { return async_read(token, "get"); }
    /// peek() without waiting (see async_create).
    future<std::optional<session_type>> async_peek(std::string_view token) const { return async_read(token, "peek"); }
    /// touch() without waiting (see async_create).
    future<bool> async_touch(std::string_view token) const {
        return detail::chain<bool>(
            core_.async_read(token, "touch"),
            [](future<std::optional<detail::stored_session>> f) { return f.get().has_value(); }, core_.on_error());
    }
    /// update() without waiting (see async_create).
    future<update_result<T>> async_update(std::string_view token, const T& data, std::uint64_t expected_version) const {
        return detail::chain<update_result<T>>(
            core_.async_update(token, encode(data), expected_version),
            [self = *this, data](future<std::pair<std::optional<detail::stored_session>, bool>> f) {
                auto [stored, written] = f.get();
                return self.to_update_result(stored, written, data);
            },
            core_.on_error());
    }
    /// revoke() without waiting (see async_create).
    future<bool> async_revoke(std::string_view token) const { return core_.async_revoke(token); }

    /// The options this store was made with.
    const session_options& options() const noexcept { return core_.options(); }

private:
    future<std::optional<session_type>> async_read(std::string_view token, const char* mode) const {
        return detail::chain<std::optional<session_type>>(
            core_.async_read(token, mode),
            [self = *this](future<std::optional<detail::stored_session>> f) -> std::optional<session_type> {
                std::optional<detail::stored_session> stored = f.get();
                if (!stored) return std::nullopt;
                return self.to_session(*stored, nullptr);
            },
            core_.on_error());
    }
    update_result<T> to_update_result(std::optional<detail::stored_session>& stored, bool written,
                                      const T& data) const {
        if (!stored) return {};
        update_result<T> out;
        out.current = to_session(*stored, written ? &data : nullptr);
        if (!out.current) return {};  // reported
        out.status = written ? update_status::updated : update_status::conflict;
        return out;
    }

    std::optional<session_type> read(std::string_view token, const char* mode) const;
    // The session of a checked stored one: its data decoded, or `written` (what update just
    // wrote) when given; nullopt (reported) when the data does not decode.
    std::optional<session_type> to_session(detail::stored_session& stored, const T* written) const;

    detail::session_engine core_;
};

// ---- implementation ----

template <class T>
auto session_store<T>::to_session(detail::stored_session& stored, const T* written) const
    -> std::optional<session_type> {
    session_type s;
    s.user_id = std::move(stored.user_id);
    s.id = std::move(stored.id);
    s.version = stored.version;
    s.created = stored.created;
    s.last_seen = stored.last_seen;
    s.expires = stored.expires;
    s.absolute_expiry = stored.absolute_expiry;
    if (written) {
        s.data = *written;
    } else {
        try {
            s.data = decode<T>(stored.data, stored.key);
        } catch (const error& e) {
            core_.corrupt(stored.key, e.what());
            return std::nullopt;
        }
    }
    return s;
}

template <class T>
auto session_store<T>::read(std::string_view token, const char* mode) const -> std::optional<session_type> {
    std::optional<detail::stored_session> stored = core_.read(token, mode);
    if (!stored) return std::nullopt;
    return to_session(*stored, nullptr);
}

template <class T>
update_result<T> session_store<T>::update(std::string_view token, const T& data, std::uint64_t expected_version) const {
    bool written = false;
    std::optional<detail::stored_session> stored = core_.update(token, encode(data), expected_version, written);
    return to_update_result(stored, written, data);
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
auto session_store<T>::list(std::string_view user_id) const -> std::vector<session_type> {
    std::vector<session_type> out;
    core_.list(user_id, [&](detail::stored_session& stored) {
        std::optional<session_type> s = to_session(stored, nullptr);
        if (!s) return;  // reported
        if (s->user_id != user_id) {
            core_.corrupt(stored.key, "holds a session of another user");
            return;
        }
        out.push_back(std::move(*s));
    });
    std::sort(out.begin(), out.end(), [](const session_type& a, const session_type& b) {
        return a.last_seen != b.last_seen ? a.last_seen > b.last_seen : a.id < b.id;
    });
    return out;
}

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/session.ipp>
#endif
