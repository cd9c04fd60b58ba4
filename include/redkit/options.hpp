// SPDX-License-Identifier: MIT
// client_options: everything a redkit::client needs to know, as an aggregate, and its URL form.
//
// URL grammar (parse_url):
//   redis://[user[:password]@]host[:port][/db][?option=value&...]
//   unix:///path/to/socket[?db=N&option=value&...]       (also redis+unix://)
//   rediss://[user[:password]@]host[:port][/db][?option=value&...]      (TLS)
//   redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[/db][?...]
//   rediss+sentinel://...                   (Sentinel: the hosts are sentinels, default port 26379)
//   redis+cluster://[user[:password]@]host[:port][,host[:port]...][?...]
//   rediss+cluster://...       (Redis Cluster: the hosts are seed nodes, default port 6379; no db)
// host is a name of at most 253 bytes, an IPv4 literal or a bracketed IPv6 literal ([::1]); a URL
// is at most 4096 bytes. user and password are percent-decoded.
// Query options: db, connect_timeout, timeout (command timeout), pool_size, max_retries,
// client_name, user, password, multiplex (yes/no); with rediss:// also tls_ca_file, tls_ca_dir, tls_cert, tls_key,
// tls_server_name and tls_verify (yes/no). rediss:// needs a build with TLS (tls_available); in
// one without, parse_url throws std::invalid_argument saying how to get it. Durations take a unit
// ("250ms", "2s"); a bare number is seconds and may have a fraction ("0.5"). Unknown options are
// rejected, so a typo never goes unnoticed. Sentinel URLs also take sentinel_user and
// sentinel_password (the sentinels' own credentials; user and password log in to the primary).
// Cluster URLs also take replica_reads (yes/no); both take failover_timeout.
// Error messages never contain the password: quoted input has its user info and password
// option redacted, and every quote is cut to a few dozen bytes.
#pragma once

#include <redkit/detail/text.hpp>
#include <redkit/error.hpp>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
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
    std::string host;
    int port = 26379;
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
    std::string host;
    int port = 6379;
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

    /// When non-zero, every new connection sends CLIENT TRACKING on REDIRECT <id> in its setup,
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
};

