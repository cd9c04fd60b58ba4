// SPDX-License-Identifier: MIT
// parse_url: the URL form of client_options (options.hpp).
//
// URL grammar:
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

#include <redkit/config.hpp>
#include <redkit/options.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {

/// Parses a Redis URL into client options (see the grammar at the top of this header).
/// Throws std::invalid_argument naming the offending part; never connects.
REDKIT_DECL client_options parse_url(std::string_view url, client_options base = {});

namespace detail {
/// Longest URL parse_url accepts, and longest host name (DNS names are at most 253 bytes).
inline constexpr std::size_t max_url_size = 4096;
inline constexpr std::size_t max_host_size = 253;
}  // namespace detail

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/impl/url.ipp>
#endif
