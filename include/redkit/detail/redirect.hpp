// SPDX-License-Identifier: MIT
// The grammar of Redis Cluster's redirections ("MOVED 3999 127.0.0.1:6381", "ASK ...") and of the
// error replies after which a request may simply be sent again (TRYAGAIN, CLUSTERDOWN...): text
// only, no socket, so the core's router and the subscriber (a shard channel that moved) share it.
#pragma once

#include <redkit/detail/hash.hpp>

#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

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
    if (space == std::string_view::npos || space == 0) return false;  // no slot
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
    std::string_view host = where.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) return false;  // nothing written to `out` on a refusal
    out.slot = slot;
    out.host.assign(host);
    out.port = port;
    return true;
}

/// Error replies after which the same request may simply be sent again a little later: nothing ran.
inline bool cluster_busy(std::string_view text) noexcept {
    return text.substr(0, 9) == "TRYAGAIN " || text.substr(0, 12) == "CLUSTERDOWN " ||
           text.substr(0, 8) == "LOADING " || text.substr(0, 11) == "MASTERDOWN ";
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
