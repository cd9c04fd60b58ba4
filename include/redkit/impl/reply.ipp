// SPDX-License-Identifier: MIT
// redkit::reply and reply_view: out-of-line definitions (reply.hpp).
#pragma once

#include <redkit/reply.hpp>

#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {

REDKIT_DECL void reply_view::mismatch(std::string_view wanted) const {
    if (is_error()) throw server_error(std::string(str()), prefix() + std::string(str()));
    throw error(errc::type_mismatch, prefix() + "expected " + std::string(wanted) + " reply, got " + to_string(type()));
}

REDKIT_DECL void reply_view::invalid(std::string_view what) const {
    throw error(errc::type_mismatch, prefix() + std::string(what));
}

REDKIT_DECL reply::reply(reply_view v) : type_(v.type()) {
    switch (type_) {
        case reply_type::integer:
        case reply_type::boolean: integer_ = v.integer(); break;
        case reply_type::real:
            real_ = v.real();
            text_ = std::string(v.str());
            break;
        case reply_type::array:
        case reply_type::set:
        case reply_type::push:
        case reply_type::map:
            elements_.reserve(v.size());
            for (std::size_t i = 0; i < v.size(); ++i) elements_.emplace_back(v[i]);
            break;
        case reply_type::nil: break;
        default: text_ = std::string(v.str()); break;
    }
}

}  // namespace v0
}  // namespace redkit
