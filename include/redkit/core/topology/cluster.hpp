// SPDX-License-Identifier: MIT
// The cluster topology under a redkit::client (client_options::cluster), internal to the core:
// which node owns which of the 16384 slots, a pool (plus, on first use, a shared connection) per
// node, and how one request is routed: by its keys' slot, split per slot, or sent to every
// primary (the command table says which), following MOVED and ASK and waiting out failovers.
// Replies of several nodes are merged as reply trees. Applications use client; nothing here is
// public API.
//
// The slot map is read with CLUSTER SLOTS from a known node (the primaries of the last map first,
// then the seeds). It is read on the first request, again every cluster.refresh_interval, after a
// node could not be reached, on CLUSTERDOWN/TRYAGAIN (at most every 100 ms), and a MOVED reply
// moves its slot at once. Readers take a snapshot (an immutable map behind a shared_ptr), so
// routing a request takes no lock but the shared_ptr's own.
#pragma once

#include <redkit/connection.hpp>
#include <redkit/core/commands.hpp>
#include <redkit/core/dispatch/delay_queue.hpp>
#include <redkit/core/dispatch/executor.hpp>
#include <redkit/core/io/connection_access.hpp>
#include <redkit/core/topology/slots.hpp>
#include <redkit/detail/backoff.hpp>
#include <redkit/detail/redirect.hpp>
#include <redkit/error.hpp>
#include <redkit/options.hpp>
#include <redkit/pool.hpp>
#include <redkit/reply.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

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

    const client_options& options() const noexcept { return *base_; }

    /// Where submitted commands wait out a failover (cluster_hop).
    delay_queue& retries() noexcept { return retries_; }

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
        if (!base_->observer) return read_map_unobserved();
        const auto started = clock::now();
        const auto before = std::atomic_load(&map_);
        read_map_unobserved();
        const auto after = std::atomic_load(&map_);
        cluster_map_event e;
        e.duration = clock::now() - started;
        std::string failure;
        if (after == before) {
            e.ok = false;
            failure = last_failure();
            e.reason = failure;
        } else {
            e.primaries = after->primaries.size();
            for (std::size_t slot = 0; before && slot < after->owner.size(); ++slot) {
                const auto owner = [&](const slot_map& m) -> const cluster_node_state* {
                    const int i = m.owner[slot];
                    return i < 0 ? nullptr : m.primaries[static_cast<std::size_t>(i)].get();
                };
                if (owner(*before) != owner(*after)) ++e.slots_moved;
            }
        }
        observe(base_->observer.get(), &observer::on_cluster_map, e);
    }

    void read_map_unobserved() {
        std::vector<std::shared_ptr<cluster_node_state>> ask;
        if (const auto m = std::atomic_load(&map_)) ask = m->primaries;
        for (const auto& s : seeds_) ask.push_back(s);
        std::string failures;
        for (const auto& n : ask) {
            std::string why;
            std::shared_ptr<slot_map> m;
            try {
                m = read_map(*n, why);
            } catch (const server_error& e) {
                why = "setup refused: " + e.server_message();
            } catch (const std::exception& e) {
                why = e.what();
            }
            if (m) {
                publish(std::move(m));
                return;
            }
            if (!failures.empty()) failures += "; ";
            failures += n->name() + ": " + why;
        }
        std::lock_guard<std::mutex> f(failure_mutex_);
        failure_ = failures.empty() ? std::string("no node to ask") : failures;
    }

    void soon() { next_refresh_.store(0, std::memory_order_relaxed); }

    // The map from CLUSTER SHARDS (Redis 7+: it says which nodes are healthy), or CLUSTER SLOTS
    // where SHARDS is unknown, asked on a short-lived connection; null with `why` when it fails.
    std::shared_ptr<slot_map> read_map(cluster_node_state& from, std::string& why) {
        auto o = std::make_shared<client_options>(from.pool->options());
        o->command_timeout =
            std::min(o->command_timeout.count() > 0 ? o->command_timeout : std::chrono::milliseconds(1000),
                     std::chrono::milliseconds(2000));
        o->read_only_replica = false;
        io_status st;
        const std::unique_ptr<connection> c = connection_access::open(std::move(o), st);
        if (!c) {
            why = st.text;
            return nullptr;
        }
        const auto ask = [&](std::string_view sub, reply_ptr& r) {
            argv a;
            a.push_all("CLUSTER", sub);
            st = connection_access::roundtrip(*c, a, r);
            if (!st.ok()) why = "CLUSTER " + std::string(sub) + ": " + st.text;
            return st.ok();
        };
        auto m = std::make_shared<slot_map>();
        m->owner.fill(-1);
        reply_ptr r;
        if (!ask("SHARDS", r)) return nullptr;
        if (!raw_is_error(r.get())) {
            read_shards(reply(view_access::of(r.get(), origin{"CLUSTER SHARDS", {}})), from, *m);
        } else {  // before Redis 7.0: unknown subcommand
            if (!ask("SLOTS", r)) return nullptr;
            if (raw_is_error(r.get())) {
                why = "CLUSTER SLOTS: " + std::string(raw_str(r.get()));
                return nullptr;
            }
            read_slots(reply(view_access::of(r.get(), origin{"CLUSTER SLOTS", {}})).elements(), from, *m);
        }
        if (m->primaries.empty()) {
            why = "the slot map serves no slot";
            return nullptr;
        }
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
    delay_queue retries_;  // last: its thread ends before the rest goes
};

