// SPDX-License-Identifier: MIT
// redkit::rate_limiter: fixed window, sliding window, token bucket and GCRA limiters, each check
// one atomic Lua script in one round trip, with results an HTTP layer can turn into 429 and
// RateLimit headers.
//
// Commands: every hit() and peek() is one EVALSHA (plus, once per script and server -- first use,
// SCRIPT FLUSH, a failover -- one EVAL after the NOSCRIPT reply). reset() is one DEL.
// Atomicity: each check reads and updates its state inside one script, so concurrent checks from
// any number of threads and processes never let more than the limit through.
// Clock: the sliding window, the token bucket and GCRA read the server's clock (TIME) inside the
// script, in integer ms or us; the fixed window uses the server's key expiry. Client clocks never
// matter.
// Keys: one key per identifier and limiter, `<key_space>:<name>:<algorithm>:{<identifier>}`
// (default key space "rate_limit"; algorithm fixed|sliding|bucket|gcra, so switching a limiter's
// algorithm in a rolling deploy never meets a key of the other layout). The identifier (an IP, a user id: untrusted) is
// escaped by the key-naming rules and is the key's hash tag, so everything about one identifier lives in one Redis
// Cluster slot. Every key carries a TTL: state never outlives its usefulness. Denied requests: the fixed window charges
// them (its counter counts attempts, as INCRBY-first must; a denial never extends the window); the sliding window, the
// token bucket and GCRA do not. Failures: when Redis cannot answer, rate_limit_options::on_failure decides (fail open,
// fail closed, or throw); the failure is reported to the client's error callback. Thread safety: a rate_limiter is
// immutable; every member function may be called from any thread.
#pragma once

