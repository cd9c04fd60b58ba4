// SPDX-License-Identifier: MIT
// redkit's error model.
//
// One exception root, redkit::error (a std::system_error carrying a redkit::errc), and
// redkit::server_error for error replies sent by the server, which keeps the server's text and
// its prefix (WRONGTYPE, ERR, NOSCRIPT, WRONGPASS, ...). Transport failures are told apart by
// their errc: timeout, connection_closed, io_error, protocol_error, connect_failed.
// Absence is never an error: a nil reply read as std::optional is std::nullopt.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace redkit {
inline namespace v0 {

/// Error conditions raised by redkit.
enum class errc {
    io_error = 1,       ///< a read or write on the socket failed
    timeout,            ///< the command (or connect) did not complete within its timeout
    connection_closed,  ///< the server closed the connection (EOF, reset, broken pipe)
    protocol_error,     ///< the server sent bytes that are not RESP
    connect_failed,     ///< no connection could be established
    server_error,       ///< the server answered with an error reply (see server_error)
    type_mismatch,      ///< the reply's shape does not fit the requested C++ type
    decode_error,       ///< a stored value could not be decoded (corrupt JSON, wrong schema)
    pool_exhausted,     ///< no pooled connection became free in time
    invalid_state,      ///< the object cannot be used this way (e.g. a pipeline already run)
    handler_failed,     ///< an application handler (subscriber, worker) threw
    insecure,           ///< a warning: TLS without certificate verification (tls_options::verify = false)
    cancelled,          ///< the command was cancelled before it was sent (Asio's per-operation cancellation)
};

namespace detail {
class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "redkit"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::io_error: return "i/o error";
            case errc::timeout: return "timeout";
            case errc::connection_closed: return "connection closed";
            case errc::protocol_error: return "protocol error";
            case errc::connect_failed: return "connect failed";
            case errc::server_error: return "server error";
            case errc::type_mismatch: return "reply type mismatch";
            case errc::decode_error: return "decode error";
            case errc::pool_exhausted: return "connection pool exhausted";
            case errc::invalid_state: return "invalid state";
            case errc::handler_failed: return "handler failed";
            case errc::insecure: return "insecure connection";
            case errc::cancelled: return "cancelled";
        }
        return "unknown redkit error";
    }
};

}  // namespace detail

/// The category of redkit's error codes.
inline const std::error_category& error_category() noexcept {
    static const detail::error_category_impl category;
    return category;
}

/// The enumerator's name ("timeout", "connection_closed"): a short, stable label for logs and
/// metrics (the OpenTelemetry adapter's error.type).
inline const char* errc_name(errc e) noexcept {
    switch (e) {
        case errc::io_error: return "io_error";
        case errc::timeout: return "timeout";
        case errc::connection_closed: return "connection_closed";
        case errc::protocol_error: return "protocol_error";
        case errc::connect_failed: return "connect_failed";
        case errc::server_error: return "server_error";
        case errc::type_mismatch: return "type_mismatch";
        case errc::decode_error: return "decode_error";
        case errc::pool_exhausted: return "pool_exhausted";
        case errc::invalid_state: return "invalid_state";
        case errc::handler_failed: return "handler_failed";
        case errc::insecure: return "insecure";
        case errc::cancelled: return "cancelled";
    }
    return "unknown";
}

/// `e` as a std::error_code of error_category() (so an errc compares with error::code()).
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// Root of every exception redkit throws (besides std::invalid_argument for bad arguments and
/// std::bad_alloc). what() reads like "redkit: GET user:42: timeout".
class error : public std::system_error {
public:
    /// An error of kind `code` whose what() is `what`, exactly.
    error(errc code, const std::string& what)
        : std::system_error(make_error_code(code), what), what_(std::make_shared<const std::string>(what)) {}

    /// The message exactly as built by redkit (system_error would append the category text).
    const char* what() const noexcept override { return what_->c_str(); }

    /// The redkit condition.
    errc kind() const noexcept { return static_cast<errc>(code().value()); }

    /// True for failures of the transport (the connection is unusable afterwards).
    bool is_transport() const noexcept {
        const auto k = kind();
        return k == errc::io_error || k == errc::timeout || k == errc::connection_closed || k == errc::protocol_error ||
               k == errc::connect_failed;
    }

private:
    std::shared_ptr<const std::string> what_;  // shared: copying an exception must not throw
};

/// An error reply from the server. prefix() is its first word (WRONGTYPE, ERR, NOSCRIPT...),
/// server_message() its full text as the server sent it.
class server_error : public error {
public:
    /// `server_message` is the error reply's text as the server sent it, `what` the full message
    /// (naming the command and key).
    server_error(std::string server_message, const std::string& what)
        : error(errc::server_error, what),
          server_message_(std::make_shared<const std::string>(std::move(server_message))) {}

    /// The error reply's text as the server sent it, e.g. "WRONGTYPE Operation against a key...".
    const std::string& server_message() const noexcept { return *server_message_; }

    /// The first word of server_message() (WRONGTYPE, ERR, NOSCRIPT...); all of it when it holds
    /// no space.
    std::string_view prefix() const noexcept {
        std::string_view m = *server_message_;
        return m.substr(0, m.find(' '));
    }

private:
    std::shared_ptr<const std::string> server_message_;  // shared: copies never throw
};

namespace detail {
/// Calls an application's error callback (client_options::on_error, a pattern's own), swallowing
/// what it throws: callbacks must not throw, and one that does never breaks the caller.
template <class Callback>
void notify(const Callback& callback, const error& e) noexcept {
    if (!callback) return;
    try {
        callback(e);
    } catch (...) {
    }
}
}  // namespace detail

}  // namespace v0
}  // namespace redkit

/// \cond
template <>
struct std::is_error_code_enum<redkit::errc> : std::true_type {};
/// \endcond
