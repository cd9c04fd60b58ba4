// SPDX-License-Identifier: MIT
// parse_url and its helpers (url.hpp).
#pragma once

#include <redkit/core/io/tls.hpp>
#include <redkit/detail/text.hpp>
#include <redkit/url.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

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

REDKIT_DECL client_options parse_url(std::string_view url, client_options base) {
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
