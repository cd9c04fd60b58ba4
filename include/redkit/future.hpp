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
//
// Without waiting at all: then() runs a callback when the reply is in, and (C++20) a future is
// awaitable, so a coroutine can `co_await redis.submit<std::string>("GET", key)`:
//
//   redis.submit<std::string>("GET", "user:42:name").then([](redkit::future<std::string> f) {
//       try { greet(f.get()); } catch (const redkit::error& e) { log(e.what()); }
//   });
//
// Where a callback runs, and what it may do:
//   - on the thread that reads the reply: redkit's I/O thread, or a thread that waits for another
//     command of the same connection and reads its replies meanwhile (future::get()); a callback
//     attached after the reply is in runs at once, inside then(). A resumed coroutine runs there too
//     until its next suspension.
//   - it delays the replies read after it: keep it short, and never block in it. Waiting for a
//     reply from it would wait for the very thread that reads replies: client::command() and
//     eval() (and the patterns built on them), and get() or wait() of a future whose reply is not
//     in, throw redkit::error (errc::invalid_state) there. Sending more (submit(), then()) is fine.
//   - what it throws is passed to client_options::on_error (errc::handler_failed); inside then() it
//     propagates to then()'s caller.
//   - every callback runs exactly once: with the reply, or with the error get() throws (a server
//     error, a timeout, a connection that failed, a server killed with the command in flight, a
//     full queue). Callbacks still pending when the client's last copy goes run before its
//     destructor returns (the queue is sent first; unless a future of that client is still held,
//     which keeps the connection open), so they must not use that client.
#pragma once

#include <redkit/config.hpp>
#include <redkit/core/dispatch/completion.hpp>
#include <redkit/core/io/raw.hpp>
#include <redkit/error.hpp>
#include <redkit/reply.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#if defined(__cpp_impl_coroutine) && defined(__has_include)
#if __has_include(<coroutine>)
#include <coroutine>
#define REDKIT_COROUTINES 1
#endif
#endif
#ifndef REDKIT_COROUTINES
#define REDKIT_COROUTINES 0
#endif

namespace redkit {
inline namespace v0 {

class client;
template <class T>
class future;
namespace detail {
class multiplexer;
struct mux_request;

// What a future asks of its multiplexer (impl/future.ipp).
REDKIT_DECL bool request_done(const mux_request& r) noexcept;
// m: the multiplexer whose queue holds r; null for a cluster command (its hops are queued, not r)
REDKIT_DECL void await_request(multiplexer* m, mux_request& r);
REDKIT_DECL bool await_request_until(multiplexer* m, mux_request& r, std::chrono::steady_clock::time_point deadline);
/// The finished request's reply; throws its failure (the setup's server_error, or the transport
/// error naming the command). `command` and `key` receive the request's, for messages.
REDKIT_DECL reply_ptr take_reply(mux_request& r, std::string& command, std::string& key);
/// Attaches `c` to r (then(), co_await); false, with `c` left to the caller, when r is finished.
REDKIT_DECL bool attach_completion(multiplexer* m, const std::shared_ptr<mux_request>& r,
                                   std::unique_ptr<mux_completion>& c);
/// Runs c with r (r is finished): then()'s callback when the reply was in already.
REDKIT_DECL void run_completion(mux_completion& c, std::shared_ptr<mux_request> r);
/// Cancels r: still queued, it fails unsent (errc::cancelled) when the connection next takes a
/// batch; sent, nothing changes (its reply is read as usual, and the caller ignores it).
REDKIT_DECL void withdraw_request(mux_request& r) noexcept;
/// What the Asio adapter (asio.hpp) reaches inside a future.
template <class T>
struct future_access;

/// A request no multiplexer queues: a promise's, finished by settle().
REDKIT_DECL std::shared_ptr<mux_request> make_detached();
/// Finishes r with a value (`made`) or an exception, wakes its waiter and runs its completion.
/// What the completion throws goes to on_error; without one, when `throw_unhandled`, it is thrown
/// from here once r is finished (else dropped, as the multiplexer drops it).
REDKIT_DECL void settle(const std::shared_ptr<mux_request>& r, std::shared_ptr<void> made, std::exception_ptr e,
                        const std::function<void(const error&)>& on_error, bool throw_unhandled);
/// The value a promise set (null for a command's request, whose reply is converted); throws the
/// exception it set, or the request's setup failure.
REDKIT_DECL void* made_value(mux_request& r);

// then(): the callback, given the finished command as a ready future
template <class T, class F>
class then_completion;
// co_await (C++20)
template <class T>
class future_awaiter;
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
        if (!detail::request_done(*request_)) detail::await_request(mux_.get(), *request_);
    }

    /// Waits at most `d` (without driving): `std::future_status::ready` or
    /// `std::future_status::timeout`.
    template <class Rep, class Period>
    std::future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
        require_valid();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::nanoseconds>(d);
        return detail::await_request_until(mux_.get(), *request_, deadline) ? std::future_status::ready
                                                                            : std::future_status::timeout;
    }

