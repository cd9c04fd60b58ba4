// SPDX-License-Identifier: MIT
// Key naming: build `user:123:profile` from parts, safely.
//
// Convention: parts joined by ':' — type, id, field — after an optional prefix for the app and
// environment ("shop:prod"). Every part is escaped, so untrusted input (an IP, a user id, an
// e-mail) can never forge a separator or a hash tag: '%', ':', '{', '}', space and control bytes
// become %XX (percent-encoding, reversible with unescape_key_part). Empty parts are rejected.
//
// Cluster: hash_tag(x) renders as "{x}"; keys that must meet in one script or transaction share
// a tag, so they hash to one slot. Redis hashes only the first {...} of a key, so a key may hold
// at most one tag and a prefix may hold none. key_slot(key) is the slot Redis Cluster puts a key
// in (CLUSTER KEYSLOT, computed here).
//
// SCAN: key_space::pattern builds a MATCH pattern where each part is escaped as above and then
// glob-escaped ('*', '?', '[', ']', '\' get a backslash), so "user:*" built from a hostile id
// cannot match other users' keys; redkit::wildcard stands for a literal '*'.
#pragma once

#include <redkit/detail/hash.hpp>
#include <redkit/detail/text.hpp>

#include <charconv>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace redkit {
inline namespace v0 {

/// A part rendered as a hash tag: {value}.
struct hash_tag_t {
    std::string_view value;  ///< the text between the braces (escaped as any part when rendered)
};
/// A key part rendered as the hash tag {value}: keys sharing it hash to one cluster slot.
inline hash_tag_t hash_tag(std::string_view value) noexcept { return hash_tag_t{value}; }

/// The Redis Cluster slot (0..16383) of a key: CRC16 of its hash tag -- the bytes between the
/// first '{' and the next '}', when there are any -- or else of the whole key, modulo 16384.
/// Keys of one multi-key command, script or transaction must share a slot on a cluster.
inline int key_slot(std::string_view key) noexcept { return detail::slot_of(key); }

/// In key_space::pattern, a '*' that matches anything.
struct wildcard_t {
    explicit constexpr wildcard_t() = default;
};
/// The wildcard_t tag: `keys.pattern("user", redkit::wildcard)` ends the pattern in '*'.
inline constexpr wildcard_t wildcard{};

/// Escapes one key part: '%', ':', '{', '}', space, DEL and control bytes become %XX.
inline std::string escape_key_part(std::string_view part) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(part.size());
    for (char ch : part) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '%' || c == ':' || c == '{' || c == '}' || c <= 0x20 || c == 0x7f) {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xF];
        } else {
            out += ch;
        }
    }
    return out;
}

/// Reverses escape_key_part. Throws std::invalid_argument on a malformed escape.
inline std::string unescape_key_part(std::string_view part) {
    std::string out;
    if (!detail::percent_decode_into(part, out)) {
        throw std::invalid_argument("redkit: key part: malformed escape in '" + std::string(part) + "'");
    }
    return out;
}

