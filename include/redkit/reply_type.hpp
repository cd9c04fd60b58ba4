// SPDX-License-Identifier: MIT
// redkit::reply_type: the kinds of reply RESP2 and RESP3 carry.
#pragma once

namespace redkit {
inline namespace v0 {

/// The kinds of reply RESP2 and RESP3 can carry. `real` is RESP3's double.
enum class reply_type { string, status, error, integer, nil, array, real, boolean, map, set, push, verbatim, bignum };

/// The kind's name as redkit's messages print it: "string", "status", ..., "double" for `real`.
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

/// Whether replies of this kind hold elements (array, set, push, map).
inline bool holds_elements(reply_type t) noexcept {
    return t == reply_type::array || t == reply_type::set || t == reply_type::push || t == reply_type::map;
}

}  // namespace v0
}  // namespace redkit
