// SPDX-License-Identifier: MIT
// redkit::json_fields<T>: name a struct's JSON fields once, and get
//   - redkit::codec<T> with a fast decoder: one pass over the text straight into the struct, no
//     DOM in between (about 6x nlohmann's json::parse(s).get<T>() on a 1 KB document, see the
//     README's benchmark), with the same strictness: malformed JSON, invalid UTF-8, a number that
//     does not fit its field, or a missing field throws (redkit::decode turns that into
//     errc::decode_error naming the key). Unknown fields are skipped; std::optional fields may
//     be missing or null; of a repeated key the last value wins, whole (a nested struct or map
//     entry keeps nothing from the earlier one), as in nlohmann.
//   - nlohmann conversions (nlohmann::json(value), j.get<T>()), so the encoding is still the JSON
//     any language reads, and T nests in other nlohmann-converted types.
//
// @code
// struct product { std::string id, name; double price = 0; std::vector<std::string> tags;
//                  std::optional<std::string> note; };
// template <>
// struct redkit::json_fields<product> {
//     static constexpr auto value = redkit::fields(
//         redkit::field("id", &product::id), redkit::field("name", &product::name),
//         redkit::field("price", &product::price), redkit::field("tags", &product::tags),
//         redkit::field("note", &product::note));
// };
// @endcode
//
// Field types decoded directly: bool, integers, floating point, std::string, std::vector<X>,
// std::optional<X>, std::map/std::unordered_map<std::string, X>, nlohmann::json, and structs with
// json_fields of their own. Any other type nlohmann converts is decoded through nlohmann (the
// field's text only). Single-threaded per call; any number of calls may run at once.
//
// Numbers: the JSON grammar, no more (no leading zero, '+', '.5', NaN or Infinity). An integer
// field takes any spelling of an integer that fits its type (127, 127.0, 1.27e2 or 12700e-2 into
// an int8_t; -0 is 0), decided exactly from the decimal text, and refuses a fraction (1.5,
// 1e-400) or a value outside its type (128 into an int8_t, -9223372036854775809 into an int64_t).
// A floating-point field takes the nearest value; one too small to represent (1e-400,
// 0.000...001) reads as zero, keeping its sign, and one too large (1e400, 1000...0e-1) is
// refused: told apart by the value, whatever the spelling.
#pragma once

#include <redkit/codec.hpp>
#include <redkit/detail/json_reader.hpp>

#include <nlohmann/json.hpp>

#include <bitset>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// Specialise for a struct: `static constexpr auto value = redkit::fields(redkit::field(...)...);`
template <class T>
struct json_fields;

/// One field: its JSON name and the member it lives in.
template <class C, class M>
struct json_field {
    std::string_view name;  ///< the field's key in the JSON object
    M C::*member;           ///< the member of C that holds the field's value
};

/// The field `name` held in `member`: `redkit::field("id", &product::id)`.
template <class C, class M>
constexpr json_field<C, M> field(std::string_view name, M C::*member) noexcept {
    return {name, member};
}

/// The fields of a json_fields<T>::value: a tuple of field() results, one per member.
template <class... F>
constexpr std::tuple<F...> fields(F... f) noexcept {
    return std::tuple<F...>(f...);
}

/// Whether T has json_fields (its codec and nlohmann conversions then come from them).
template <class T, class = void>
struct has_json_fields : std::false_type {};
template <class T>
struct has_json_fields<T, std::void_t<decltype(json_fields<T>::value)>> : std::true_type {};
/// has_json_fields<T>::value.
template <class T>
inline constexpr bool has_json_fields_v = has_json_fields<T>::value;

