// SPDX-License-Identifier: MIT
// Sentinel: where the primary is. One locator per set of sentinel options (shared by every
// client and connection made with them) keeps the primary's address, asks the sentinels again
// when it is in doubt (a connection to it failed, it answered ROLE as a replica or a write with
// READONLY), and listens to every sentinel at once:
//   - +switch-master: connections made before are stale (their generation is older), so pooled
//     ones are replaced;
//   - +try-failover and the steps after it: a failover of the primary has begun. Only the sentinel
//     that leads it says so (the others learn of it from its hello messages, seconds later), hence
//     a subscription to each. From then until +switch-master, an abort (-failover-abort-*) or
//     sentinel_options::failover_timeout, await_failover() holds every write to the primary: the
//     leader promotes a replica with whatever it has replicated, and a write the old primary
//     acknowledged after that would be lost when it turns into the new one's replica.
#pragma once

#include <redkit/core/io/hiredis.hpp>
#include <redkit/core/io/transport.hpp>
#include <redkit/core/io/wait.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

/// What a command held for a failover fails with when the primary of its connection was replaced
/// meanwhile: nothing was sent, so the caller may send it again on a new connection.
inline io_status failover_replaced_primary() {
    return {errc::connection_closed, false,
            "the sentinels replaced the primary while this command waited for their failover to end; not sent"};
}

class sentinel_locator {
public:
    /// The primaries one set of sentinel options saw, and which switch each observer heard of.
    struct switch_history {
        std::mutex mutex;
        std::string primary, switched_from;  // "host:port" now, and before the last switch
        unsigned long long switches = 0;     // switches of the primary seen
        std::vector<std::pair<std::weak_ptr<observer>, unsigned long long>> told;
    };

    /// The locator for these options (one per master name, sentinel list and credentials).
    static std::shared_ptr<sentinel_locator> for_options(const client_options& o) {
        using key_type = std::tuple<std::string, std::string, std::string, std::string, bool, long long>;
        std::string nodes;
        for (const auto& n : o.sentinel.nodes) nodes += n.host + ":" + std::to_string(n.port) + ",";
        const key_type key{o.sentinel.master,   nodes,         o.sentinel.user,
                           o.sentinel.password, o.tls.enabled, o.sentinel.failover_timeout.count()};
        static std::mutex mutex;
        static std::map<key_type, std::weak_ptr<sentinel_locator>> cache;
        // the primaries seen, kept while no connection keeps a locator (a switch replaces them all)
        static std::map<key_type, std::shared_ptr<switch_history>> histories;
        std::lock_guard<std::mutex> lock(mutex);
        if (auto existing = cache[key].lock()) return existing;
        auto& history = histories[key];
        if (!history) history = std::make_shared<switch_history>();
        std::shared_ptr<sentinel_locator> made(new sentinel_locator(o, history));
        made->start_watch();
        cache[key] = made;
        return made;
    }

    ~sentinel_locator() {
        stopping_.store(true);
        wake_.notify();  // never drained: every watcher sees it
        for (auto& w : watchers_) {
            if (w.joinable()) w.join();
        }
    }
    sentinel_locator(const sentinel_locator&) = delete;
    sentinel_locator& operator=(const sentinel_locator&) = delete;

    struct address {
        std::string host;
        int port = 0;
        unsigned long long generation = 0;  // bumped whenever the primary may have moved
    };

