// SPDX-License-Identifier: MIT
// TLS against real redis-servers with certificates made at test time (support/make-test-certs):
// every pattern over TLS, mutual TLS, and the bad cases (wrong CA, wrong name, expired
// certificate, plaintext against TLS and TLS against plaintext), each a clear error in time.
// Built only when redkit has TLS (hiredis_ssl and OpenSSL found). With REDKIT_TEST_TLS=1 the other
// suites run over TLS too; this one always does.
#include <redkit/redkit.hpp>

#include "support/error_log.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using redkit_test::error_log;
using redkit_test::redis_server;
using redkit_test::tls_mode;

namespace {

redis_server& tls_server() {
    static redis_server server({}, tls_mode::on);
    return server;
}

redkit::client_options tls_options() {
    auto o = tls_server().options();
    o.connect_timeout = 1000ms;
    o.command_timeout = 1000ms;
    return o;
}

// Expects a connect to fail with a redkit::error within `limit`; returns its message.
std::string connect_error(const redkit::client_options& o, std::chrono::milliseconds limit = 2500ms) {
    const auto start = std::chrono::steady_clock::now();
    std::string what;
    try {
        redkit::client c(o);
        c.ping();
        ADD_FAILURE() << "connected";
    } catch (const redkit::error& e) {
        what = e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, limit) << what;
    return what;
}

}  // namespace

TEST(Tls, CommandsPipelinesAndScriptsRunOverTls) {
    redkit::client redis(tls_options());
    ASSERT_TRUE(redis.options().tls.enabled);
    redis.command<void>("SET", "tls:k", "v");
    EXPECT_EQ(redis.command<std::string>("GET", "tls:k"), "v");
    const std::string big(1 << 20, 'x');  // many TLS records in one reply
    redis.command<void>("SET", "tls:big", big);
    EXPECT_EQ(redis.command<std::string>("GET", "tls:big"), big);
    redkit::pipeline p(redis);
    for (int i = 0; i < 100; ++i) p.command("INCR", "tls:n");
    EXPECT_EQ(p.exec().back().as<long long>(), 100);
    static const redkit::script twice("return tonumber(ARGV[1]) * 2");
    EXPECT_EQ(redis.eval<long long>(twice, std::initializer_list<std::string_view>{}, 21), 42);
    // the connection really is TLS: the server counts it on its TLS port
    const auto info = redis.command<std::string>("CLIENT", "INFO");
    EXPECT_NE(info.find("laddr=127.0.0.1:" + std::to_string(tls_server().tls_port())), std::string::npos) << info;
}