namespace detail {

template <class T>
struct is_std_optional : std::false_type {};
template <class T>
struct is_std_optional<std::optional<T>> : std::true_type {};

template <class T>
struct is_std_vector : std::false_type {};
template <class T, class A>
struct is_std_vector<std::vector<T, A>> : std::true_type {};

template <class T>
struct is_string_map : std::false_type {};
template <class V, class C, class A>
struct is_string_map<std::map<std::string, V, C, A>> : std::true_type {};
template <class V, class H, class E, class A>
struct is_string_map<std::unordered_map<std::string, V, H, E, A>> : std::true_type {};

/// A number's text (checked against the grammar) as decimal parts, for the slow paths only: the
/// value is ±(the digits from `first` to `last`, skipping a '.') × 10^(place(last) + exponent).
/// Exact, whatever the spelling: no detour through double, which cannot tell 2^63 - 1 from 2^63.
struct json_decimal {
    bool negative = false;
    const char* first = nullptr;      // the first non-zero digit; nullptr when the value is zero
    const char* last = nullptr;       // the last non-zero digit
    const char* units_end = nullptr;  // just past the units digit: the '.' or the mantissa's end
    long long exponent = 0;           // saturated at about ±10^17, past any text's length

    explicit json_decimal(std::string_view text) noexcept {
        const char* p = text.data();
        const char* const end = p + text.size();
        negative = p < end && *p == '-';
        if (negative) ++p;
        for (; p < end && *p != 'e' && *p != 'E'; ++p) {
            if (*p == '.') {
                units_end = p;
            } else if (*p != '0') {
                if (first == nullptr) first = p;
                last = p;
            }
        }
        if (units_end == nullptr) units_end = p;
        if (p == end) return;
        ++p;
        const bool down = *p == '-';
        if (*p == '-' || *p == '+') ++p;
        for (; p < end; ++p) {
            if (exponent < 100000000000000000) exponent = exponent * 10 + (*p - '0');
        }
        if (down) exponent = -exponent;
    }

    /// n where 10^n is the place value of mantissa digit `d` (before the exponent).
    long long place(const char* d) const noexcept {
        return d < units_end ? static_cast<long long>(units_end - d) - 1 : static_cast<long long>(units_end - d);
    }
    /// Whether |value| >= 1 (a floating-point range error is then an overflow, else an underflow).
    bool at_least_one() const noexcept { return first != nullptr && place(first) + exponent >= 0; }