    /// The primary as last known, or as the sentinels say now when nothing is known: false, with
    /// `why`, when no sentinel answers or none knows the master.
    bool locate(address& out, std::string& why) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!known_) {
            std::string last;
            for (std::size_t tried = 0; tried < options_.sentinel.nodes.size() && !known_; ++tried) {
                const std::size_t i = (next_node_ + tried) % options_.sentinel.nodes.size();
                if (ask(options_.sentinel.nodes[i], current_, last)) {
                    next_node_ = i;  // the next question starts with the one that answered
                    known_ = true;
                }
            }
            if (!known_) {
                why = "sentinel: no sentinel named a primary for '" + options_.sentinel.master + "': " + last;
                return false;
            }
            note_primary();
        }
        out = current_;
        return true;
    }

    /// Tells `to` of the last switch of the primary it has not heard of (observer::on_sentinel_switch);
    /// an observer met for the first time hears only of later ones. Called as a connection opens.
    void report_switch(const std::shared_ptr<observer>& to) {
        if (!to) return;
        sentinel_switch_event e;
        std::string from, now;
        {
            switch_history& h = *history_;
            std::lock_guard<std::mutex> lock(h.mutex);
            auto seen = h.told.end();
            for (auto it = h.told.begin(); it != h.told.end();) {
                const auto o = it->first.lock();
                if (!o) {
                    it = h.told.erase(it);
                    continue;
                }
                if (o == to) seen = it;
                ++it;
            }
            if (seen == h.told.end()) {
                h.told.emplace_back(to, h.switches);
                return;
            }
            if (seen->second == h.switches) return;
            seen->second = h.switches;
            from = h.switched_from;
            now = h.primary;
        }
        e.master = options_.sentinel.master;
        e.from = from;
        e.to = now;
        observe(to.get(), &observer::on_sentinel_switch, e);
    }

    /// The primary at `generation` is in doubt: the next locate() asks the sentinels again, and
    /// connections made before are stale.
    void invalidate(unsigned long long generation) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (generation != current_.generation) return;  // already re-learned meanwhile
        known_ = false;
        generation_.store(++current_.generation);
    }

    /// Changes with every failover seen (or doubt raised); a connection of an older generation is stale.
    unsigned long long generation() const noexcept { return generation_.load(); }

    /// Whether a sentinel announced a failover of the primary that has not ended yet (a cheap look
    /// before every write).
    bool failing_over() const noexcept { return holding_.load(std::memory_order_acquire); }

    /// Waits while a failover a sentinel announced is under way: until a sentinel names the new
    /// primary (+switch-master), the failover is aborted, or sentinel.failover_timeout has passed
    /// since it was announced. Returns at once when none is.
    void await_failover() {
        if (!failing_over()) return;
        std::unique_lock<std::mutex> lock(hold_mutex_);
        for (;;) {
            const auto latest = hold_end(std::chrono::steady_clock::now());
            if (latest == std::chrono::steady_clock::time_point::min()) {
                holding_.store(false, std::memory_order_release);  // ended, or its time is up
                return;
            }
            settled_.wait_until(lock, latest);
        }
    }

