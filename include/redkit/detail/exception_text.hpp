// SPDX-License-Identifier: MIT
// An exception as text for a job's trace: its demangled type, what(), and its nested causes; and
// the one way redkit calls code of yours that must not throw into its threads (call_caught).
#pragma once

#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <typeinfo>

#if defined(__has_include)
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define REDKIT_HAS_CXXABI 1
#endif
#endif

namespace redkit {
inline namespace v0 {
namespace detail {

inline std::string demangled_type_name(const char* name) {
#ifdef REDKIT_HAS_CXXABI
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (status == 0 && out) {
        std::string s(out);
        std::free(out);
        return s;
    }
    std::free(out);
#endif
    return name;
}

/// "std::runtime_error: text", then "; caused by ..." for nested exceptions.
inline std::string describe_exception(const std::exception& e) {
    std::string s = demangled_type_name(typeid(e).name()) + ": " + e.what();
    try {
        std::rethrow_if_nested(e);
    } catch (const std::exception& inner) {
        s += "; caused by " + describe_exception(inner);
    } catch (...) {
        s += "; caused by an exception of unknown type";
    }
    return s;
}

/// Runs f() (a handler, a callback, a decoder: code of the application's) and keeps what it throws
/// from going further: nullopt when f returned, else the text to append to a message about it,
/// ": what()" for a std::exception and "" for anything else. Callers report it (on_error, a job's
/// reason), so a throwing callback is never lost in silence nor kills a thread of redkit's.
template <class F>
std::optional<std::string> call_caught(F&& f) noexcept {
    try {
        f();
        return std::nullopt;
    } catch (const std::exception& e) {
        return std::string(": ") + e.what();
    } catch (...) {
        return std::string();
    }
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
