// SPDX-License-Identifier: MIT
// The cluster topology under a redkit::client (client_options::cluster): which node owns which of
// the 16384 slots, and a pool (plus, on first use, a shared connection) per node.
//
// The slot map is read with CLUSTER SLOTS from a known node (the primaries of the last map first,
// then the seeds). It is read on the first request, again every cluster.refresh_interval, after a
// node could not be reached, on CLUSTERDOWN/TRYAGAIN (at most every 100 ms), and a MOVED reply
// moves its slot at once. Readers take a snapshot (an immutable map behind a shared_ptr), so
// routing a request takes no lock but the shared_ptr's own.
#pragma once

#include <redkit/connection.hpp>
#include <redkit/detail/slots.hpp>
#include <redkit/error.hpp>
#include <redkit/multiplexer.hpp>
#include <redkit/options.hpp>
#include <redkit/pool.hpp>
#include <redkit/reply.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

/// The multiplexer a pool's callers share: made at construction with client_options::multiplex,
/// else on the first submit().
struct shared_dispatch {
    std::once_flag once;
    std::unique_ptr<multiplexer> mux;
    std::atomic<multiplexer*> made{nullptr};  // mux, once made (read without the once_flag)

    multiplexer& get(const pool& p) {
        std::call_once(once, [&] {
            mux = std::make_unique<multiplexer>(p.shared_options());
            made.store(mux.get(), std::memory_order_release);
        });
        return *mux;
    }
    bool connected() const noexcept {
        const multiplexer* m = made.load(std::memory_order_acquire);
        return m != nullptr && m->connected();
    }
};

/// One cluster node: where it is, its pool and its shared connection.
struct cluster_node_state {
    cluster_node_state(std::string host_, int port_, client_options o)
        : host(std::move(host_)),
          port(port_),
          pool(std::make_shared<redkit::pool>(std::move(o))),
          shared(std::make_shared<shared_dispatch>()) {}
    std::string host;
    int port;
    std::shared_ptr<redkit::pool> pool;
    std::shared_ptr<shared_dispatch> shared;
    std::string name() const { return host + ":" + std::to_string(port); }
};

/// One reading of the slot map: immutable once published.
struct slot_map {
    std::array<std::int16_t, slot_count> owner{};  // index in primaries, -1: no node serves the slot
    std::vector<std::shared_ptr<cluster_node_state>> primaries;
};

/// "MOVED 3999 127.0.0.1:6381" / "ASK ...": the slot and where to go.
struct redirect {
    int slot = -1;
    std::string host;
    int port = 0;
};

inline bool parse_redirect(std::string_view text, std::string_view word, redirect& out) {
    if (text.substr(0, word.size()) != word || text.size() <= word.size() || text[word.size()] != ' ') return false;
    text.remove_prefix(word.size() + 1);
    const auto space = text.find(' ');
    if (space == std::string_view::npos) return false;
    int slot = 0;
    for (const char c : text.substr(0, space)) {
        if (c < '0' || c > '9' || slot >= slot_count) return false;
        slot = slot * 10 + (c - '0');
    }
    const std::string_view where = text.substr(space + 1);
    const auto colon = where.rfind(':');
    if (colon == std::string_view::npos || slot >= slot_count) return false;
    int port = 0;
    for (const char c : where.substr(colon + 1)) {
        if (c < '0' || c > '9' || port > 65535) return false;
        port = port * 10 + (c - '0');
    }
    if (port <= 0 || port > 65535) return false;
    out.slot = slot;
    out.host.assign(where.substr(0, colon));
    if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
        out.host = out.host.substr(1, out.host.size() - 2);
    }
    if (out.host.empty()) return false;
    out.port = port;
    return true;
}

/// Error replies after which the same request may simply be sent again a little later: nothing ran.
inline bool cluster_busy(std::string_view text) noexcept {
    return text.substr(0, 9) == "TRYAGAIN " || text.substr(0, 12) == "CLUSTERDOWN " ||
           text.substr(0, 8) == "LOADING " || text.substr(0, 11) == "MASTERDOWN ";
}

class cluster_router {
public:
    explicit cluster_router(std::shared_ptr<const client_options> base) : base_(std::move(base)) {
        for (const auto& seed : base_->cluster.nodes) seeds_.push_back(node_at(seed.host, seed.port));
    }

