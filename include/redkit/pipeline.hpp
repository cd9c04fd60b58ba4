// SPDX-License-Identifier: MIT
// redkit::pipeline and redkit::transaction: many commands, one write, all replies read back.
//
// A pipeline borrows one connection from the client's pool at construction and holds it until it
// is destroyed, so every exec() runs on that connection. Commands are encoded into a buffer of
// the pipeline's own; nothing reaches the connection until exec(), so a pipeline dropped without
// exec() leaves the connection clean.
//
// exec() returns one redkit::reply per queued command, in order; an error reply of one command is
// a value (reply::is_error(), or as<T>() throws server_error) and does not stop the others. A
// transport failure throws redkit::error and discards the connection; pipelines are not retried,
// since some of their commands may have run. Not thread-safe: one thread at a time.
//
// A transaction wraps the queued commands in MULTI/EXEC: they run atomically, exec() returns the
// EXEC results; a command the server refuses to queue (syntax, unknown command) aborts the whole
// transaction with server_error(EXECABORT ...), and nothing runs.
#pragma once

#include <redkit/client.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/error.hpp>
#include <redkit/reply.hpp>
#include <redkit/script.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

namespace detail {
/// Appends one command in RESP to `out` (the format hiredis itself produces).
inline void append_resp(std::string& out, const argv& a) {
    char num[24];
    const auto put_len = [&](char lead, std::size_t n) {
        out += lead;
        const auto r = std::to_chars(num, num + sizeof num, n);
        out.append(num, static_cast<std::size_t>(r.ptr - num));
        out += "\r\n";
    };
    put_len('*', a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        const std::string_view s = a.at(i);
        put_len('$', s.size());
        out.append(s.data(), s.size());
        out += "\r\n";
    }
}
}  // namespace detail

/// Many commands in one write, their replies read back in order.
///
/// @code
/// redkit::pipeline p(redis);
/// p.command("SET", "a", 1).command("INCR", "a").command("GET", "a");
/// std::vector<redkit::reply> r = p.exec();   // r[1].as<long long>() == 2
/// @endcode
class pipeline {
public:
    /// Borrows a connection from `c`'s pool (connecting if needed; throws if it cannot).
    explicit pipeline(client c) : client_(std::move(c)), lease_(client_.borrow()) {}

    pipeline(pipeline&&) noexcept = default;
    pipeline& operator=(pipeline&&) noexcept = default;
    virtual ~pipeline() = default;

    /// Queues a command (arguments as for client::command).
    template <class... Args>
    pipeline& command(const Args&... args) {
        detail::argv a;
        a.push_all(args...);
        queue(a);
        return *this;
    }

    /// Queues EVALSHA of a script. When this connection has not loaded the script yet, a SCRIPT
    /// LOAD is queued first in the same write (its reply is not returned).
    template <class Keys = std::initializer_list<std::string_view>, class... Args>
    pipeline& eval(const script& s, const Keys& keys, const Args&... args) {
        ensure_lease();
        if (lease_->loaded_scripts().count(s.sha1()) == 0 && !preloading(s.sha1())) {
            detail::argv load;
            load.push_all("SCRIPT", "LOAD", s.source());
            detail::append_resp(preload_buffer_, load);
            preload_.push_back(s.sha1());
        }
        detail::argv a;
        a.push_all("EVALSHA", s.sha1(), static_cast<long long>(std::size(keys)), keys, args...);
        queue(a);
        return *this;
    }

    /// Number of commands queued since the last exec().
    std::size_t size() const noexcept { return queued_; }

    /// Sends everything queued in one write and reads every reply. The pipeline is empty
    /// afterwards and may be reused (on the same connection, if it is still healthy).
    virtual std::vector<reply> exec() { return run(std::string_view{}, std::string_view{}); }

protected:
    void queue(const detail::argv& a) {
        detail::require_arguments(a);
        if (first_command_.empty()) first_command_ = std::string(a.command_name());
        detail::append_resp(buffer_, a);
        ++queued_;
    }

    void ensure_lease() {
        if (!lease_ || lease_->broken()) {
            lease_.reset();
            lease_ = client_.borrow();
        }
    }

    bool preloading(const std::string& sha) const {
        for (const auto& p : preload_) {
            if (p == sha) return true;
        }
        return false;
    }