    /// The value's magnitude when it is an integer below 2^64; false for a fraction or more.
    bool integer(std::uint64_t& magnitude) const noexcept {
        magnitude = 0;
        if (first == nullptr) return true;  // 0, -0.0, 0e999
        const long long scale = place(last) + exponent;
        if (scale < 0) return false;                      // a fraction: the last non-zero digit is after the point
        if (place(first) + exponent >= 20) return false;  // 10^20 and more
        constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
        for (const char* d = first; d <= last; ++d) {
            if (*d == '.') continue;
            const auto digit = static_cast<std::uint64_t>(*d - '0');
            if (magnitude > (max - digit) / 10) return false;
            magnitude = magnitude * 10 + digit;
        }
        for (long long i = 0; i < scale; ++i) {
            if (magnitude > max / 10) return false;
            magnitude *= 10;
        }
        return true;
    }
};

/// The integer `text` names into `out`, exactly; false when it has a fraction or does not fit T.
template <class T>
bool json_integer(std::string_view text, T& out) noexcept {
    const json_decimal n(text);
    std::uint64_t magnitude = 0;
    if (!n.integer(magnitude)) return false;
    if (!n.negative || magnitude == 0) {
        if (magnitude > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return false;
        out = static_cast<T>(magnitude);
        return true;
    }
    if constexpr (std::is_unsigned_v<T>) {
        return false;
    } else {
        // down to -max - 1, computed without negating a value T cannot hold
        if (magnitude - 1 > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return false;
        out = static_cast<T>(-static_cast<T>(magnitude - 1) - 1);
        return true;
    }
}

template <class T>
void read_json_value(json_reader& r, T& out);

/// A member read again (a repeated key) starts afresh, as nlohmann's last-one-wins reads it: a
/// nested struct must not keep fields from the earlier object.
template <class M>
void reset_json_member(M& member) {
    if constexpr (std::is_default_constructible_v<M> && std::is_move_assignable_v<M>) member = M{};
}

template <class T, std::size_t... I>
bool read_json_field(json_reader& r, T& obj, std::string_view name, std::size_t hint, std::bitset<64>& seen,
                     std::index_sequence<I...>) {
    constexpr auto& f = json_fields<T>::value;
    bool matched = false;
    // the field expected next first (a document usually lists them in one order), then any
    const auto try_one = [&](auto index, bool only_hint) {
        constexpr std::size_t i = decltype(index)::value;
        if (matched || (only_hint && i != hint) || std::get<i>(f).name != name) return;
        auto& member = obj.*(std::get<i>(f).member);
        if (seen[i]) reset_json_member(member);  // a repeated key: the last one wins whole
        read_json_value(r, member);
        seen.set(i);
        matched = true;
    };
    (try_one(std::integral_constant<std::size_t, I>{}, true), ...);
    (try_one(std::integral_constant<std::size_t, I>{}, false), ...);
    return matched;
}

template <class T, std::size_t... I>
void check_json_fields_seen(json_reader& r, const std::bitset<64>& seen, std::index_sequence<I...>) {
    constexpr auto& f = json_fields<T>::value;
    const auto check = [&](auto index) {
        constexpr std::size_t i = decltype(index)::value;
        using member = std::remove_reference_t<decltype(std::declval<T&>().*(std::get<i>(f).member))>;
        if (!seen.test(i) && !is_std_optional<member>::value) {
            r.fail("missing field '" + std::string(std::get<i>(f).name) + "'");
        }
    };
    (check(std::integral_constant<std::size_t, I>{}), ...);
}

template <class T>
void read_json_object(json_reader& r, T& obj) {
    using all = std::make_index_sequence<std::tuple_size_v<std::decay_t<decltype(json_fields<T>::value)>>>;
    static_assert(all::size() <= 64, "redkit: json_fields: at most 64 fields");
    std::bitset<64> seen;
    std::string scratch;
    std::size_t hint = 0;
    r.object(scratch, [&](std::string_view name) {
        if (read_json_field(r, obj, name, hint, seen, all{})) {
            ++hint;
        } else {
            (void)r.skip_value();  // a field this struct does not have
        }
    });
    check_json_fields_seen<T>(r, seen, all{});
}

template <class T>
void read_json_value(json_reader& r, T& out) {
    if constexpr (std::is_same_v<T, bool>) {
        if (r.literal("true")) {
            out = true;
        } else if (r.literal("false")) {
            out = false;
        } else {
            r.fail("expected true or false");
        }
    } else if constexpr (std::is_integral_v<T>) {
        const std::string_view text = r.number();
        const auto got = std::from_chars(text.data(), text.data() + text.size(), out);
        if (got.ec == std::errc() && got.ptr == text.data() + text.size()) return;
        // 1.0, 2e3 or -0.0 still name an integer, decided exactly from the text; anything else
        // does not fit
        if (!json_integer(text, out)) {
            r.fail("number " + std::string(text.substr(0, 32)) + " does not fit an integer field");
        }
    } else if constexpr (std::is_floating_point_v<T>) {
        const std::string_view text = r.number();
        const auto got = std::from_chars(text.data(), text.data() + text.size(), out);
        if (got.ec == std::errc()) return;
        // out of range, told by the value's magnitude, not its spelling: too large (1e400,
        // 1000...0e-1) is refused; too small to represent (1e-400, 0.000...01) is zero, as the
        // JSON parsers of other languages read it
        const json_decimal n(text);
        if (got.ec != std::errc::result_out_of_range || n.at_least_one()) {
            r.fail("number " + std::string(text.substr(0, 32)) + " is out of range");
        }
        out = n.negative ? -T(0) : T(0);
    } else if constexpr (std::is_same_v<T, std::string>) {
        r.string_into(out);
    } else if constexpr (is_std_optional<T>::value) {
        if (r.literal("null")) {
            out.reset();
        } else {
            read_json_value(r, out.emplace());
        }
    } else if constexpr (is_std_vector<T>::value) {
        out.clear();
        if constexpr (std::is_same_v<typename T::value_type, bool>) {
            // vector<bool>::emplace_back returns a proxy, not a bool&
            r.array([&] {
                bool b = false;
                read_json_value(r, b);
                out.push_back(b);
            });
        } else {
            r.array([&] { read_json_value(r, out.emplace_back()); });
        }
    } else if constexpr (is_string_map<T>::value) {
        out.clear();
        std::string scratch;
        r.object(scratch, [&](std::string_view name) {
            const auto [at, fresh] = out.try_emplace(std::string(name));
            if (!fresh) reset_json_member(at->second);  // a repeated key: the last one wins whole
            read_json_value(r, at->second);
        });
    } else if constexpr (has_json_fields_v<T>) {
        read_json_object(r, out);
    } else {
        // anything else nlohmann converts (nlohmann::json itself included): its text, through nlohmann
        const std::string_view text = r.skip_value();
        nlohmann::json::parse(text.begin(), text.end()).get_to(out);
    }
}

}  // namespace detail

/// Decodes JSON text into a T with json_fields in one pass. Throws std::invalid_argument (or
/// nlohmann's exception, for a field decoded through nlohmann) on bad input.
template <class T>
T read_json(std::string_view text) {
    static_assert(has_json_fields_v<T>, "redkit: read_json<T> needs redkit::json_fields<T>");
    T out{};
    detail::json_reader r(text);
    detail::read_json_object(r, out);
    r.finish();
    return out;
}

/// The codec of a type with json_fields: encoded as the default (compact JSON through
/// nlohmann), decoded with read_json.
template <class T>
struct codec<T, std::enable_if_t<has_json_fields_v<T>>> {
    /// Compact JSON of the fields. Throws std::invalid_argument when a string is not UTF-8.
    static std::string encode(const T& value) {
        try {
            return nlohmann::json(value).dump();
        } catch (const nlohmann::json::exception& e) {
            throw std::invalid_argument(std::string("redkit: encode: ") + e.what());
        }
    }
    /// read_json<T>(bytes): one pass, no DOM; throws on bad input as read_json does.
    static T decode(std::string_view bytes) { return read_json<T>(bytes); }
};

}  // namespace v0
}  // namespace redkit

