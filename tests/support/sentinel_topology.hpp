// SPDX-License-Identifier: MIT
// Test harness: one primary, one replica and three sentinels (`redis-server <conf> --sentinel`)
// on loopback ports, for the Sentinel tests. The sentinels fail over 1 s after they stop hearing
// from the primary (down-after-milliseconds 1000).
#pragma once

#include "support/redis_server.hpp"

#include <hiredis/hiredis.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace redkit_test {

/// A `redis-server <conf> --sentinel` process, stopped with its object.
class sentinel_process {
public:
    sentinel_process(const std::string& dir, int port, int primary_port, const std::string& password) : port_(port) {
        const std::string conf = dir + "/sentinel.conf";
        std::ofstream out(conf);
        out << "port " << port << "\nbind 127.0.0.1\ndaemonize no\ndir " << dir << "\nlogfile " << dir
            << "/sentinel.log\nsentinel monitor mymaster 127.0.0.1 " << primary_port
            << " 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 4000\n"
            << "sentinel parallel-syncs mymaster 1\n";
        if (!password.empty()) out << "requirepass " << password << "\nsentinel sentinel-pass " << password << "\n";
        out.close();
        pid_ = spawn({server_binary(), conf, "--sentinel"});
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            timeval tv{0, 200000};
            redisContext* ctx = redisConnectWithTimeout("127.0.0.1", port_, tv);
            const bool up = ctx && ctx->err == 0;
            if (ctx) redisFree(ctx);
            if (up) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        throw std::runtime_error("sentinel on port " + std::to_string(port_) + " did not start");
    }
    ~sentinel_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
    }
    sentinel_process(const sentinel_process&) = delete;
    sentinel_process& operator=(const sentinel_process&) = delete;

    int port() const { return port_; }

private:
    int port_;
    pid_t pid_ = -1;
};

