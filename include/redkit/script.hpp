// SPDX-License-Identifier: MIT
// redkit::script: a Lua script named by its SHA-1, as EVALSHA wants it.
//
// The SHA-1 is computed locally (as Redis computes it), so the first EVALSHA needs no SCRIPT LOAD
// round trip. client::eval and connection::eval send EVALSHA and, on NOSCRIPT (first use on this
// server, SCRIPT FLUSH, a failover to a replica that never saw it), send the script once with
// EVAL. Pipelines load scripts the connection has not seen yet with SCRIPT LOAD in the same
// write, so the order of the pipeline's commands is kept.
#pragma once

#include <redkit/config.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace redkit {
inline namespace v0 {

/// An immutable Lua script and its SHA-1. Cheap to share; define scripts once (e.g. as statics).
class script {
public:
    /// Keeps `source` and computes its SHA-1 here, as Redis does, so EVALSHA can go first.
    REDKIT_DECL explicit script(std::string source);

    /// The Lua text as given (what EVAL sends after NOSCRIPT).
    const std::string& source() const noexcept { return source_; }
    /// The SHA-1 of source(), 40 lower-case hex digits, as EVALSHA takes it.
    const std::string& sha1() const noexcept { return sha1_; }

private:
    std::string source_;
    std::string sha1_;
};

namespace detail {

/// The one way redkit's patterns make their scripts: the text is the concatenation of Parts (a
/// shared prelude and a body, each an `inline constexpr std::string_view` of the pattern's Lua
/// header), built and hashed once, on first use, and kept for the life of the process.
template <const std::string_view&... Parts>
const script& static_script() {
    static const script s([] {
        std::string text;
        text.reserve((Parts.size() + ... + 0));
        (text.append(Parts.data(), Parts.size()), ...);
        return text;
    }());
    return s;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/script.ipp>
#endif
