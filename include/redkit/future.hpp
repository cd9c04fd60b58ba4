// SPDX-License-Identifier: MIT
// redkit::future<T>: the reply of a command sent with client::submit(), collected later.
//
//   std::vector<redkit::future<std::string>> pending;
//   for (const auto& id : ids) pending.push_back(redis.submit<std::string>("GET", "user:" + id));
//   for (auto& f : pending) use(f.get());  // 16 GETs in flight cost about one round trip
//
// Like std::future (get() once, wait(), wait_for(), valid()), with one difference that makes one
// thread with many commands in flight as fast as a hand-written pipeline: a thread that waits
// while nobody drives the shared connection writes what is queued and reads the replies itself,
// instead of handing that to the multiplexer's I/O thread and sleeping. A future may outlive
// the client that made it; its command still gets its reply.
#pragma once

#include <redkit/config.hpp>
#include <redkit/core/io/raw.hpp>
#include <redkit/error.hpp>
#include <redkit/reply.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>

namespace redkit {
inline namespace v0 {

class client;
namespace detail {
class multiplexer;
struct mux_request;

// What a future asks of its multiplexer (impl/future.ipp).
REDKIT_DECL bool request_done(const mux_request& r) noexcept;
REDKIT_DECL void await_request(multiplexer& m, mux_request& r);
REDKIT_DECL bool await_request_until(multiplexer& m, mux_request& r, std::chrono::steady_clock::time_point deadline);
/// The finished request's reply; throws its failure (the setup's server_error, or the transport
/// error naming the command). `command` and `key` receive the request's, for messages.
REDKIT_DECL reply_ptr take_reply(mux_request& r, std::string& command, std::string& key);
}  // namespace detail

/// The reply of one submitted command as T (see client::submit()). Move-only.
template <class T = reply>
class future {
public:
    /// No command: valid() is false.
    future() = default;
    /// Takes `other`'s command; `other` is not valid() afterwards.
    future(future&& other) noexcept = default;
    /// Drops this future's command (its reply is still read, and discarded) and takes `other`'s.
    future& operator=(future&& other) noexcept = default;
    /// Not copyable: one reply, collected once by one get().
    future(const future&) = delete;
    /// Not copyable: one reply, collected once by one get().
    future& operator=(const future&) = delete;

    /// Whether a reply is still to be collected (false once get() returned or threw).
    bool valid() const noexcept { return request_ != nullptr; }

    /// Whether the reply (or the failure) is in: get() returns at once.
    bool ready() const noexcept { return request_ && detail::request_done(*request_); }

    /// Waits for the reply; drives the shared connection itself when nobody else does.
    void wait() const {
        require_valid();
        if (!detail::request_done(*request_)) detail::await_request(*mux_, *request_);
    }

    /// Waits at most `d` (without driving): `std::future_status::ready` or
    /// `std::future_status::timeout`.
    template <class Rep, class Period>
    std::future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
        require_valid();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::nanoseconds>(d);
        return detail::await_request_until(*mux_, *request_, deadline) ? std::future_status::ready
                                                                       : std::future_status::timeout;
    }

    /// The reply as T, or throws what client::command<T>() would have thrown for it (a server
    /// error, a type mismatch, a timeout, a connection that failed with the command in flight).
    /// Once: the future is not valid() afterwards. std::future_error without a command.
    T get() {
        wait();
        const std::shared_ptr<detail::mux_request> r = std::move(request_);
        mux_.reset();
        std::string command, key;
        const detail::reply_ptr reply = detail::take_reply(*r, command, key);
        return detail::convert_reply<T>(reply.get(), detail::origin{command, key});
    }

private:
    friend class client;
    future(std::shared_ptr<detail::multiplexer> mux, std::shared_ptr<detail::mux_request> r)
        : mux_(std::move(mux)), request_(std::move(r)) {}

    void require_valid() const {
        if (!request_) throw std::future_error(std::future_errc::no_state);
    }

    std::shared_ptr<detail::multiplexer> mux_;  // kept alive while a reply is due (the client may be gone)
    std::shared_ptr<detail::mux_request> request_;
};

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/future.ipp>
#endif
