// SPDX-License-Identifier: MIT
// The command table behind detail::traits_of (core/commands.hpp).
#pragma once

#include <redkit/core/commands.hpp>

#include <cstddef>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {
namespace commands {

enum : unsigned char { read_only = 1, stateful = 2, home = 4 };

struct entry {
    std::string_view name;  // upper case
    unsigned char flags;
    key_rule keys;
    fan_out spread;
};

// Sorted by name (checked below): traits_of searches it.
inline constexpr entry table[] = {
    {"ACL", 0, key_rule::none, fan_out::none},
    {"ASKING", stateful, key_rule::none, fan_out::none},
    {"AUTH", stateful, key_rule::none, fan_out::none},
    {"BGREWRITEAOF", 0, key_rule::none, fan_out::none},
    {"BGSAVE", 0, key_rule::none, fan_out::none},
    {"BITCOUNT", read_only, key_rule::first, fan_out::none},
    {"BITOP", 0, key_rule::from_2, fan_out::none},
    {"BLMOVE", stateful, key_rule::two, fan_out::none},
    {"BLMPOP", stateful, key_rule::numkeys_at_2, fan_out::none},
    {"BLPOP", stateful, key_rule::all_but_last, fan_out::none},
    {"BRPOP", stateful, key_rule::all_but_last, fan_out::none},
    {"BRPOPLPUSH", stateful, key_rule::two, fan_out::none},
    {"BZMPOP", stateful, key_rule::numkeys_at_2, fan_out::none},
    {"BZPOPMAX", stateful, key_rule::all_but_last, fan_out::none},
    {"BZPOPMIN", stateful, key_rule::all_but_last, fan_out::none},
    {"CLIENT", stateful, key_rule::none, fan_out::none},
    {"CLUSTER", 0, key_rule::none, fan_out::none},
    {"COMMAND", 0, key_rule::none, fan_out::none},
    {"CONFIG", 0, key_rule::none, fan_out::none},
    {"COPY", 0, key_rule::two, fan_out::none},
    {"DBSIZE", read_only, key_rule::none, fan_out::sum},
    {"DEBUG", stateful, key_rule::none, fan_out::none},
    {"DEL", 0, key_rule::all, fan_out::split_sum},
    {"DISCARD", stateful, key_rule::none, fan_out::none},
    {"ECHO", read_only, key_rule::none, fan_out::none},
    {"EVAL", 0, key_rule::numkeys_at_2, fan_out::none},
    {"EVALSHA", 0, key_rule::numkeys_at_2, fan_out::none},
    {"EVALSHA_RO", read_only, key_rule::numkeys_at_2, fan_out::none},
    {"EVAL_RO", read_only, key_rule::numkeys_at_2, fan_out::none},
    {"EXEC", stateful, key_rule::none, fan_out::none},
    {"EXISTS", read_only, key_rule::all, fan_out::split_sum},
    {"EXPIRETIME", read_only, key_rule::first, fan_out::none},
    {"FAILOVER", stateful, key_rule::none, fan_out::none},
    {"FCALL", 0, key_rule::numkeys_at_2, fan_out::none},
    {"FCALL_RO", read_only, key_rule::numkeys_at_2, fan_out::none},
    {"FLUSHALL", 0, key_rule::none, fan_out::broadcast},
    {"FLUSHDB", 0, key_rule::none, fan_out::broadcast},
    {"FUNCTION", 0, key_rule::none, fan_out::broadcast},
    {"GEOSEARCHSTORE", 0, key_rule::two, fan_out::none},
    {"GET", read_only, key_rule::first, fan_out::none},
    {"GETBIT", read_only, key_rule::first, fan_out::none},
    {"GETRANGE", read_only, key_rule::first, fan_out::none},
    {"HELLO", stateful, key_rule::none, fan_out::none},
    {"HEXISTS", read_only, key_rule::first, fan_out::none},
    {"HGET", read_only, key_rule::first, fan_out::none},
    {"HGETALL", read_only, key_rule::first, fan_out::none},
    {"HKEYS", read_only, key_rule::first, fan_out::none},
    {"HLEN", read_only, key_rule::first, fan_out::none},
    {"HMGET", read_only, key_rule::first, fan_out::none},
    {"HRANDFIELD", read_only, key_rule::first, fan_out::none},
    {"HSCAN", read_only, key_rule::first, fan_out::none},
    {"HSTRLEN", read_only, key_rule::first, fan_out::none},
    {"HVALS", read_only, key_rule::first, fan_out::none},
    {"INFO", read_only, key_rule::none, fan_out::none},
    {"KEYS", 0, key_rule::none, fan_out::join},
    {"LASTSAVE", 0, key_rule::none, fan_out::none},
    {"LATENCY", 0, key_rule::none, fan_out::none},
    {"LCS", read_only, key_rule::two, fan_out::none},
    {"LINDEX", read_only, key_rule::first, fan_out::none},
    {"LLEN", read_only, key_rule::first, fan_out::none},
    {"LMOVE", 0, key_rule::two, fan_out::none},
    {"LMPOP", 0, key_rule::numkeys_at_1, fan_out::none},
    {"LOLWUT", 0, key_rule::none, fan_out::none},
    {"LPOS", read_only, key_rule::first, fan_out::none},
    {"LRANGE", read_only, key_rule::first, fan_out::none},
    {"MEMORY", 0, key_rule::subcommand, fan_out::none},
    {"MGET", read_only, key_rule::all, fan_out::split_merge},
    {"MODULE", 0, key_rule::none, fan_out::none},
    {"MONITOR", stateful, key_rule::none, fan_out::none},
    {"MSET", 0, key_rule::pairs, fan_out::none},
    {"MSETNX", 0, key_rule::pairs, fan_out::none},
    {"MULTI", stateful, key_rule::none, fan_out::none},
    {"OBJECT", 0, key_rule::subcommand, fan_out::none},
    {"PEXPIRETIME", read_only, key_rule::first, fan_out::none},
    {"PFCOUNT", read_only, key_rule::all, fan_out::none},
    {"PFMERGE", 0, key_rule::all, fan_out::none},
    {"PING", read_only, key_rule::none, fan_out::none},
    {"PSUBSCRIBE", stateful, key_rule::none, fan_out::none},
    {"PSYNC", stateful, key_rule::none, fan_out::none},
    {"PTTL", read_only, key_rule::first, fan_out::none},
    {"PUBLISH", home, key_rule::none, fan_out::none},
    {"PUBSUB", 0, key_rule::none, fan_out::none},
    {"PUNSUBSCRIBE", stateful, key_rule::none, fan_out::none},
    {"QUIT", stateful, key_rule::none, fan_out::none},
    {"RANDOMKEY", read_only, key_rule::none, fan_out::none},
    {"READONLY", stateful, key_rule::none, fan_out::none},
    {"READWRITE", stateful, key_rule::none, fan_out::none},
    {"RENAME", 0, key_rule::two, fan_out::none},
    {"RENAMENX", 0, key_rule::two, fan_out::none},
    {"REPLCONF", 0, key_rule::none, fan_out::none},
    {"REPLICAOF", 0, key_rule::none, fan_out::none},
    {"RESET", stateful, key_rule::none, fan_out::none},
    {"ROLE", 0, key_rule::none, fan_out::none},
    {"RPOPLPUSH", 0, key_rule::two, fan_out::none},
    {"SAVE", 0, key_rule::none, fan_out::none},
    {"SCAN", read_only, key_rule::none, fan_out::none},
    {"SCARD", read_only, key_rule::first, fan_out::none},
    {"SCRIPT", 0, key_rule::none, fan_out::broadcast},
    {"SDIFF", read_only, key_rule::all, fan_out::none},
    {"SDIFFSTORE", 0, key_rule::all, fan_out::none},
    {"SELECT", stateful, key_rule::none, fan_out::none},
    {"SHUTDOWN", stateful, key_rule::none, fan_out::none},
    {"SINTER", read_only, key_rule::all, fan_out::none},
    {"SINTERCARD", read_only, key_rule::numkeys_at_1, fan_out::none},
    {"SINTERSTORE", 0, key_rule::all, fan_out::none},
    {"SISMEMBER", read_only, key_rule::first, fan_out::none},
    {"SLAVEOF", 0, key_rule::none, fan_out::none},
    {"SLOWLOG", 0, key_rule::none, fan_out::none},
    {"SMEMBERS", read_only, key_rule::first, fan_out::none},
    {"SMISMEMBER", read_only, key_rule::first, fan_out::none},
    {"SMOVE", 0, key_rule::two, fan_out::none},
    {"SRANDMEMBER", read_only, key_rule::first, fan_out::none},
    {"SSCAN", read_only, key_rule::first, fan_out::none},
    {"SSUBSCRIBE", stateful, key_rule::first, fan_out::none},
    {"STRLEN", read_only, key_rule::first, fan_out::none},
    {"SUBSCRIBE", stateful, key_rule::none, fan_out::none},
    {"SUNION", read_only, key_rule::all, fan_out::none},
    {"SUNIONSTORE", 0, key_rule::all, fan_out::none},
    {"SUNSUBSCRIBE", stateful, key_rule::first, fan_out::none},
    {"SWAPDB", stateful, key_rule::none, fan_out::none},
    {"SYNC", stateful, key_rule::none, fan_out::none},
    {"TIME", read_only, key_rule::none, fan_out::none},
    {"TOUCH", 0, key_rule::all, fan_out::split_sum},
    {"TTL", read_only, key_rule::first, fan_out::none},
    {"TYPE", read_only, key_rule::first, fan_out::none},
    {"UNLINK", 0, key_rule::all, fan_out::split_sum},
    {"UNSUBSCRIBE", stateful, key_rule::none, fan_out::none},
    {"UNWATCH", stateful, key_rule::none, fan_out::none},
    {"WAIT", stateful, key_rule::none, fan_out::none},
    {"WAITAOF", stateful, key_rule::none, fan_out::none},
    {"WATCH", stateful, key_rule::all, fan_out::none},
    {"XGROUP", 0, key_rule::subcommand, fan_out::none},
    {"XINFO", 0, key_rule::subcommand, fan_out::none},
    {"XLEN", read_only, key_rule::first, fan_out::none},
    {"XRANGE", read_only, key_rule::first, fan_out::none},
    {"XREAD", stateful, key_rule::streams, fan_out::none},
    {"XREADGROUP", stateful, key_rule::streams, fan_out::none},
    {"XREVRANGE", read_only, key_rule::first, fan_out::none},
    {"ZCARD", read_only, key_rule::first, fan_out::none},
    {"ZCOUNT", read_only, key_rule::first, fan_out::none},
    {"ZDIFF", read_only, key_rule::numkeys_at_1, fan_out::none},
    {"ZDIFFSTORE", 0, key_rule::store_numkeys, fan_out::none},
    {"ZINTER", read_only, key_rule::numkeys_at_1, fan_out::none},
    {"ZINTERCARD", read_only, key_rule::numkeys_at_1, fan_out::none},
    {"ZINTERSTORE", 0, key_rule::store_numkeys, fan_out::none},
    {"ZMPOP", 0, key_rule::numkeys_at_1, fan_out::none},
    {"ZMSCORE", read_only, key_rule::first, fan_out::none},
    {"ZRANDMEMBER", read_only, key_rule::first, fan_out::none},
    {"ZRANGE", read_only, key_rule::first, fan_out::none},
    {"ZRANGEBYSCORE", read_only, key_rule::first, fan_out::none},
    {"ZRANGESTORE", 0, key_rule::two, fan_out::none},
    {"ZRANK", read_only, key_rule::first, fan_out::none},
    {"ZREVRANGE", read_only, key_rule::first, fan_out::none},
    {"ZREVRANGEBYSCORE", read_only, key_rule::first, fan_out::none},
    {"ZREVRANK", read_only, key_rule::first, fan_out::none},
    {"ZSCAN", read_only, key_rule::first, fan_out::none},
    {"ZSCORE", read_only, key_rule::first, fan_out::none},
    {"ZUNION", read_only, key_rule::numkeys_at_1, fan_out::none},
    {"ZUNIONSTORE", 0, key_rule::store_numkeys, fan_out::none},
};

constexpr bool sorted() {
    for (std::size_t i = 1; i < sizeof table / sizeof table[0]; ++i) {
        if (!(table[i - 1].name < table[i].name)) return false;
    }
    return true;
}
static_assert(sorted(), "redkit: the command table must stay sorted by name");

// `word` upper-cased into `out` (16 bytes); false when longer (no command is).
inline bool upper(std::string_view word, char (&out)[16], std::string_view& up) noexcept {
    if (word.size() > sizeof out) return false;
    for (std::size_t i = 0; i < word.size(); ++i) {
        const char c = word[i];
        out[i] = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
    }
    up = std::string_view(out, word.size());
    return true;
}

inline bool is(std::string_view word, std::string_view upper_case) noexcept {
    char buf[16];
    std::string_view up;
    return upper(word, buf, up) && up == upper_case;
}

}  // namespace commands

