// SPDX-License-Identifier: MIT
// Replies: redkit::reply, an owning tree of any reply, and the conversion rules that turn a reply
// into the type asked of client.command<T>() or reply::as<T>().
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
#pragma once

#include <redkit/detail/hiredis.hpp>
#include <redkit/error.hpp>

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// The kinds of reply RESP2 and RESP3 can carry.
enum class reply_type { string, status, error, integer, nil, array, real, boolean, map, set, push, verbatim, bignum };

inline const char* to_string(reply_type t) noexcept {
    switch (t) {
        case reply_type::string: return "string";
        case reply_type::status: return "status";
        case reply_type::error: return "error";
        case reply_type::integer: return "integer";
        case reply_type::nil: return "nil";
        case reply_type::array: return "array";
        case reply_type::real: return "double";
        case reply_type::boolean: return "boolean";
        case reply_type::map: return "map";
        case reply_type::set: return "set";
        case reply_type::push: return "push";
        case reply_type::verbatim: return "verbatim";
        case reply_type::bignum: return "bignum";
    }
    return "unknown";
}

class reply;

namespace detail {

/// A non-owning view over either a hiredis reply or a redkit::reply, so one set of conversion
/// rules serves both (hot paths convert straight from hiredis's tree without copying it).
class node {
public:
    explicit node(const redisReply* r) noexcept : raw_(r) {}
    explicit node(const reply* r) noexcept : owned_(r) {}

    reply_type type() const noexcept;
    std::string_view str() const noexcept;
    long long integer() const noexcept;
    double real() const noexcept;
    std::size_t size() const noexcept;
    node at(std::size_t i) const noexcept;

private:
    const redisReply* raw_ = nullptr;
    const reply* owned_ = nullptr;
};

inline reply_type map_type(const redisReply* r) noexcept {
    switch (r->type) {
        case REDIS_REPLY_STRING: return reply_type::string;
        case REDIS_REPLY_ARRAY: return reply_type::array;
        case REDIS_REPLY_INTEGER: return reply_type::integer;
        case REDIS_REPLY_NIL: return reply_type::nil;
        case REDIS_REPLY_STATUS: return reply_type::status;
        case REDIS_REPLY_ERROR: return reply_type::error;
#ifdef REDIS_REPLY_MAP
        case REDIS_REPLY_DOUBLE: return reply_type::real;
        case REDIS_REPLY_BOOL: return reply_type::boolean;
        case REDIS_REPLY_MAP: return reply_type::map;
        case REDIS_REPLY_SET: return reply_type::set;
        case REDIS_REPLY_PUSH: return reply_type::push;
        case REDIS_REPLY_BIGNUM: return reply_type::bignum;
        case REDIS_REPLY_VERB: return reply_type::verbatim;
#endif
        default: return reply_type::nil;
    }
}

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

[[noreturn]] inline void throw_server_error(node n, const origin& from) {
    std::string text(n.str());
    throw server_error(text, from.prefix() + text);
}

[[noreturn]] inline void throw_mismatch(node n, const char* wanted, const origin& from) {
    if (n.type() == reply_type::error) throw_server_error(n, from);
    throw error(errc::type_mismatch,
                from.prefix() + "expected " + wanted + " reply, got " + to_string(n.type()));
}

inline bool is_array_like(reply_type t) noexcept {
    return t == reply_type::array || t == reply_type::set || t == reply_type::push;
}

template <class T, class = void>
struct from_reply;  // specialised below; a T without a specialisation does not compile

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <>
struct from_reply<std::string> {
    static std::string convert(node n, const origin& from) {
        switch (n.type()) {
            case reply_type::string:
            case reply_type::status:
            case reply_type::verbatim:
            case reply_type::bignum:
            case reply_type::real: return std::string(n.str());
            default: throw_mismatch(n, "string", from);
        }
    }
};

template <class Int>
struct from_reply<Int, std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>>> {
    static Int convert(node n, const origin& from) {
        long long v = 0;
        if (n.type() == reply_type::integer) {
            v = n.integer();
        } else if (n.type() == reply_type::string || n.type() == reply_type::status) {
            const std::string_view s = n.str();
            const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
            if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size()) {
                throw error(errc::type_mismatch, from.prefix() + "expected an integer, got '" +
                                                     std::string(s.substr(0, 64)) + "'");
            }
        } else {
            throw_mismatch(n, "integer", from);
        }
        if constexpr (!std::is_same_v<Int, long long>) {
            if (v < static_cast<long long>(std::numeric_limits<Int>::min()) ||
                (v > 0 && static_cast<unsigned long long>(v) > static_cast<unsigned long long>(std::numeric_limits<Int>::max()))) {
                throw error(errc::type_mismatch, from.prefix() + "integer " + std::to_string(v) + " out of range");
            }
        }
        return static_cast<Int>(v);
    }
};