TEST(Tls, SubscriberStreamConsumerAndBlockingWorkerRunOverTls) {
    redkit::client redis(tls_options());
    redis.command<void>("FLUSHALL");

    // subscriber: messages bigger than one TLS record
    std::promise<std::size_t> got;
    redkit::subscriber sub(redis);
    sub.on_raw("tls:events", [&](const redkit::message& m) { got.set_value(m.payload.size()); });
    ASSERT_TRUE(sub.wait_subscribed(5s));
    redkit::publisher(redis).publish_raw("tls:events", std::string(200000, 'm'));
    auto f = got.get_future();
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(f.get(), 200000u);

    // stream consumer: XREADGROUP BLOCK on its own TLS connection, woken by an add
    std::atomic<int> handled{0};
    redkit::stream<int> events(redis, "tls:stream");
    redkit::stream_consumer<int> consumer(redis, "tls:stream", "g", "c1",
                                          [&](const int&, const redkit::stream_entry&) { ++handled; });
    consumer.start();
    for (int i = 0; i < 20; ++i) events.add(i);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (handled.load() < 20 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    consumer.stop();
    EXPECT_EQ(handled.load(), 20);

    // queue worker: idle in BZPOPMIN over TLS, woken by an add
    redkit::queue<int> q(redis, "tls-jobs");
    std::promise<int> done;
    redkit::worker_options<int> wo;
    wo.block_timeout = 5000ms;
    redkit::worker<int> w(
        q, [&](redkit::job<int>& j) { done.set_value(j.data()); }, wo);
    std::this_thread::sleep_for(100ms);  // the worker blocks on the server
    (void)q.add("job", 7);
    auto d = done.get_future();
    ASSERT_EQ(d.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(d.get(), 7);
    EXPECT_TRUE(w.close(5s));
}

TEST(Tls, MutualTlsNeedsTheClientCertificate) {
    redis_server strict({"--tls-auth-clients", "yes"}, tls_mode::on);
    auto o = strict.options();
    o.connect_timeout = 1000ms;
    o.command_timeout = 1000ms;
    o.max_retries = 0;
    const std::string without = connect_error(o);
    // the server's alert when it arrives before the connection resets, else the hint
    EXPECT_TRUE(without.find("certificate required") != std::string::npos ||
                without.find("client certificate") != std::string::npos)
        << without;
    o.tls.cert_file = strict.tls_dir() + "/client.crt";
    o.tls.key_file = strict.tls_dir() + "/client.key";
    redkit::client with(o);
    EXPECT_EQ(with.command<std::string>("PING"), "PONG");
}

TEST(Tls, AnUntrustedCaIsAClearConnectError) {
    auto o = tls_options();
    o.tls.ca_file = tls_server().tls_dir() + "/other-ca.crt";
    const std::string what = connect_error(o);
    EXPECT_NE(what.find("TLS handshake"), std::string::npos) << what;
    EXPECT_NE(what.find("certificate"), std::string::npos) << what;
}

TEST(Tls, AWrongServerNameIsAClearConnectError) {
    auto o = tls_options();
    o.tls.server_name = "other.example";  // the certificate names 127.0.0.1 and localhost
    const std::string what = connect_error(o);
    EXPECT_NE(what.find("hostname mismatch"), std::string::npos) << what;
    o.tls.server_name = "localhost";  // a name the certificate carries
    redkit::client ok(o);
    EXPECT_EQ(ok.command<std::string>("PING"), "PONG");
}

TEST(Tls, ACertificateForAnotherNameIsRefused) {
    const std::string dir = tls_server().tls_dir();
    redis_server other({"--tls-cert-file", dir + "/wrongname.crt", "--tls-key-file", dir + "/server.key"},
                       tls_mode::on);
    auto o = other.options();
    o.tls.ca_file = dir + "/ca.crt";  // the same CA signed it
    const std::string what = connect_error(o);
    EXPECT_NE(what.find("IP address mismatch"), std::string::npos) << what;
}

TEST(Tls, AnExpiredCertificateIsAClearConnectError) {
    const std::string dir = tls_server().tls_dir();
    redis_server expired({"--tls-cert-file", dir + "/expired.crt", "--tls-key-file", dir + "/server.key"},
                         tls_mode::on);
    auto o = expired.options();
    o.tls.ca_file = dir + "/ca.crt";
    const std::string what = connect_error(o);
    EXPECT_NE(what.find("expired"), std::string::npos) << what;
}

TEST(Tls, PlaintextAgainstTheTlsPortFailsInTime) {
    auto o = tls_options();
    o.tls = redkit::tls_options{};  // redis:// to the TLS port
    o.max_retries = 0;
    EXPECT_FALSE(connect_error(o).empty());
}

TEST(Tls, TlsAgainstAPlainPortIsAClearConnectError) {
    auto o = tls_options();
    o.port = redkit::parse_url(tls_server().plain_url()).port;
    o.max_retries = 0;
    const std::string what = connect_error(o);
    EXPECT_NE(what.find("TLS handshake"), std::string::npos) << what;
}

TEST(Tls, VerificationOffIsExplicitAndReportedOnce) {
    error_log log;
    auto o = tls_options();
    o.tls.ca_file = tls_server().tls_dir() + "/other-ca.crt";  // would fail if it were checked
    o.tls.verify = false;
    o.on_error = log.callback();
    redkit::client c(o);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(c.command<std::string>("PING"), "PONG");
    redkit::client copy = c;
    copy.ping();
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log.entries()[0].first, redkit::errc::insecure);
    EXPECT_NE(log.entries()[0].second.find("without certificate verification"), std::string::npos);
}