    // Sends the script preloads, prefix, the queued commands and suffix in one write; returns the
    // replies from prefix to suffix (the preloads' replies are checked, not returned).
    std::vector<reply> run(std::string_view prefix, std::string_view suffix) {
        ensure_lease();
        const std::vector<std::string> preload = std::move(preload_);
        const std::size_t expected = queued_ + (prefix.empty() ? 0 : 1) + (suffix.empty() ? 0 : 1);
        const std::string first = std::move(first_command_);  // names the pipeline in errors
        preload_.clear();
        queued_ = 0;
        first_command_.clear();
        if (expected == 0 && preload.empty()) return {};

        // each piece goes straight into the connection's output buffer: no joined copy
        auto* ctx = static_cast<redisContext*>(lease_->native_handle());
        for (const std::string_view piece : {std::string_view(preload_buffer_), prefix, std::string_view(buffer_), suffix}) {
            if (!piece.empty() && redisAppendFormattedCommand(ctx, piece.data(), piece.size()) != REDIS_OK) {
                throw std::bad_alloc();
            }
        }
        preload_buffer_.clear();
        buffer_.clear();
        if (auto st = lease_->flush(); !st.ok()) fail_transport(st, first);
        std::string load_error;
        for (std::size_t i = 0; i < preload.size(); ++i) {
            detail::reply_ptr r;
            if (auto st = lease_->read(r); !st.ok()) fail_transport(st, first);
            if (r->type == REDIS_REPLY_ERROR && load_error.empty()) load_error.assign(r->str, r->len);
        }
        std::vector<reply> out;
        out.reserve(expected);
        for (std::size_t i = 0; i < expected; ++i) {
            detail::reply_ptr r;
            if (auto st = lease_->read(r); !st.ok()) fail_transport(st, first);
            out.emplace_back(detail::node(r.get()));
        }
        if (!load_error.empty()) throw server_error(load_error, "redkit: SCRIPT LOAD: " + load_error);
        for (const auto& sha : preload) lease_->loaded_scripts().insert(sha);
        forget_flushed_scripts(out);
        return out;
    }

    [[noreturn]] void fail_transport(const detail::io_status& st, const std::string& first) {
        const std::string what = first.empty() ? std::string("pipeline") : "pipeline (" + first + " ...)";
        error e = transport_error(st, what, {});
        client_.report(e);
        lease_.reset();
        throw e;
    }

    void forget_flushed_scripts(const std::vector<reply>& replies) {
        for (const auto& r : replies) {
            if (r.is_error() && r.text().compare(0, 8, "NOSCRIPT") == 0) {
                lease_->loaded_scripts().clear();  // someone ran SCRIPT FLUSH; reload next time
                return;
            }
        }
    }

    client client_;
    detail::lease lease_;
    std::string buffer_;
    std::size_t queued_ = 0;
    std::string preload_buffer_;        // SCRIPT LOAD of scripts this connection has not seen
    std::vector<std::string> preload_;  // their shas
    std::string first_command_;
};

/// MULTI ... EXEC over a pipeline: the queued commands run atomically, in one round trip.
///
/// @code
/// redkit::transaction tx(redis);
/// tx.command("INCR", "orders:count").command("LPUSH", "orders:recent", id);
/// auto results = tx.exec();  // results[0].as<long long>()
/// @endcode
class transaction : public pipeline {
public:
    using pipeline::pipeline;

    /// Runs MULTI, the queued commands and EXEC; returns the results of the queued commands.
    /// Throws server_error (EXECABORT, with the first refused command's error) when the server
    /// refused to queue a command; nothing ran then.
    std::vector<reply> exec() override {
        const std::size_t n = queued_;
        std::vector<reply> all = run("*1\r\n$5\r\nMULTI\r\n", "*1\r\n$4\r\nEXEC\r\n");
        if (n == 0 && all.empty()) return {};
        reply& exec_reply = all.back();
        if (exec_reply.is_error()) {
            std::string detail = exec_reply.text();
            for (std::size_t i = 1; i + 1 < all.size(); ++i) {
                if (all[i].is_error()) {
                    detail += " (" + all[i].text() + ")";
                    break;
                }
            }
            throw server_error(exec_reply.text(), "redkit: EXEC: " + detail);
        }
        if (exec_reply.is_nil()) throw error(errc::invalid_state, "redkit: EXEC: transaction aborted");
        return exec_reply.elements();
    }
};

}  // namespace v0
}  // namespace redkit