template <class Real>
struct from_reply<Real, std::enable_if_t<std::is_floating_point_v<Real>>> {
    static Real convert(node n, const origin& from) {
        switch (n.type()) {
            case reply_type::real: return static_cast<Real>(n.real());
            case reply_type::integer: return static_cast<Real>(n.integer());
            case reply_type::string:
            case reply_type::status: {
                const std::string text(n.str());  // strtod needs a terminator
                char* end = nullptr;
                const double v = std::strtod(text.c_str(), &end);
                if (text.empty() || end != text.c_str() + text.size()) {
                    throw error(errc::type_mismatch, from.prefix() + "expected a number, got '" + text.substr(0, 64) + "'");
                }
                return static_cast<Real>(v);
            }
            default: throw_mismatch(n, "double", from);
        }
    }
};

template <>
struct from_reply<bool> {
    static bool convert(node n, const origin& from) {
        switch (n.type()) {
            case reply_type::integer: return n.integer() != 0;
            case reply_type::boolean: return n.integer() != 0;
            case reply_type::nil: return false;
            case reply_type::status: return n.str() == "OK";
            default: throw_mismatch(n, "boolean", from);
        }
    }
};

template <class T>
struct from_reply<std::optional<T>> {
    static std::optional<T> convert(node n, const origin& from) {
        if (n.type() == reply_type::nil) return std::nullopt;
        return from_reply<T>::convert(n, from);
    }
};

template <class T, class A>
struct from_reply<std::vector<T, A>> {
    static std::vector<T, A> convert(node n, const origin& from) {
        const reply_type t = n.type();
        if (!is_array_like(t) && t != reply_type::map) throw_mismatch(n, "array", from);
        std::vector<T, A> out;
        const std::size_t count = n.size();
        out.reserve(count);
        for (std::size_t i = 0; i < count; ++i) out.push_back(from_reply<T>::convert(n.at(i), from));
        return out;
    }
};

template <class A, class B>
struct from_reply<std::pair<A, B>> {
    static std::pair<A, B> convert(node n, const origin& from) {
        if (!is_array_like(n.type()) || n.size() != 2) throw_mismatch(n, "two-element array", from);
        return {from_reply<A>::convert(n.at(0), from), from_reply<B>::convert(n.at(1), from)};
    }
};

template <class Map>
struct map_from_reply {
    static Map convert(node n, const origin& from) {
        const reply_type t = n.type();
        if (!(is_array_like(t) || t == reply_type::map) || n.size() % 2 != 0) {
            throw_mismatch(n, "key/value array", from);
        }
        Map out;
        for (std::size_t i = 0; i + 1 < n.size(); i += 2) {
            out.insert_or_assign(from_reply<typename Map::key_type>::convert(n.at(i), from),
                                 from_reply<typename Map::mapped_type>::convert(n.at(i + 1), from));
        }
        return out;
    }
};