// ---- merges: one reply from the replies of several nodes (no socket here) ----

/// MGET's replies per slot, put back in the caller's order. groups[g] lists the argument indexes
/// part g asked for, in its order; `keys` lists every key's argument index in the caller's
/// order. The values are moved out of the parts; a missing one is nil.
inline reply_ptr merge_in_order(std::vector<reply_ptr>& parts, const std::vector<std::vector<std::size_t>>& groups,
                                const std::vector<std::size_t>& keys) {
    std::size_t argc = 0;
    for (const std::size_t k : keys) argc = std::max(argc, k + 1);
    std::vector<std::size_t> place(argc, keys.size());  // argument index -> position in the result
    for (std::size_t i = 0; i < keys.size(); ++i) place[keys[i]] = i;
    reply_ptr out = reply_builder::array(keys.size());
    std::vector<bool> filled(keys.size(), false);
    for (std::size_t g = 0; g < groups.size() && g < parts.size(); ++g) {
        for (std::size_t j = 0; j < groups[g].size() && j < raw_size(parts[g].get()); ++j) {
            const std::size_t at = groups[g][j] < argc ? place[groups[g][j]] : keys.size();
            if (at == keys.size() || filled[at]) continue;
            reply_builder::move_element(parts[g].get(), j, out.get(), at);
            filled[at] = true;
        }
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
        if (!filled[i]) reply_builder::nil_element(out.get(), i);
    }
    return out;
}

/// The integer replies summed (DEL, EXISTS, UNLINK, TOUCH per slot; DBSIZE per primary).
inline reply_ptr sum_integers(const std::vector<reply_ptr>& parts) {
    long long sum = 0;
    for (const auto& p : parts) sum += raw_integer(p.get());
    return reply_builder::integer(sum);
}

/// The array replies joined, in order (KEYS per primary); the elements are moved out of the parts.
inline reply_ptr join_arrays(std::vector<reply_ptr>& parts) {
    std::size_t n = 0;
    for (const auto& p : parts) n += raw_size(p.get());
    reply_ptr out = reply_builder::array(n);
    std::size_t at = 0;
    for (auto& p : parts) {
        for (std::size_t j = 0; j < raw_size(p.get()); ++j) reply_builder::move_element(p.get(), j, out.get(), at++);
    }
    return out;
}

/// The text replies joined (CLIENT LIST per primary).
inline reply_ptr join_texts(const std::vector<reply_ptr>& parts) {
    std::string all;
    for (const auto& p : parts) all.append(raw_str(p.get()));
    return reply_builder::string(all);
}

