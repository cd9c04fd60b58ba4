// SPDX-License-Identifier: MIT
// redkit::rate_limiter: out-of-line definitions (rate_limit.hpp).
#pragma once

#include <redkit/rate_limit.hpp>
#include <redkit/rate_limit/detail/lua.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

namespace detail {
struct rate_limit_reply;
}

template <>
struct reply_traits<detail::rate_limit_reply> {
    static detail::rate_limit_reply convert(reply_view v);
};

namespace detail {

/// The reply of every rate-limit script: five integers.
struct rate_limit_reply {
    long long values[5];
};

inline const script& rate_limit_script(rate_limiter::algorithm a) {
    switch (a) {
        case rate_limiter::algorithm::fixed_window: return static_script<rate_limit_lua::fixed_window>();
        case rate_limiter::algorithm::sliding_window: return static_script<rate_limit_lua::sliding_window>();
        case rate_limiter::algorithm::token_bucket: return static_script<rate_limit_lua::token_bucket>();
        case rate_limiter::algorithm::gcra: return static_script<rate_limit_lua::gcra>();
    }
    return static_script<rate_limit_lua::fixed_window>();
}

inline constexpr long long rate_limit_max = 1LL << 50;  // keeps every Lua value an exact integer

constexpr bool has_field(rate_limit_headers set, rate_limit_headers field) noexcept {
    return (static_cast<unsigned>(set) & static_cast<unsigned>(field)) != 0;
}

[[noreturn]] inline void rate_limit_invalid(const std::string& what, const std::string& message) {
    throw std::invalid_argument("redkit: rate_limiter::" + what + ": " + message);
}

// Microseconds per unit of a rate, rounded up (never faster than asked).
inline long long rate_interval_us(const char* what, const char* field, rate r) {
    if (r.count < 1)
        rate_limit_invalid(what, std::string(field) + ".count must be at least 1, got " + std::to_string(r.count));
    if (r.period.count() < 1) rate_limit_invalid(what, std::string(field) + ".period must be at least 1 ms");
    if (r.period.count() > rate_limit_max / 1000) rate_limit_invalid(what, std::string(field) + ".period is too long");
    const long long period_us = r.period.count() * 1000;
    if (r.count > period_us) {
        rate_limit_invalid(what, std::string(field) + " is above one per microsecond (" + std::to_string(r.count) +
                                     " per " + std::to_string(r.period.count()) + " ms)");
    }
    return (period_us + r.count - 1) / r.count;
}

inline std::string ceil_seconds(std::chrono::milliseconds d) {
    const long long ms = d.count() < 0 ? 0 : d.count();
    return std::to_string((ms + 999) / 1000);
}

// An sf-string for the IETF fields: quotes and backslashes escaped, other bytes kept printable.
inline std::string sf_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    out += '"';
    return out;
}

}  // namespace detail

inline detail::rate_limit_reply reply_traits<detail::rate_limit_reply>::convert(reply_view v) {
    if (!v.is_array() || v.type() == reply_type::map || v.size() != 5) v.mismatch("five-integer array");
    detail::rate_limit_reply r{};
    for (std::size_t i = 0; i < 5; ++i) r.values[i] = reply_traits<long long>::convert(v[i]);
    return r;
}

REDKIT_DECL rate_limiter::rate_limiter(client c, algorithm kind, std::string name, long long limit, long long param,
                                       std::chrono::milliseconds policy_window, rate_limit_options options)
    : client_(std::move(c)),
      kind_(kind),
      name_(std::move(name)),
      limit_(limit),
      policy_window_(policy_window),
      options_(std::move(options)),
      limit_arg_(std::to_string(limit)),
      param_arg_(std::to_string(param)) {
    if (options_.fail_closed_retry_after.count() < 0) {
        throw std::invalid_argument("redkit: rate_limit_options: fail_closed_retry_after must not be negative");
    }
    static constexpr const char* layout[] = {"fixed", "sliding", "bucket", "gcra"};
    key_prefix_ = options_.keys.key(name_, layout[static_cast<int>(kind_)]);  // escapes the name
    key_prefix_ += ":{";
}

REDKIT_DECL rate_limiter rate_limiter::fixed_window(client c, std::string name, long long limit,
                                                    std::chrono::milliseconds window, rate_limit_options options) {
    const std::string what = "fixed_window";
    if (name.empty()) detail::rate_limit_invalid(what, "name must not be empty");
    if (limit < 1) detail::rate_limit_invalid(what, "limit must be at least 1, got " + std::to_string(limit));
    if (limit > detail::rate_limit_max) detail::rate_limit_invalid(what, "limit is too large");
    if (window.count() < 1) detail::rate_limit_invalid(what, "window must be at least 1 ms");
    return rate_limiter(std::move(c), algorithm::fixed_window, std::move(name), limit, window.count(), window,
                        std::move(options));
}

