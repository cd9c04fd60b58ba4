// SPDX-License-Identifier: MIT
// What the core knows of each Redis command, in one table: whether a retry cannot run it twice
// (read-only), whether it may share the multiplexed connection, where its keys are (for Redis
// Cluster routing) and whether a cluster must split it per slot or send it to every primary.
// Looked up once per request (a binary search over upper-cased names); a command the table does
// not know is a write, shareable, with its key at argument 1, as nearly all commands are.
#pragma once

#include <redkit/config.hpp>

#include <cstdint>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

/// Where a command's keys are (argument indexes; 0 is the command's name).
enum class key_rule : std::uint8_t {
    first,          ///< argument 1 (GET, SET, HSET, ... the default)
    none,           ///< no key (PING, INFO, PUBLISH...): any primary
    all,            ///< every argument from 1 (DEL, MGET, WATCH, SINTER...)
    two,            ///< arguments 1 and 2 (RENAME, LMOVE, COPY...)
    all_but_last,   ///< every argument from 1 but the last, a timeout (BLPOP, BZPOPMIN...)
    numkeys_at_1,   ///< argument 1 counts the keys after it (ZUNION, LMPOP...)
    numkeys_at_2,   ///< argument 2 counts the keys after it (EVAL, FCALL, BLMPOP...)
    store_numkeys,  ///< a destination at 1, then numkeys at 2 (ZUNIONSTORE...)
    pairs,          ///< key, value, key, value... (MSET)
    from_2,         ///< every argument from 2 (BITOP op dest keys...)
    streams,        ///< the first half of what follows STREAMS (XREAD, XREADGROUP)
    subcommand,     ///< argument 2, after a subcommand (MEMORY USAGE k, OBJECT ENCODING k, XINFO STREAM k)
};

/// How a cluster runs a command whose keys span slots, or that every primary must see.
enum class fan_out : std::uint8_t {
    none,         ///< one node (keys in one slot, or none)
    split_merge,  ///< one command per slot, the replies merged in the caller's order (MGET)
    split_sum,    ///< one command per slot, the integer replies summed (DEL, EXISTS, UNLINK, TOUCH)
    broadcast,    ///< every primary; the first primary's reply (FLUSHALL, SCRIPT LOAD, CONFIG SET...)
    sum,          ///< every primary; the integer replies summed (DBSIZE)
    join,         ///< every primary; the arrays joined (KEYS)
    join_text,    ///< every primary; the texts joined (CLIENT LIST)
};

/// One command's traits.
struct command_traits {
    /// Only reads: a retry after a transport failure cannot run it twice.
    bool read_only = false;
    /// May share the multiplexed connection: neither blocks nor holds connection state.
    bool shareable = true;
    /// Goes to the primary of slot 0 on a cluster (PUBLISH: where subscribers listen).
    bool home = false;
    key_rule keys = key_rule::first;
    fan_out spread = fan_out::none;
};

/// The traits of a command (any case), `sub` its first argument for commands whose traits depend
/// on it (CONFIG SET, CLIENT LIST, MEMORY USAGE...).
REDKIT_DECL command_traits traits_of(std::string_view name, std::string_view sub = {}) noexcept;

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/core/impl/commands.ipp>
#endif
