// SPDX-License-Identifier: MIT
// Time zones and the civil calendar for cron schedules: out-of-line definitions (time_zone.hpp).
#pragma once

#include <redkit/queue/detail/time_zone.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL long long days_from_civil(long long y, int m, int d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const long long yoe = y - era * 400;                          // [0, 399]
    const long long mp = (m + 9) % 12;                            // March = 0
    const long long doy = (153 * mp + 2) / 5 + d - 1;             // [0, 365]
    const long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;  // [0, 146096]
    return era * 146097 + doe - 719468;
}

REDKIT_DECL civil_date civil_from_days(long long z) noexcept {
    z += 719468;
    const long long era = (z >= 0 ? z : z - 146096) / 146097;
    const long long doe = z - era * 146097;
    const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const long long mp = (5 * doy + 2) / 153;
    const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    return {yoe + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

REDKIT_DECL int days_in_month(long long y, int m) noexcept {
    static constexpr int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : n[m - 1];
}

REDKIT_DECL long long posix_tz_rule::local_seconds(const when& w, long long y) noexcept {
    long long days = 0;
    if (w.kind == 'M') {
        const long long first = days_from_civil(y, w.month, 1);
        const int wd = weekday_of_days(first);
        long long d = first + (w.weekday - wd + 7) % 7 + 7LL * (w.week - 1);
        const long long last = first + days_in_month(y, w.month) - 1;
        while (d > last) d -= 7;  // week 5: the last such weekday of the month
        days = d;
    } else if (w.kind == 'J') {
        const bool leap = days_in_month(y, 2) == 29;
        days = days_from_civil(y, 1, 1) + w.day - 1 + (leap && w.day >= 60 ? 1 : 0);
    } else {
        days = days_from_civil(y, 1, 1) + w.day;
    }
    return days * 86400 + w.time;
}

REDKIT_DECL long long posix_tz_rule::offset_at(long long utc) const noexcept {
    if (!has_dst) return std_offset;
    const long long y = civil_from_days(floor_div(utc + std_offset, 86400)).year;
    // the changes are given in the local time in force just before them
    const long long begins = local_seconds(start, y) - std_offset;
    const long long ends = local_seconds(end, y) - dst_offset;
    const bool dst = begins < ends ? (utc >= begins && utc < ends) : (utc < ends || utc >= begins);
    return dst ? dst_offset : std_offset;
}

REDKIT_DECL bool parse_posix_tz(std::string_view s, posix_tz_rule& out) {
    std::size_t i = 0;
    const auto name = [&]() -> bool {
        if (i < s.size() && s[i] == '<') {
            const auto close = s.find('>', i);
            if (close == std::string_view::npos) return false;
            i = close + 1;
            return true;
        }
        const std::size_t from = i;
        while (i < s.size() && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) ++i;
        return i - from >= 3;
    };
    const auto number = [&](long long& v) -> bool {
        const std::size_t from = i;
        v = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - from < 6) v = v * 10 + (s[i++] - '0');
        return i > from;
    };
    // [+-]hh[:mm[:ss]] in seconds
    const auto hms = [&](long long& v) -> bool {
        long long sign = 1;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) sign = s[i++] == '-' ? -1 : 1;
        long long h = 0, m = 0, sec = 0;
        if (!number(h)) return false;
        if (i < s.size() && s[i] == ':') {
            ++i;
            if (!number(m)) return false;
            if (i < s.size() && s[i] == ':') {
                ++i;
                if (!number(sec)) return false;
            }
        }
        v = sign * (h * 3600 + m * 60 + sec);
        return true;
    };
    const auto rule = [&](posix_tz_rule::when& w) -> bool {
        long long a = 0, b = 0, c = 0;
        if (i < s.size() && s[i] == 'M') {
            ++i;
            if (!number(a) || i >= s.size() || s[i++] != '.' || !number(b) || i >= s.size() || s[i++] != '.' ||
                !number(c))
                return false;
            if (a < 1 || a > 12 || b < 1 || b > 5 || c > 6) return false;
            w.kind = 'M';
            w.month = static_cast<int>(a);
            w.week = static_cast<int>(b);
            w.weekday = static_cast<int>(c);
        } else if (i < s.size() && s[i] == 'J') {
            ++i;
            if (!number(a) || a < 1 || a > 365) return false;
            w.kind = 'J';
            w.day = static_cast<int>(a);
        } else {
            if (!number(a) || a > 365) return false;
            w.kind = 'D';
            w.day = static_cast<int>(a);
        }
        w.time = 7200;
        if (i < s.size() && s[i] == '/') {
            ++i;
            if (!hms(w.time)) return false;
        }
        return true;
    };
    long long off = 0;
    if (!name() || !hms(off)) return false;
    out = posix_tz_rule{};
    out.std_offset = -off;  // POSIX offsets count west of UTC
    if (i == s.size()) return true;
    if (!name()) return false;
    out.has_dst = true;
    out.dst_offset = out.std_offset + 3600;
    if (i < s.size() && s[i] != ',') {
        if (!hms(off)) return false;
        out.dst_offset = -off;
    }
    if (i >= s.size() || s[i++] != ',' || !rule(out.start) || i >= s.size() || s[i++] != ',' || !rule(out.end))
        return false;
    return i == s.size();
}