/// The whole set-up. url() is the redis+sentinel:// URL of the three sentinels.
class sentinel_topology {
public:
    explicit sentinel_topology(std::string sentinel_password = {}) : password_(std::move(sentinel_password)) {
        // no 5 s wait before a diskless full sync: the replica is in step at once
        const std::vector<std::string> sync{"--repl-diskless-sync-delay", "0"};
        primary_ = std::make_unique<redis_server>(sync, tls_mode::off);
        std::vector<std::string> replica_args = sync;
        for (const std::string& a :
             {std::string("--replicaof"), std::string("127.0.0.1"), std::to_string(primary_->port())}) {
            replica_args.push_back(a);
        }
        replica_ = std::make_unique<redis_server>(replica_args, tls_mode::off);
        char tmpl[] = "/tmp/redkit-sentinels-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        for (int i = 0; i < 3; ++i) {
            const std::string d = dir_ + "/s" + std::to_string(i);
            std::filesystem::create_directories(d);
            sentinels_.push_back(
                std::make_unique<sentinel_process>(d, free_loopback_port(), primary_->port(), password_));
        }
        wait_until_ready();
    }
    ~sentinel_topology() {
        sentinels_.clear();
        primary_.reset();
        replica_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    std::string url(const std::string& query = {}) const {
        std::string u = "redis+sentinel://";
        for (std::size_t i = 0; i < sentinels_.size(); ++i) {
            u += (i ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(sentinels_[i]->port());
        }
        u += "/mymaster";
        if (!password_.empty())
            u += "?sentinel_password=" + password_ + (query.empty() ? "" : "&" + query);
        else if (!query.empty())
            u += "?" + query;
        return u;
    }

    redis_server& first_primary() { return *primary_; }
    redis_server& first_replica() { return *replica_; }

    /// The port the sentinels name as the primary now.
    int primary_port() {
        const auto r = sentinel_command({"SENTINEL", "get-master-addr-by-name", "mymaster"});
        return r.size() == 2 ? std::stoi(r[1]) : -1;
    }

    /// SENTINEL FAILOVER mymaster (a failover without agreement, as an operator starts it).
    void failover() { (void)sentinel_command({"SENTINEL", "FAILOVER", "mymaster"}); }

    /// Waits (up to `limit`) until the sentinels name a primary other than `old_port` and it
    /// answers ROLE as master; true when that happened.
    bool wait_for_new_primary(int old_port, std::chrono::seconds limit = std::chrono::seconds(30)) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            const int now = primary_port();
            if (now > 0 && now != old_port && role_of(now) == "master") return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

private:
    std::vector<std::string> sentinel_command(const std::vector<std::string>& args) {
        for (const auto& s : sentinels_) {
            timeval tv{1, 0};
            redisContext* c = redisConnectWithTimeout("127.0.0.1", s->port(), tv);
            if (!c || c->err) {
                if (c) redisFree(c);
                continue;
            }
            redisSetTimeout(c, tv);
            if (!password_.empty()) {
                auto* a = static_cast<redisReply*>(redisCommand(c, "AUTH %s", password_.c_str()));
                if (a) freeReplyObject(a);
            }
            std::vector<const char*> argv;
            std::vector<size_t> lens;
            for (const auto& a : args) {
                argv.push_back(a.c_str());
                lens.push_back(a.size());
            }
            auto* r =
                static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
            std::vector<std::string> out;
            const bool ok = r && r->type != REDIS_REPLY_ERROR;
            if (r && r->type == REDIS_REPLY_ARRAY) {
                for (std::size_t i = 0; i < r->elements; ++i) {
                    out.emplace_back(r->element[i]->str ? r->element[i]->str : "", r->element[i]->len);
                }
            } else if (r && r->str) {
                out.emplace_back(r->str, r->len);
            }
            if (r) freeReplyObject(r);
            redisFree(c);
            if (ok) return out;
        }
        return {};
    }

    static std::string role_of(int port) {
        timeval tv{1, 0};
        redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
        std::string role;
        if (c && c->err == 0) {
            redisSetTimeout(c, tv);
            auto* r = static_cast<redisReply*>(redisCommand(c, "ROLE"));
            if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0)
                role.assign(r->element[0]->str, r->element[0]->len);
            if (r) freeReplyObject(r);
        }
        if (c) redisFree(c);
        return role;
    }

    // Until every sentinel knows the replica and the two other sentinels (so a failover can
    // happen), and the replica is in sync.
    void wait_until_ready() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (std::chrono::steady_clock::now() < deadline) {
            const auto ck = sentinel_command({"SENTINEL", "CKQUORUM", "mymaster"});
            const auto replicas = sentinel_command({"SENTINEL", "REPLICAS", "mymaster"});
            const bool quorum = !ck.empty() && ck[0].rfind("OK", 0) == 0;
            if (quorum && !replicas.empty() && all_sentinels_know_each_other() && replica_in_sync()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        throw std::runtime_error("the sentinels did not get ready within 30 s; see " + dir_);
    }

    bool replica_in_sync() {
        timeval tv{1, 0};
        redisContext* c = redisConnectWithTimeout("127.0.0.1", replica_->port(), tv);
        bool up = false;
        if (c && c->err == 0) {
            redisSetTimeout(c, tv);
            auto* r = static_cast<redisReply*>(redisCommand(c, "INFO replication"));
            up = r && r->type == REDIS_REPLY_STRING &&
                 std::string(r->str, r->len).find("master_link_status:up") != std::string::npos;
            if (r) freeReplyObject(r);
        }
        if (c) redisFree(c);
        return up;
    }

    bool all_sentinels_know_each_other() {
        // CKQUORUM counts usable sentinels: "OK 3 usable Sentinels..."
        const auto ck = sentinel_command({"SENTINEL", "CKQUORUM", "mymaster"});
        return !ck.empty() && ck[0].find("OK 3 usable") == 0;
    }

    std::string password_;
    std::string dir_;
    std::unique_ptr<redis_server> primary_;
    std::unique_ptr<redis_server> replica_;
    std::vector<std::unique_ptr<sentinel_process>> sentinels_;
};

}  // namespace redkit_test