namespace detail {

/// Longest URL parse_url accepts, and longest host name (DNS names are at most 253 bytes).
inline constexpr std::size_t max_url_size = 4096;
inline constexpr std::size_t max_host_size = 253;

/// Input quoted in an error message: at most `limit` bytes, then "...".
inline std::string quote(std::string_view text, std::size_t limit = 48) {
    std::string out = "'";
    out.append(text.substr(0, limit));
    if (text.size() > limit) out += "...";
    out += '\'';
    return out;
}

/// A URL as error messages may show it: everything before the last '@' of the part before the
/// path (user info) and the value of a password= option become "***", then cut to 48 bytes.
inline std::string redact_url(std::string_view url) {
    std::string out;
    const auto scheme = url.find("://");
    const std::size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
    std::size_t end = url.find_first_of("/?#", start);
    if (end == std::string_view::npos) end = url.size();
    const auto at = url.substr(0, end).rfind('@');
    if (at != std::string_view::npos && at >= start) {
        out.append(url.substr(0, start)).append("***").append(url.substr(at));
    } else if (scheme == std::string_view::npos && url.find('@') != std::string_view::npos) {
        out.append("***").append(url.substr(url.rfind('@')));  // no scheme: trust no part before '@'
    } else {
        out.append(url);
    }
    for (std::size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
        const std::size_t value = p + 9;
        const std::size_t stop = std::min(out.find('&', value), out.size());
        out.replace(value, stop - value, "***");
    }
    return quote(out);
}

/// What a build without TLS answers to rediss:// (or client_options::tls.enabled).
inline std::string no_tls_message(std::string_view what) {
    return "redkit: " + std::string(what) +
           " needs TLS, and this build of redkit has none: it needs hiredis >= 1.0 with its hiredis_ssl library "
           "and OpenSSL (Debian/Ubuntu: libssl-dev and a libhiredis-dev that ships libhiredis_ssl, e.g. Debian 13's) "
           "found by CMake (-DREDKIT_TLS=ON makes that a requirement); without CMake, link hiredis_ssl, ssl and "
           "crypto and define REDKIT_HAS_TLS=1";
}

inline std::string percent_decode(std::string_view in, const char* what) {
    std::string out;
    if (!percent_decode_into(in, out)) {
        throw std::invalid_argument(std::string("redkit: url: bad or truncated percent escape in ") + what);
    }
    return out;
}

template <class Int>
Int parse_int(std::string_view s, Int lo, Int hi, const char* what) {
    Int v{};
    const auto* end = s.data() + s.size();
    const auto r = std::from_chars(s.data(), end, v);
    if (s.empty() || r.ec != std::errc{} || r.ptr != end || v < lo || v > hi) {
        throw std::invalid_argument("redkit: url: " + std::string(what) + " must be an integer in [" +
                                    std::to_string(lo) + ", " + std::to_string(hi) + "], got " + quote(s, 24));
    }
    return v;
}

// "250ms", "2s", "1.5" (seconds) -> milliseconds.
inline std::chrono::milliseconds parse_duration(std::string_view s, const char* what) {
    double scale = 1000.0;
    std::string_view num = s;
    if (num.size() > 2 && num.substr(num.size() - 2) == "ms") {
        scale = 1.0;
        num.remove_suffix(2);
    } else if (num.size() > 1 && num.back() == 's') {
        num.remove_suffix(1);
    }
    // std::from_chars for double needs GCC 11+; stay portable with a strict hand parse.
    double value = 0;
    bool digits = false, dot = false;
    double frac = 0.1;
    for (char c : num) {
        if (c >= '0' && c <= '9') {
            digits = true;
            if (dot) {
                value += (c - '0') * frac;
                frac /= 10;
            } else {
                value = value * 10 + (c - '0');
            }
        } else if (c == '.' && !dot) {
            dot = true;
        } else {
            digits = false;
            break;
        }
    }
    if (!digits || value * scale > 86400000.0 * 365) {
        throw std::invalid_argument("redkit: url: " + std::string(what) +
                                    " must be a duration like 250ms, 2s or 0.5, got " + quote(s, 24));
    }
    return std::chrono::milliseconds(static_cast<long long>(value * scale + 0.5));
}

inline bool parse_yes_no(std::string_view v, const char* what) {
    if (v == "yes" || v == "true" || v == "on" || v == "1") return true;
    if (v == "no" || v == "false" || v == "off" || v == "0") return false;
    throw std::invalid_argument("redkit: url: " + std::string(what) + " must be yes or no, got " + quote(v, 16));
}

inline void apply_query(client_options& o, std::string_view query) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (item.empty()) continue;
        const auto eq = item.find('=');
        if (eq == std::string_view::npos) {
            throw std::invalid_argument("redkit: url: query option " + quote(item.substr(0, item.find('=')), 32) +
                                        " has no value");
        }
        const std::string_view name = item.substr(0, eq);
        const std::string value = percent_decode(item.substr(eq + 1), "query value");
        if (name == "db") {
            o.db = parse_int<int>(value, 0, 1 << 20, "db");
        } else if (name == "connect_timeout") {
            o.connect_timeout = parse_duration(value, "connect_timeout");
        } else if (name == "timeout" || name == "command_timeout") {
            o.command_timeout = parse_duration(value, "timeout");
        } else if (name == "pool_size") {
            o.pool_size = parse_int<std::size_t>(value, 1, 4096, "pool_size");
        } else if (name == "max_retries") {
            o.max_retries = parse_int<int>(value, 0, 100, "max_retries");
        } else if (name == "client_name") {
            o.client_name = value;
        } else if (name == "user") {
            o.user = value;
        } else if (name == "password") {
            o.password = value;
        } else if (name == "multiplex") {
            o.multiplex = parse_yes_no(value, "multiplex");
        } else if (name == "sentinel_user" || name == "sentinel_password") {
            if (o.sentinel.master.empty()) {
                throw std::invalid_argument("redkit: url: " + quote(name, 32) + " needs a redis+sentinel:// url");
            }
            (name == "sentinel_user" ? o.sentinel.user : o.sentinel.password) = value;
        } else if (name == "failover_timeout") {
            if (o.sentinel.master.empty() && !o.cluster.enabled()) {
                throw std::invalid_argument(
                    "redkit: url: 'failover_timeout' needs a redis+sentinel:// or redis+cluster:// url");
            }
            (o.cluster.enabled() ? o.cluster.failover_timeout : o.sentinel.failover_timeout) =
                parse_duration(value, "failover_timeout");
        } else if (name == "replica_reads") {
            if (!o.cluster.enabled()) {
                throw std::invalid_argument("redkit: url: 'replica_reads' needs a redis+cluster:// url");
            }
            o.cluster.replica_reads = parse_yes_no(value, "replica_reads");
        } else if (name.substr(0, 4) == "tls_") {
            if (!o.tls.enabled) {
                throw std::invalid_argument("redkit: url: " + quote(name, 32) + " needs a rediss:// url");
            }
            if (name == "tls_ca_file") {
                o.tls.ca_file = value;
            } else if (name == "tls_ca_dir") {
                o.tls.ca_dir = value;
            } else if (name == "tls_cert") {
                o.tls.cert_file = value;
            } else if (name == "tls_key") {
                o.tls.key_file = value;
            } else if (name == "tls_server_name") {
                o.tls.server_name = value;
            } else if (name == "tls_verify") {
                o.tls.verify = parse_yes_no(value, "tls_verify");
            } else {
                throw std::invalid_argument("redkit: url: unknown query option " + quote(name, 32));
            }
        } else {
            throw std::invalid_argument("redkit: url: unknown query option " + quote(name, 32));
        }
    }
}

