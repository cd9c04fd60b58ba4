// SPDX-License-Identifier: MIT
// redkit version macros and constants.
#pragma once

#define REDKIT_VERSION_MAJOR 0
#define REDKIT_VERSION_MINOR 1
#define REDKIT_VERSION_PATCH 0
#define REDKIT_VERSION_STRING "0.1.0"

namespace redkit {
inline namespace v0 {
/// The library version as "major.minor.patch".
inline constexpr const char* version = REDKIT_VERSION_STRING;
}  // namespace v0
}  // namespace redkit
