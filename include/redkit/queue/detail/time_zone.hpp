// SPDX-License-Identifier: MIT
// Time zones for cron schedules: the UTC offset of an IANA zone at any instant, read from the
// system's zone database (TZif files under $TZDIR or /usr/share/zoneinfo, RFC 8536), with the
// POSIX TZ rule at the end of the file for instants past its last transition. Also the civil
// calendar arithmetic the cron search needs. C++17 has no time zones, and localtime_r through
// setenv("TZ") is not thread-safe, hence this small reader.
#pragma once

#include <redkit/config.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

// ---- civil calendar (proleptic Gregorian), days counted from 1970-01-01 ----

struct civil_date {
    long long year;
    int month;  // 1..12
    int day;    // 1..31
};

REDKIT_DECL long long days_from_civil(long long y, int m, int d) noexcept;

REDKIT_DECL civil_date civil_from_days(long long z) noexcept;

/// 0 = Sunday.
inline int weekday_of_days(long long z) noexcept { return static_cast<int>(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6); }

REDKIT_DECL int days_in_month(long long y, int m) noexcept;

inline long long floor_div(long long a, long long b) noexcept { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// ---- time zones ----

/// A POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3"): standard offset, and optionally a DST offset
/// with the local times it starts and ends each year. Offsets are seconds east of UTC.
struct posix_tz_rule {
    struct when {
        char kind = 'M';  // 'M' month.week.weekday, 'J' Julian day 1..365 (no Feb 29), 'D' day 0..365
        int month = 0, week = 0, weekday = 0, day = 0;
        long long time = 7200;  // local seconds after midnight (may be negative or past 24 h)
    };
    long long std_offset = 0;
    bool has_dst = false;
    long long dst_offset = 0;
    when start, end;

    // The local midnight-relative start of `w` in year y, as days since the epoch * 86400 + time.
    REDKIT_DECL static long long local_seconds(const when& w, long long y) noexcept;

    REDKIT_DECL long long offset_at(long long utc) const noexcept;
};

/// Parses a POSIX TZ string; false when it is not one this reader understands.
REDKIT_DECL bool parse_posix_tz(std::string_view s, posix_tz_rule& out);

/// A zone's offsets over time. UTC when default-constructed.
class time_zone {
public:
    time_zone() = default;

    const std::string& name() const noexcept { return name_; }

    /// Seconds east of UTC in force at the UTC instant `utc` (seconds since the epoch).
    REDKIT_DECL long long offset_at(long long utc) const noexcept;

    /// The offset changes nearest `utc`: the last one at or before it and the first one after it
    /// (LLONG_MIN / LLONG_MAX when none). A change is an instant where offset_at differs from the
    /// second before.
    REDKIT_DECL std::pair<long long, long long> changes_around(long long utc) const;

    /// The zone named `name` ("Europe/Berlin"; "UTC" and "" need no file). Zones are read once
    /// per process and shared. Throws std::invalid_argument for a name that is not a zone.
    REDKIT_DECL static std::shared_ptr<const time_zone> locate(std::string_view name);

    /// Parses TZif bytes (versions 1 to 4). Throws std::invalid_argument when malformed.
    REDKIT_DECL static time_zone from_tzif(std::string name, const std::string& bytes);

private:
    REDKIT_DECL static bool valid_name(std::string_view n) noexcept;

    REDKIT_DECL static time_zone load(const std::string& name);

    std::string name_ = "UTC";
    std::vector<long long> transitions_;  // UTC seconds, ascending
    std::vector<long long> offsets_;      // in force from the matching transition on
    long long initial_offset_ = 0;
    bool has_rule_ = false;
    posix_tz_rule rule_;
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/queue/detail/impl/time_zone.ipp>
#endif
