// SPDX-License-Identifier: MIT
// redkit::script's out-of-line definitions (script.hpp).
#pragma once

#include <redkit/detail/hash.hpp>
#include <redkit/script.hpp>

#include <utility>

namespace redkit {
inline namespace v0 {

REDKIT_DECL script::script(std::string source) : source_(std::move(source)), sha1_(detail::sha1_hex(source_)) {}

}  // namespace v0
}  // namespace redkit
