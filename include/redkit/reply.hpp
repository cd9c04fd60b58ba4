// SPDX-License-Identifier: MIT
// Replies: redkit::reply_view (a non-owning view of any reply, as parsed off the wire or owned),
// redkit::reply (an owning tree of any reply), and redkit::reply_traits<T>, the rules that turn
// a reply into the type asked of client::command<T>(), connection::eval<T>() or reply::as<T>().
//
// Conversion rules (a reply of any other shape throws redkit::error with errc::type_mismatch; an
// error reply throws redkit::server_error, except when converting to redkit::reply itself):
//   std::string            bulk string, status, verbatim string, big number, double (its text)
//   std::optional<T>       nil -> std::nullopt, anything else -> T
//   long long / integers   integer reply, or a bulk string holding a whole decimal number
//   double / float         double reply, integer, or a bulk string holding a number (inf allowed)
//   bool                   integer (non-zero), status OK -> true, nil -> false, RESP3 boolean
//   std::vector<T>         array / set / push (each element converted)
//   std::pair<A, B>        a two-element array
//   std::unordered_map<K,V> / std::map<K,V>   a flat [k1, v1, k2, v2...] array or a RESP3 map
//   redkit::reply          anything, error replies included
// Specialise reply_traits<T> (static T convert(reply_view)) to read replies into your own types.
#pragma once

#include <redkit/config.hpp>
#include <redkit/core/io/raw.hpp>
#include <redkit/error.hpp>
#include <redkit/reply_type.hpp>

#include <algorithm>
#include <charconv>
#if !defined(__cpp_lib_to_chars) || __cpp_lib_to_chars < 201611L  // no floating-point from_chars
#include <locale>
#include <sstream>
#endif
#include <cstddef>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

class reply;
class reply_view;

/// How a reply becomes T. Specialise it for your own types: `static T convert(reply_view v)`,
/// throwing through v.mismatch() or v.invalid() on a reply it cannot take (error replies never
/// reach it unless T is redkit::reply).
template <class T, class = void>
struct reply_traits;  // specialised below; a T without a specialisation does not compile

namespace detail {

/// Where a reply came from, for error messages: "redkit: GET user:42: ...".
struct origin {
    std::string_view command;
    std::string_view key;

    std::string prefix() const {
        std::string s = "redkit: ";
        if (command.empty()) {
            s += "reply";
        } else {
            s.append(command.data(), command.size());
            if (!key.empty()) {
                s += ' ';
                s.append(key.data(), std::min<std::size_t>(key.size(), 200));
            }
        }
        s += ": ";
        return s;
    }
};

inline bool is_array_like(reply_type t) noexcept {
    return t == reply_type::array || t == reply_type::set || t == reply_type::push;
}

/// The one NOSCRIPT test: an error reply whose first word is NOSCRIPT.
inline bool is_noscript(std::string_view error_text) noexcept {
    return error_text.substr(0, 8) == "NOSCRIPT" && (error_text.size() == 8 || error_text[8] == ' ');
}

struct view_access;

}  // namespace detail

/// A non-owning view of a reply: over the tree the transport parsed (no copy on hot paths) or
/// over a redkit::reply. Valid while what it views lives (inside a callback, or the reply).
class reply_view {
public:
    /// A view of an owning reply.
    reply_view(const reply& r) noexcept;  // NOLINT(google-explicit-constructor): a view of it

    /// The kind of reply viewed.
    reply_type type() const noexcept;
    /// Whether it is nil (a RESP2 null bulk string or array, RESP3 null).
    bool is_nil() const noexcept { return type() == reply_type::nil; }
    /// Whether it is an error reply (str() holds its text).
    bool is_error() const noexcept { return type() == reply_type::error; }
    /// Holds elements: array, set, push or map.
    bool is_array() const noexcept { return holds_elements(type()); }

    /// Text of a string, status, error, verbatim, big number or double reply (empty otherwise).
    std::string_view str() const noexcept;
    /// Value of an integer reply, 1 or 0 for a RESP3 boolean; 0 for other kinds.
    long long integer() const noexcept;
    /// Value of a RESP3 double reply; 0 for other kinds.
    double real() const noexcept;
    /// Elements (a map's keys and values alternate); 0 for scalars.
    std::size_t size() const noexcept;
    /// Element i (unchecked: i < size()).
    reply_view operator[](std::size_t i) const noexcept;

    /// Converts with reply_traits<T>; an error reply throws server_error (unless T is reply).
    template <class T>
    T as() const;

