// SPDX-License-Identifier: MIT
// Test harness: a private redis-server per test binary.
//
// Starts Debian's redis-server on a free loopback port and a unix socket in a fresh temporary
// directory, persistence off, DEBUG enabled; waits until it answers PING; stops it (SIGTERM, then
// SIGKILL) at the end. REDKIT_TEST_REDIS_URL points the tests at an existing server instead (the
// tests that kill or restart the server skip themselves then). REDKIT_TEST_SERVER=valkey-8.1 or
// redis-8.0 starts that server instead (process.hpp: server_binary()).
//
// TLS: with REDKIT_TEST_TLS=1 (or tls_mode::on), the server also listens with TLS on a second
// port, with certificates made at start-up by support/make-test-certs, and url() is the rediss://
// URL of that port (trusting the test CA): every suite then runs over TLS unchanged. The plain
// port stays for the harness's own readiness check.
#pragma once

#include <redkit/options.hpp>

#include "support/process.hpp"
#include "support/redis_cluster.hpp"

#include <hiredis/hiredis.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace redkit_test {

/// Whether a server serves TLS: as REDKIT_TEST_TLS says (the default), or always, or never.
enum class tls_mode { from_environment, on, off };

class redis_server {
public:
    explicit redis_server(std::vector<std::string> extra_args = {}, tls_mode tls = tls_mode::from_environment,
                          bool cluster = false)
        : extra_args_(std::move(extra_args)) {
        if (const char* url = std::getenv("REDKIT_TEST_REDIS_URL"); url && *url) {
            external_url_ = url;
            return;
        }
        if (cluster) {
            cluster_ = std::make_unique<redis_cluster>();
            external_url_ = cluster_->url();  // the tests that stop or restart "the server" skip
            return;
        }
        char tmpl[] = "/tmp/redkit-test-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        port_ = free_loopback_port();
        tls_ = tls == tls_mode::on || (tls == tls_mode::from_environment && tls_from_environment());
        if (tls_) {
            make_test_certs(tls_dir());
            tls_port_ = free_loopback_port();
        }
        start_on_free_ports([this] { start(); },
                            [this] {
                                port_ = free_loopback_port();
                                if (tls_) tls_port_ = free_loopback_port();
                            });
    }

    ~redis_server() {
        stop();
        if (!dir_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
    }

    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    /// True when the tests run against a server they do not own, or a cluster (no kill/restart
    /// then).
    bool external() const { return !external_url_.empty(); }
    /// The cluster behind url() (REDKIT_TEST_CLUSTER=1), else null.
    redis_cluster* cluster() const { return cluster_.get(); }

    /// The URL tests connect with: rediss:// of the TLS port (trusting the test CA) in TLS mode.
    std::string url() const {
        if (external()) return external_url_;
        if (tls_) return "rediss://127.0.0.1:" + std::to_string(tls_port_) + "?tls_ca_file=" + tls_dir() + "/ca.crt";
        return plain_url();
    }
    /// url() with a path ("/3") and query options ("pool_size=1") added, in either mode.
    std::string url(const std::string& path, const std::string& query = {}) const {
        const std::string base = url();
        const auto q = base.find('?');
        std::string out = base.substr(0, q) + path;
        std::string options = query;
        if (q != std::string::npos) options += (options.empty() ? "" : "&") + base.substr(q + 1);
        if (!options.empty()) out += "?" + options;
        return out;
    }
    /// The plain port's URL, in TLS mode too.
    std::string plain_url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
    bool tls() const { return tls_; }
    int tls_port() const { return tls_port_; }
    /// Where the certificates are (TLS mode): ca.crt, server.crt/key, client.crt/key, ...
    std::string tls_dir() const { return dir_ + "/tls"; }
    std::string unix_url() const { return "unix://" + socket_path(); }
    std::string socket_path() const { return dir_ + "/redis.sock"; }
    int port() const { return port_; }

    redkit::client_options options() const { return redkit::parse_url(url()); }

    void start() {
        if (external()) return;
        const std::string server = server_binary();
        std::vector<std::string> args = {server,
                                         "--port",
                                         std::to_string(port_),
                                         "--bind",
                                         "127.0.0.1",
                                         "--unixsocket",
                                         socket_path(),
                                         "--unixsocketperm",
                                         "700",
                                         "--save",
                                         "",
                                         "--appendonly",
                                         "no",
                                         "--daemonize",
                                         "no",
                                         "--dir",
                                         dir_,
                                         "--logfile",
                                         dir_ + "/redis.log",
                                         "--enable-debug-command",
                                         "yes"};
        if (tls_) {
            const std::string t = tls_dir();
            for (const std::string& a :
                 {std::string("--tls-port"), std::to_string(tls_port_), std::string("--tls-cert-file"),
                  t + "/server.crt", std::string("--tls-key-file"), t + "/server.key",
                  std::string("--tls-ca-cert-file"), t + "/ca.crt", std::string("--tls-auth-clients"),
                  std::string("optional")}) {
                args.push_back(a);
            }
        }
        args.insert(args.end(), extra_args_.begin(), extra_args_.end());
        pid_ = spawn(std::move(args));
        wait_ready();
    }

    /// SIGKILL: the server vanishes without a goodbye (clients see EOF/reset).
    void kill() { signal_and_reap(SIGKILL); }

    /// SIGSTOP: the server stays connected and answers nothing (the kernel still accepts
    /// connections into its backlog); resume() with SIGCONT.
    void pause() {
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    void resume() {
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }

    /// SIGTERM, then SIGKILL if it does not exit within 5 s.
    void stop() { signal_and_reap(SIGTERM); }

    void restart() {
        stop();
        start();
    }

    bool running() const { return pid_ > 0; }

private:
    void signal_and_reap(int sig) { stop_process(pid_, sig); }

    void wait_ready() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw start_failed("redis-server exited during start-up; see " + dir_ + "/redis.log");
            }
            timeval tv{0, 200000};
            redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
            if (c && c->err == 0) {
                auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
                const bool ok = r && r->type == REDIS_REPLY_STATUS;
                if (r) freeReplyObject(r);
                redisFree(c);
                if (ok) return;
            } else if (c) {
                redisFree(c);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        throw std::runtime_error("redis-server did not answer PING within 10 s");
    }

    std::vector<std::string> extra_args_;
    std::unique_ptr<redis_cluster> cluster_;
    std::string external_url_;
    std::string dir_;
    int port_ = 0;
    bool tls_ = false;
    int tls_port_ = 0;
    pid_t pid_ = -1;
};

/// Whether REDKIT_TEST_CLUSTER=1: the shared server is then a 3+3 Redis Cluster.
inline bool cluster_mode() {
    const char* env = std::getenv("REDKIT_TEST_CLUSTER");
    return env && std::string(env) == "1";
}

/// The binary's shared server, started on first use and stopped at exit.
inline redis_server& shared_server() {
    static redis_server server({}, tls_mode::from_environment, cluster_mode());
    return server;
}

}  // namespace redkit_test