REDKIT_DECL long long time_zone::offset_at(long long utc) const noexcept {
    if (transitions_.empty() || utc < transitions_.front()) {
        return transitions_.empty() && has_rule_ ? rule_.offset_at(utc) : initial_offset_;
    }
    if (utc >= transitions_.back() && has_rule_) return rule_.offset_at(utc);
    const auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc);
    return offsets_[static_cast<std::size_t>(it - transitions_.begin()) - 1];
}

REDKIT_DECL std::pair<long long, long long> time_zone::changes_around(long long utc) const {
    long long prev = std::numeric_limits<long long>::min(), next = std::numeric_limits<long long>::max();
    const auto consider = [&](long long c) {
        if (offset_at(c) == offset_at(c - 1)) return;  // not a change of offset (only of name)
        if (c <= utc) prev = std::max(prev, c);
        if (c > utc) next = std::min(next, c);
    };
    const auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc);
    // table transitions: walk back and forward past entries that change nothing
    for (auto b = it; b != transitions_.begin();) {
        --b;
        consider(*b);
        if (prev == *b) break;
    }
    for (auto f = it; f != transitions_.end(); ++f) {
        consider(*f);
        if (next == *f) break;
    }
    if (has_rule_ && rule_.has_dst && (transitions_.empty() || utc + 2 * 366 * 86400LL >= transitions_.back())) {
        const long long y = civil_from_days(floor_div(utc, 86400)).year;
        for (long long yy = y - 1; yy <= y + 1; ++yy) {
            const long long b = posix_tz_rule::local_seconds(rule_.start, yy) - rule_.std_offset;
            const long long e = posix_tz_rule::local_seconds(rule_.end, yy) - rule_.dst_offset;
            for (const long long c : {b, e}) {
                if (transitions_.empty() || c > transitions_.back()) consider(c);
            }
        }
    }
    return {prev, next};
}

REDKIT_DECL std::shared_ptr<const time_zone> time_zone::locate(std::string_view name) {
    static std::mutex mutex;
    static std::unordered_map<std::string, std::shared_ptr<const time_zone>> cache;
    const std::string key(name.empty() ? std::string_view("UTC") : name);
    std::lock_guard<std::mutex> lock(mutex);
    auto& slot = cache[key];
    if (!slot) {
        try {
            slot = std::make_shared<const time_zone>(load(key));
        } catch (...) {
            cache.erase(key);
            throw;
        }
    }
    return slot;
}