/// Takes "user:password@" off the front of an authority into o; returns the rest (host[:port]).
inline std::string_view take_userinfo(std::string_view authority, client_options& o) {
    const auto at = authority.rfind('@');
    if (at == std::string_view::npos) return authority;
    const std::string_view userinfo = authority.substr(0, at);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
        // redis://secret@host is the common password-only form (as redis-cli and ioredis read it)
        o.password = percent_decode(userinfo, "password");
    } else {
        o.user = percent_decode(userinfo.substr(0, colon), "user");
        o.password = percent_decode(userinfo.substr(colon + 1), "password");
    }
    return authority.substr(at + 1);
}

/// Parses host[:port], [ipv6][:port]; keeps `port` when none is given. `which` > 0 numbers the
/// hosts of a list in messages.
inline void parse_host_port(std::string_view rest, std::string& host, int& port, int which) {
    const std::string where = which > 0 ? " (host " + std::to_string(which) + ")" : std::string();
    std::string_view port_text;
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string_view::npos) {
            throw std::invalid_argument("redkit: url: unterminated IPv6 literal in host" + where);
        }
        host = std::string(rest.substr(1, close - 1));
        const std::string_view after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw std::invalid_argument("redkit: url: junk after IPv6 host" + where);
            port_text = after.substr(1);
            if (port_text.empty()) throw std::invalid_argument("redkit: url: empty port" + where);
        }
    } else {
        const auto colon = rest.find(':');
        if (colon != std::string_view::npos && rest.find(':', colon + 1) != std::string_view::npos) {
            throw std::invalid_argument(
                "redkit: url: an IPv6 address goes in brackets, with the port after them: redis://[::1]:6379");
        }
        if (colon != std::string_view::npos) {
            port_text = rest.substr(colon + 1);
            rest = rest.substr(0, colon);
            if (port_text.empty()) throw std::invalid_argument("redkit: url: empty port" + where);
        }
        host = std::string(rest);
    }
    if (host.empty()) throw std::invalid_argument("redkit: url: empty host" + where);
    if (host.size() > max_host_size) {
        throw std::invalid_argument("redkit: url: host longer than " + std::to_string(max_host_size) + " bytes (" +
                                    std::to_string(host.size()) + ")" + where);
    }
    for (char c : host) {
        if (c == ' ' || c == '/' || c == '@' || static_cast<unsigned char>(c) < 0x21 || c == 0x7f) {
            throw std::invalid_argument("redkit: url: invalid character in host " + quote(host) + where);
        }
    }
    if (!port_text.empty()) port = parse_int<int>(port_text, 1, 65535, "port");
}

/// redis+sentinel://[user:password@]h1[:p1],h2[:p2]/master[/db]?...
inline client_options parse_sentinel_url(client_options o, bool tls, std::string_view rest, std::string_view query) {
    if (tls && !tls_available) throw std::invalid_argument(no_tls_message("url: rediss+sentinel://"));
    o.tls.enabled = tls;
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash + 1 == rest.size()) {
        throw std::invalid_argument(
            "redkit: url: redis+sentinel:// needs the master's name: redis+sentinel://host/mymaster");
    }
    std::string_view path = rest.substr(slash + 1);
    std::string_view hosts = take_userinfo(rest.substr(0, slash), o);
    o.sentinel = sentinel_options{};
    o.cluster = cluster_options{};
    const auto db_slash = path.find('/');
    o.sentinel.master = percent_decode(path.substr(0, db_slash), "master name");
    if (o.sentinel.master.empty()) throw std::invalid_argument("redkit: url: empty master name");
    if (db_slash != std::string_view::npos) o.db = parse_int<int>(path.substr(db_slash + 1), 0, 1 << 20, "db");
    int which = 0;
    while (!hosts.empty() || which == 0) {
        const auto comma = hosts.find(',');
        sentinel_node node;
        parse_host_port(hosts.substr(0, comma), node.host, node.port, ++which);
        o.sentinel.nodes.push_back(std::move(node));
        if (comma == std::string_view::npos) break;
        hosts = hosts.substr(comma + 1);
    }
    apply_query(o, query);
    return o;
}