private:
    sentinel_locator(const client_options& o, std::shared_ptr<switch_history> history)
        : options_(o), history_(std::move(history)) {
        if (options_.sentinel.nodes.empty()) {
            throw std::invalid_argument("redkit: client_options.sentinel.nodes is empty");
        }
        holds_.assign(options_.sentinel.nodes.size(), std::chrono::steady_clock::time_point::min());
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

    // One command on a fresh connection to a sentinel (after AUTH when configured): its reply,
    // or null with `why` ("sentinel <endpoint>: <what failed>").
    static reply_ptr call(const client_options& s, const argv& a, transport& t, std::string& why) {
        const auto failed = [&](std::string_view what) {
            why = "sentinel " + transport::endpoint_of(s) + ": " + std::string(what);
            return reply_ptr();
        };
        if (io_status st = t.connect(s, s.host, s.port); !st.ok()) return failed(st.text);
        if (!t.set_timeout(s.connect_timeout)) return failed("cannot set a timeout");
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
        if (io_status st = t.flush(); !st.ok()) return failed(st.text);
        reply_ptr r;
        for (std::size_t i = 0; i <= setup; ++i) {
            if (io_status st = t.read(r); !st.ok()) return failed(st.text);
            if (raw_is_error(r.get())) return failed(raw_str(r.get()));
        }
        return r;
    }

    // SENTINEL get-master-addr-by-name; true with `out` updated when this sentinel knows it.
    bool ask(const sentinel_node& n, address& out, std::string& why) {
        const client_options s = sentinel_link(n);
        argv a;
        a.push_all("SENTINEL", "get-master-addr-by-name", options_.sentinel.master);
        transport t;
        const reply_ptr r = call(s, a, t, why);
        if (!r) return false;
        if (raw_type(r.get()) != reply_type::array || raw_size(r.get()) != 2) {
            why = "sentinel " + transport::endpoint_of(s) + " does not know the master";
            return false;
        }
        const std::string host(raw_str(raw_at(r.get(), 0)));
        int port = 0;
        const std::string_view digits = raw_str(raw_at(r.get(), 1));
        const auto parsed = std::from_chars(digits.data(), digits.data() + digits.size(), port);
        if (parsed.ec != std::errc() || port <= 0 || port > 65535) {
            why = "sentinel " + transport::endpoint_of(s) + " named a bad port";
            return false;
        }
        if (host != out.host || port != out.port) {
            out.host = host;
            out.port = port;
            generation_.store(++out.generation);
        }
        return true;
    }

    void start_watch() {
        for (std::size_t i = 0; i < options_.sentinel.nodes.size(); ++i) {
            watchers_.emplace_back([this, i] { watch(i); });
        }
    }

    // Subscribes to one sentinel's failover events, for as long as the locator lives.
    void watch(std::size_t node) {
        backoff pause(std::chrono::milliseconds(100), std::chrono::milliseconds(2000));
        while (!stopping_.load()) {
            const client_options s = sentinel_link(options_.sentinel.nodes[node]);
            argv a;
            a.push_all("PSUBSCRIBE");
            for (const std::string_view channel : failover_channels) a.push_all(channel);
            transport t;
            std::string why;
            try {
                if (call(s, a, t, why)) {  // the first pattern's confirmation (the others are skipped below)
                    pause.reset();
                    listen(t, node);
                }
            } catch (const std::exception&) {
                // out of memory, or a TLS configuration that cannot be loaded: try again later
            }
            // this sentinel is down or refused: try again after a pause (the others still listen)
            if (!stopping_.load()) wake_.sleep(pause.next());
        }
    }

    // What a failover's leader publishes, in order: +try-failover, ... +failover-state-send-slaveof-noone
    // (the replica is told to become the primary), +promoted-slave, +failover-end, +switch-master;
    // or one of the -failover-abort-* events. The other sentinels publish +switch-master only.
    static constexpr std::string_view failover_channels[] = {"+try-failover", "+failover-state-send-slaveof-noone",
                                                             "+promoted-slave", "+switch-master", "-failover-abort-*"};

    // Reads events until the connection fails or the locator is destroyed.
    void listen(transport& t, std::size_t node) {
        while (!stopping_.load()) {
            reply_ptr r;
            io_status st;
            if (!t.take_buffered(r, st)) return;
            if (!r) {
                const wait_result w = t.wait_readable(wake_.flag(), std::chrono::milliseconds(60000));
                if (w == wait_result::woken) return;    // stopping
                if (w == wait_result::timeout) return;  // quiet for a minute: reconnect to be sure
                if (!t.read_available().ok()) return;
                continue;
            }
            // {"pmessage", pattern, channel, payload}
            if (raw_size(r.get()) != 4 || raw_str(raw_at(r.get(), 0)) != "pmessage") continue;
            on_event(node, raw_str(raw_at(r.get(), 2)), raw_str(raw_at(r.get(), 3)));
        }
    }

    // The master an event is about: "+switch-master <master> <old ip> <old port> <new ip> <new
    // port>"; "master <name> <ip> <port> ..." for the master itself; "<type> <name> <ip> <port> @
    // <master> <ip> <port> ..." for one of its replicas.
    static std::string_view master_of(std::string_view channel, std::string_view payload) noexcept {
        const auto word = [&](std::size_t n) {
            std::string_view rest = payload;
            for (;;) {
                const auto space = rest.find(' ');
                if (n == 0) return rest.substr(0, space);
                if (space == std::string_view::npos) return std::string_view{};
                rest.remove_prefix(space + 1);
                --n;
            }
        };
        if (channel == "+switch-master") return word(0);
        if (word(0) == "master") return word(1);
        if (word(4) == "@") return word(5);
        return {};
    }

    void on_event(std::size_t node, std::string_view channel, std::string_view payload) {
        if (master_of(channel, payload) != options_.sentinel.master) return;
        if (channel == "+switch-master") {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                known_ = false;  // ask again: the message names the new primary, the sentinels confirm it
                if (!switched_to(payload)) generation_.store(++current_.generation);
            }
            end_holds(holds_.size());  // every sentinel's: the failover is over
            return;
        }
        if (channel.substr(0, 15) == "-failover-abort") {
            end_holds(node);  // this sentinel's attempt ended (another's, if any, still holds)
            return;
        }
        std::lock_guard<std::mutex> lock(hold_mutex_);
        auto& until = holds_[node];
        if (until < std::chrono::steady_clock::now())
            until = std::chrono::steady_clock::now() + options_.sentinel.failover_timeout;
        holding_.store(true, std::memory_order_release);
    }

    // After the sentinels named the primary: a switch when it is not the one before.
    void note_primary() {
        std::string now = current_.host + ":" + std::to_string(current_.port);
        switch_history& h = *history_;
        std::lock_guard<std::mutex> lock(h.mutex);
        if (now == h.primary) return;
        if (!h.primary.empty()) {
            ++h.switches;
            h.switched_from = std::move(h.primary);
        }
        h.primary = std::move(now);
    }

    // Whether a +switch-master names the primary already known (the other sentinels announce the
    // same switch after its leader): connections to it must not be made stale again.
    bool switched_to(std::string_view payload) const {
        std::size_t at = 0;
        std::string_view words[5];
        for (std::string_view rest = payload; at < 5 && !rest.empty(); ++at) {
            const auto space = rest.find(' ');
            words[at] = rest.substr(0, space);
            rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
        }
        return at == 5 && current_.host == words[3] && std::to_string(current_.port) == words[4];
    }

    // Ends sentinel `node`'s hold (all of them for node == holds_.size()) and wakes the writers
    // that waited on it.
    void end_holds(std::size_t node) {
        {
            std::lock_guard<std::mutex> lock(hold_mutex_);
            for (std::size_t i = 0; i < holds_.size(); ++i) {
                if (node == holds_.size() || i == node) holds_[i] = std::chrono::steady_clock::time_point::min();
            }
            holding_.store(hold_end(std::chrono::steady_clock::now()) != std::chrono::steady_clock::time_point::min(),
                           std::memory_order_release);
        }
        settled_.notify_all();
    }

    // The latest end of a hold still running at `now` (min(): none). Under hold_mutex_.
    std::chrono::steady_clock::time_point hold_end(std::chrono::steady_clock::time_point now) const noexcept {
        auto latest = std::chrono::steady_clock::time_point::min();
        for (const auto& until : holds_) {
            if (until > now) latest = std::max(latest, until);
        }
        return latest;
    }

    // The watchers' stop signal: raised once, by the destructor, and never lowered, so that every
    // watcher sees it.
    class sleeper {
    public:
        void notify() noexcept { flag_.notify(); }
        void sleep(std::chrono::milliseconds d) { (void)wait_readable(-1, flag_, d); }
        const notifier& flag() const noexcept { return flag_; }

    private:
        notifier flag_;
    };

    const client_options options_;
    std::mutex mutex_;  // the primary's address
    bool known_ = false;
    address current_;
    std::shared_ptr<switch_history> history_;
    std::size_t next_node_ = 0;
    std::atomic<unsigned long long> generation_{0};
    // failovers announced, per sentinel: until when each holds writes (min(): none)
    std::mutex hold_mutex_;
    std::condition_variable settled_;
    std::vector<std::chrono::steady_clock::time_point> holds_;
    std::atomic<bool> holding_{false};
    std::atomic<bool> stopping_{false};
    sleeper wake_;
    std::vector<std::thread> watchers_;  // one per sentinel
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
