// SPDX-License-Identifier: MIT
// TLS for the transport (rediss://), through hiredis_ssl and OpenSSL; compiled only when
// REDKIT_HAS_TLS is 1. redkit makes its own SSL_CTX and SSL objects (not hiredis's
// redisSSLContext) for three reasons: the certificate is checked against the expected host name or
// IP address (hiredis only sends SNI), the transport can ask OpenSSL whether it holds decrypted
// bytes the socket no longer shows (SSL_pending), and the failure of a handshake can name its
// cause (an expired certificate, a wrong name, an unknown CA).
#pragma once

#include <redkit/options.hpp>

#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
/// What a build without TLS answers to rediss:// (or client_options::tls.enabled).
inline std::string no_tls_message(std::string_view what) {
    return "redkit: " + std::string(what) +
           " needs TLS, and this build of redkit has none: it needs hiredis >= 1.0 with its hiredis_ssl library "
           "and OpenSSL (Debian/Ubuntu: libssl-dev and a libhiredis-dev that ships libhiredis_ssl, e.g. Debian 13's) "
           "found by CMake (-DREDKIT_TLS=ON makes that a requirement); without CMake, link hiredis_ssl, ssl and "
           "crypto and define REDKIT_HAS_TLS=1";
}
}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HAS_TLS

#include <redkit/error.hpp>

#include <hiredis/hiredis.h>
#include <hiredis/hiredis_ssl.h>

#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace redkit {
inline namespace v0 {
namespace detail {

/// The last OpenSSL error as text (and the queue emptied).
inline std::string openssl_error_text() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

/// An SSL_CTX holding one set of tls_options: trusted CAs, the client certificate, verification.
/// Shared by every connection made with equal options (see tls_context_for).
class tls_context {
public:
    explicit tls_context(const tls_options& o) {
        static std::once_flag init;
        std::call_once(init, [] { redisInitOpenSSL(); });
        ctx_ = SSL_CTX_new(TLS_client_method());
        if (!ctx_)
            throw error(errc::connect_failed, "redkit: tls: cannot create an SSL context: " + openssl_error_text());
        SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
        try {
            if (o.verify) {
                SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
                const bool custom = !o.ca_file.empty() || !o.ca_dir.empty();
                const int loaded =
                    custom ? SSL_CTX_load_verify_locations(ctx_, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
                                                           o.ca_dir.empty() ? nullptr : o.ca_dir.c_str())
                           : SSL_CTX_set_default_verify_paths(ctx_);
                if (loaded != 1) fail("cannot load the trusted CAs (" + where(o.ca_file, o.ca_dir) + ")");
            } else {
                SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
            }
            if (!o.cert_file.empty() || !o.key_file.empty()) {
                if (o.cert_file.empty() || o.key_file.empty()) {
                    throw std::invalid_argument("redkit: tls_options: cert_file and key_file go together");
                }
                if (SSL_CTX_use_certificate_chain_file(ctx_, o.cert_file.c_str()) != 1) {
                    fail("cannot load the client certificate " + o.cert_file);
                }
                if (SSL_CTX_use_PrivateKey_file(ctx_, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
                    fail("cannot load the client key " + o.key_file);
                }
                if (SSL_CTX_check_private_key(ctx_) != 1) fail("the client key does not match its certificate");
            }
        } catch (...) {
            SSL_CTX_free(ctx_);
            throw;
        }
    }
    ~tls_context() { SSL_CTX_free(ctx_); }
    tls_context(const tls_context&) = delete;
    tls_context& operator=(const tls_context&) = delete;

    SSL_CTX* get() const noexcept { return ctx_; }

private:
    static std::string where(const std::string& file, const std::string& dir) {
        if (file.empty()) return dir;
        return dir.empty() ? file : file + ", " + dir;
    }
    [[noreturn]] static void fail(const std::string& what) {
        throw error(errc::connect_failed, "redkit: tls: " + what + ": " + openssl_error_text());
    }

    SSL_CTX* ctx_ = nullptr;
};

/// The context for these options, made once per process and shared (loading CAs is slow).
inline std::shared_ptr<tls_context> tls_context_for(const tls_options& o) {
    using key_type = std::tuple<std::string, std::string, std::string, std::string, bool>;
    static std::mutex mutex;
    static std::map<key_type, std::weak_ptr<tls_context>> cache;
    const key_type key{o.ca_file, o.ca_dir, o.cert_file, o.key_file, o.verify};
    std::lock_guard<std::mutex> lock(mutex);
    if (auto existing = cache[key].lock()) return existing;
    auto made = std::make_shared<tls_context>(o);
    cache[key] = made;
    return made;
}

inline bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

/// Runs the TLS handshake on a connected context (bounded by the socket's timeout). Returns the
/// SSL object, which hiredis owns from then on, or nullptr with `why` set (and `timed_out` when
/// the server did not answer in time).
inline SSL* start_tls(redisContext* c, const tls_context& ctx, const std::string& host, const tls_options& o,
                      std::string& why, bool& timed_out) {
    timed_out = false;
    SSL* ssl = SSL_new(ctx.get());
    if (!ssl) {
        why = "cannot create an SSL object: " + openssl_error_text();
        return nullptr;
    }
    const std::string& name = o.server_name.empty() ? host : o.server_name;
    bool ok = true;
    if (!is_ip_literal(name)) {  // SNI carries names only (SSL_set_tlsext_host_name, without its C cast)
        ok = SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str())) ==
             1;
    }
    if (ok && o.verify) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        ok = is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1
                                 : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) == 1;
    }
    if (!ok) {
        why = "cannot set the expected server name '" + name + "': " + openssl_error_text();
        SSL_free(ssl);
        return nullptr;
    }
    ERR_clear_error();
    errno = 0;
    if (redisInitiateSSL(c, ssl) != REDIS_OK) {
        timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
        why = c->errstr;
        if (timed_out) why = "no answer within the connect timeout";
        if (why.find("(null)") != std::string::npos || why.empty()) {  // OpenSSL gave no reason
            why = "the server did not complete a TLS handshake (does this port speak plain RESP, redis://?)";
        }
        const long verdict = SSL_get_verify_result(ssl);
        if (o.verify && verdict != X509_V_OK) {
            why += std::string(" (certificate: ") + X509_verify_cert_error_string(verdict) + ")";
        }
        SSL_free(ssl);  // hiredis took no ownership of it
        return nullptr;
    }
    return ssl;
}

/// What OpenSSL last recorded on this thread (e.g. the server's alert before it closed), or "".
inline std::string tls_last_alert() {
    if (ERR_peek_error() == 0) return {};
    return openssl_error_text();
}

/// Whether OpenSSL holds decrypted bytes that the socket no longer shows as readable.
inline bool tls_has_pending(SSL* ssl) noexcept { return ssl != nullptr && SSL_pending(ssl) > 0; }

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#endif  // REDKIT_HAS_TLS
