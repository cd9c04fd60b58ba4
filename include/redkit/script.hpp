// SPDX-License-Identifier: MIT
// redkit::script: a Lua script named by its SHA-1, as EVALSHA wants it.
//
// The SHA-1 is computed locally (as Redis computes it), so the first EVALSHA needs no SCRIPT LOAD
// round trip. client::eval sends EVALSHA and, on NOSCRIPT (first use on this server, SCRIPT FLUSH,
// a failover to a replica that never saw it), sends the script once with EVAL. Pipelines load
// scripts the connection has not seen yet with SCRIPT LOAD in the same write, so the order of the
// pipeline's commands is kept.
#pragma once

#include <redkit/detail/sha1.hpp>

#include <string>
#include <utility>

namespace redkit {
inline namespace v0 {

/// An immutable Lua script and its SHA-1. Cheap to share; define scripts once (e.g. as statics).
class script {
public:
    explicit script(std::string source) : source_(std::move(source)), sha1_(detail::sha1_hex(source_)) {}

    const std::string& source() const noexcept { return source_; }
    const std::string& sha1() const noexcept { return sha1_; }

private:
    std::string source_;
    std::string sha1_;
};

}  // namespace v0
}  // namespace redkit