REDKIT_DECL rate_limiter rate_limiter::sliding_window(client c, std::string name, long long limit,
                                                      std::chrono::milliseconds window, rate_limit_options options) {
    const std::string what = "sliding_window";
    if (name.empty()) detail::rate_limit_invalid(what, "name must not be empty");
    if (limit < 1) detail::rate_limit_invalid(what, "limit must be at least 1, got " + std::to_string(limit));
    if (window.count() < 1) detail::rate_limit_invalid(what, "window must be at least 1 ms");
    if (limit > detail::rate_limit_max / window.count()) {
        detail::rate_limit_invalid(what, "limit * window (ms) must not exceed 2^50");
    }
    return rate_limiter(std::move(c), algorithm::sliding_window, std::move(name), limit, window.count(), window,
                        std::move(options));
}

REDKIT_DECL rate_limiter rate_limiter::token_bucket(client c, std::string name, long long capacity, rate refill,
                                                    rate_limit_options options) {
    const std::string what = "token_bucket";
    if (name.empty()) detail::rate_limit_invalid(what, "name must not be empty");
    if (capacity < 1) detail::rate_limit_invalid(what, "capacity must be at least 1, got " + std::to_string(capacity));
    const long long interval = detail::rate_interval_us(what.c_str(), "refill", refill);
    if (capacity > detail::rate_limit_max / interval) {
        detail::rate_limit_invalid(what, "capacity * refill interval must not exceed 2^50 us");
    }
    const std::chrono::milliseconds full((capacity * interval + 999) / 1000);
    return rate_limiter(std::move(c), algorithm::token_bucket, std::move(name), capacity, interval, full,
                        std::move(options));
}

REDKIT_DECL rate_limiter rate_limiter::gcra(client c, std::string name, rate sustained, long long burst,
                                            rate_limit_options options) {
    const std::string what = "gcra";
    if (name.empty()) detail::rate_limit_invalid(what, "name must not be empty");
    if (burst < 1) detail::rate_limit_invalid(what, "burst must be at least 1, got " + std::to_string(burst));
    const long long interval = detail::rate_interval_us(what.c_str(), "sustained", sustained);
    if (burst > detail::rate_limit_max / interval) {
        detail::rate_limit_invalid(what, "burst * emission interval must not exceed 2^50 us");
    }
    const std::chrono::milliseconds full((burst * interval + 999) / 1000);
    return rate_limiter(std::move(c), algorithm::gcra, std::move(name), burst, interval, full, std::move(options));
}

REDKIT_DECL std::string rate_limiter::key(std::string_view identifier) const {
    if (identifier.empty()) {
        throw std::invalid_argument("redkit: rate_limiter " + name_ + ": identifier must not be empty");
    }
    std::string k;
    k.reserve(key_prefix_.size() + identifier.size() + 8);
    k += key_prefix_;
    k += escape_key_part(identifier);
    k += '}';
    return k;
}

REDKIT_DECL void rate_limiter::check_cost(long long cost) const {
    if (cost < 0) {
        throw std::invalid_argument("redkit: rate_limiter " + name_ + ": cost must not be negative, got " +
                                    std::to_string(cost));
    }
    if (cost > limit_) {
        static constexpr const char* field[] = {"limit", "limit", "capacity", "burst"};
        const char* f = field[static_cast<int>(kind_)];
        throw std::invalid_argument("redkit: rate_limiter " + name_ + ": cost " + std::to_string(cost) +
                                    " exceeds the " + f + " " + std::to_string(limit_) + "; it could never be allowed");
    }
}

namespace detail {
inline rate_limit_result to_result(const rate_limit_reply& r) {
    rate_limit_result out;
    out.allowed = r.values[0] != 0;
    out.limit = r.values[1];
    out.remaining = r.values[2];
    out.reset_after = std::chrono::milliseconds(r.values[3]);
    out.retry_after = std::chrono::milliseconds(r.values[4]);
    return out;
}
}  // namespace detail

namespace detail {
// Tells the client's observer (if any) of a decision; returns it.
inline rate_limit_result observed(const client& c, const std::string& limiter, std::string_view identifier, bool peek,
                                  rate_limit_result r) {
    const client_options& o = c.options();
    if (!o.observer) return r;
    rate_limit_event e;
    e.limiter = limiter;
    if (o.observe_keys) e.identifier = identifier;
    e.allowed = r.allowed;
    e.peek = peek;
    e.fallback = r.fallback;
    e.remaining = r.remaining;
    e.retry_after = r.retry_after;
    observe(o.observer.get(), &observer::on_rate_limit, e);
    return r;
}
}  // namespace detail