// ---- routing: one request on a cluster ----

inline reply_ptr execute_on_slot(cluster_router& c, const argv& a, const command_traits& t, int slot, bool idempotent,
                                 command_watch* watch = nullptr);

/// Redirections (MOVED, ASK) one command follows before its last one is its reply.
inline constexpr int max_redirects = 16;

// ASKING and the command in one write on one pooled connection of the importing node.
inline reply_ptr execute_asking(cluster_node_state& n, const argv& a, command_watch* watch) {
    lease l = n.pool->acquire();
    if (watch != nullptr) {
        watch->path = command_path::pooled;
        watch->server = connection_access::server(*l);
    }
    argv asking;
    asking.push_all("ASKING");
    transport& wire = connection_access::wire(*l);
    wire.append(asking);
    wire.append(a);
    reply_ptr ok, r;
    io_status st = wire.flush();
    if (st.ok()) st = wire.read(ok);
    if (st.ok()) st = wire.read(r);
    if (!st.ok()) {
        error e = transport_error(st, a.command_name(), a.first_key());
        n.pool->report(e);
        throw e;
    }
    return r;
}

/// One command on a cluster, routed by its traits: to the owner of its keys' slot (splitting
/// MGET, DEL, EXISTS, UNLINK and TOUCH per slot), to any primary without a key, to every primary
/// for FLUSHALL, SCRIPT, DBSIZE, KEYS... Keys of one command in several slots otherwise throw
/// std::invalid_argument before anything is sent.
inline reply_ptr execute_on_cluster(cluster_router& c, const argv& a, const command_traits& t, bool idempotent,
                                    command_watch* watch = nullptr) {
    require_arguments(a);
    const key_positions keys(a, t);
    if (keys.kind() == route_kind::broadcast) {
        const auto nodes = c.primaries();
        std::vector<reply_ptr> replies;
        for (const auto& node : nodes) {
            reply_ptr r;
            try {
                r = execute(*node->pool, *node->shared, a, t, idempotent, watch);
            } catch (const error& e) {
                if (e.is_transport()) c.refresh(true);
                throw;
            }
            if (raw_is_error(r.get())) return r;
            replies.push_back(std::move(r));
        }
        switch (t.spread) {
            case fan_out::sum: return sum_integers(replies);
            case fan_out::join: return join_arrays(replies);
            case fan_out::join_text: return join_texts(replies);
            default: return std::move(replies.front());
        }
    }
    if (keys.kind() == route_kind::keyless) return execute_on_slot(c, a, t, t.home ? 0 : -1, idempotent, watch);
    if (!keys.spans_slots()) return execute_on_slot(c, a, t, slot_of(a.at(keys.keys().front())), idempotent, watch);
    if (t.spread != fan_out::split_merge && t.spread != fan_out::split_sum) {
        throw std::invalid_argument(keys.cross_slot_message());
    }
    // one command per slot, the replies merged in the caller's order (MGET) or summed
    std::vector<int> slots;
    std::vector<std::vector<std::size_t>> groups;  // argument indexes per slot
    for (const std::size_t i : keys.keys()) {
        const int s = slot_of(a.at(i));
        const auto at = std::find(slots.begin(), slots.end(), s);
        if (at == slots.end()) {
            slots.push_back(s);
            groups.emplace_back(1, i);
        } else {
            groups[static_cast<std::size_t>(at - slots.begin())].push_back(i);
        }
    }
    std::vector<reply_ptr> replies;
    replies.reserve(groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
        argv one;
        one.push_view(a.command_name());
        for (const std::size_t i : groups[g]) one.push_view(a.at(i));
        reply_ptr r = execute_on_slot(c, one, t, slots[g], idempotent, watch);
        if (raw_is_error(r.get())) return r;
        replies.push_back(std::move(r));
    }
    return t.spread == fan_out::split_sum ? sum_integers(replies) : merge_in_order(replies, groups, keys.keys());
}

