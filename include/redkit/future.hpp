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

#include <redkit/connection.hpp>
#include <redkit/error.hpp>
#include <redkit/multiplexer.hpp>
#include <redkit/reply.hpp>

#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <utility>

namespace redkit {
inline namespace v0 {

class client;

/// The reply of one submitted command as T (see client::submit()). Move-only.
template <class T = reply>
class future {
public:
    /// No command: valid() is false.
    future() = default;

    /// Whether a reply is still to be collected (false once get() returned or threw).
    bool valid() const noexcept { return request_ != nullptr; }

    /// Whether the reply (or the failure) is in: get() returns at once.
    bool ready() const noexcept { return request_ && request_->park.done(); }

    /// Waits for the reply; drives the shared connection itself when nobody else does.
    void wait() const {
        require_valid();
        if (!request_->park.done()) mux_->await(*request_);
    }

    /// Waits at most `d` (without driving): std::future_status::ready or ::timeout.
    template <class Rep, class Period>
    std::future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
        require_valid();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::nanoseconds>(d);
        return mux_->await_until(*request_, deadline) ? std::future_status::ready : std::future_status::timeout;
    }

    /// The reply as T, or throws what client::command<T>() would have thrown for it (a server
    /// error, a type mismatch, a timeout, a connection that failed with the command in flight).
    /// Once: the future is not valid() afterwards. std::future_error without a command.
    T get() {
        wait();
        const std::shared_ptr<detail::mux_request> r = std::move(request_);
        mux_.reset();
        const detail::origin from{r->command, r->key};
        if (r->refused) std::rethrow_exception(r->refused);  // the setup's server_error (WRONGPASS...)
        if (!r->status.ok()) throw detail::transport_error(r->status, r->command, r->key);
        return detail::convert_reply<T>(r->reply.get(), from);
    }

private:
    friend class client;
    future(std::shared_ptr<multiplexer> mux, std::shared_ptr<detail::mux_request> r)
        : mux_(std::move(mux)), request_(std::move(r)) {}

    void require_valid() const {
        if (!request_) throw std::future_error(std::future_errc::no_state);
    }

    std::shared_ptr<multiplexer> mux_;  // kept alive while a reply is due (the client may be gone)
    std::shared_ptr<detail::mux_request> request_;
};

}  // namespace v0
}  // namespace redkit