    /// Throws: server_error for an error reply, else error(type_mismatch) "expected <wanted>
    /// reply, got <type>", naming the command and key the reply answers.
    [[noreturn]] REDKIT_DECL void mismatch(std::string_view wanted) const;
    /// Throws error(type_mismatch) with `what` after the command and key.
    [[noreturn]] REDKIT_DECL void invalid(std::string_view what) const;

private:
    friend struct detail::view_access;
    reply_view(const detail::raw_node* raw, const reply* owned, const detail::origin* from) noexcept
        : raw_(raw), owned_(owned), from_(from) {}
    std::string prefix() const { return from_ ? from_->prefix() : detail::origin{}.prefix(); }

    const detail::raw_node* raw_ = nullptr;
    const reply* owned_ = nullptr;
    const detail::origin* from_ = nullptr;
};

/// An owning copy of any reply: type, text, integer, double and child elements. Error replies are
/// values here (type() == reply_type::error); as<T>() turns them into a server_error.
class reply {
public:
    reply() = default;  ///< a nil reply

    /// Deep-copies what a view shows.
    REDKIT_DECL explicit reply(reply_view v);

    /// The kind of reply.
    reply_type type() const noexcept { return type_; }
    /// Whether it is nil (a RESP2 null bulk string or array, RESP3 null).
    bool is_nil() const noexcept { return type_ == reply_type::nil; }
    /// Whether it is an error reply (text() holds its text).
    bool is_error() const noexcept { return type_ == reply_type::error; }
    /// Holds elements: array, set, push or map.
    bool is_array() const noexcept { return holds_elements(type_); }

    /// Text of a string, status, error, verbatim, big number or double reply.
    const std::string& text() const noexcept { return text_; }
    /// Value of an integer reply, 1 or 0 for a RESP3 boolean; 0 for other kinds.
    long long integer() const noexcept { return integer_; }
    /// Value of a RESP3 double reply; 0 for other kinds.
    double real() const noexcept { return real_; }
    /// The child replies (a map's keys and values alternate); empty for scalars.
    const std::vector<reply>& elements() const noexcept { return elements_; }
    /// Number of child replies; 0 for scalars.
    std::size_t size() const noexcept { return elements_.size(); }
    /// Child reply i; throws std::out_of_range when i >= size().
    const reply& operator[](std::size_t i) const { return elements_.at(i); }

    /// Converts with the same rules as client::command<T>. Throws server_error for an error
    /// reply and error(type_mismatch) for a reply of another shape.
    template <class T>
    T as() const {
        return reply_view(*this).as<T>();
    }

private:
    reply_type type_ = reply_type::nil;
    long long integer_ = 0;
    double real_ = 0;
    std::string text_;
    std::vector<reply> elements_;
};

namespace detail {

/// Reads a whole number as Redis writes one ("3.25", "-1e-05", "inf", "-inf", "nan"), the same in
/// every C locale; false for anything else (empty, spaces, hexadecimal, bytes after the number).
inline bool parse_double(std::string_view s, double& out) {
#if defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && r.ec == std::errc{} && r.ptr == s.data() + s.size();
#else
    if (s.empty() || s.find_first_not_of("+-.0123456789eEinfatyINFATY") != std::string_view::npos) return false;
    std::istringstream in{std::string(s)};
    in.imbue(std::locale::classic());
    in >> out;
    return !in.fail() && in.peek() == std::char_traits<char>::eof();
#endif
}

/// What the core uses to make views: of a parsed tree, labelled with its command and key.
struct view_access {
    static reply_view of(const raw_node* r, const origin& from) noexcept { return reply_view(r, nullptr, &from); }
    static reply_view of(const reply& r, const origin& from) noexcept { return reply_view(nullptr, &r, &from); }
};

[[noreturn]] inline void throw_server_error(std::string_view text, const origin& from) {
    throw server_error(std::string(text), from.prefix() + std::string(text));
}

/// T from a parsed reply: server errors raised first (unless T is reply), then reply_traits<T>.
/// void accepts anything but an error.
template <class T>
T convert_reply(const raw_node* r, const origin& from) {
    if constexpr (std::is_void_v<T>) {
        if (raw_is_error(r)) throw_server_error(raw_str(r), from);
    } else {
        return view_access::of(r, from).template as<T>();
    }
}

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class Map>
Map convert_map(reply_view v) {
    if (!holds_elements(v.type()) || v.size() % 2 != 0) v.mismatch("key/value array");
    Map out;
    for (std::size_t i = 0; i + 1 < v.size(); i += 2) {
        out.insert_or_assign(reply_traits<typename Map::key_type>::convert(v[i]),
                             reply_traits<typename Map::mapped_type>::convert(v[i + 1]));
    }
    return out;
}

}  // namespace detail

