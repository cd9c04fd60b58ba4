// SPDX-License-Identifier: MIT
// redkit::cron_expression: a cron pattern in a named time zone, and the next time it matches.
// Used by queue<T>::upsert_scheduler; usable alone. No Redis involved.
//
// Syntax: five fields "minute hour day-of-month month day-of-week", or six with seconds first.
// Each field: '*', a number, a range a-b, a list a,b,c, steps */n a-b/n a/n (from a to the end);
// months JAN-DEC and weekdays SUN-SAT by name (any case), 0 or 7 for Sunday, '?' as '*' in the
// day fields. Macros: @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly.
// As in Vixie cron, when both day fields are restricted a day matches if either matches.
//
// Daylight saving time, in the zone's local time:
// - a local time skipped by a change (02:30 when clocks go from 02:00 to 03:00) fires at the
//   change itself when the hour field names hours, and not at all when it is '*' (that hour does
//   not exist that day);
// - a local time that occurs twice (clocks go back) fires once, at its first occurrence, when
//   the hour field names hours, and at both when it is '*' (every-minute style patterns keep
//   their pace in real time).
#pragma once

#include <redkit/config.hpp>
#include <redkit/queue/detail/time_zone.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {

/// A parsed cron pattern bound to a time zone. Immutable; cheap to copy; thread-safe.
///
/// @code
/// redkit::cron_expression weekday_mornings("0 9 * * MON-FRI", "Europe/Berlin");
/// auto next = weekday_mornings.next_after(std::chrono::system_clock::now());
/// @endcode
class cron_expression {
public:
    /// Parses `pattern` for the IANA zone `time_zone` ("" or "UTC": UTC), read from the system's
    /// zone database. Throws std::invalid_argument naming the field at fault, an unknown zone, or
    /// a pattern that never matches (such as "0 0 30 2 *").
    REDKIT_DECL explicit cron_expression(std::string_view pattern, std::string_view time_zone = "UTC");

    /// The first time strictly after `t` that matches (whole seconds), or nullopt when there is
    /// none within 50 years.
    REDKIT_DECL std::optional<std::chrono::system_clock::time_point> next_after(
        std::chrono::system_clock::time_point t) const;

    /// The same in milliseconds since the epoch; -1 when none.
    REDKIT_DECL long long next_after_ms(long long ms) const;

    /// The pattern as given to the constructor.
    const std::string& pattern() const noexcept { return pattern_; }
    /// The zone's name as given ("UTC" when it was given empty).
    const std::string& time_zone() const noexcept { return zone_->name(); }

private:
    enum field { second, minute, hour, dom, month, dow };

    REDKIT_DECL void parse_field(field f, std::string_view text);
    REDKIT_DECL bool day_matches(long long days) const noexcept;
    // the first matching local second >= local, or no_match
    static constexpr long long no_match = std::numeric_limits<long long>::min();
    REDKIT_DECL long long next_local(long long local) const noexcept;

    std::string pattern_;
    std::array<std::uint64_t, 6> bits_{};
    bool dom_any_ = false, dow_any_ = false, hour_any_ = false;
    std::shared_ptr<const detail::time_zone> zone_;
};

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/queue/impl/cron.ipp>
#endif
