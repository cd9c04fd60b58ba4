// SPDX-License-Identifier: MIT
// An exception as text for a job's trace: its demangled type, what(), and its nested causes.
#pragma once

#include <cstdlib>
#include <exception>
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

}  // namespace detail
}  // namespace v0
}  // namespace redkit