REDKIT_DECL time_zone time_zone::from_tzif(std::string name, const std::string& bytes) {
    time_zone z;
    z.name_ = std::move(name);
    std::size_t pos = 0;
    const auto fail = [&]() -> time_zone {
        throw std::invalid_argument("redkit: time zone " + z.name_ + ": not a valid TZif file");
    };
    const auto be = [&](std::size_t at, int n) -> long long {
        unsigned long long v = 0;
        for (int k = 0; k < n; ++k) v = (v << 8) | static_cast<unsigned char>(bytes[at + static_cast<std::size_t>(k)]);
        if (n == 4) return static_cast<long long>(static_cast<std::int32_t>(static_cast<std::uint32_t>(v)));
        return static_cast<long long>(v);
    };
    struct header {
        long long isut, isstd, leap, time, type, chars;
    };
    const auto read_header = [&](header& h) -> bool {
        if (bytes.size() < pos + 44 || bytes.compare(pos, 4, "TZif") != 0) return false;
        h = {be(pos + 20, 4), be(pos + 24, 4), be(pos + 28, 4), be(pos + 32, 4), be(pos + 36, 4), be(pos + 40, 4)};
        pos += 44;
        return h.isut >= 0 && h.isstd >= 0 && h.leap >= 0 && h.time >= 0 && h.type > 0 && h.chars >= 0 && h.type <= 256;
    };
    header h{};
    if (!read_header(h)) return fail();
    const char version = bytes[4];
    int width = 4;
    if (version >= '2') {
        // skip the 32-bit block: the 64-bit one follows with its own header
        pos += static_cast<std::size_t>(h.time * 5 + h.type * 6 + h.chars + h.leap * 8 + h.isstd + h.isut);
        if (!read_header(h)) return fail();
        width = 8;
    }
    const auto w = static_cast<std::size_t>(width);
    const std::size_t need = static_cast<std::size_t>(h.time) * (w + 1) + static_cast<std::size_t>(h.type) * 6 +
                             static_cast<std::size_t>(h.chars) + static_cast<std::size_t>(h.leap) * (w + 4) +
                             static_cast<std::size_t>(h.isstd + h.isut);
    if (bytes.size() < pos + need) return fail();
    const std::size_t times_at = pos;
    const std::size_t index_at = times_at + static_cast<std::size_t>(h.time) * w;
    const std::size_t types_at = index_at + static_cast<std::size_t>(h.time);
    std::vector<long long> type_offset(static_cast<std::size_t>(h.type));
    std::vector<bool> type_dst(static_cast<std::size_t>(h.type));
    for (std::size_t t = 0; t < type_offset.size(); ++t) {
        type_offset[t] = be(types_at + t * 6, 4);
        type_dst[t] = bytes[types_at + t * 6 + 4] != 0;
    }
    for (std::size_t k = 0; k < static_cast<std::size_t>(h.time); ++k) {
        const auto idx = static_cast<unsigned char>(bytes[index_at + k]);
        if (idx >= type_offset.size()) return fail();
        z.transitions_.push_back(be(times_at + k * w, width));
        z.offsets_.push_back(type_offset[idx]);
    }
    if (!std::is_sorted(z.transitions_.begin(), z.transitions_.end())) return fail();
    // before the first transition: the first standard-time type (RFC 8536 says type 0)
    z.initial_offset_ = type_offset[0];
    pos += need;
    if (width == 8 && pos < bytes.size() && bytes[pos] == '\n') {
        const auto end = bytes.find('\n', pos + 1);
        if (end != std::string::npos && end > pos + 1) {
            z.has_rule_ = parse_posix_tz(std::string_view(bytes).substr(pos + 1, end - pos - 1), z.rule_);
        }
    }
    return z;
}

REDKIT_DECL bool time_zone::valid_name(std::string_view n) noexcept {
    if (n.empty() || n.size() > 255 || n.front() == '/' || n.find("..") != std::string_view::npos) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' || c == '_' ||
               c == '-' || c == '+';
    });
}

REDKIT_DECL time_zone time_zone::load(const std::string& name) {
    if (name == "UTC" || name == "Etc/UTC" || name == "GMT" || name == "Z") {
        time_zone z;
        z.name_ = name;
        return z;
    }
    if (!valid_name(name)) throw std::invalid_argument("redkit: time zone '" + name + "': not a zone name");
    const char* dir = std::getenv("TZDIR");
    const std::string path = std::string(dir && *dir ? dir : "/usr/share/zoneinfo") + "/" + name;
    std::string bytes;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        throw std::invalid_argument("redkit: time zone '" + name + "': unknown (no " + path +
                                    "; is the tzdata package installed?)");
    }
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0 && bytes.size() <= (1u << 20);)
        bytes.append(buf, n);
    std::fclose(f);  // a directory reads as nothing (EISDIR) and fails below as not TZif
    if (bytes.size() > (1u << 20)) throw std::invalid_argument("redkit: time zone '" + name + "': file too large");
    return from_tzif(name, bytes);
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
