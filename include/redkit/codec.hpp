// SPDX-License-Identifier: MIT
// redkit::codec<T>: how a value becomes the bytes stored in Redis and back.
//
// The default is JSON through nlohmann/json (any T with to_json/from_json, or that nlohmann
// converts natively), so what a C++ service stores, a Node service reads with
// JSON.parse(await redis.get(key)) and the other way round. Specialise redkit::codec<T> for
// another format: it needs static encode(const T&) -> std::string and decode(std::string_view)
// -> T, and decode must throw (anything) on bad input.
#pragma once

#include <redkit/error.hpp>

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace redkit {
inline namespace v0 {

namespace detail {
/// Whether nlohmann can read T (T has from_json, or nlohmann converts it natively, or T is a
/// nlohmann::json itself).
template <class T>
inline constexpr bool json_readable =
    nlohmann::detail::is_basic_json<T>::value || nlohmann::detail::has_from_json<nlohmann::json, T>::value ||
    nlohmann::detail::has_non_default_from_json<nlohmann::json, T>::value;
}  // namespace detail

/// How a T becomes the bytes stored in Redis and back: compact JSON through nlohmann/json unless
/// specialised (a specialisation provides static encode and decode; decode throws on bad input).
template <class T, class = void>
struct codec {
    static_assert(std::is_constructible_v<nlohmann::json, const T&> && detail::json_readable<T>,
                  "redkit: this type cannot be stored as JSON. Give it JSON support in one of three ways: "
                  "(1) name its fields once with a redkit::json_fields<T> specialisation "
                  "(<redkit/json_fields.hpp>: redkit::fields(redkit::field(\"id\", &T::id), ...), the fast "
                  "decoder); (2) to_json(nlohmann::json&, const T&) and from_json(const nlohmann::json&, T&) "
                  "in T's namespace; (3) NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(T, members...). Or specialise "
                  "redkit::codec<T> for another format (see codec.hpp).");

    /// Compact JSON. Throws std::invalid_argument when the value holds a string that is not UTF-8.
    static std::string encode(const T& value) {
        try {
            return nlohmann::json(value).dump();
        } catch (const nlohmann::json::exception& e) {
            throw std::invalid_argument(std::string("redkit: encode: ") + e.what());
        }
    }

    /// Parses JSON into T; throws nlohmann::json::exception when the bytes are not JSON or do
    /// not fit T.
    static T decode(std::string_view bytes) {
        return nlohmann::json::parse(bytes.begin(), bytes.end()).template get<T>();
    }
};

/// Encodes with codec<T>.
template <class T>
std::string encode(const T& value) {
    return codec<T>::encode(value);
}

/// Decodes with codec<T>. Throws error(errc::decode_error) naming the key when the bytes do not
/// decode; never lets a parser exception of another type escape.
template <class T>
T decode(std::string_view bytes, std::string_view key = {}) {
    try {
        return codec<T>::decode(bytes);
    } catch (const std::exception& e) {
        throw error(errc::decode_error, "redkit: decode " + std::string(key.empty() ? "value" : key) + ": " + e.what());
    }
}

}  // namespace v0
}  // namespace redkit