    /// The reply as T, or throws what client::command<T>() would have thrown for it (a server
    /// error, a type mismatch, a timeout, a connection that failed with the command in flight).
    /// Once: the future is not valid() afterwards. std::future_error without a command.
    T get() {
        wait();
        const std::shared_ptr<detail::mux_request> r = std::move(request_);
        mux_.reset();
        if (void* made = detail::made_value(*r)) {  // a promise's value
            if constexpr (std::is_void_v<T>) {
                return;
            } else {
                return std::move(*static_cast<T*>(made));
            }
        }
        if constexpr (std::is_void_v<T> || has_reply_traits<T>::value) {
            std::string command, key;
            const detail::reply_ptr reply = detail::take_reply(*r, command, key);
            return detail::convert_reply<T>(reply.get(), detail::origin{command, key});
        } else {
            // only a promise makes a future of a type no reply converts to, and it set a value
            throw std::future_error(std::future_errc::no_state);
        }
    }

    /// Runs `f` with this command as a ready future (its get() returns at once, or throws) when
    /// the reply is in, without a thread waiting for it; at once, inside then(), if it is in
    /// already. `f` is callable as `f(redkit::future<T>)`. Where it runs and what it may do: see
    /// the top of future.hpp. The future is not valid() afterwards. std::future_error without a
    /// command.
    template <class F>
    void then(F&& f) {
        constexpr bool callable = std::is_invocable_v<std::decay_t<F>&, future<T>>;
        static_assert(callable, "redkit: future<T>::then(f) needs f callable as f(redkit::future<T>)");
        if constexpr (callable) {  // (else only the message above)
            require_valid();
            std::shared_ptr<detail::mux_request> r = std::move(request_);
            const std::shared_ptr<detail::multiplexer> m = std::move(mux_);
            std::unique_ptr<detail::mux_completion> c =
                std::make_unique<detail::then_completion<T, std::decay_t<F>>>(std::forward<F>(f));
            if (!detail::attach_completion(m.get(), r, c)) detail::run_completion(*c, std::move(r));
        }
    }

private:
    friend class client;
    template <class>
    friend class promise;
    template <class, class>
    friend class detail::then_completion;
    template <class>
    friend class detail::future_awaiter;
    template <class>
    friend struct detail::future_access;
    future(std::shared_ptr<detail::multiplexer> mux, std::shared_ptr<detail::mux_request> r)
        : mux_(std::move(mux)), request_(std::move(r)) {}

    void require_valid() const {
        if (!request_) throw std::future_error(std::future_errc::no_state);
    }

    std::shared_ptr<detail::multiplexer> mux_;  // kept alive while a reply is due (the client may be gone)
    std::shared_ptr<detail::mux_request> request_;
};

/// The writing end of a redkit::future that your code completes, not a command: an awaitable
/// loader's result (cache::async_get_or_set), or a bridge from another library's callbacks. As
/// std::promise: get_future() once, then set_value() or set_exception() once, from any thread.
/// The future works as a command's does (get(), then(), co_await, redkit::async_get); a callback
/// attached to it runs on the thread that sets the value (or inside then(), if set already).
///
/// @code
/// redkit::promise<Product> p;
/// redkit::future<Product> f = p.get_future();
/// db.fetch(id, [p = std::move(p)](Product row) mutable { p.set_value(std::move(row)); });
/// @endcode
template <class T>
class promise {
public:
    /// A promise whose future's callbacks, when they throw, throw out of set_value() (or
    /// set_exception()) once the future is complete.
    promise() : request_(detail::make_detached()), throw_unhandled_(true) {}
    /// A promise whose future's callbacks, when they throw, are reported to `on_error`
    /// (errc::handler_failed), as a client's are (and dropped when it is empty).
    explicit promise(std::function<void(const error&)> on_error)
        : request_(detail::make_detached()), on_error_(std::move(on_error)) {}
    /// Takes `other`'s state; `other` has none afterwards.
    promise(promise&& other) noexcept
        : request_(std::move(other.request_)),
          on_error_(std::move(other.on_error_)),
          throw_unhandled_(other.throw_unhandled_),
          retrieved_(other.retrieved_),
          settled_(other.settled_) {}
    /// Abandons this promise's state (as the destructor does), then takes `other`'s.
    promise& operator=(promise&& other) noexcept {
        if (this != &other) {
            abandon();
            request_ = std::move(other.request_);
            on_error_ = std::move(other.on_error_);
            throw_unhandled_ = other.throw_unhandled_;
            retrieved_ = other.retrieved_;
            settled_ = other.settled_;
        }
        return *this;
    }
    promise(const promise&) = delete;
    promise& operator=(const promise&) = delete;
    /// A future taken and never completed gets std::future_error(broken_promise).
    ~promise() { abandon(); }

    /// The future this promise completes. Once: std::future_error (future_already_retrieved)
    /// the second time, (no_state) for a moved-from promise.
    future<T> get_future() {
        if (!request_) throw std::future_error(std::future_errc::no_state);
        if (retrieved_) throw std::future_error(std::future_errc::future_already_retrieved);
        retrieved_ = true;
        return future<T>(nullptr, request_);
    }