REDKIT_DECL command_traits traits_of(std::string_view name, std::string_view sub) noexcept {
    using namespace commands;
    command_traits t;
    char buf[16];
    std::string_view up;
    if (!upper(name, buf, up)) return t;
    std::size_t lo = 0, hi = sizeof table / sizeof table[0];
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (table[mid].name < up) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == sizeof table / sizeof table[0] || table[lo].name != up) return t;
    const entry& e = table[lo];
    t.read_only = (e.flags & read_only) != 0;
    t.shareable = (e.flags & stateful) == 0;
    t.home = (e.flags & home) != 0;
    t.keys = e.keys;
    t.spread = e.spread;
    if (up == "CONFIG") {
        if (is(sub, "SET") || is(sub, "RESETSTAT") || is(sub, "REWRITE")) t.spread = fan_out::broadcast;
    } else if (up == "CLIENT") {
        if (is(sub, "PAUSE") || is(sub, "UNPAUSE")) t.spread = fan_out::broadcast;
        if (is(sub, "LIST")) t.spread = fan_out::join_text;
    } else if (t.keys == key_rule::subcommand) {
        // MEMORY USAGE k, OBJECT ENCODING k, XINFO STREAM k, XGROUP CREATE k...; not HELP, STATS...
        if (is(sub, "HELP") || is(sub, "STATS") || is(sub, "DOCTOR") || is(sub, "MALLOC-STATS") || is(sub, "PURGE")) {
            t.keys = key_rule::none;
        }
    }
    return t;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
