// SPDX-License-Identifier: MIT
// Optional: redkit's commands as Asio asynchronous operations (standalone Asio, Debian's
// libasio-dev; not included by redkit.hpp). Any completion token works: asio::use_awaitable,
// asio::deferred, asio::use_future, a plain callback.
//
//   asio::awaitable<void> greet(redkit::client& redis) {
//       auto name = co_await redkit::async_command<std::optional<std::string>>(
//           redis, redkit::cmd("GET", "user:42:name"), asio::use_awaitable);
//   }
//
// - The completion signature is void(std::exception_ptr, T) (void(std::exception_ptr) for
//   T = void): the exception is what client::command<T>() would have thrown (use_awaitable throws
//   it in the coroutine).
// - The handler runs on its associated executor (a coroutine's, a strand's, bind_executor's; for a
//   callback without one, Asio's system executor), never on redkit's I/O thread. The operation
//   counts as work on that executor until the handler ran, so io_context::run() does not return
//   while replies are due.
// - Per-operation cancellation (a cancellation slot bound to the handler, asio::cancellation_signal,
//   asio::experimental's awaitable operators, a timeout): the handler runs at once with
//   asio::error::operation_aborted (a std::system_error). A command not yet written is withdrawn
//   and never reaches the server; one already written runs on the server, and its reply is read
//   and discarded, so the connection stays in sync.
// - The command goes out as client::submit() sends it: on the shared connection, sent again only
//   when its connection could not be opened (up to max_retries); a blocking or stateful command
//   is refused (the handler gets std::invalid_argument).
//   Cluster, Sentinel and TLS as for submit(). The client must outlive the operation's start (a
//   deferred operation holds a copy of it, which shares the client's connections).
#pragma once

#if !defined(__has_include) || !__has_include(<asio.hpp>)
#error "redkit/asio.hpp needs standalone Asio (<asio.hpp>; on Debian and Ubuntu: apt-get install libasio-dev)"
#endif

#include <redkit/client.hpp>
#include <redkit/future.hpp>

#include <atomic>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include <asio.hpp>

namespace redkit {
inline namespace v0 {

/// A command's name and arguments for async_command(), copied (strings, integers, durations,
/// ranges: what client::command() takes). Made by cmd().
template <class... Args>
struct command_args {
    std::tuple<Args...> values;  ///< the command's name, then its arguments
};

/// The arguments of one command for async_command(): `redkit::cmd("SET", key, value, "EX", 60)`.
template <class... Args>
command_args<std::decay_t<Args>...> cmd(Args&&... args) {
    return {std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)};
}

namespace detail {

template <class T>
struct asio_signature {
    using type = void(std::exception_ptr, T);
};
template <>
struct asio_signature<void> {
    using type = void(std::exception_ptr);
};

// One operation: its handler, the work it counts on the handler's executor, and who completes it
// first (the reply, read on redkit's I/O thread, or a cancellation, on the canceller's thread).
template <class T, class Handler>
class asio_operation : public std::enable_shared_from_this<asio_operation<T, Handler>> {
public:
    using executor_type = asio::associated_executor_t<Handler>;
    using stored = std::conditional_t<std::is_void_v<T>, bool, T>;  // the value kept (void: none)

    explicit asio_operation(Handler h)
        : handler_(std::move(h)),
          work_(asio::make_work_guard(asio::get_associated_executor(handler_))),
          slot_(asio::get_associated_cancellation_slot(handler_)) {}

    // Completes it with what submitting the command threw (a refused command).
    void refuse(std::exception_ptr e) { complete(e); }

