// SPDX-License-Identifier: MIT
// What a submitted command runs when it finishes (future::then(), co_await): the interface the
// multiplexer calls and future.hpp implements. Declarations only, so a face may include it.
#pragma once

#include <memory>

namespace redkit {
inline namespace v0 {
namespace detail {

struct mux_request;

/// Runs on the thread that finishes a submitted request, with the request's last share. May
/// throw; the multiplexer reports it (client_options::on_error).
struct mux_completion {
    mux_completion() = default;
    mux_completion(const mux_completion&) = delete;
    mux_completion& operator=(const mux_completion&) = delete;
    virtual ~mux_completion() = default;
    virtual void complete(std::shared_ptr<mux_request> r) = 0;
};

/// Completion callbacks running on this thread now (a callback that would wait for a command of
/// a connection it is driving would wait for itself: the multiplexer refuses).
inline int& completing_here() noexcept {
    thread_local int depth = 0;
    return depth;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