/// One command on the owner of `slot` (-1: any primary), following MOVED and ASK and waiting out
/// TRYAGAIN, CLUSTERDOWN and an unreachable primary for up to cluster.failover_timeout (a
/// redirected or refused command never ran, so that is always safe).
inline reply_ptr execute_on_slot(cluster_router& c, const argv& a, const command_traits& t, int slot, bool idempotent,
                                 command_watch* watch) {
    const client_options& o = c.options();
    std::optional<std::chrono::steady_clock::time_point> deadline;  // read the clock only on trouble
    const auto may_wait = [&](int attempt) {
        const auto now = std::chrono::steady_clock::now();
        if (!deadline) deadline = now + o.cluster.failover_timeout;
        if (now >= *deadline) return false;
        const auto pause = std::min<std::chrono::steady_clock::duration>(
            backoff::draw(o.retry_backoff, o.retry_backoff_max, std::min(attempt, 16)), *deadline - now);
        std::this_thread::sleep_for(pause);
        return true;
    };
    std::shared_ptr<cluster_node_state> asking;
    int redirects = 0;
    // replica_reads: a read goes to a replica of the slot, unless one failed this request already
    bool from_replica = o.cluster.replica_reads && slot >= 0 && t.read_only;
    for (int attempt = 0;; ++attempt) {
        reply_ptr r;
        try {
            if (asking) {
                const auto node = std::move(asking);
                asking.reset();
                r = execute_asking(*node, a, watch);
            } else if (from_replica) {
                const auto node = c.reader(slot);
                try {
                    r = execute(*node->pool, *node->shared, a, t, idempotent, watch);
                } catch (const error& e) {
                    if (!e.is_transport() && e.kind() != errc::pool_exhausted) throw;
                    from_replica = false;  // read it from the primary instead
                    continue;
                }
            } else {
                const auto node = slot >= 0 ? c.owner(slot) : c.any_primary();
                r = execute(*node->pool, *node->shared, a, t, idempotent, watch);
            }
        } catch (const server_error&) {
            throw;
        } catch (const error& e) {
            // nothing reached a server (the node is down, a failover is under way): find the slot's
            // owner again and retry while the failover window lasts
            if (e.kind() != errc::connect_failed) {
                if (e.is_transport()) c.refresh(true);
                throw;
            }
            if (!c.has_map()) throw;  // never reached the cluster: no failover to wait for
            c.refresh(true);
            if (!may_wait(attempt)) throw;
            if (watch != nullptr) ++watch->retries;
            continue;
        }
        if (!raw_is_error(r.get())) return r;
        const std::string_view text = raw_str(r.get());
        redirect to;
        if (parse_redirect(text, "MOVED", to) && ++redirects <= max_redirects) {
            if (watch != nullptr) ++watch->moved;
            c.moved(to);
            continue;
        }
        if (parse_redirect(text, "ASK", to) && ++redirects <= max_redirects) {
            if (watch != nullptr) ++watch->asked;
            asking = c.node_at(to.host, to.port);
            continue;
        }
        if (cluster_busy(text)) {
            c.refresh(true);
            if (may_wait(attempt)) {
                if (watch != nullptr) ++watch->retries;
                continue;
            }
        }
        return r;
    }
}

/// A submitted command on a cluster (client::submit): its hop, the request a node's shared
/// connection sends, follows MOVED and ASK as execute_on_slot() does (at most max_redirects), by
/// sending a new hop to the node named (for ASK, with ASKING ahead of it, one reply dropped); the
/// last hop's outcome becomes the command's. It runs on the thread that reads a hop's reply, so it
/// never blocks there: a MOVED moves the slot in the map without reading the cluster. A failover is
/// waited out as execute_on_slot() does, up to cluster.failover_timeout from the first failure,
/// for what provably did not run (TRYAGAIN, CLUSTERDOWN, a node that cannot be connected to): the
/// router's delay_queue tries again after a backoff, reading the map first (it may block there).
class cluster_hop final : public mux_completion {
public:
    using clock = std::chrono::steady_clock;