    // Starts it: `f` is the submitted command.
    void start(future<T> f) {
        request_ = future_access<T>::request(f);
        if (slot_.is_connected()) slot_.template emplace<canceller>(this->weak_from_this());
        f.then([self = this->shared_from_this()](future<T> g) {
            std::exception_ptr e;
            std::optional<stored> v;
            try {
                if constexpr (std::is_void_v<T>) {
                    g.get();
                } else {
                    v.emplace(g.get());
                }
            } catch (...) {
                e = std::current_exception();
            }
            self->complete(e, std::move(v));
        });
    }

private:
    struct canceller {
        std::weak_ptr<asio_operation> op;
        explicit canceller(std::weak_ptr<asio_operation> o) : op(std::move(o)) {}
        void operator()(asio::cancellation_type type) {
            if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                         asio::cancellation_type::total)) == asio::cancellation_type::none) {
                return;
            }
            if (const auto self = op.lock()) self->cancel();
        }
    };

    void cancel() {
        if (const auto r = request_.lock()) withdraw_request(*r);
        complete(std::make_exception_ptr(std::system_error(asio::error::operation_aborted)));
    }

    // The first to come posts the handler to its executor; the slot is cleared there, before the
    // handler runs (the executor is where the cancellation signal is emitted).
    void complete(std::exception_ptr e, std::optional<stored> v = std::nullopt) {
        if (done_.exchange(true, std::memory_order_acq_rel)) return;
        executor_type ex = work_.get_executor();
        asio::post(ex, [self = this->shared_from_this(), e, value = std::move(v)]() mutable {
            if (self->slot_.is_connected()) self->slot_.clear();
            Handler h = std::move(self->handler_);
            auto work = std::move(self->work_);
            if constexpr (std::is_void_v<T>) {
                std::move(h)(e);
            } else {
                std::move(h)(e, value ? std::move(*value) : T{});
            }
            work.reset();
        });
    }

    Handler handler_;
    asio::executor_work_guard<executor_type> work_;
    asio::cancellation_slot slot_;
    std::weak_ptr<mux_request> request_;
    std::atomic<bool> done_{false};
};

}  // namespace detail

/// Sends one command as an Asio asynchronous operation; completes with
/// (std::exception_ptr, T) on the handler's executor (see the top of this file). T must be
/// default-constructible (its value on an error).
template <class T = reply, class... Args, class CompletionToken>
auto async_command(const client& redis, command_args<Args...> command, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, typename detail::asio_signature<T>::type>(
        [](auto handler, client c, command_args<Args...> args) {
            auto op = std::make_shared<detail::asio_operation<T, std::decay_t<decltype(handler)>>>(std::move(handler));
            std::optional<future<T>> f;
            try {
                f.emplace(std::apply([&](const auto&... a) { return c.submit<T>(a...); }, args.values));
            } catch (...) {
                op->refuse(std::current_exception());  // a blocking or stateful command, no arguments
                return;
            }
            op->start(std::move(*f));
        },
        token, redis, std::move(command));
}

/// Waits for a redkit::future as an Asio asynchronous operation, so an Asio coroutine can await
/// what `co_await` on the future gives elsewhere: a command's (client::submit()), a script's
/// (client::submit_eval()), a pipeline's or transaction's (submit()), a pattern's
/// (rate_limiter::async_hit()...), a redkit::promise's. Completes with (std::exception_ptr, T) on
/// the handler's executor, as async_command() does; cancelled, at once with operation_aborted (a
/// command's future not yet written is withdrawn; any other outcome is dropped when it comes).
///
///   auto decision = co_await redkit::async_get(limiter.async_hit(ip), asio::use_awaitable);
template <class T, class CompletionToken>
auto async_get(future<T> f, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, typename detail::asio_signature<T>::type>(
        [](auto handler, future<T> g) {
            auto op = std::make_shared<detail::asio_operation<T, std::decay_t<decltype(handler)>>>(std::move(handler));
            if (!g.valid()) {
                op->refuse(std::make_exception_ptr(std::future_error(std::future_errc::no_state)));
                return;
            }
            op->start(std::move(g));
        },
        token, std::move(f));
}

}  // namespace v0
}  // namespace redkit
