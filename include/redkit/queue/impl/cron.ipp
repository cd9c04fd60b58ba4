// SPDX-License-Identifier: MIT
// redkit::cron_expression: out-of-line definitions (cron.hpp).
#pragma once

#include <redkit/queue/cron.hpp>
#include <redkit/queue/detail/time_zone.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace redkit {
inline namespace v0 {

namespace detail {

inline std::string_view trim_spaces(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace detail

REDKIT_DECL cron_expression::cron_expression(std::string_view pattern, std::string_view time_zone)
    : pattern_(detail::trim_spaces(pattern)) {
    std::string_view p = pattern_;
    if (!p.empty() && p.front() == '@') {
        if (p == "@yearly" || p == "@annually") {
            p = "0 0 1 1 *";
        } else if (p == "@monthly") {
            p = "0 0 1 * *";
        } else if (p == "@weekly") {
            p = "0 0 * * 0";
        } else if (p == "@daily" || p == "@midnight") {
            p = "0 0 * * *";
        } else if (p == "@hourly") {
            p = "0 * * * *";
        } else {
            throw std::invalid_argument("redkit: cron '" + pattern_ + "': unknown macro");
        }
    }
    std::vector<std::string_view> fields;
    while (!p.empty()) {
        p = detail::trim_spaces(p);
        if (p.empty()) break;
        const auto end = p.find_first_of(" \t");
        fields.push_back(p.substr(0, end));
        p = end == std::string_view::npos ? std::string_view() : p.substr(end);
    }
    if (fields.size() != 5 && fields.size() != 6) {
        throw std::invalid_argument("redkit: cron '" + pattern_ +
                                    "': expected 5 fields (minute hour day month weekday)" +
                                    " or 6 (with seconds first), got " + std::to_string(fields.size()));
    }
    const std::size_t first = fields.size() == 6 ? 0 : 1;
    if (first == 1) bits_[second] = 1;  // second 0
    for (std::size_t i = 0; i < fields.size(); ++i) parse_field(static_cast<field>(i + first), fields[i]);
    zone_ = detail::time_zone::locate(time_zone);
    // a pattern that names no existing day (30 February) would make every search run to its limit
    if (next_after_ms(0) < 0) {
        throw std::invalid_argument("redkit: cron '" + pattern_ + "': never matches");
    }
}

REDKIT_DECL void cron_expression::parse_field(field f, std::string_view text) {
    static constexpr const char* names[] = {"second", "minute", "hour", "day of month", "month", "day of week"};
    static constexpr int lows[] = {0, 0, 0, 1, 1, 0};
    static constexpr int highs[] = {59, 59, 23, 31, 12, 7};
    static constexpr const char* months[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                             "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
    static constexpr const char* days[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
    const int lo = lows[f], hi = highs[f];
    const auto bad = [&](const std::string& why) {
        throw std::invalid_argument("redkit: cron '" + pattern_ + "': " + names[f] + " field '" + std::string(text) +
                                    "': " + why);
    };
    const auto value = [&](std::string_view v) -> int {
        if (v.empty()) bad("empty value");
        if (v.size() == 3 && (f == month || f == dow)) {
            std::string up;
            for (char c : v) up += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
            const auto* list = f == month ? months : days;
            const int n = f == month ? 12 : 7;
            for (int i = 0; i < n; ++i) {
                if (up == list[i]) return f == month ? i + 1 : i;
            }
        }
        int x = 0;
        for (char c : v) {
            if (c < '0' || c > '9')
                bad("'" + std::string(v) + "' is not a number" + (f == month || f == dow ? " or name" : ""));
            x = x * 10 + (c - '0');
            if (x > 1000) bad("'" + std::string(v) + "' is out of range");
        }
        if (x < lo || x > hi)
            bad(std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
        return x;
    };
    std::uint64_t bits = 0;
    bool any = false;
    std::string_view rest = text;
    if (rest.empty()) bad("empty");
    while (true) {
        const auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        int step = 1;
        const auto slash = item.find('/');
        if (slash != std::string_view::npos) {
            const std::string_view s = item.substr(slash + 1);
            if (s.empty() || s.size() > 4 || s.find_first_not_of("0123456789") != std::string_view::npos)
                bad("step '" + std::string(s) + "' is not a number");
            step = std::stoi(std::string(s));
            if (step < 1 || step > hi) bad("step " + std::to_string(step) + " is out of range");
            item = item.substr(0, slash);
        }
        int a = lo, b = hi;
        if (item == "*" || (item == "?" && (f == dom || f == dow))) {
            if (slash == std::string_view::npos) any = true;
            if (f == dow) b = 6;
        } else {
            const auto dash = item.find('-');
            if (dash != std::string_view::npos) {
                a = value(item.substr(0, dash));
                b = value(item.substr(dash + 1));
                if (b < a) bad("range " + std::string(item) + " runs backwards");
            } else {
                a = value(item);
                b = slash != std::string_view::npos ? (f == dow ? 6 : hi) : a;
            }
        }
        for (int v = a; v <= b; v += step) bits |= std::uint64_t{1} << v;
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
        if (rest.empty()) bad("trailing ','");
    }
    if (f == dow && (bits & (std::uint64_t{1} << 7))) bits = (bits | 1) & ~(std::uint64_t{1} << 7);  // 7 is Sunday
    bits_[f] = bits;
    if (f == dom) dom_any_ = any;
    if (f == dow) dow_any_ = any;
    if (f == hour) hour_any_ = any;
}

REDKIT_DECL bool cron_expression::day_matches(long long days) const noexcept {
    const auto c = detail::civil_from_days(days);
    const bool d = (bits_[dom] >> c.day) & 1;
    const bool w = (bits_[dow] >> detail::weekday_of_days(days)) & 1;
    if (dom_any_ || dow_any_) return d && w;  // one of them is '*': the other decides
    return d || w;
}

// The first local second >= `local` (seconds since the epoch in local wall time) whose fields match.
REDKIT_DECL long long cron_expression::next_local(long long local) const noexcept {
    const long long limit = local + 50LL * 366 * 86400;
    const auto has = [&](field f, long long v) { return (bits_[f] >> v) & 1; };
    while (local < limit) {
        long long days = detail::floor_div(local, 86400);
        long long sod = local - days * 86400;
        const auto c = detail::civil_from_days(days);
        if (!has(month, c.month)) {
            const int m = c.month == 12 ? 1 : c.month + 1;
            local = detail::days_from_civil(c.month == 12 ? c.year + 1 : c.year, m, 1) * 86400;
            continue;
        }
        if (!day_matches(days)) {
            local = (days + 1) * 86400;
            continue;
        }
        const long long h = sod / 3600, m = sod / 60 % 60, s = sod % 60;
        if (!has(hour, h)) {
            local = days * 86400 + (h + 1) * 3600;
            continue;
        }
        if (!has(minute, m)) {
            local = days * 86400 + h * 3600 + (m + 1) * 60;
            continue;
        }
        if (!has(second, s)) {
            ++local;
            continue;
        }
        return local;
    }
    return no_match;
}

REDKIT_DECL long long cron_expression::next_after_ms(long long ms) const {
    constexpr long long none = std::numeric_limits<long long>::max();
    const detail::time_zone& z = *zone_;
    // walk the zone's stretches of constant offset, searching each in its local time
    long long u = detail::floor_div(ms, 1000) + 1;  // the answer is a whole second after ms
    long long local = u + z.offset_at(u);
    if (!hour_any_) {
        // just after clocks went back, local times already passed once do not fire again
        const long long p = z.changes_around(u).first;
        if (p != std::numeric_limits<long long>::min() && z.offset_at(p - 1) > z.offset_at(p)) {
            local = std::max(local, p + z.offset_at(p - 1));
        }
    }
    for (int guard = 0; guard < 1000; ++guard) {
        const long long off = z.offset_at(u);
        const long long change = z.changes_around(u).second;
        const long long l = next_local(local);
        if (l == no_match) return -1;
        if (change == none || l - off < change) return (l - off) * 1000;
        const long long after = z.offset_at(change);
        if (after > off) {
            // clocks go forward: local times in [change + off, change + after) never happen;
            // a pattern naming hours fires at the change instead
            if (!hour_any_) {
                const long long skipped = next_local(change + off);
                if (skipped != no_match && skipped < change + after) return change * 1000;
            }
            local = change + after;
        } else {
            // clocks go back: local times in [change + after, change + off) happen again
            local = hour_any_ ? change + after : change + off;
        }
        u = change;
    }
    return -1;
}

REDKIT_DECL std::optional<std::chrono::system_clock::time_point> cron_expression::next_after(
    std::chrono::system_clock::time_point t) const {
    const long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    const long long n = next_after_ms(ms);
    if (n < 0) return std::nullopt;
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::milliseconds(n)));
}

}  // namespace v0
}  // namespace redkit