#include <redkit/client.hpp>
#include <redkit/config.hpp>
#include <redkit/error.hpp>
#include <redkit/future.hpp>
#include <redkit/key.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace redkit {
inline namespace v0 {

/// What a limiter answers when Redis cannot (connection refused or lost, timeout, pool
/// exhausted, an error reply such as OOM or READONLY). The failure is reported to the client's
/// on_error callback in every case.
enum class rate_limit_failure_policy {
    fail_open,    ///< allow the request (rate_limit_result::fallback == true); the default
    fail_closed,  ///< deny it, with retry_after = rate_limit_options::fail_closed_retry_after
    raise,        ///< rethrow the redkit::error
};

/// The name 0.1 used (kept so that code written against it compiles).
using failure_policy = rate_limit_failure_policy;

/// Settings shared by every algorithm.
struct rate_limit_options {
    /// Where keys live: `keys.key(name, algorithm, hash_tag(identifier))`, e.g.
    /// "rate_limit:api:fixed:{10.0.0.1}".
    key_space keys{"rate_limit"};
    /// What a check answers when Redis cannot (see rate_limit_failure_policy).
    rate_limit_failure_policy on_failure = rate_limit_failure_policy::fail_open;
    /// retry_after of a request denied by fail_closed.
    std::chrono::milliseconds fail_closed_retry_after{1000};
};

/// A rate: `count` units every `period`, e.g. per_second(100) or rate{5, std::chrono::minutes(1)}.
struct rate {
    long long count = 0;                  ///< units allowed per period
    std::chrono::milliseconds period{0};  ///< the period's length
};
/// `n` units every second.
inline constexpr rate per_second(long long n) noexcept { return {n, std::chrono::seconds(1)}; }
/// `n` units every minute.
inline constexpr rate per_minute(long long n) noexcept { return {n, std::chrono::minutes(1)}; }
/// `n` units every hour.
inline constexpr rate per_hour(long long n) noexcept { return {n, std::chrono::hours(1)}; }

/// The outcome of one check, the same for every algorithm. Durations are rounded up to whole
/// milliseconds of the server's clock, so a request retried after retry_after is allowed (unless
/// others spent the quota meanwhile).
struct [[nodiscard]] rate_limit_result {
    bool allowed = false;                      ///< whether the request may proceed
    long long limit = 0;                       ///< the quota: limit (windows), capacity (token bucket), burst (GCRA)
    long long remaining = 0;                   ///< quota left after this hit (for a peek: left now)
    std::chrono::milliseconds reset_after{0};  ///< until the whole quota is available again
    std::chrono::milliseconds retry_after{0};  ///< 0 when allowed; else until this request would be
    bool fallback = false;                     ///< true when Redis could not answer and the failure policy decided

    /// `allowed`: `if (limiter.hit(ip))` reads "if the request is allowed".
    explicit operator bool() const noexcept { return allowed; }
};

/// One HTTP response header field.
struct http_header {
    std::string name;   ///< the field name, e.g. "RateLimit-Policy"
    std::string value;  ///< the field value, as it goes on the wire
};

/// Which header fields rate_limiter::headers renders (a bit set; combine with |).
enum class rate_limit_headers : unsigned {
    retry_after = 1,  ///< `Retry-After: <seconds>`, only when denied
    ietf = 2,         ///< `RateLimit-Policy: "<name>";q=<limit>;w=<s>` and `RateLimit: "<name>";r=<remaining>;t=<s>`
    ietf_legacy = 4,  ///< `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds from now)
    x_ratelimit = 8,  ///< `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix time, s)
    standard = 3,     ///< retry_after | ietf
    all = 15,
};
/// The header fields of `a` and those of `b`.
constexpr rate_limit_headers operator|(rate_limit_headers a, rate_limit_headers b) noexcept {
    return static_cast<rate_limit_headers>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}

/// A rate limiter of one of four algorithms, keyed by an identifier (an IP, a user id, an API key).
///
/// @code
/// // 100 requests per IP and minute; the 101st gets 429.
/// static const redkit::rate_limiter per_ip =
///     redkit::rate_limiter::fixed_window(redkit::default_client(), "api", 100, std::chrono::minutes(1));
/// redkit::rate_limit_result r = per_ip.hit(client_ip);
/// if (!r.allowed) return http_429(per_ip.headers(r));
/// @endcode
class rate_limiter {
public:
    /// Which algorithm a limiter runs (its name is also part of the limiter's keys).
    enum class algorithm {
        fixed_window,    ///< fixed_window(): a counter per window (key part "fixed")
        sliding_window,  ///< sliding_window(): two counters, weighted (key part "sliding")
        token_bucket,    ///< token_bucket(): tokens and a refill time (key part "bucket")
        gcra             ///< gcra(): one theoretical arrival time (key part "gcra")
    };

    /// At most `limit` cost units per identifier in each window of `window`; a window starts at
    /// an identifier's first hit and ends `window` later (its key's TTL, set once, never re-armed).
    /// Denied hits are charged (the counter counts attempts) but never extend the window.
    /// Throws std::invalid_argument naming the field: limit < 1, window < 1 ms, an empty name.
    REDKIT_DECL static rate_limiter fixed_window(client c, std::string name, long long limit,
                                                 std::chrono::milliseconds window, rate_limit_options options = {});

    /// At most `limit` cost units in any trailing `window`, by the two-bucket weighted estimate
    /// (windows aligned to the server clock): estimate = current + previous * (window - elapsed) /
    /// window. It is exact when the previous window's hits were evenly spread; otherwise the
    /// estimate is off from the true trailing count by at most previous * max(f, 1 - f) (f = the
    /// fraction of the current window elapsed), so in the worst case (all previous hits at the end
    /// of their window) up to 2 * limit may pass in one trailing window. Two counters per
    /// identifier, whatever the limit. Denied hits are not charged.
    /// Throws std::invalid_argument naming the field: limit < 1, window < 1 ms, limit * window
    /// (in ms) above 2^50, an empty name.
    REDKIT_DECL static rate_limiter sliding_window(client c, std::string name, long long limit,
                                                   std::chrono::milliseconds window, rate_limit_options options = {});

    /// A bucket of `capacity` tokens per identifier, refilled by whole tokens at `refill` (e.g.
    /// per_second(10)): a burst of up to `capacity`, then the refill rate. Denied hits are not
    /// charged. The interval per token is rounded up to whole microseconds.
    /// Throws std::invalid_argument naming the field: capacity < 1, refill.count < 1,
    /// refill.period < 1 ms, more than one token per microsecond, capacity * interval above 2^50 us.
    REDKIT_DECL static rate_limiter token_bucket(client c, std::string name, long long capacity, rate refill,
                                                 rate_limit_options options = {});

    /// GCRA: requests at `sustained` (e.g. per_second(10)) with bursts of up to `burst` at once;
    /// one timestamp per identifier. Equivalent to a token bucket of capacity `burst` refilled
    /// continuously. Denied hits are not charged. The emission interval is rounded up to whole us.
    /// Throws std::invalid_argument naming the field: burst < 1, sustained.count < 1,
    /// sustained.period < 1 ms, more than one request per microsecond, burst * interval above 2^50 us.
    REDKIT_DECL static rate_limiter gcra(client c, std::string name, rate sustained, long long burst,
                                         rate_limit_options options = {});

    /// Checks and charges `cost` units (weighted hits; 0 is a peek) for `identifier`.
    /// One EVALSHA (one round trip), atomic, thread-safe. The key's TTL: the window (fixed window,
    /// set once), two windows (sliding), or until the quota is full again (token bucket, GCRA).
    /// Denial is a value (allowed == false), never an exception.
    /// Throws std::invalid_argument for an empty identifier, a negative cost or a cost above the
    /// limit/capacity/burst (it could never be allowed); redkit::error only with
    /// rate_limit_failure_policy::raise.
    rate_limit_result hit(std::string_view identifier, long long cost = 1) const {
        return run(identifier, cost, false);
    }

    /// hit() without waiting: the redkit::future holds the decision (get(), then(), co_await;
    /// redkit::async_get for Asio). The same one EVALSHA, sent as client::submit() sends a
    /// command (the shared connection, never retried); the failure policy decides as for hit(): a
    /// fallback decision, or with rate_limit_failure_policy::raise the future's error. Throws
    /// std::invalid_argument at once, sending nothing, where hit() would.
    REDKIT_DECL future<rate_limit_result> async_hit(std::string_view identifier, long long cost = 1) const;

    /// What hit(identifier, cost) would answer now, without charging or writing anything;
    /// `remaining` is the quota left now. One EVALSHA (read only). Throws as hit().
    rate_limit_result peek(std::string_view identifier, long long cost = 1) const {
        return run(identifier, cost, true);
    }

    /// Forgets the identifier's state (the full quota is available again). One DEL. Returns
    /// whether there was state. Throws std::invalid_argument for an empty identifier and
    /// redkit::error when Redis fails (the failure policy applies to checks only).
    REDKIT_DECL bool reset(std::string_view identifier) const;

    /// The key holding the identifier's state: `<key space>:<name>:<algorithm>:{<escaped identifier>}`.
    REDKIT_DECL std::string key(std::string_view identifier) const;

    /// Response header fields for a result of this limiter (see rate_limit_headers). Seconds are
    /// rounded up; Retry-After is at least 1 when denied. The policy window `w` is the window, or
    /// the time a token bucket / GCRA takes to refill completely.
    REDKIT_DECL std::vector<http_header> headers(const rate_limit_result& result,
                                                 rate_limit_headers fields = rate_limit_headers::standard) const;

    /// The algorithm this limiter runs.
    algorithm kind() const noexcept { return kind_; }
    /// The limiter's name as given (part of every key it uses).
    const std::string& name() const noexcept { return name_; }
    /// The limit, capacity or burst.
    long long limit() const noexcept { return limit_; }
    /// The window, or the time to refill the whole quota (token bucket, GCRA).
    std::chrono::milliseconds policy_window() const noexcept { return policy_window_; }

private:
    REDKIT_DECL rate_limiter(client c, algorithm kind, std::string name, long long limit, long long param,
                             std::chrono::milliseconds policy_window, rate_limit_options options);

    REDKIT_DECL rate_limit_result run(std::string_view identifier, long long cost, bool peek_only) const;
    REDKIT_DECL rate_limit_result fall_back(const error& e) const;
    REDKIT_DECL void check_cost(long long cost) const;

    client client_;
    algorithm kind_;
    std::string name_;
    long long limit_;
    std::chrono::milliseconds policy_window_;
    rate_limit_options options_;
    std::string key_prefix_;  // "<key space>:<name>:<algorithm>:{"
    std::string limit_arg_;   // ARGV[1]
    std::string param_arg_;   // ARGV[2]: window ms or interval us
};

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/rate_limit.ipp>
#endif
