// SPDX-License-Identifier: MIT
// Sentinel: where the primary is. One locator per set of sentinel options (shared by every
// client and connection made with them) keeps the primary's address, asks the sentinels again
// when it is in doubt (a connection to it failed, it answered ROLE as a replica or a write with
// READONLY), and listens on a sentinel for +switch-master, so connections made before a failover
// are known to be stale (their generation is older) and pooled ones are replaced.
#pragma once

#include <redkit/detail/argv.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/detail/hiredis.hpp>
#include <redkit/detail/transport.hpp>
#include <redkit/detail/wait.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

class sentinel_locator {
public:
    /// The locator for these options (one per master name, sentinel list and credentials).
    static std::shared_ptr<sentinel_locator> for_options(const client_options& o) {
        using key_type = std::tuple<std::string, std::string, std::string, std::string, bool>;
        std::string nodes;
        for (const auto& n : o.sentinel.nodes) nodes += n.host + ":" + std::to_string(n.port) + ",";
        const key_type key{o.sentinel.master, nodes, o.sentinel.user, o.sentinel.password, o.tls.enabled};
        static std::mutex mutex;
        static std::map<key_type, std::weak_ptr<sentinel_locator>> cache;
        std::lock_guard<std::mutex> lock(mutex);
        if (auto existing = cache[key].lock()) return existing;
        std::shared_ptr<sentinel_locator> made(new sentinel_locator(o));
        made->start_watch();
        cache[key] = made;
        return made;
    }

    ~sentinel_locator() {
        stopping_.store(true);
        wake_.notify();
        if (watcher_.joinable()) watcher_.join();
    }
    sentinel_locator(const sentinel_locator&) = delete;
    sentinel_locator& operator=(const sentinel_locator&) = delete;

    struct address {
        std::string host;
        int port = 0;
        unsigned long long generation = 0;  // bumped whenever the primary may have moved
    };

    /// The primary as last known, or as the sentinels say now when nothing is known. Throws
    /// error(connect_failed) when no sentinel answers or none knows the master.
    address primary() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (known_) return current_;
        std::string why;
        for (std::size_t tried = 0; tried < options_.sentinel.nodes.size(); ++tried) {
            const std::size_t i = (next_node_ + tried) % options_.sentinel.nodes.size();
            if (ask(options_.sentinel.nodes[i], current_, why)) {
                next_node_ = i;  // the next question starts with the one that answered
                known_ = true;
                return current_;
            }
        }
        throw error(errc::connect_failed,
                    "redkit: sentinel: no sentinel named a primary for '" + options_.sentinel.master + "': " + why);
    }

    /// The primary at `generation` is in doubt: the next primary() asks the sentinels again, and
    /// connections made before are stale.
    void invalidate(unsigned long long generation) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (generation != current_.generation) return;  // already re-learned meanwhile
        known_ = false;
        generation_.store(++current_.generation);
    }

    /// Changes with every failover seen (or doubt raised); a connection of an older generation is stale.
    unsigned long long generation() const noexcept { return generation_.load(); }

