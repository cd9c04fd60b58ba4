// SPDX-License-Identifier: MIT
// TLS workloads (only in a build with TLS): GET of a 100-byte value one at a time, and pipelined
// in batches of 16, over TLS to a redis-server of their own (certificates from
// tests/support/make-test-certs), next to raw hiredis over TLS (redisCreateSSLContext +
// redisInitiateSSLWithContext) on the same server.
#include "bench.hpp"

#if REDKIT_HAS_TLS

#include "support/redis_server.hpp"

#include <hiredis/hiredis_ssl.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace redkit_bench {
namespace {

struct tls_state {
    std::unique_ptr<redkit_test::redis_server> server;
    std::unique_ptr<redkit::client> one;  // a pool of one connection
    redisSSLContext* ssl = nullptr;
    redisContext* raw = nullptr;
    ~tls_state() {
        if (raw) redisFree(raw);
        if (ssl) redisFreeSSLContext(ssl);
    }
};

void add_tls(context& ctx, std::vector<workload>& out) {
    if (!ctx.own_server) return;  // needs a TLS server of its own
    auto st = std::make_shared<tls_state>();
    st->server = std::make_unique<redkit_test::redis_server>(std::vector<std::string>{}, redkit_test::tls_mode::on);
    auto o = st->server->options();
    o.pool_size = 1;
    st->one = std::make_unique<redkit::client>(o);

    redisInitOpenSSL();
    redisSSLContextError err = REDIS_SSL_CTX_NONE;
    const std::string ca = st->server->tls_dir() + "/ca.crt";
    st->ssl = redisCreateSSLContext(ca.c_str(), nullptr, nullptr, nullptr, "localhost", &err);
    if (!st->ssl) throw std::runtime_error(std::string("raw TLS context: ") + redisSSLContextGetError(err));
    st->raw = raw_connect(o);
    if (redisInitiateSSLWithContext(st->raw, st->ssl) != REDIS_OK) {
        throw std::runtime_error(std::string("raw TLS handshake: ") + st->raw->errstr);
    }

    const std::string value100(100, 'v');
    const std::string key = "bench:tls:key";
    raw_set(st->raw, key, value100);
    std::vector<std::string> keys16;
    for (int i = 0; i < 16; ++i) {
        keys16.push_back("bench:tls:key:" + std::to_string(i));
        raw_set(st->raw, keys16.back(), value100);
    }

    out.push_back({"tls_get",
                   3000 * ctx.scale,
                   {{"hiredis",
                     [st, key](long long n) {
                         for (long long i = 0; i < n; ++i) sink = sink + raw_get(st->raw, key).size();
                     }},
                    {"redkit", [st, key](long long n) {
                         for (long long i = 0; i < n; ++i)
                             sink = sink + st->one->command<std::string>("GET", key).size();
                     }}}});

    out.push_back({"tls_get_pipelined16",
                   16 * 300 * ctx.scale,
                   {{"hiredis",
                     [st, keys16](long long n) {
                         for (long long b = 0; b < n / 16; ++b) sink = sink + raw_get_pipelined(st->raw, keys16);
                     }},
                    {"redkit", [st, keys16](long long n) {
                         for (long long b = 0; b < n / 16; ++b) {
                             redkit::pipeline p(*st->one);
                             for (const auto& k : keys16) p.command("GET", k);
                             for (const auto& r : p.exec()) sink = sink + r.text().size();
                         }
                     }}}});
}

const registrar reg(5, "tls", &add_tls);

}  // namespace
}  // namespace redkit_bench

#endif  // REDKIT_HAS_TLS