    /// The current map; reads one when there is none yet (throws error(connect_failed) when no
    /// node answers), and again when it is older than cluster.refresh_interval.
    std::shared_ptr<const slot_map> map() {
        std::shared_ptr<const slot_map> m = std::atomic_load(&map_);
        if (!m) {
            refresh(true);
            m = std::atomic_load(&map_);
            if (!m) throw error(errc::connect_failed, "redkit: cluster: no slot map (" + last_failure() + ")");
            return m;
        }
        if (clock::now().time_since_epoch().count() >= next_refresh_.load(std::memory_order_relaxed)) refresh(false);
        return m;
    }

    /// The primary that serves `slot`. Throws error(connect_failed) when the map names none.
    std::shared_ptr<cluster_node_state> owner(int slot) {
        const auto m = map();
        const int i = m->owner[static_cast<std::size_t>(slot)];
        if (i < 0) {
            refresh(true);
            const auto again = std::atomic_load(&map_);
            const int j = again->owner[static_cast<std::size_t>(slot)];
            if (j >= 0) return again->primaries[static_cast<std::size_t>(j)];
            throw error(errc::connect_failed, "redkit: cluster: no node serves slot " + std::to_string(slot));
        }
        return m->primaries[static_cast<std::size_t>(i)];
    }

    /// A primary for a command without keys (they take turns).
    std::shared_ptr<cluster_node_state> any_primary() {
        const auto m = map();
        if (m->primaries.empty()) throw error(errc::connect_failed, "redkit: cluster: the slot map names no primary");
        const std::size_t i = turn_.fetch_add(1, std::memory_order_relaxed) % m->primaries.size();
        return m->primaries[i];
    }

    /// The primary of slot 0: where a cluster client subscribes and publishes (classic pub/sub
    /// reaches every node, but PUBLISH counts only the receivers on the node it ran on).
    std::shared_ptr<cluster_node_state> home() { return owner(0); }

    std::vector<std::shared_ptr<cluster_node_state>> primaries() { return map()->primaries; }

    /// The node at host:port, made (with its pool) on first mention.
    std::shared_ptr<cluster_node_state> node_at(const std::string& host, int port) {
        const std::string name = host + ":" + std::to_string(port);
        std::lock_guard<std::mutex> lock(nodes_mutex_);
        auto& slot = nodes_[name];
        if (!slot) {
            client_options o = *base_;
            o.host = host;
            o.port = port;
            o.unix_socket.clear();
            o.lazy_connect = true;
            slot = std::make_shared<cluster_node_state>(host, port, std::move(o));
        }
        return slot;
    }

    /// A MOVED reply: the slot is served elsewhere now. Moves it in a new map at once and reads
    /// the whole map again soon (a resharding or failover rarely moves one slot alone).
    void moved(const redirect& r) {
        auto target = node_at(r.host, r.port);
        {
            std::lock_guard<std::mutex> lock(publish_mutex_);
            const auto old = std::atomic_load(&map_);
            auto m = old ? std::make_shared<slot_map>(*old) : std::make_shared<slot_map>();
            if (!old) m->owner.fill(-1);
            int index = -1;
            for (std::size_t i = 0; i < m->primaries.size(); ++i) {
                if (m->primaries[i] == target) index = static_cast<int>(i);
            }
            if (index < 0) {
                m->primaries.push_back(target);
                index = static_cast<int>(m->primaries.size() - 1);
            }
            m->owner[static_cast<std::size_t>(r.slot)] = static_cast<std::int16_t>(index);
            std::atomic_store(&map_, std::shared_ptr<const slot_map>(std::move(m)));
        }
        soon();
    }

    /// Reads the map from the first node that answers. `urgent`: now, unless another thread is
    /// reading it or it was read in the last 100 ms; otherwise only when refresh_interval passed.
    void refresh(bool urgent) { refresh_impl(urgent, std::chrono::milliseconds(100)); }

    /// Reads the map unless it was read in the last `age` (or another thread is reading it).
    void refresh_if_older(std::chrono::milliseconds age) { refresh_impl(true, age); }

    /// Whether some map was read (the cluster was reached once).
    bool has_map() const { return std::atomic_load(&map_) != nullptr; }

    std::string last_failure() const {
        std::lock_guard<std::mutex> lock(failure_mutex_);
        return failure_.empty() ? std::string("no node answered") : failure_;
    }

    const client_options& options() const noexcept { return *base_; }

    /// Sends an error to on_error (never throws).
    void report(const error& e) const noexcept {
        if (!base_->on_error) return;
        try {
            base_->on_error(e);
        } catch (...) {
            // documented: the callback must not throw
        }
    }