/// std::string from a bulk string, status, verbatim string, big number or double (its text).
template <>
struct reply_traits<std::string> {
    /// The reply's text; any other kind throws error(type_mismatch).
    static std::string convert(reply_view v) {
        switch (v.type()) {
            case reply_type::string:
            case reply_type::status:
            case reply_type::verbatim:
            case reply_type::bignum:
            case reply_type::real: return std::string(v.str());
            default: v.mismatch("string");
        }
    }
};

/// Any integer type but bool from an integer reply, or a bulk string or status holding a decimal
/// integer; a value outside Int's range throws error(type_mismatch).
template <class Int>
struct reply_traits<Int, std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>>> {
    /// The integer; throws error(type_mismatch) for another kind, bad text or a value out of range.
    static Int convert(reply_view v) {
        if constexpr (std::is_unsigned_v<Int>) {
            // read unsigned text as unsigned: 18446744073709551615 fits an unsigned long long,
            // which a detour through long long would refuse
            if (v.type() == reply_type::string || v.type() == reply_type::status) {
                unsigned long long u = 0;
                const std::string_view s = v.str();
                const auto r = std::from_chars(s.data(), s.data() + s.size(), u);
                if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size()) {
                    v.invalid("expected an unsigned integer, got '" + std::string(s.substr(0, 64)) + "'");
                }
                if (u > static_cast<unsigned long long>(std::numeric_limits<Int>::max())) {
                    v.invalid("integer " + std::to_string(u) + " out of range");
                }
                return static_cast<Int>(u);
            }
        }
        long long n = 0;
        if (v.type() == reply_type::integer) {
            n = v.integer();
        } else if (v.type() == reply_type::string || v.type() == reply_type::status) {
            const std::string_view s = v.str();
            const auto r = std::from_chars(s.data(), s.data() + s.size(), n);
            if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size()) {
                v.invalid("expected an integer, got '" + std::string(s.substr(0, 64)) + "'");
            }
        } else {
            v.mismatch("integer");
        }
        if constexpr (!std::is_same_v<Int, long long>) {
            if (n < static_cast<long long>(std::numeric_limits<Int>::min()) ||
                (n > 0 && static_cast<unsigned long long>(n) >
                              static_cast<unsigned long long>(std::numeric_limits<Int>::max()))) {
                v.invalid("integer " + std::to_string(n) + " out of range");
            }
        }
        return static_cast<Int>(n);
    }
};

/// float, double or long double from a RESP3 double, an integer, or a bulk string or status
/// holding a number as Redis writes one ("3.25", "-1e-05", "inf", "-inf", "nan"), read the same
/// whatever the process's C locale (a decimal comma locale included).
template <class Real>
struct reply_traits<Real, std::enable_if_t<std::is_floating_point_v<Real>>> {
    /// The number; throws error(type_mismatch) for another kind or text that is not a number.
    static Real convert(reply_view v) {
        switch (v.type()) {
            case reply_type::real: return static_cast<Real>(v.real());
            case reply_type::integer: return static_cast<Real>(v.integer());
            case reply_type::string:
            case reply_type::status: {
                double d = 0;
                if (!detail::parse_double(v.str(), d)) {
                    v.invalid("expected a number, got '" + std::string(v.str().substr(0, 64)) + "'");
                }
                return static_cast<Real>(d);
            }
            default: v.mismatch("double");
        }
    }
};

/// bool from an integer (non-zero: true), a RESP3 boolean, nil (false) or a status (true only
/// for OK).
template <>
struct reply_traits<bool> {
    /// The truth value; any other kind throws error(type_mismatch).
    static bool convert(reply_view v) {
        switch (v.type()) {
            case reply_type::integer: return v.integer() != 0;
            case reply_type::boolean: return v.integer() != 0;
            case reply_type::nil: return false;
            case reply_type::status: return v.str() == "OK";
            default: v.mismatch("boolean");
        }
    }
};

/// Whether a reply can be read as T: reply_traits<T> has a convert(reply_view). The containers
/// below exist only for elements that have one, so the static_assert in as<T> names the type
/// that is missing one.
template <class T, class = void>
struct has_reply_traits : std::false_type {};
template <class T>
struct has_reply_traits<T, std::void_t<decltype(reply_traits<T>::convert(std::declval<reply_view>()))>>
    : std::true_type {};

/// std::optional<T> from nil (std::nullopt) or any reply T converts from.
template <class T>
struct reply_traits<std::optional<T>, std::enable_if_t<has_reply_traits<T>::value>> {
    /// std::nullopt for nil, else the reply as T.
    static std::optional<T> convert(reply_view v) {
        if (v.is_nil()) return std::nullopt;
        return reply_traits<T>::convert(v);
    }
};