/// redis+cluster://[user:password@]h1[:p1],h2[:p2][?...]: seed nodes; a cluster has only db 0.
inline client_options parse_cluster_url(client_options o, bool tls, std::string_view rest, std::string_view query) {
    if (tls && !tls_available) throw std::invalid_argument(no_tls_message("url: rediss+cluster://"));
    o.tls.enabled = tls;
    o.sentinel = sentinel_options{};
    o.unix_socket.clear();
    const auto slash = rest.find('/');
    if (slash != std::string_view::npos) {
        const std::string_view path = rest.substr(slash + 1);
        if (!path.empty() && path != "0") {
            throw std::invalid_argument("redkit: url: Redis Cluster has only database 0, got " +
                                        quote("/" + std::string(path), 16));
        }
        rest = rest.substr(0, slash);
    }
    std::string_view hosts = take_userinfo(rest, o);
    o.cluster.nodes.clear();
    int which = 0;
    while (!hosts.empty() || which == 0) {
        const auto comma = hosts.find(',');
        cluster_node node;
        parse_host_port(hosts.substr(0, comma), node.host, node.port, ++which);
        o.cluster.nodes.push_back(std::move(node));
        if (comma == std::string_view::npos) break;
        hosts = hosts.substr(comma + 1);
    }
    o.host = o.cluster.nodes.front().host;
    o.port = o.cluster.nodes.front().port;
    apply_query(o, query);
    if (o.db != 0) throw std::invalid_argument("redkit: url: Redis Cluster has only database 0 (db option)");
    return o;
}

}  // namespace detail

/// Parses a Redis URL into client options (see the grammar at the top of this header).
/// Throws std::invalid_argument naming the offending part; never connects.
inline client_options parse_url(std::string_view url, client_options base = {}) {
    client_options o = std::move(base);
    if (url.size() > detail::max_url_size) {
        throw std::invalid_argument("redkit: url: longer than " + std::to_string(detail::max_url_size) + " bytes (" +
                                    std::to_string(url.size()) + ")");
    }
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        throw std::invalid_argument("redkit: url: missing scheme (expected redis://, unix:// or rediss://) in " +
                                    detail::redact_url(url));
    }
    const std::string_view scheme = url.substr(0, scheme_end);
    std::string_view rest = url.substr(scheme_end + 3);

    std::string_view query;
    if (const auto q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }

    if (scheme == "unix" || scheme == "redis+unix") {
        if (rest.empty() || rest.front() != '/') {
            throw std::invalid_argument("redkit: url: unix:// needs an absolute socket path (unix:///path/to/socket)");
        }
        o.tls.enabled = false;
        o.sentinel = sentinel_options{};
        o.cluster = cluster_options{};
        o.unix_socket = detail::percent_decode(rest, "socket path");
        if (o.unix_socket.size() > 107) {  // sockaddr_un::sun_path holds 108 bytes with the terminator
            throw std::invalid_argument("redkit: url: unix socket path longer than 107 bytes");
        }
        detail::apply_query(o, query);
        return o;
    }
    if (scheme == "redis+sentinel" || scheme == "rediss+sentinel") {
        return detail::parse_sentinel_url(std::move(o), scheme == "rediss+sentinel", rest, query);
    }
    if (scheme == "redis+cluster" || scheme == "rediss+cluster") {
        return detail::parse_cluster_url(std::move(o), scheme == "rediss+cluster", rest, query);
    }
    o.tls.enabled = scheme == "rediss";
    o.sentinel = sentinel_options{};
    o.cluster = cluster_options{};
    if (scheme == "rediss") {
        if (!tls_available) throw std::invalid_argument(detail::no_tls_message("url: rediss://"));
    } else if (scheme != "redis") {
        throw std::invalid_argument("redkit: url: unsupported scheme " + detail::quote(scheme, 16) +
                                    " (expected redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://)");
    }

    std::string_view path;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        path = rest.substr(slash + 1);
        rest = rest.substr(0, slash);
    }
    rest = detail::take_userinfo(rest, o);
    detail::parse_host_port(rest, o.host, o.port, 0);
    if (!path.empty()) o.db = detail::parse_int<int>(path, 0, 1 << 20, "db");
    detail::apply_query(o, query);
    return o;
}

}  // namespace v0
}  // namespace redkit