    /// Every node met so far (open connections are counted over them).
    std::vector<std::shared_ptr<cluster_node_state>> all_nodes() const {
        std::lock_guard<std::mutex> lock(nodes_mutex_);
        std::vector<std::shared_ptr<cluster_node_state>> out;
        for (const auto& [name, n] : nodes_) out.push_back(n);
        return out;
    }

private:
    using clock = std::chrono::steady_clock;

    void refresh_impl(bool urgent, std::chrono::milliseconds min_age) {
        std::unique_lock<std::mutex> lock(refresh_mutex_, std::defer_lock);
        if (std::atomic_load(&map_)) {
            if (!lock.try_lock()) return;  // another thread is at it; use the map we have
        } else {
            lock.lock();  // the first map: wait for whoever reads it
            if (std::atomic_load(&map_)) return;
        }
        const auto now = clock::now();
        if (urgent ? now - last_read_ < min_age
                   : now.time_since_epoch().count() < next_refresh_.load(std::memory_order_relaxed)) {
            return;
        }
        last_read_ = now;
        next_refresh_.store((now + base_->cluster.refresh_interval).time_since_epoch().count(),
                            std::memory_order_relaxed);
        read_map_from_known_nodes();
    }

    void read_map_from_known_nodes() {
        std::vector<std::shared_ptr<cluster_node_state>> ask;
        if (const auto m = std::atomic_load(&map_)) ask = m->primaries;
        for (const auto& s : seeds_) ask.push_back(s);
        std::string failures;
        for (const auto& n : ask) {
            try {
                publish(read_map(*n));
                return;
            } catch (const std::exception& e) {
                if (!failures.empty()) failures += "; ";
                failures += n->name() + ": " + std::string(without_prefix(e.what()));
            }
        }
        std::lock_guard<std::mutex> f(failure_mutex_);
        failure_ = failures.empty() ? std::string("no node to ask") : failures;
    }

    void soon() { next_refresh_.store(0, std::memory_order_relaxed); }

    // CLUSTER SLOTS on a short-lived connection: [[start, end, [host, port, id], replicas...], ...]
    std::shared_ptr<slot_map> read_map(cluster_node_state& from) {
        client_options o = from.pool->options();
        o.command_timeout =
            std::min(o.command_timeout.count() > 0 ? o.command_timeout : std::chrono::milliseconds(1000),
                     std::chrono::milliseconds(2000));
        connection c(o);
        const auto ranges = c.command<std::vector<reply>>("CLUSTER", "SLOTS");
        auto m = std::make_shared<slot_map>();
        m->owner.fill(-1);
        std::size_t covered = 0;
        for (const reply& range : ranges) {
            const auto& f = range.elements();
            if (f.size() < 3 || f[2].elements().size() < 2) continue;
            const long long first = f[0].integer(), last = f[1].integer();
            if (first < 0 || last >= slot_count || first > last) continue;
            std::string host = f[2].elements()[0].text();
            if (host.empty() || host == "?") host = from.host;  // "": the node we asked
            const auto node = node_at(host, static_cast<int>(f[2].elements()[1].integer()));
            int index = -1;
            for (std::size_t i = 0; i < m->primaries.size(); ++i) {
                if (m->primaries[i] == node) index = static_cast<int>(i);
            }
            if (index < 0) {
                m->primaries.push_back(node);
                index = static_cast<int>(m->primaries.size() - 1);
            }
            for (long long s = first; s <= last; ++s)
                m->owner[static_cast<std::size_t>(s)] = static_cast<std::int16_t>(index);
            covered += static_cast<std::size_t>(last - first + 1);
        }
        if (m->primaries.empty()) throw error(errc::protocol_error, "redkit: CLUSTER SLOTS: no slot is served");
        (void)covered;
        return m;
    }

    void publish(std::shared_ptr<slot_map> m) {
        std::lock_guard<std::mutex> lock(publish_mutex_);
        std::atomic_store(&map_, std::shared_ptr<const slot_map>(std::move(m)));
    }

    std::shared_ptr<const client_options> base_;
    std::shared_ptr<const slot_map> map_;  // atomic_load / atomic_store only
    std::vector<std::shared_ptr<cluster_node_state>> seeds_;
    mutable std::mutex nodes_mutex_;
    std::unordered_map<std::string, std::shared_ptr<cluster_node_state>> nodes_;
    std::mutex refresh_mutex_;  // one reader of the map at a time
    std::mutex publish_mutex_;  // map_ replaced by one writer at a time (refresh, moved)
    clock::time_point last_read_{};
    std::atomic<clock::rep> next_refresh_{0};
    std::atomic<std::size_t> turn_{0};
    mutable std::mutex failure_mutex_;
    std::string failure_;
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