/// Backslash-escapes the glob metacharacters of SCAN MATCH / KEYS patterns: * ? [ ] \ .
inline std::string escape_glob(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

/// Keys under one prefix. Copyable, immutable, thread-safe.
///
/// @code
/// redkit::key_space keys("shop:prod");
/// keys.key("user", 42, "profile");             // "shop:prod:user:42:profile"
/// keys.key("rate_limit", client_ip);            // ip escaped: "shop:prod:rate_limit:%3A%3A1" for "::1"
/// keys.key("queue", redkit::hash_tag("mail"), "wait");   // "shop:prod:queue:{mail}:wait"
/// keys.pattern("user", 42, redkit::wildcard);  // "shop:prod:user:42:*"
/// @endcode
class key_space {
public:
    /// No prefix: keys are their parts alone.
    key_space() = default;

    /// A prefix like "shop:prod" (trusted text: ':' separates its parts). Throws
    /// std::invalid_argument for a prefix with '{' or '}' or an empty part.
    explicit key_space(std::string prefix) : prefix_(std::move(prefix)) {
        if (prefix_.find_first_of("{}") != std::string::npos) {
            throw std::invalid_argument("redkit: key prefix must not contain '{' or '}': '" + prefix_ + "'");
        }
        if (!prefix_.empty() &&
            (prefix_.front() == ':' || prefix_.back() == ':' || prefix_.find("::") != std::string::npos)) {
            throw std::invalid_argument("redkit: key prefix has an empty part: '" + prefix_ + "'");
        }
    }

    /// The prefix as given; every key starts with it and a ':' (empty: no prefix).
    const std::string& prefix() const noexcept { return prefix_; }

    /// A nested key space: key_space("shop").child("cache") has prefix "shop:cache"; the part
    /// is escaped.
    key_space child(std::string_view part) const {
        key_space k;
        k.prefix_ = prefix_;
        bool first = prefix_.empty();
        append(k.prefix_, part, 1, first, false);
        return k;
    }

    /// prefix:part1:part2:...  Parts are strings, integers or hash_tag(...). Throws
    /// std::invalid_argument naming an empty part or a second hash tag.
    template <class... Parts>
    std::string key(const Parts&... parts) const {
        static_assert(sizeof...(Parts) > 0, "redkit: a key needs at least one part");
        std::string out = prefix_;
        out.reserve(prefix_.size() + 16 * sizeof...(Parts));
        bool first = prefix_.empty();
        bool tagged = false;
        std::size_t index = 0;
        (append_part(out, parts, ++index, first, tagged, false), ...);
        return out;
    }

    /// A SCAN MATCH pattern: like key(), with every part (and the prefix) glob-escaped, and
    /// redkit::wildcard as '*'.
    template <class... Parts>
    std::string pattern(const Parts&... parts) const {
        std::string out = escape_glob(prefix_);
        bool first = prefix_.empty();
        bool tagged = false;
        std::size_t index = 0;
        (append_part(out, parts, ++index, first, tagged, true), ...);
        return out;
    }

private:
    static void separator(std::string& out, bool& first) {
        if (!first) out += ':';
        first = false;
    }

    static void append(std::string& out, std::string_view part, std::size_t index, bool& first, bool glob) {
        if (part.empty()) throw std::invalid_argument("redkit: key part " + std::to_string(index) + " is empty");
        separator(out, first);
        out += glob ? escape_glob(escape_key_part(part)) : escape_key_part(part);
    }

    template <class Part>
    static void append_part(std::string& out, const Part& part, std::size_t index, bool& first, bool& tagged,
                            bool glob) {
        using P = std::decay_t<Part>;
        if constexpr (std::is_same_v<P, hash_tag_t>) {
            if (tagged)
                throw std::invalid_argument("redkit: a key may hold only one hash tag (part " + std::to_string(index) +
                                            ")");
            if (part.value.empty())
                throw std::invalid_argument("redkit: hash tag (part " + std::to_string(index) + ") is empty");
            tagged = true;
            separator(out, first);
            out += '{';
            out += glob ? escape_glob(escape_key_part(part.value)) : escape_key_part(part.value);
            out += '}';
        } else if constexpr (std::is_same_v<P, wildcard_t>) {
            if (!glob) throw std::invalid_argument("redkit: wildcard is only for key_space::pattern");
            separator(out, first);
            out += '*';
        } else if constexpr (std::is_integral_v<P> && !std::is_same_v<P, bool> && !std::is_same_v<P, char>) {
            char buf[24];
            const auto r = std::to_chars(buf, buf + sizeof buf, part);
            separator(out, first);
            out.append(buf, static_cast<std::size_t>(r.ptr - buf));
        } else {
            static_assert(std::is_convertible_v<const Part&, std::string_view>,
                          "redkit: key parts are strings, integers, hash_tag() or wildcard");
            append(out, std::string_view(part), index, first, glob);
        }
    }

    std::string prefix_;
};

/// make_key("user", 42, "profile") == "user:42:profile" (no prefix; parts escaped).
template <class... Parts>
std::string make_key(const Parts&... parts) {
    return key_space{}.key(parts...);
}

}  // namespace v0
}  // namespace redkit