namespace nlohmann {
/// nlohmann conversions of every type with redkit::json_fields.
template <class T>
struct adl_serializer<T, std::enable_if_t<redkit::has_json_fields_v<T>>> {
    /// Makes `j` an object with one member per field; an empty std::optional field is null.
    static void to_json(nlohmann::json& j, const T& value) {
        j = nlohmann::json::object();
        std::apply(
            [&](const auto&... f) {
                const auto put = [&](const auto& one) {
                    const auto& member = value.*(one.member);
                    nlohmann::json& slot = j[std::string(one.name)];
                    if constexpr (redkit::detail::is_std_optional<std::decay_t<decltype(member)>>::value) {
                        if (member) slot = *member;  // else null
                    } else {
                        slot = member;
                    }
                };
                (put(f), ...);
            },
            redkit::json_fields<T>::value);
    }
    /// Reads every field from the object `j`; a missing or null std::optional field is reset,
    /// another missing field throws std::invalid_argument naming it, and unknown keys are ignored.
    static void from_json(const nlohmann::json& j, T& value) {
        std::apply(
            [&](const auto&... f) {
                const auto get = [&](const auto& one) {
                    auto& member = value.*(one.member);
                    using member_type = std::decay_t<decltype(member)>;
                    const auto it = j.find(std::string(one.name));
                    if constexpr (redkit::detail::is_std_optional<member_type>::value) {
                        if (it == j.end() || it->is_null()) {
                            member.reset();
                        } else {
                            it->get_to(member.emplace());
                        }
                    } else {
                        if (it == j.end()) {
                            throw std::invalid_argument("redkit: json: missing field '" + std::string(one.name) + "'");
                        }
                        it->get_to(member);
                    }
                };
                (get(f), ...);
            },
            redkit::json_fields<T>::value);
    }
};
}  // namespace nlohmann
