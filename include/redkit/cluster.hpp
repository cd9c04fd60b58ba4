// SPDX-License-Identifier: MIT
// The cluster topology under a redkit::client (client_options::cluster), internal to the core:
// which node owns which of the 16384 slots, and a pool (plus, on first use, a shared connection)
// per node. Applications use client; nothing here is public API.
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

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
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
    std::vector<std::vector<std::shared_ptr<cluster_node_state>>> replicas;  // per primary (replica_reads)
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

    /// Where a read of `slot` goes with replica_reads: one of the primary's replicas in turn (its
    /// READONLY pool), or the primary when it has none.
    std::shared_ptr<cluster_node_state> reader(int slot) {
        const auto m = map();
        const int i = m->owner[static_cast<std::size_t>(slot)];
        if (i < 0 || static_cast<std::size_t>(i) >= m->replicas.size() ||
            m->replicas[static_cast<std::size_t>(i)].empty()) {
            return owner(slot);
        }
        const auto& r = m->replicas[static_cast<std::size_t>(i)];
        return r[turn_.fetch_add(1, std::memory_order_relaxed) % r.size()];
    }

    /// The node at host:port, made (with its pool) on first mention; `reads` is the replica-read
    /// view of a node (its connections send READONLY).
    std::shared_ptr<cluster_node_state> node_at(const std::string& host, int port, bool reads = false) {
        const std::string name = host + ":" + std::to_string(port) + (reads ? "/readonly" : "");
        std::lock_guard<std::mutex> lock(nodes_mutex_);
        auto& slot = nodes_[name];
        if (!slot) {
            client_options o = *base_;
            o.host = host;
            o.port = port;
            o.unix_socket.clear();
            o.lazy_connect = true;
            o.read_only_replica = reads;
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

    // The map from CLUSTER SHARDS (Redis 7+: it says which nodes are healthy), or CLUSTER SLOTS
    // where SHARDS is unknown, asked on a short-lived connection.
    std::shared_ptr<slot_map> read_map(cluster_node_state& from) {
        client_options o = from.pool->options();
        o.command_timeout =
            std::min(o.command_timeout.count() > 0 ? o.command_timeout : std::chrono::milliseconds(1000),
                     std::chrono::milliseconds(2000));
        o.read_only_replica = false;
        connection c(o);
        auto m = std::make_shared<slot_map>();
        m->owner.fill(-1);
        std::optional<reply> shards;
        try {
            shards = c.command<reply>("CLUSTER", "SHARDS");
            if (shards->is_error()) shards.reset();
        } catch (const server_error&) {
            // before Redis 7.0: unknown command
        }
        if (shards) {
            read_shards(*shards, from, *m);
        } else {
            read_slots(c.command<std::vector<reply>>("CLUSTER", "SLOTS"), from, *m);
        }
        if (m->primaries.empty()) throw error(errc::protocol_error, "redkit: cluster: the slot map serves no slot");
        return m;
    }

    // slots [first, last] served by `primary`, with these replicas
    void serve(slot_map& m, long long first, long long last, const std::shared_ptr<cluster_node_state>& primary,
               const std::vector<std::shared_ptr<cluster_node_state>>& replicas) {
        if (first < 0 || last >= slot_count || first > last) return;
        std::size_t index = 0;
        while (index < m.primaries.size() && m.primaries[index] != primary) ++index;
        if (index == m.primaries.size()) m.primaries.push_back(primary);
        m.replicas.resize(m.primaries.size());
        for (const auto& r : replicas) {
            auto& mine = m.replicas[index];
            if (std::find(mine.begin(), mine.end(), r) == mine.end()) mine.push_back(r);
        }
        for (long long s = first; s <= last; ++s)
            m.owner[static_cast<std::size_t>(s)] = static_cast<std::int16_t>(index);
    }

    // [[first, last, [host, port, id], [replica host, port, id]...], ...]
    void read_slots(const std::vector<reply>& ranges, const cluster_node_state& from, slot_map& m) {
        for (const reply& range : ranges) {
            const auto& f = range.elements();
            if (f.size() < 3 || f[2].elements().size() < 2) continue;
            std::vector<std::shared_ptr<cluster_node_state>> replicas;
            for (std::size_t r = 3; base_->cluster.replica_reads && r < f.size(); ++r) {
                if (f[r].elements().size() >= 2) replicas.push_back(node_of(f[r].elements(), from, true));
            }
            serve(m, f[0].integer(), f[1].integer(), node_of(f[2].elements(), from, false), replicas);
        }
    }

    // [[ "slots", [first, last, ...], "nodes", [[ "id", .., "port", .., "ip", .., "endpoint", ..,
    //    "role", "master"|"replica", "health", "online"|"failed"|"loading", ...], ...]], ...]
    void read_shards(const reply& shards, const cluster_node_state& from, slot_map& m) {
        const auto field = [](const std::vector<reply>& pairs, std::string_view name) -> const reply* {
            for (std::size_t i = 0; i + 1 < pairs.size(); i += 2) {
                if (pairs[i].text() == name) return &pairs[i + 1];
            }
            return nullptr;
        };
        for (const reply& shard : shards.elements()) {
            const reply* slots = field(shard.elements(), "slots");
            const reply* nodes = field(shard.elements(), "nodes");
            if (slots == nullptr || nodes == nullptr) continue;
            std::shared_ptr<cluster_node_state> primary;
            std::vector<std::shared_ptr<cluster_node_state>> replicas;
            for (const reply& node : nodes->elements()) {
                const auto& f = node.elements();
                const reply* role = field(f, "role");
                const reply* health = field(f, "health");
                const reply* port = field(f, base_->tls.enabled && field(f, "tls-port") ? "tls-port" : "port");
                const reply* host = field(f, "endpoint");
                if (host == nullptr || host->text().empty() || host->text() == "?") host = field(f, "ip");
                if (role == nullptr || port == nullptr || host == nullptr) continue;
                if (health != nullptr && health->text() != "online") continue;
                std::string h = host->text();
                if (h.empty() || h == "?") h = from.host;
                if (role->text() == "master") {
                    primary = node_at(h, static_cast<int>(port->integer()));
                } else if (base_->cluster.replica_reads) {
                    replicas.push_back(node_at(h, static_cast<int>(port->integer()), true));
                }
            }
            if (!primary) continue;  // a shard whose primary failed: its slots wait for the failover
            const auto& ranges = slots->elements();
            for (std::size_t i = 0; i + 1 < ranges.size(); i += 2) {
                serve(m, ranges[i].integer(), ranges[i + 1].integer(), primary, replicas);
            }
        }
    }

    std::shared_ptr<cluster_node_state> node_of(const std::vector<reply>& where, const cluster_node_state& from,
                                                bool reads) {
        std::string host = where[0].text();
        if (host.empty() || host == "?") host = from.host;  // "": the node we asked
        return node_at(host, static_cast<int>(where[1].integer()), reads);
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