template <class K, class V, class H, class E, class A>
struct from_reply<std::unordered_map<K, V, H, E, A>> : map_from_reply<std::unordered_map<K, V, H, E, A>> {};
template <class K, class V, class C, class A>
struct from_reply<std::map<K, V, C, A>> : map_from_reply<std::map<K, V, C, A>> {};

}  // namespace detail

/// An owning copy of any reply: type, text, integer, double and child elements. Error replies are
/// values here (type() == reply_type::error); as<T>() turns them into a server_error.
class reply {
public:
    reply() = default;  ///< a nil reply

    /// Deep-copies a hiredis reply (used by the core; no hiredis type in the public API).
    explicit reply(detail::node n) : type_(n.type()) {
        switch (type_) {
            case reply_type::integer:
            case reply_type::boolean: integer_ = n.integer(); break;
            case reply_type::real:
                real_ = n.real();
                text_ = std::string(n.str());
                break;
            case reply_type::array:
            case reply_type::set:
            case reply_type::push:
            case reply_type::map:
                elements_.reserve(n.size());
                for (std::size_t i = 0; i < n.size(); ++i) elements_.emplace_back(n.at(i));
                break;
            case reply_type::nil: break;
            default: text_ = std::string(n.str()); break;
        }
    }

    reply_type type() const noexcept { return type_; }
    bool is_nil() const noexcept { return type_ == reply_type::nil; }
    bool is_error() const noexcept { return type_ == reply_type::error; }
    bool is_array() const noexcept { return detail::is_array_like(type_) || type_ == reply_type::map; }

    /// Text of a string, status, error, verbatim, big number or double reply.
    const std::string& text() const noexcept { return text_; }
    long long integer() const noexcept { return integer_; }
    double real() const noexcept { return real_; }
    const std::vector<reply>& elements() const noexcept { return elements_; }
    std::size_t size() const noexcept { return elements_.size(); }
    const reply& operator[](std::size_t i) const { return elements_.at(i); }

    /// Converts with the same rules as client::command<T>. Throws server_error for an error
    /// reply and error(type_mismatch) for a reply of another shape.
    template <class T>
    T as() const;

private:
    reply_type type_ = reply_type::nil;
    long long integer_ = 0;
    double real_ = 0;
    std::string text_;
    std::vector<reply> elements_;
};

namespace detail {

template <>
struct from_reply<reply> {
    static reply convert(node n, const origin&) { return reply(n); }
};

/// The single entry point: T from a node, with server errors raised first.
template <class T>
T convert_reply(node n, const origin& from) {
    if constexpr (std::is_same_v<T, reply>) {
        return reply(n);
    } else {
        if (n.type() == reply_type::error) throw_server_error(n, from);
        return from_reply<T>::convert(n, from);
    }
}

}  // namespace detail

// ---- implementation ----

template <class T>
T reply::as() const {
    return detail::convert_reply<T>(detail::node(this), detail::origin{});
}

namespace detail {

inline reply_type node::type() const noexcept { return raw_ ? map_type(raw_) : owned_->type(); }

inline std::string_view node::str() const noexcept {
    if (raw_) return raw_->str ? std::string_view(raw_->str, raw_->len) : std::string_view{};
    return owned_->text();
}

inline long long node::integer() const noexcept { return raw_ ? raw_->integer : owned_->integer(); }

inline double node::real() const noexcept {
#ifdef REDIS_REPLY_MAP
    if (raw_) return raw_->dval;
#else
    if (raw_) return 0.0;
#endif
    return owned_->real();
}

inline std::size_t node::size() const noexcept {
    if (raw_) {
        const reply_type t = map_type(raw_);
        return is_array_like(t) || t == reply_type::map ? raw_->elements : 0;
    }
    return owned_->size();
}

inline node node::at(std::size_t i) const noexcept {
    if (raw_) return node(raw_->element[i]);
    return node(&owned_->elements()[i]);
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