/// std::vector<T> from an array, set, push or map (a map flattened: key, value, key...), each
/// element converted to T.
template <class T, class A>
struct reply_traits<std::vector<T, A>, std::enable_if_t<has_reply_traits<T>::value>> {
    /// The elements in order; a scalar reply throws error(type_mismatch).
    static std::vector<T, A> convert(reply_view v) {
        if (!v.is_array()) v.mismatch("array");
        std::vector<T, A> out;
        const std::size_t count = v.size();
        out.reserve(count);
        for (std::size_t i = 0; i < count; ++i) out.push_back(reply_traits<T>::convert(v[i]));
        return out;
    }
};

/// std::pair<A, B> from an array, set or push of exactly two elements.
template <class A, class B>
struct reply_traits<std::pair<A, B>, std::enable_if_t<has_reply_traits<A>::value && has_reply_traits<B>::value>> {
    /// The two elements; any other reply throws error(type_mismatch).
    static std::pair<A, B> convert(reply_view v) {
        if (!detail::is_array_like(v.type()) || v.size() != 2) v.mismatch("two-element array");
        return {reply_traits<A>::convert(v[0]), reply_traits<B>::convert(v[1])};
    }
};

/// std::unordered_map<K, V> from a RESP3 map or a flat [k1, v1, k2, v2...] array, set or push; of a
/// repeated key the last value wins.
template <class K, class V, class H, class E, class A>
struct reply_traits<std::unordered_map<K, V, H, E, A>,
                    std::enable_if_t<has_reply_traits<K>::value && has_reply_traits<V>::value>> {
    /// The pairs; a scalar or an odd number of elements throws error(type_mismatch).
    static std::unordered_map<K, V, H, E, A> convert(reply_view v) {
        return detail::convert_map<std::unordered_map<K, V, H, E, A>>(v);
    }
};
/// std::map<K, V> from a RESP3 map or a flat [k1, v1, k2, v2...] array, set or push; of a
/// repeated key the last value wins.
template <class K, class V, class C, class A>
struct reply_traits<std::map<K, V, C, A>, std::enable_if_t<has_reply_traits<K>::value && has_reply_traits<V>::value>> {
    /// The pairs; a scalar or an odd number of elements throws error(type_mismatch).
    static std::map<K, V, C, A> convert(reply_view v) { return detail::convert_map<std::map<K, V, C, A>>(v); }
};

/// redkit::reply from any reply, error replies included (they stay values).
template <>
struct reply_traits<reply> {
    /// A deep copy of the reply.
    static reply convert(reply_view v) { return reply(v); }
};

// ---- implementation ----

inline reply_view::reply_view(const reply& r) noexcept : owned_(&r) {}

inline reply_type reply_view::type() const noexcept { return raw_ ? detail::raw_type(raw_) : owned_->type(); }

inline std::string_view reply_view::str() const noexcept {
    if (raw_) return detail::raw_str(raw_);
    return owned_->text();
}

inline long long reply_view::integer() const noexcept { return raw_ ? detail::raw_integer(raw_) : owned_->integer(); }

inline double reply_view::real() const noexcept { return raw_ ? detail::raw_real(raw_) : owned_->real(); }

inline std::size_t reply_view::size() const noexcept { return raw_ ? detail::raw_size(raw_) : owned_->size(); }

inline reply_view reply_view::operator[](std::size_t i) const noexcept {
    if (raw_) return reply_view(detail::raw_at(raw_, i), nullptr, from_);
    return reply_view(nullptr, &owned_->elements()[i], from_);
}

template <class T>
T reply_view::as() const {
    static_assert(has_reply_traits<T>::value,
                  "redkit: no redkit::reply_traits<T> for this T, so a reply cannot be read as it. "
                  "command<T>, submit<T>, eval<T> and reply::as<T> take: void, std::string, any integer "
                  "type, float/double, bool, redkit::reply (any reply), std::optional<U> (nil: nullopt), "
                  "std::vector<U>, std::pair<A, B>, std::map<K, V> and std::unordered_map<K, V> of these. "
                  "For your own type, specialise redkit::reply_traits<T> with static T convert(redkit::"
                  "reply_view) (see reply.hpp); for a value stored as JSON, read std::string and "
                  "redkit::decode<T> it (or use redkit::cache).");
    if constexpr (!std::is_same_v<T, reply>) {
        if (is_error()) throw server_error(std::string(str()), prefix() + std::string(str()));
    }
    if constexpr (has_reply_traits<T>::value) {
        return reply_traits<T>::convert(*this);
    } else {
        throw std::logic_error("redkit: no reply_traits");  // not reached: the static_assert above
    }
}

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/reply.ipp>
#endif