    cluster_hop(std::weak_ptr<cluster_router> router, std::shared_ptr<mux_request> command, int redirects, int attempt,
                clock::time_point deadline, bool asking)
        : router_(std::move(router)),
          command_(std::move(command)),
          redirects_(redirects),
          attempt_(attempt),
          deadline_(deadline),
          asking_(asking) {}

    /// Sends a hop of `command` to `node`'s shared connection (asking: after ASKING). `attempt`
    /// and `deadline`: the failover wait so far (0 and max: none).
    static void send(const std::shared_ptr<cluster_router>& router, cluster_node_state& node,
                     const std::shared_ptr<mux_request>& command, bool asking, int redirects, int attempt = 0,
                     clock::time_point deadline = clock::time_point::max()) {
        auto hop = std::make_shared<mux_request>();
        if (asking) {
            argv a;
            a.push_all("ASKING");
            append_resp(hop->wire, a);
            hop->leading = 1;
        }
        hop->wire += command->wire;
        // a batch submitted whole (a transaction) keeps the replies before its last
        hop->leading += command->leading;
        hop->keep_leading = command->keep_leading;
        if (hop->keep_leading) hop->leading_replies.reserve(hop->leading);
        hop->command = command->command;
        hop->key = command->key;
        hop->deadline = command->deadline;
        if (command->watch) {
            command->watch->path = command_path::shared;
            command->watch->server = intern_server(node.name());
            if (attempt > command->watch->retries) command->watch->retries = attempt;
        }
        if (redirects == 0 && attempt == 0) command->hop = hop;  // the first, set before the command is shared
        multiplexer& m = node.shared->get(*node.pool);
        m.submit(hop);
        std::unique_ptr<mux_completion> next =
            std::make_unique<cluster_hop>(router, command, redirects, attempt, deadline, asking);
        if (!m.attach(hop, next)) next->complete(hop);
    }

    void complete(std::shared_ptr<mux_request> hop) override {
        const auto router = router_.lock();
        const bool withdrawn = command_->withdrawn.load(std::memory_order_relaxed);
        if (router && hop->status.ok() && !hop->refused && raw_is_error(hop->reply.get()) &&
            redirects_ < max_redirects && !withdrawn) {
            const std::string_view text = raw_str(hop->reply.get());
            redirect to;
            const bool moved = parse_redirect(text, "MOVED", to);
            if (moved || parse_redirect(text, "ASK", to)) {
                try {
                    if (command_->watch) ++(moved ? command_->watch->moved : command_->watch->asked);
                    if (moved) router->moved(to);
                    send(router, *router->node_at(to.host, to.port), command_, !moved, redirects_ + 1, attempt_,
                         deadline_);
                } catch (const std::exception& e) {
                    // the next hop could not even be queued: the command ends here, unsent there
                    command_->status = {errc::connect_failed, false,
                                        std::string("following a redirection to ") + to.host + ":" +
                                            std::to_string(to.port) + " failed: " + e.what()};
                    finish_detached(command_, router->options().on_error);
                }
                return;
            }
        }
        // did not run: a node that could not be connected to, or one busy with a failover
        const bool unsent = !hop->refused && hop->status.code == errc::connect_failed;
        const bool busy = hop->status.ok() && !hop->refused && raw_is_error(hop->reply.get()) &&
                          cluster_busy(raw_str(hop->reply.get()));
        if (router && (unsent || busy) && !withdrawn && router->has_map() && wait_out(router)) return;
        command_->reply = std::move(hop->reply);
        command_->status = std::move(hop->status);
        command_->refused = hop->refused;
        command_->demoted = hop->demoted;
        if (command_->keep_leading) {
            auto& earlier = hop->leading_replies;
            if (asking_ && !earlier.empty()) earlier.erase(earlier.begin());  // ASKING's
            command_->leading_replies = std::move(earlier);
        }
        finish_detached(command_, router ? router->options().on_error : std::function<void(const error&)>());
    }

private:
    // Queues the next try after a backoff, unless the failover window is over.
    bool wait_out(const std::shared_ptr<cluster_router>& router) {
        const client_options& o = router->options();
        const auto now = clock::now();
        const auto deadline = deadline_ == clock::time_point::max() ? now + o.cluster.failover_timeout : deadline_;
        if (now >= deadline) return false;
        const auto due =
            now + std::min<clock::duration>(backoff::draw(o.retry_backoff, o.retry_backoff_max, std::min(attempt_, 16)),
                                            deadline - now);
        router->retries().post(due, [weak = router_, command = command_, redirects = redirects_, attempt = attempt_ + 1,
                                     deadline](bool run) { retry(weak, command, redirects, attempt, deadline, run); });
        return true;
    }