private:
    explicit sentinel_locator(const client_options& o) : options_(o) {
        if (options_.sentinel.nodes.empty()) {
            throw std::invalid_argument("redkit: client_options.sentinel.nodes is empty");
        }
    }

    // Options for talking to one sentinel: its address, its own credentials, no db or name.
    client_options sentinel_link(const sentinel_node& n) const {
        client_options s = options_;
        s.host = n.host;
        s.port = n.port;
        s.unix_socket.clear();
        s.user = options_.sentinel.user;
        s.password = options_.sentinel.password;
        return s;
    }

    // One command on a fresh connection to a sentinel (after AUTH when configured).
    static reply_ptr call(transport& t, const client_options& s, const argv& a) {
        const std::size_t setup = s.password.empty() ? 0 : 1;
        if (setup) {
            argv auth;
            if (s.user.empty()) {
                auth.push_all("AUTH", s.password);
            } else {
                auth.push_all("AUTH", s.user, s.password);
            }
            t.append(auth);
        }
        t.append(a);
        if (auto st = t.flush(); !st.ok())
            throw error(st.code, "redkit: sentinel " + transport::endpoint_of(s) + ": " + st.text);
        reply_ptr r;
        for (std::size_t i = 0; i <= setup; ++i) {
            if (auto st = t.read(r); !st.ok()) {
                throw error(st.code, "redkit: sentinel " + transport::endpoint_of(s) + ": " + st.text);
            }
            if (raw_is_error(r.get())) {
                throw error(errc::connect_failed,
                            "redkit: sentinel " + transport::endpoint_of(s) + ": " + std::string(raw_str(r.get())));
            }
        }
        return r;
    }

    // SENTINEL get-master-addr-by-name; true with `out` updated when this sentinel knows it.
    bool ask(const sentinel_node& n, address& out, std::string& why) {
        try {
            const client_options s = sentinel_link(n);
            transport t(s);
            if (!t.set_timeout(s.connect_timeout)) throw error(errc::io_error, "cannot set a timeout");
            argv a;
            a.push_all("SENTINEL", "get-master-addr-by-name", options_.sentinel.master);
            const reply_ptr r = call(t, s, a);
            if (raw_type(r.get()) != reply_type::array || raw_size(r.get()) != 2) {
                why = transport::endpoint_of(s) + " does not know the master";
                return false;
            }
            const std::string host(raw_str(raw_at(r.get(), 0)));
            const std::string port(raw_str(raw_at(r.get(), 1)));
            const int p = std::stoi(port);
            if (host != out.host || p != out.port) {
                out.host = host;
                out.port = p;
                generation_.store(++out.generation);
            }
            return true;
        } catch (const std::exception& e) {
            why = e.what();
            return false;
        }
    }

    void start_watch() {
        watcher_ = std::thread([this] { watch(); });
    }

    // Subscribes to +switch-master on one sentinel after another, for as long as the locator lives.
    void watch() {
        backoff pause(std::chrono::milliseconds(100), std::chrono::milliseconds(2000));
        std::size_t node = 0;
        while (!stopping_.load()) {
            try {
                const client_options s = sentinel_link(options_.sentinel.nodes[node % options_.sentinel.nodes.size()]);
                transport t(s);
                if (!t.set_timeout(s.connect_timeout)) throw error(errc::io_error, "cannot set a timeout");
                argv a;
                a.push_all("SUBSCRIBE", "+switch-master");
                (void)call(t, s, a);  // the subscription's confirmation
                pause.reset();
                listen(t);
            } catch (const std::exception&) {
                // this sentinel is down or refused: try the next one, after a pause
            }
            ++node;
            if (!stopping_.load()) wake_.sleep(pause.next());
        }
    }

    // Reads +switch-master messages until the connection fails or the locator is destroyed.
    void listen(transport& t) {
        while (!stopping_.load()) {
            reply_ptr r;
            io_status st;
            if (!t.take_buffered(r, st)) return;
            if (!r) {
                const wait_result w = t.wait_readable(wake_.flag(), std::chrono::milliseconds(60000));
                if (w == wait_result::woken) {
                    wake_.clear();
                    continue;  // the loop checks stopping_
                }
                if (w == wait_result::timeout) return;  // quiet for a minute: reconnect to be sure
                if (!t.read_available().ok()) return;
                continue;
            }
            // {"message", "+switch-master", "<master> <old ip> <old port> <new ip> <new port>"}
            if (raw_size(r.get()) != 3 || raw_str(raw_at(r.get(), 0)) != "message") continue;
            const std::string text(raw_str(raw_at(r.get(), 2)));
            const auto space = text.find(' ');
            if (text.substr(0, space) != options_.sentinel.master) continue;
            std::lock_guard<std::mutex> lock(mutex_);
            known_ = false;  // ask again: the message names the new primary, the sentinels confirm it
            generation_.store(++current_.generation);
        }
    }

    // The locator's own wake-up, for the watcher (a tiny waker without the public type).
    class sleeper {
    public:
        void notify() noexcept { flag_.notify(); }
        void sleep(std::chrono::milliseconds d) {
            if (wait_readable(-1, flag_, d) == wait_result::woken) flag_.drain();
        }
        const notifier& flag() const noexcept { return flag_; }
        void clear() noexcept { flag_.drain(); }

    private:
        notifier flag_;
    };

    const client_options options_;
    std::mutex mutex_;
    bool known_ = false;
    address current_;
    std::size_t next_node_ = 0;
    std::atomic<unsigned long long> generation_{0};
    std::atomic<bool> stopping_{false};
    sleeper wake_;
    std::thread watcher_;
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
