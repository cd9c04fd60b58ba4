// SPDX-License-Identifier: MIT
// What the core hands the observer (observer.hpp): server names that outlive their connections,
// and command_watch, one command's record from its start to its outcome. A watch exists only
// when an observer is set: with none, a command makes no watch and reads no clock.
#pragma once

#include <redkit/core/io/raw.hpp>
#include <redkit/core/io/transport.hpp>
#include <redkit/observer.hpp>
#include <redkit/options.hpp>

#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

/// A server's name ("host:port", a socket path), kept for the life of the process: events and
/// requests point at it without owning a copy (a service talks to a handful of servers).
/// How an exception ends an observed command: a redkit::error's errc; invalid_state for a refused
/// argument; else `otherwise`.
inline errc errc_of(const std::exception_ptr& e, errc otherwise) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const error& x) {
        return static_cast<errc>(x.code().value());
    } catch (const std::invalid_argument&) {
        return errc::invalid_state;
    } catch (...) {
        return otherwise;
    }
}

inline const std::string* intern_server(std::string_view name) {
    static std::mutex* mutex = new std::mutex;                            // never destroyed: used
    static std::deque<std::string>* names = new std::deque<std::string>;  // during static destruction
    std::lock_guard<std::mutex> lock(*mutex);
    for (const std::string& n : *names) {
        if (n == name) return &n;
    }
    names->emplace_back(name);
    return &names->back();
}

/// The first word of an error reply ("WRONGTYPE").
inline std::string_view error_prefix_of(std::string_view text) noexcept { return text.substr(0, text.find(' ')); }

/// One observed command (or batch): filled as the request goes, reported once at its end.
struct command_watch {
    observer* to = nullptr;  // the client's; its options outlive every request
    std::string operation, key, query_text;
    const std::string* server = nullptr;  // interned
    int db = 0;
    command_path path = command_path::shared;
    std::size_t batch_size = 1;
    std::chrono::steady_clock::time_point start;
    int retries = 0, moved = 0, asked = 0;
    std::shared_ptr<void> context;

    command_event event() const {
        command_event e;
        e.operation = operation;
        e.key = key;
        e.query_text = query_text;
        if (server != nullptr) e.server = *server;
        e.db = db;
        e.path = path;
        e.batch_size = batch_size;
        e.start = start;
        e.retries = retries;
        e.moved = moved;
        e.asked = asked;
        return e;
    }

    /// Reads the clock and tells the observer the command starts.
    void begin() noexcept {
        start = std::chrono::steady_clock::now();
        try {
            context = to->on_command_start(event());
        } catch (...) {
        }
    }

    /// The command ended with this reply (and, for a batch, these earlier ones): ok, or the first
    /// error reply among them.
    void end_with(const raw_node* last, const std::vector<reply_ptr>* earlier = nullptr) noexcept {
        command_event e = event();
        const raw_node* error = nullptr;
        if (earlier != nullptr) {
            for (const auto& r : *earlier) {
                if (r && raw_is_error(r.get())) {
                    error = r.get();
                    break;
                }
            }
        }
        if (error == nullptr && last != nullptr && raw_is_error(last)) error = last;
        if (error != nullptr) {
            e.outcome = command_outcome::error_reply;
            e.error_prefix = error_prefix_of(raw_str(error));
        }
        report(e);
    }
    /// The command ended with an error reply whose text is `text` (a batch's EXECABORT).
    void end_with_error_text(std::string_view text) noexcept {
        command_event e = event();
        e.outcome = command_outcome::error_reply;
        e.error_prefix = error_prefix_of(text);
        report(e);
    }
    /// The command got no reply.
    void end_failed(errc why) noexcept {
        command_event e = event();
        e.outcome = command_outcome::failed;
        e.code = why;
        report(e);
    }

private:
    void report(command_event& e) noexcept {
        e.duration = std::chrono::steady_clock::now() - start;
        e.context = std::move(context);
        try {
            to->on_command(e);
        } catch (...) {
        }
    }
};

/// A watch for a command of a client with these options, begun; null when nothing observes.
inline std::unique_ptr<command_watch> watch_command(const client_options& o, std::string_view operation,
                                                    std::string_view key, std::string query_text,
                                                    std::size_t batch_size, command_path path) {
    if (!o.observer) return nullptr;
    auto w = std::make_unique<command_watch>();
    w->to = o.observer.get();
    w->operation.assign(operation);
    if (o.observe_keys) w->key.assign(key);
    w->query_text = std::move(query_text);
    w->db = o.db;
    w->batch_size = batch_size;
    w->path = path;
    w->begin();
    return w;
}

/// Tells the client's observer a connection opened (or failed to).
inline void observe_connect(const client_options& o, std::string_view server, std::chrono::nanoseconds took,
                            const io_status* failure) noexcept {
    connect_event e;
    e.server = server;
    e.tls = o.tls.enabled;
    e.duration = took;
    if (failure != nullptr && !failure->ok()) {
        e.ok = false;
        e.code = failure->code;
        e.reason = failure->text;
    }
    observe(o.observer.get(), &observer::on_connect, e);
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