    // On the delay queue's thread: reads the map (it may block here) and sends the command to its
    // slot's owner again; no owner yet, it waits again while the window lasts.
    static void retry(const std::weak_ptr<cluster_router>& weak, const std::shared_ptr<mux_request>& command,
                      int redirects, int attempt, clock::time_point deadline, bool run) {
        const auto router = weak.lock();
        const auto fail = [&](errc code, std::string text) {
            command->status = {code, false, std::move(text)};
            finish_detached(command, router ? router->options().on_error : std::function<void(const error&)>());
        };
        if (!run || !router) return fail(errc::connection_closed, "the cluster client was closed during a failover");
        if (command->withdrawn.load(std::memory_order_relaxed)) return fail(errc::cancelled, "cancelled");
        try {
            router->refresh(true);
            const auto node = command->slot >= 0 ? router->owner(command->slot) : router->any_primary();
            send(router, *node, command, false, redirects, attempt, deadline);
        } catch (const std::exception& e) {
            const client_options& o = router->options();
            const auto now = clock::now();
            if (now >= deadline) return fail(errc::connect_failed, std::string("waiting out a failover: ") + e.what());
            const auto due =
                now + std::min<clock::duration>(
                          backoff::draw(o.retry_backoff, o.retry_backoff_max, std::min(attempt, 16)), deadline - now);
            router->retries().post(due, [weak, command, redirects, attempt, deadline](bool again) {
                retry(weak, command, redirects, attempt + 1, deadline, again);
            });
        }
    }

    std::weak_ptr<cluster_router> router_;
    std::shared_ptr<mux_request> command_;
    int redirects_;
    int attempt_;                 // failover waits so far
    clock::time_point deadline_;  // the end of the failover window (max: no wait yet)
    bool asking_;                 // this hop sent ASKING first
};

/// A pooled connection to the owner of `slot` (-1: the home node), waiting out a failover as
/// requests do (nothing has been sent yet). Sets `node` to the node it came from.
inline lease borrow_slot(cluster_router& c, int slot, std::shared_ptr<cluster_node_state>& node) {
    const client_options& o = c.options();
    std::optional<std::chrono::steady_clock::time_point> deadline;
    for (int attempt = 0;; ++attempt) {
        try {
            node = slot >= 0 ? c.owner(slot) : c.home();
            return node->pool->borrow();
        } catch (const server_error&) {
            throw;
        } catch (const error& e) {
            if (e.kind() != errc::connect_failed || !c.has_map()) throw;
            if (e.is_transport()) notify(o.on_error, e);
            c.refresh(true);
            const auto now = std::chrono::steady_clock::now();
            if (!deadline) deadline = now + o.cluster.failover_timeout;
            if (now >= *deadline) throw;
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
                backoff::draw(o.retry_backoff, o.retry_backoff_max, std::min(attempt, 16)), *deadline - now));
        }
    }
}

/// A dedicated connection to a node (a MOVED reply breaks it: its slot lives elsewhere then).
inline connection dedicated_to(cluster_router& c, const std::shared_ptr<cluster_node_state>& n) {
    try {
        connection conn(n->pool->shared_options());
        connection_access::drop_on_moved(conn);
        return conn;
    } catch (const error& e) {
        if (e.kind() == errc::connect_failed) c.refresh(true);
        throw;
    }
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
