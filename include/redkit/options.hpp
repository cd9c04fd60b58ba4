// SPDX-License-Identifier: MIT
// client_options: everything a redkit::client needs to know, as aggregates with documented
// defaults (the URL form, parse_url, is in url.hpp).
#pragma once

#include <redkit/error.hpp>
#include <redkit/observer.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

// REDKIT_HAS_TLS is 1 when hiredis_ssl and OpenSSL are linked (CMake defines it on
// redkit::redkit when it finds them; see REDKIT_TLS). Without CMake, define it yourself.
#if !defined(REDKIT_HAS_TLS)
#define REDKIT_HAS_TLS 0
#endif

namespace redkit {
inline namespace v0 {

/// Whether this build can speak TLS (rediss://).
inline constexpr bool tls_available = REDKIT_HAS_TLS != 0;

/// TLS to the server (rediss://): certificates, the name to expect, verification.
struct tls_options {
    bool enabled = false;     ///< rediss://; needs tls_available
    std::string ca_file;      ///< PEM file of trusted CAs; with ca_dir empty too: the system's store
    std::string ca_dir;       ///< directory of trusted CA certificates (hashed names, c_rehash)
    std::string cert_file;    ///< client certificate (PEM), for servers that require one (mutual TLS)
    std::string key_file;     ///< its private key (PEM)
    std::string server_name;  ///< sent as SNI and expected in the certificate; empty: the host
    /// Check the server's certificate chain and that it names server_name (or the host). false
    /// encrypts without knowing who is at the other end: it is reported through on_error once
    /// per client.
    bool verify = true;
};

/// One sentinel's address.
struct sentinel_node {
    std::string host;  ///< host name or IP literal
    int port = 26379;  ///< TCP port (26379: Sentinel's default)
};

/// Sentinel: connect to the primary that a set of sentinels names, and follow it when they fail
/// over (see "From one server to production" in the README).
struct sentinel_options {
    std::string master;                ///< the name the sentinels monitor; empty: no Sentinel
    std::vector<sentinel_node> nodes;  ///< the sentinels, asked in turn
    std::string user;                  ///< the sentinels' ACL user (empty: AUTH password, or none)
    std::string password;              ///< the sentinels' password (empty: no AUTH)
    /// How long commands wait while a failover is under way: from the moment any sentinel
    /// announces it (+try-failover) until one names the new primary (+switch-master) or the
    /// failover is aborted, nothing is written to the old primary, so a planned failover loses no
    /// acknowledged write. Past this, commands go to the primary as last known. URL:
    /// failover_timeout.
    std::chrono::milliseconds failover_timeout{5000};
};

/// One cluster node's address (a seed: any node of the cluster will do).
struct cluster_node {
    std::string host;  ///< host name or IP literal
    int port = 6379;   ///< TCP port
};

/// Redis Cluster: route every command to the node that owns its keys' slot, and follow the
/// cluster through failovers and resharding (see "Redis Cluster" in the README).
struct cluster_options {
    /// Seed nodes, asked in turn for the slot map (CLUSTER SLOTS); empty: no cluster.
    std::vector<cluster_node> nodes;
    /// Ask for the slot map again at least this often (it is also asked after a MOVED reply, a
    /// node that cannot be reached, CLUSTERDOWN and TRYAGAIN).
    std::chrono::milliseconds refresh_interval{15000};
    /// How long a request keeps trying while its slot has no reachable primary (a failover under
    /// way, CLUSTERDOWN, TRYAGAIN during a migration), following the map as it changes, before it
    /// fails. Only requests that never reached a server, or may run twice, are tried again.
    std::chrono::milliseconds failover_timeout{5000};
    /// Send read-only commands (GET, MGET, HGETALL, EVAL_RO, ... : is_read_only()) to the replicas
    /// of their slot's primary, in turn, over READONLY connections; a replica that cannot be
    /// reached sends the read to the primary. Replication is asynchronous: a read may not see a
    /// write made just before. URL: replica_reads=yes.
    bool replica_reads = false;
    /// Whether a cluster is configured: `nodes` is not empty.
    bool enabled() const noexcept { return !nodes.empty(); }
};

/// How a connection to Redis is made and how requests behave. Defaults suit a service talking to
/// a local or same-datacentre Redis.
struct client_options {
    std::string host = "127.0.0.1";  ///< TCP host (name or IP literal)
    int port = 6379;                 ///< TCP port
    std::string unix_socket;         ///< when set, connect to this unix socket instead of TCP
    std::string user;                ///< ACL user (AUTH user password); empty: AUTH password
    std::string password;            ///< empty: no AUTH
    int db = 0;                      ///< SELECT db on every new connection when non-zero

    std::chrono::milliseconds connect_timeout{1000};  ///< per connection attempt
    std::chrono::milliseconds command_timeout{1000};  ///< per reply; 0 = wait forever

    std::size_t pool_size = 8;                          ///< most pooled connections open at once (plus the shared one)
    std::chrono::milliseconds pool_wait_timeout{2000};  ///< wait for a free connection, then throw
    bool lazy_connect = true;  ///< false: open one connection at construction (and throw if that fails)

    int max_retries = 2;                               ///< extra attempts of a request that may be retried
    std::chrono::milliseconds retry_backoff{25};       ///< first retry delay; doubles each time
    std::chrono::milliseconds retry_backoff_max{500};  ///< cap of the doubling; jitter draws in [d/2, d]

    /// A pooled connection idle for at least this long is checked (a non-blocking poll) before it
    /// is reused, so one closed by the server while idle (its `timeout`, CLIENT KILL, a restart)
    /// is replaced before a command is written to it. 0 checks before every command; the default
    /// skips the extra system call on connections that were busy a moment ago (a hot loop), where
    /// a dead connection is handled by the retry rule instead.
    std::chrono::milliseconds idle_check_after{10};

    std::string client_name;  ///< CLIENT SETNAME on every new connection when non-empty

    /// When non-zero, every new connection sends `CLIENT TRACKING on REDIRECT <id>` in its setup,
    /// so the server reports changes to the keys it reads to the connection with that CLIENT ID
    /// (Redis 6 or later), in the default tracking mode: only while this connection lives. An
    /// application rarely needs it (the cache's near cache tracks in broadcasting mode instead).
    long long tracking_redirect = 0;

    /// Send READONLY in every new connection's setup, so a Redis Cluster replica serves reads of
    /// its primary's slots. The cluster client sets it on its replica connections
    /// (cluster_options::replica_reads); an application rarely needs it.
    bool read_only_replica = false;

    /// Share one connection among all threads (automatic pipelining, see multiplexer.hpp):
    /// commands from many threads go out together in one write and their replies are matched in
    /// order; while few threads call, a caller that finds it busy takes a free pooled connection
    /// instead. Commands that block or hold connection state always take a pooled connection.
    /// false: every command takes a pooled connection (a late reply then fails only its own
    /// command). README: "Many threads, one connection". URL: multiplex=no.
    bool multiplex = true;

    tls_options tls;  ///< TLS (rediss://)

    /// With sentinel.master set, host and port are ignored: every new connection goes to the
    /// primary the sentinels name (redis+sentinel://).
    sentinel_options sentinel;

    /// With cluster.nodes set, host and port are ignored: every command goes to the node that owns
    /// its keys' slot (redis+cluster://).
    cluster_options cluster;

    /// When SIGPIPE still has its default action (terminate), set it to SIG_IGN at the first
    /// client's construction, so a server closing the socket surfaces as an error instead of
    /// killing the process. false leaves the disposition alone and blocks SIGPIPE around each
    /// write instead (a little slower).
    bool ignore_sigpipe = true;

    /// Called (never concurrently with itself for one failure) when a connection breaks, a
    /// connect fails or a request is retried. Must not throw; exceptions are swallowed.
    std::function<void(const error&)> on_error;

    /// Sees every command, connection, pool wait, shared write and cluster map reading, with
    /// timings and outcomes (observer.hpp; <redkit/metrics.hpp> has one that counts). Null (the
    /// default): nothing is observed, and a command pays one pointer test.
    std::shared_ptr<redkit::observer> observer;
    /// Give the observer each command's first key (command_event::key). Keys often name users.
    bool observe_keys = false;
    /// Give the observer each command's text, its arguments masked (command_event::query_text).
    bool observe_query_text = false;
};

}  // namespace v0
}  // namespace redkit