REDKIT_DECL rate_limit_result rate_limiter::run(std::string_view identifier, long long cost, bool peek_only) const {
    check_cost(cost);
    const std::string k = key(identifier);
    char cost_text[24];
    const auto end = std::to_chars(cost_text, cost_text + sizeof cost_text, cost).ptr;
    const std::string_view cost_arg(cost_text, static_cast<std::size_t>(end - cost_text));
    const std::string_view mode = (peek_only || cost == 0) ? "1" : "0";
    detail::rate_limit_reply r;
    try {
        r = client_.eval<detail::rate_limit_reply>(detail::rate_limit_script(kind_), {std::string_view(k)}, limit_arg_,
                                                   param_arg_, cost_arg, mode);
    } catch (const error& e) {
        if (options_.on_failure == rate_limit_failure_policy::raise) throw;
        return detail::observed(client_, name_, identifier, peek_only || cost == 0, fall_back(e));
    }
    return detail::observed(client_, name_, identifier, peek_only || cost == 0, detail::to_result(r));
}

REDKIT_DECL future<rate_limit_result> rate_limiter::async_hit(std::string_view identifier, long long cost) const {
    check_cost(cost);
    const std::string k = key(identifier);
    char cost_text[24];
    const auto end = std::to_chars(cost_text, cost_text + sizeof cost_text, cost).ptr;
    const std::string_view cost_arg(cost_text, static_cast<std::size_t>(end - cost_text));
    const std::string_view mode = cost == 0 ? "1" : "0";
    future<detail::rate_limit_reply> sent = detail::client_access::submit_lasting_eval<detail::rate_limit_reply>(
        client_, detail::rate_limit_script(kind_), {std::string_view(k)}, limit_arg_, param_arg_, cost_arg, mode);
    // who was checked, kept for the observer only when it shows identifiers
    std::string who = client_.options().observer && client_.options().observe_keys ? std::string(identifier) : "";
    return detail::chain<rate_limit_result>(
        std::move(sent),
        [self = *this, who = std::move(who), peek = cost == 0](future<detail::rate_limit_reply> f) {
            try {
                return detail::observed(self.client_, self.name_, who, peek, detail::to_result(f.get()));
            } catch (const error& e) {
                if (self.options_.on_failure == rate_limit_failure_policy::raise) throw;
                return detail::observed(self.client_, self.name_, who, peek, self.fall_back(e));
            }
        },
        client_.options().on_error);
}

REDKIT_DECL rate_limit_result rate_limiter::fall_back(const error& e) const {
    const bool open = options_.on_failure == rate_limit_failure_policy::fail_open;
    client_.report(error(e.kind(), "redkit: rate_limiter " + name_ + ": no decision from redis (" + e.what() + "); " +
                                       (open ? "failing open: request allowed" : "failing closed: request denied")));
    rate_limit_result out;
    out.fallback = true;
    out.limit = limit_;
    if (open) {
        out.allowed = true;
        out.remaining = limit_;
    } else {
        out.allowed = false;
        out.remaining = 0;
        out.retry_after = options_.fail_closed_retry_after;
        out.reset_after = options_.fail_closed_retry_after;
    }
    return out;
}

REDKIT_DECL bool rate_limiter::reset(std::string_view identifier) const {
    return client_.command<long long>("DEL", key(identifier)) > 0;
}

REDKIT_DECL std::vector<http_header> rate_limiter::headers(const rate_limit_result& result,
                                                           rate_limit_headers fields) const {
    std::vector<http_header> out;
    const std::string limit = std::to_string(result.limit);
    const std::string remaining = std::to_string(result.remaining);
    const std::string reset = detail::ceil_seconds(result.reset_after);
    if (!result.allowed && detail::has_field(fields, rate_limit_headers::retry_after)) {
        const long long s = (result.retry_after.count() + 999) / 1000;
        out.push_back({"Retry-After", std::to_string(s < 1 ? 1 : s)});
    }
    if (detail::has_field(fields, rate_limit_headers::ietf)) {
        const std::string policy = detail::sf_string(name_);
        out.push_back({"RateLimit-Policy", policy + ";q=" + limit + ";w=" + detail::ceil_seconds(policy_window_)});
        out.push_back({"RateLimit", policy + ";r=" + remaining + ";t=" + reset});
    }
    if (detail::has_field(fields, rate_limit_headers::ietf_legacy)) {
        out.push_back({"RateLimit-Limit", limit});
        out.push_back({"RateLimit-Remaining", remaining});
        out.push_back({"RateLimit-Reset", reset});
    }
    if (detail::has_field(fields, rate_limit_headers::x_ratelimit)) {
        const auto now_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
        out.push_back({"X-RateLimit-Limit", limit});
        out.push_back({"X-RateLimit-Remaining", remaining});
        out.push_back({"X-RateLimit-Reset", detail::ceil_seconds(now_ms + result.reset_after)});
    }
    return out;
}

}  // namespace v0
}  // namespace redkit
