// SPDX-License-Identifier: MIT
// Test harness: a private Redis Cluster of 3 primaries and 3 replicas on loopback.
//
// Six redis-servers with --cluster-enabled yes (each its own port, bus port, directory and
// nodes.conf; persistence off; a 1 s node timeout so a killed primary's replica takes over in
// about 2 s), joined by `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`.
// Ready when every node says cluster_state:ok and every replica's link to its primary is up.
// Stopped (SIGTERM, then SIGKILL) at the end. REDKIT_TEST_CLUSTER=1 makes the binaries' shared
// server (redis_server.hpp) such a cluster, so the pattern suites run on it unchanged.
//
// TLS: with REDKIT_TEST_TLS=1 every node also listens with TLS (tls-port, certificates from
// support/make-test-certs), the nodes speak TLS to each other (tls-cluster, tls-replication), and
// url() is the rediss+cluster:// URL of the TLS ports: CLUSTER SHARDS, MOVED and ASK then name TLS
// ports to a TLS client. The plain ports stay for the harness (run(), redis-cli --cluster create).
#pragma once

#include "support/process.hpp"

#include <hiredis/hiredis.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace redkit_test {

class redis_cluster {
public:
    static constexpr int size = 6;

    /// `tls`: as REDKIT_TEST_TLS says when not given.
    explicit redis_cluster(int tls = -1) {
        char tmpl[] = "/tmp/redkit-cluster-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        tls_ = tls < 0 ? tls_from_environment() : tls == 1;
        if (tls_) make_test_certs(tls_dir());
        for (int i = 0; i < size; ++i) {
            node n;
            n.port = free_loopback_port();
            n.bus_port = free_loopback_port();
            if (tls_) n.tls_port = free_loopback_port();
            n.dir = dir_ + "/" + std::to_string(n.port);
            std::filesystem::create_directories(n.dir);
            nodes_.push_back(n);
        }
        for (int i = 0; i < size; ++i) {
            node& n = nodes_[static_cast<std::size_t>(i)];
            start_on_free_ports([this, i] { start(i); },
                                [this, &n] {
                                    std::error_code ec;
                                    std::filesystem::remove(n.dir + "/nodes.conf", ec);
                                    n.port = free_loopback_port();
                                    n.bus_port = free_loopback_port();
                                    if (tls_) n.tls_port = free_loopback_port();
                                });
        }
        create();
        wait_healthy();
    }

