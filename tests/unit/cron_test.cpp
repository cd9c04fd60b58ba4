// cron_expression: a table of patterns, zones and their next times (daylight-saving changes in
// named zones included, the zone database from the system), then the errors.
#include <redkit/queue/cron.hpp>

#include <gtest/gtest.h>

#include <ctime>
#include <random>
#include <stdexcept>
#include <string>

namespace {

// "2026-03-29T01:00:00Z" -> milliseconds since the epoch, through the C library (not the code under test)
long long utc_ms(const std::string& iso) {
    std::tm tm{};
    if (std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                    &tm.tm_sec) != 6) {
        throw std::invalid_argument("bad test time " + iso);
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<long long>(timegm(&tm)) * 1000;
}

std::string iso(long long ms) {
    if (ms < 0) return "none";
    const std::time_t s = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

struct cron_case {
    const char* pattern;
    const char* zone;
    const char* after;
    const char* expected;
    const char* why;
};

const cron_case cases[] = {
    {"* * * * *", "UTC", "2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z", "every minute"},
    {"*/15 * * * *", "UTC", "2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "strictly after a match"},
    {"*/15 * * * *", "UTC", "2026-01-01T00:14:59Z", "2026-01-01T00:15:00Z", "the next second"},
    {"0 0 1 1 *", "UTC", "2026-06-15T00:00:00Z", "2027-01-01T00:00:00Z", "yearly"},
    {"@hourly", "", "2026-06-15T10:59:59Z", "2026-06-15T11:00:00Z", "macro, empty zone is UTC"},
    {"0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z", "leap day"},
    {"0 12 13 * FRI", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T12:00:00Z", "both day fields: either matches"},
    {"0 12 13 * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-13T12:00:00Z", "day of month alone"},
    {"0 0 * * 7", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", "7 is Sunday"},
    {"0 0 * * sun", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", "names in any case"},
    {"0 0 1 jan-mar/2 ?", "UTC", "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", "month range with a step"},
    {"5,10-12 3 * * *", "UTC", "2026-01-01T03:10:30Z", "2026-01-01T03:11:00Z", "list and range"},
    {"*/10 * * * * *", "UTC", "2026-01-01T00:00:05Z", "2026-01-01T00:00:10Z", "six fields: seconds"},
    {"0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z", "2026-01-01T03:30:00Z", "half-hour offset"},
    {"0 9 * * MON-FRI", "Europe/Berlin", "2026-03-27T09:00:00Z", "2026-03-30T07:00:00Z", "weekend, then summer time"},
    // Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC)
    {"30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "skipped time fires at the change"},
    {"30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "and the day after as usual"},
    {"*/30 * * * *", "Europe/Berlin", "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "'*' hours skip the lost hour"},
    // Berlin, 25 October 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:00-03:00 happens twice
    {"30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z", "repeated time: first occurrence"},
    {"30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "not again at the second"},
    {"30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", "2026-10-26T01:30:00Z", "searching from the second"},
    {"0,30 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "'*' hours: first occurrence"},
    {"0,30 * * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "'*' hours: and the second"},
    // New York, 8 March 2026 02:00 EST -> 03:00 EDT (07:00 UTC); 1 November 2026 02:00 EDT -> 01:00 EST
    {"0 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z", "US spring change"},
    {"0 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:00:00Z", "US autumn: first 01:00"},
    {"0 1 * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-02T06:00:00Z", "US autumn: then standard time"},
    // Sydney (southern hemisphere): summer time ends 5 April 2026, starts 4 October 2026
    {"0 9 * * *", "Australia/Sydney", "2026-04-04T12:00:00Z", "2026-04-04T23:00:00Z", "after summer time ends"},
    {"30 2 * * *", "Australia/Sydney", "2026-10-03T00:00:00Z", "2026-10-03T16:00:00Z", "southern spring change"},
    // past the zone file's table (fat files end in 2037): the POSIX rule at its end
    {"0 12 * * *", "Europe/Berlin", "2045-07-01T00:00:00Z", "2045-07-01T10:00:00Z", "rule: summer 2045"},
    {"0 12 * * *", "Europe/Berlin", "2045-12-01T00:00:00Z", "2045-12-01T11:00:00Z", "rule: winter 2045"},
};

TEST(Cron, TableOfNextTimes) {
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.pattern) + " in '" + c.zone + "' after " + c.after + ": " + c.why);
        const redkit::cron_expression e(c.pattern, c.zone);
        EXPECT_EQ(iso(e.next_after_ms(utc_ms(c.after))), c.expected);
    }
}

TEST(Cron, TimePointFormMatchesMilliseconds) {
    const redkit::cron_expression e("0 9 * * *", "Europe/Berlin");
    const long long from = utc_ms("2026-07-01T12:00:00Z") + 123;
    const auto tp = std::chrono::system_clock::time_point(std::chrono::milliseconds(from));
    const auto next = e.next_after(tp);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(next->time_since_epoch()).count(),
              utc_ms("2026-07-02T07:00:00Z"));
    EXPECT_EQ(e.time_zone(), "Europe/Berlin");
    EXPECT_EQ(e.pattern(), "0 9 * * *");
}

// Over random instants of 20 years in zones with and without summer time: the next hourly tick
// is at most an hour away (two over a skipped hour), on a whole local hour, and strictly later.
TEST(Cron, HourlyTicksStayOnTheHourAcrossYearsOfChanges) {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<long long> when(utc_ms("2026-01-01T00:00:00Z"), utc_ms("2046-01-01T00:00:00Z"));
    for (const char* zone : {"Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"}) {
        SCOPED_TRACE(zone);
        const redkit::cron_expression hourly("0 * * * *", zone);
        const auto z = redkit::detail::time_zone::locate(zone);
        for (int i = 0; i < 2000; ++i) {
            const long long t = when(rng);
            const long long n = hourly.next_after_ms(t);
            ASSERT_GT(n, t);
            ASSERT_LE(n - t, 3600 * 1000LL);
            const long long local = n / 1000 + z->offset_at(n / 1000);
            ASSERT_EQ(local % 3600, 0) << iso(n);
        }
    }
}

// The POSIX rule at the end of a zone file agrees with the file's own table where both exist.
TEST(Cron, ZoneRuleAgreesWithTheTable) {
    const auto z = redkit::detail::time_zone::locate("Europe/Berlin");
    redkit::detail::posix_tz_rule rule;
    ASSERT_TRUE(redkit::detail::parse_posix_tz("CET-1CEST,M3.5.0,M10.5.0/3", rule));
    for (long long t = utc_ms("2027-01-01T00:00:00Z") / 1000; t < utc_ms("2036-01-01T00:00:00Z") / 1000; t += 1800) {
        ASSERT_EQ(rule.offset_at(t), z->offset_at(t)) << iso(t * 1000);
    }
    redkit::detail::posix_tz_rule bad;
    EXPECT_FALSE(redkit::detail::parse_posix_tz("CET-1CEST,M13.5.0,M10.5.0", bad));
    EXPECT_FALSE(redkit::detail::parse_posix_tz("", bad));
}

TEST(Cron, InvalidPatternsNameTheFieldAtFault) {
    const struct {
        const char* pattern;
        const char* says;
    } bad[] = {
        {"", "expected 5 fields"},
        {"* * * *", "expected 5 fields"},
        {"* * * * * * *", "expected 5 fields"},
        {"60 * * * *", "minute field"},
        {"* 24 * * *", "hour field"},
        {"* * 0 * *", "day of month field"},
        {"* * * 13 *", "month field"},
        {"* * * * 8", "day of week field"},
        {"5-1 * * * *", "runs backwards"},
        {"*/0 * * * *", "step"},
        {"a * * * *", "not a number"},
        {"* * * FOO *", "not a number or name"},
        {"1,,2 * * * *", "empty value"},
        {"1, * * * *", "trailing ','"},
        {"0 0 30 2 *", "never matches"},
        {"0 0 31 4,6,9,11 *", "never matches"},
        {"@fortnightly", "unknown macro"},
        {"99999999999 * * * *", "out of range"},
    };
    for (const auto& b : bad) {
        SCOPED_TRACE(b.pattern);
        try {
            redkit::cron_expression e(b.pattern);
            ADD_FAILURE() << "accepted";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(b.says), std::string::npos) << e.what();
        }
    }
}

TEST(Cron, UnknownOrHostileZonesAreRefused) {
    for (const char* zone :
         {"Mars/Olympus_Mons", "../../etc/passwd", "/etc/passwd", "Europe/Berlin\n", "Europe/../UTC"}) {
        SCOPED_TRACE(zone);
        EXPECT_THROW(redkit::cron_expression("0 9 * * *", zone), std::invalid_argument);
    }
    // a file that is not TZif (a directory name, or bytes that are not a zone)
    EXPECT_THROW(redkit::cron_expression("0 9 * * *", "Europe"), std::invalid_argument);
    EXPECT_THROW(redkit::detail::time_zone::from_tzif("x", "TZif2 truncated"), std::invalid_argument);
    EXPECT_THROW(redkit::detail::time_zone::from_tzif("x", std::string(100, 'x')), std::invalid_argument);
}

}  // namespace