    /// Completes the future with a value (none for promise<void>). Once: std::future_error
    /// (promise_already_satisfied) the second time.
    template <class... V>
    void set_value(V&&... v) {
        if constexpr (std::is_void_v<T>) {
            static_assert(sizeof...(V) == 0, "redkit: promise<void>::set_value() takes no value");
            settle(std::make_shared<bool>(true), nullptr);
        } else {
            static_assert(sizeof...(V) == 1, "redkit: promise<T>::set_value(v) takes one value");
            settle(std::make_shared<T>(std::forward<V>(v)...), nullptr);
        }
    }

    /// Completes the future with an exception: its get() throws it.
    void set_exception(std::exception_ptr e) {
        if (!e) throw std::invalid_argument("redkit: promise::set_exception: null exception_ptr");
        settle(nullptr, std::move(e));
    }

private:
    void settle(std::shared_ptr<void> made, std::exception_ptr e) {
        if (!request_) throw std::future_error(std::future_errc::no_state);
        if (settled_) throw std::future_error(std::future_errc::promise_already_satisfied);
        settled_ = true;
        detail::settle(request_, std::move(made), std::move(e), on_error_, throw_unhandled_);
    }
    void abandon() noexcept {
        if (!request_ || settled_ || !retrieved_) return;
        settled_ = true;
        try {
            detail::settle(request_, nullptr,
                           std::make_exception_ptr(std::future_error(std::future_errc::broken_promise)), on_error_,
                           false);
        } catch (...) {
            // (allocation failed: the future's waiter is still woken by nobody; nothing to do)
        }
    }

    std::shared_ptr<detail::mux_request> request_;
    std::function<void(const error&)> on_error_;
    bool throw_unhandled_ = false;
    bool retrieved_ = false;
    bool settled_ = false;
};

namespace detail {
/// A future that holds `value` already: an async call whose answer needs no round trip.
template <class T>
future<T> ready(T value) {
    promise<T> p;
    future<T> out = p.get_future();
    p.set_value(std::move(value));
    return out;
}

/// A future<U> of what `fn(future<T>)` returns once `f` is complete (fn's exception is the
/// future's); what a callback on it throws goes to on_error. The patterns' async steps.
template <class U, class T, class F>
future<U> chain(future<T> f, F fn, std::function<void(const error&)> on_error) {
    promise<U> p(std::move(on_error));
    future<U> out = p.get_future();
    f.then([p = std::move(p), fn = std::move(fn)](future<T> g) mutable {
        std::exception_ptr failed;
        try {
            if constexpr (std::is_void_v<U>) {
                fn(std::move(g));
                p.set_value();
            } else {
                p.set_value(fn(std::move(g)));
            }
            return;
        } catch (...) {
            failed = std::current_exception();
        }
        p.set_exception(failed);
    });
    return out;
}
}  // namespace detail

namespace detail {
template <class T>
struct future_access {
    static const std::shared_ptr<mux_request>& request(const future<T>& f) noexcept { return f.request_; }
    /// A future of a request no multiplexer queues (a chain's, a pattern's script).
    static future<T> detached(std::shared_ptr<mux_request> r) noexcept { return future<T>(nullptr, std::move(r)); }
};

template <class T, class F>
class then_completion final : public mux_completion {
public:
    template <class G>
    explicit then_completion(G&& g) : f_(std::forward<G>(g)) {}
    // a finished command needs no multiplexer: its future's get() does not wait
    void complete(std::shared_ptr<mux_request> r) override { f_(future<T>(nullptr, std::move(r))); }

private:
    F f_;
};

#if REDKIT_COROUTINES
// co_await: resumes the coroutine
class resume_completion final : public mux_completion {
public:
    explicit resume_completion(std::coroutine_handle<> h) noexcept : h_(h) {}
    void complete(std::shared_ptr<mux_request>) override { h_.resume(); }

private:
    std::coroutine_handle<> h_;
};

template <class T>
class future_awaiter {
public:
    explicit future_awaiter(future<T>&& f) noexcept : f_(std::move(f)) {}
    bool await_ready() const noexcept { return f_.ready(); }
    bool await_suspend(std::coroutine_handle<> h) {
        f_.require_valid();
        std::unique_ptr<mux_completion> c = std::make_unique<resume_completion>(h);
        // the coroutine may resume on another thread as soon as c is attached, and f_ go with it:
        // the multiplexer's share is released on this thread
        const std::shared_ptr<multiplexer> m = std::move(f_.mux_);
        return attach_completion(m.get(), f_.request_, c);  // false: finished already, go on
    }
    T await_resume() { return f_.get(); }

private:
    future<T> f_;
};
#endif
}  // namespace detail

#if REDKIT_COROUTINES
/// C++20: `co_await redis.submit<T>(...)` (or `co_await std::move(f)`) suspends the coroutine
/// until the reply is in, then gives get()'s value or throws its error. It does not suspend when
/// the reply is in already; else it resumes on the thread that read the reply (see the top of
/// future.hpp). Usable from any coroutine type whose promise does not restrict what it awaits.
template <class T>
auto operator co_await(future<T>&& f) noexcept {
    return detail::future_awaiter<T>(std::move(f));
}
#endif

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/future.ipp>
#endif