    ~redis_cluster() {
        for (int i = 0; i < size; ++i) signal_and_reap(i, SIGTERM);
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    redis_cluster(const redis_cluster&) = delete;
    redis_cluster& operator=(const redis_cluster&) = delete;

    /// redis+cluster:// naming the first three nodes as seeds (TLS: rediss+cluster:// of their TLS
    /// ports, trusting the test CA).
    std::string url() const {
        if (tls_) {
            return "rediss+cluster://127.0.0.1:" + std::to_string(nodes_[0].tls_port) +
                   ",127.0.0.1:" + std::to_string(nodes_[1].tls_port) +
                   ",127.0.0.1:" + std::to_string(nodes_[2].tls_port) + "?tls_ca_file=" + tls_dir() + "/ca.crt";
        }
        return "redis+cluster://127.0.0.1:" + std::to_string(nodes_[0].port) +
               ",127.0.0.1:" + std::to_string(nodes_[1].port) + ",127.0.0.1:" + std::to_string(nodes_[2].port);
    }
    /// url() with query options added ("replica_reads=yes"), in either mode.
    std::string url(const std::string& query) const {
        const std::string base = url();
        return base + (base.find('?') == std::string::npos ? "?" : "&") + query;
    }
    /// Node i's plain port (the harness's, and what a plain connection's CLUSTER SLOTS names).
    int port(int i) const { return nodes_[static_cast<std::size_t>(i)].port; }
    /// The port other nodes reach node i on for MIGRATE (its TLS port with tls-cluster).
    int node_port(int i) const {
        const node& n = nodes_[static_cast<std::size_t>(i)];
        return tls_ ? n.tls_port : n.port;
    }
    std::string tls_dir() const { return dir_ + "/tls"; }

    /// Index of the node at `port`, -1 if none.
    int index_of(int port) const {
        for (int i = 0; i < size; ++i) {
            if (nodes_[static_cast<std::size_t>(i)].port == port) return i;
        }
        return -1;
    }

    /// SIGKILL of node i (its replica takes over after the node timeout).
    void kill(int i) { signal_and_reap(i, SIGKILL); }

    /// Starts node i again (it rejoins from its nodes.conf, as a replica if it was replaced).
    void restart(int i) { start(i); }

    /// Runs a command on node i (hiredis, printf-style as redisCommand); the reply as text, or
    /// throws. Integers come back in decimal; arrays as their elements' texts joined by '\n'.
    std::string run(int i, const std::vector<std::string>& args) const {
        redisContext* c = connect(i);
        std::vector<const char*> argv;
        std::vector<size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        auto* r =
            static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
        if (!r) {
            const std::string e = c->errstr;
            redisFree(c);
            throw std::runtime_error("cluster node " + std::to_string(port(i)) + ": " + e);
        }
        std::string out = text_of(r);
        const bool failed = r->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
        redisFree(c);
        if (failed) throw std::runtime_error("cluster node " + std::to_string(port(i)) + ": " + out);
        return out;
    }

    /// Node ids, and which node is a primary now (CLUSTER NODES as node i sees it).
    std::string nodes_view(int i) const { return run(i, {"CLUSTER", "NODES"}); }

    /// Waits until every running node says cluster_state:ok and sees 3 primaries serving all
    /// slots, each with a connected replica when `replicas` (throws after `limit`).
    void wait_healthy(std::chrono::seconds limit = std::chrono::seconds(30), bool replicas = true) const {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        std::string last;
        while (std::chrono::steady_clock::now() < deadline) {
            try {
                bool ok = true;
                for (int i = 0; i < size && ok; ++i) {
                    if (nodes_[static_cast<std::size_t>(i)].pid <= 0) continue;
                    const std::string info = run(i, {"CLUSTER", "INFO"});
                    ok = info.find("cluster_state:ok") != std::string::npos &&
                         info.find("cluster_slots_ok:16384") != std::string::npos;
                    if (ok && replicas) {
                        const std::string repl = run(i, {"INFO", "replication"});
                        if (repl.find("role:slave") != std::string::npos) {
                            ok = repl.find("master_link_status:up") != std::string::npos;
                        } else {
                            ok = repl.find("connected_slaves:1") != std::string::npos;
                        }
                    }
                    if (!ok) last = "node " + std::to_string(port(i)) + " not ready";
                }
                if (ok) return;
            } catch (const std::exception& e) {
                last = e.what();
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        throw std::runtime_error("redis cluster not healthy in time: " + last);
    }

    std::string dir() const { return dir_; }

private:
    struct node {
        int port = 0;
        int bus_port = 0;
        int tls_port = 0;
        std::string dir;
        pid_t pid = -1;
    };

    redisContext* connect(int i) const {
        timeval tv{2, 0};
        redisContext* c = redisConnectWithTimeout("127.0.0.1", port(i), tv);
        if (!c || c->err) {
            const std::string e = c ? c->errstr : "out of memory";
            if (c) redisFree(c);
            throw std::runtime_error("cluster node " + std::to_string(port(i)) + ": " + e);
        }
        redisSetTimeout(c, tv);
        return c;
    }

    static std::string text_of(const redisReply* r) {
        switch (r->type) {
            case REDIS_REPLY_INTEGER: return std::to_string(r->integer);
            case REDIS_REPLY_NIL: return {};
            case REDIS_REPLY_ARRAY: {
                std::string out;
                for (size_t j = 0; j < r->elements; ++j) {
                    if (j > 0) out += '\n';
                    out += text_of(r->element[j]);
                }
                return out;
            }
            default: return std::string(r->str, r->len);
        }
    }

    void start(int i) {
        node& n = nodes_[static_cast<std::size_t>(i)];
        const std::string server = server_binary();
        // --repl-diskless-sync-delay 0: no 5 s wait before a replica's diskless full sync (a
        // cluster is ready in about 2 s, not 6.5)
        std::vector<std::string> args = {server,
                                         "--port",
                                         std::to_string(n.port),
                                         "--bind",
                                         "127.0.0.1",
                                         "--cluster-enabled",
                                         "yes",
                                         "--cluster-port",
                                         std::to_string(n.bus_port),
                                         "--cluster-config-file",
                                         n.dir + "/nodes.conf",
                                         "--cluster-node-timeout",
                                         "1000",
                                         "--repl-diskless-sync-delay",
                                         "0",
                                         "--save",
                                         "",
                                         "--appendonly",
                                         "no",
                                         "--daemonize",
                                         "no",
                                         "--dir",
                                         n.dir,
                                         "--logfile",
                                         n.dir + "/redis.log",
                                         "--enable-debug-command",
                                         "yes"};
        if (tls_) {
            const std::string t = tls_dir();
            for (const std::string& a :
                 {std::string("--tls-port"), std::to_string(n.tls_port), std::string("--tls-cluster"),
                  std::string("yes"), std::string("--tls-replication"), std::string("yes"),
                  std::string("--tls-cert-file"), t + "/server.crt", std::string("--tls-key-file"), t + "/server.key",
                  std::string("--tls-client-cert-file"), t + "/client.crt", std::string("--tls-client-key-file"),
                  t + "/client.key", std::string("--tls-ca-cert-file"), t + "/ca.crt",
                  std::string("--tls-auth-clients"), std::string("optional")}) {
                args.push_back(a);
            }
        }
        n.pid = spawn(std::move(args));
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            try {
                if (run(i, {"PING"}) == "PONG") return;
            } catch (const std::exception&) {
                int status = 0;
                if (::waitpid(n.pid, &status, WNOHANG) == n.pid) {
                    n.pid = -1;
                    throw start_failed("cluster node " + std::to_string(n.port) + " exited during start-up; see " +
                                       n.dir + "/redis.log");
                }
                if (std::chrono::steady_clock::now() > deadline) throw;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

    void create() {
        std::string cmd = "redis-cli --cluster create";
        for (const auto& n : nodes_) cmd += " 127.0.0.1:" + std::to_string(n.port);
        cmd += " --cluster-replicas 1 --cluster-yes > '" + dir_ + "/create.log' 2>&1";
        if (std::system(cmd.c_str()) != 0) {
            throw std::runtime_error("redis-cli --cluster create failed; see " + dir_ + "/create.log");
        }
    }

    void signal_and_reap(int i, int sig) { stop_process(nodes_[static_cast<std::size_t>(i)].pid, sig); }

    std::string dir_;
    bool tls_ = false;
    std::vector<node> nodes_;
};

}  // namespace redkit_test
