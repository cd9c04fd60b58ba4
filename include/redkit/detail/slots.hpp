// SPDX-License-Identifier: MIT
// Redis Cluster key slots: CRC16 of the key (or of its hash tag) modulo 16384, and where the keys
// of a command are, so a cluster client can route it.
//
// Key positions come from a table of the commands whose keys are not simply argument 1 (EVAL's
// numkeys, XREAD's STREAMS, MSET's pairs, BLPOP's trailing timeout...), the commands that have no
// key (PING, INFO, CLIENT..., sent to any primary) and the ones every primary must see (FLUSHALL,
// FLUSHDB, SCRIPT, FUNCTION, DBSIZE, KEYS, CONFIG SET/RESETSTAT/REWRITE, CLIENT PAUSE/UNPAUSE/LIST). Any other command
// is taken to have its key at argument 1, as nearly all do.
#pragma once

#include <redkit/detail/argv.hpp>
#include <redkit/detail/text.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

inline constexpr int slot_count = 16384;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster hashes keys.
struct crc16_table {
    std::array<std::uint16_t, 256> t{};
    constexpr crc16_table() {
        for (int i = 0; i < 256; ++i) {
            std::uint16_t crc = static_cast<std::uint16_t>(i << 8);
            for (int b = 0; b < 8; ++b) {
                crc = static_cast<std::uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
            }
            t[static_cast<std::size_t>(i)] = crc;
        }
    }
};
inline constexpr crc16_table crc16_lookup{};

inline std::uint16_t crc16(std::string_view data) noexcept {
    std::uint16_t crc = 0;
    for (const char c : data) {
        const auto byte = static_cast<unsigned char>(c);
        crc = static_cast<std::uint16_t>((crc << 8) ^ crc16_lookup.t[((crc >> 8) ^ byte) & 0xff]);
    }
    return crc;
}

/// The part of a key Redis hashes: the text between the first '{' and the next '}' when that is
/// not empty, else the whole key.
inline std::string_view hashed_part(std::string_view key) noexcept {
    const auto open = key.find('{');
    if (open == std::string_view::npos) return key;
    const auto close = key.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1) return key;
    return key.substr(open + 1, close - open - 1);
}

inline int slot_of(std::string_view key) noexcept { return crc16(hashed_part(key)) & (slot_count - 1); }

/// How a command is routed on a cluster.
enum class route_kind {
    keyed,      ///< by the slot of its keys (all in one slot)
    keyless,    ///< no key: any primary
    broadcast,  ///< every primary must run it (FLUSHALL, SCRIPT LOAD...)
};

/// Where the keys of a command are: positions are argument indexes (0 is the command name).
class key_positions {
public:
    explicit key_positions(const argv& a) : a_(a) { locate(); }

    route_kind kind() const noexcept { return kind_; }
    const std::vector<std::size_t>& keys() const noexcept { return keys_; }

    /// The one slot of all keys (keyed commands). Throws std::invalid_argument naming the keys
    /// and their slots when they span several: nothing may be sent then.
    int single_slot() const {
        int slot = -1;
        for (const std::size_t i : keys_) {
            const int s = slot_of(a_.at(i));
            if (slot < 0) {
                slot = s;
            } else if (s != slot) {
                throw std::invalid_argument(cross_slot_message());
            }
        }
        return slot;
    }

    /// "redkit: MGET: keys in different cluster slots: a (15495), b (3300); ..." (at most 8 named).
    std::string cross_slot_message() const {
        std::string m = "redkit: " + std::string(a_.command_name()) + ": keys in different cluster slots: ";
        std::size_t shown = 0;
        for (const std::size_t i : keys_) {
            if (shown == 8) {
                m += ", ... (" + std::to_string(keys_.size()) + " keys)";
                break;
            }
            if (shown++ > 0) m += ", ";
            const std::string_view k = a_.at(i);
            m += k.substr(0, 64);
            if (k.size() > 64) m += "...";
            m += " (" + std::to_string(slot_of(k)) + ")";
        }
        m += "; keys meet in one slot when they share a hash tag, e.g. {user:42}:cart and {user:42}:orders";
        return m;
    }

private:
    void all_from(std::size_t first, std::size_t end, std::size_t step = 1) {
        for (std::size_t i = first; i < end; i += step) keys_.push_back(i);
    }
    // numkeys at `at`, the keys right after it
    void counted(std::size_t at) {
        if (a_.size() <= at) return;
        std::size_t n = 0;
        for (const char c : a_.at(at)) {
            if (c < '0' || c > '9' || n > a_.size()) return;  // the server will refuse it
            n = n * 10 + static_cast<std::size_t>(c - '0');
        }
        all_from(at + 1, std::min(a_.size(), at + 1 + n));
    }

    void locate() {
        const std::string_view name = a_.command_name();
        const std::size_t n = a_.size();
        static constexpr std::string_view broadcast[] = {"FLUSHALL", "FLUSHDB", "SCRIPT", "FUNCTION", "DBSIZE", "KEYS"};
        static constexpr std::string_view keyless[] = {
            "PING",   "ECHO",     "INFO",    "TIME",    "RANDOMKEY", "LASTSAVE",     "CLIENT",      "CLUSTER",
            "CONFIG", "COMMAND",  "PUBLISH", "PUBSUB",  "WAIT",      "WAITAOF",      "DEBUG",       "ROLE",
            "ACL",    "SLOWLOG",  "LATENCY", "LOLWUT",  "HELLO",     "AUTH",         "READONLY",    "READWRITE",
            "ASKING", "SAVE",     "BGSAVE",  "MONITOR", "SUBSCRIBE", "PSUBSCRIBE",   "UNSUBSCRIBE", "PUNSUBSCRIBE",
            "QUIT",   "RESET",    "SELECT",  "SWAPDB",  "SHUTDOWN",  "REPLICAOF",    "SLAVEOF",     "MULTI",
            "EXEC",   "DISCARD",  "UNWATCH", "SCAN",    "MODULE",    "BGREWRITEAOF", "FAILOVER",    "SYNC",
            "PSYNC",  "REPLCONF", "MEMORY",  "OBJECT",  "XINFO",     "XGROUP",
        };
        static constexpr std::string_view all_keys[] = {"DEL",     "EXISTS",      "UNLINK",      "TOUCH",     "MGET",
                                                        "WATCH",   "SINTER",      "SUNION",      "SDIFF",     "PFCOUNT",
                                                        "PFMERGE", "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"};
        static constexpr std::string_view two_keys[] = {"RENAME",         "RENAMENX",    "RPOPLPUSH", "BRPOPLPUSH",
                                                        "SMOVE",          "LMOVE",       "BLMOVE",    "COPY",
                                                        "GEOSEARCHSTORE", "ZRANGESTORE", "LCS"};
        static constexpr std::string_view last_is_timeout[] = {"BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"};
        static constexpr std::string_view numkeys_at_2[] = {"EVAL",  "EVALSHA",  "EVAL_RO", "EVALSHA_RO",
                                                            "FCALL", "FCALL_RO", "BLMPOP",  "BZMPOP"};
        static constexpr std::string_view numkeys_at_1[] = {"ZUNION",     "ZINTER", "ZDIFF", "SINTERCARD",
                                                            "ZINTERCARD", "LMPOP",  "ZMPOP"};
        static constexpr std::string_view store_numkeys[] = {"ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"};
        static constexpr std::string_view pairs[] = {"MSET", "MSETNX"};
        static constexpr std::string_view bitop[] = {"BITOP"};
        static constexpr std::string_view xread[] = {"XREAD", "XREADGROUP"};
        static constexpr std::string_view streams_word[] = {"STREAMS"};

        static constexpr std::string_view config[] = {"CONFIG"};
        static constexpr std::string_view config_writes[] = {"SET", "RESETSTAT", "REWRITE"};
        static constexpr std::string_view client[] = {"CLIENT"};
        static constexpr std::string_view client_pauses[] = {"PAUSE", "UNPAUSE", "LIST"};
        if (command_in(name, broadcast) || (n > 1 && command_in(name, config) && command_in(a_.at(1), config_writes)) ||
            (n > 1 && command_in(name, client) && command_in(a_.at(1), client_pauses))) {
            kind_ = route_kind::broadcast;
        } else if (command_in(name, keyless)) {
            // containers whose subcommand names a key at argument 2
            static constexpr std::string_view sub_with_key[] = {"MEMORY", "OBJECT", "XINFO", "XGROUP"};
            static constexpr std::string_view keyless_sub[] = {"HELP", "STATS", "DOCTOR", "MALLOC-STATS", "PURGE"};
            if (command_in(name, sub_with_key) && n > 2 && !command_in(a_.at(1), keyless_sub)) keys_.push_back(2);
        } else if (command_in(name, all_keys)) {
            all_from(1, n);
        } else if (command_in(name, two_keys)) {
            all_from(1, std::min<std::size_t>(n, 3));
        } else if (command_in(name, last_is_timeout)) {
            all_from(1, n > 1 ? n - 1 : 1);
        } else if (command_in(name, numkeys_at_2)) {
            counted(2);
        } else if (command_in(name, numkeys_at_1)) {
            counted(1);
        } else if (command_in(name, store_numkeys)) {
            if (n > 1) keys_.push_back(1);
            counted(2);
        } else if (command_in(name, pairs)) {
            all_from(1, n, 2);
        } else if (command_in(name, bitop)) {
            all_from(2, n);
        } else if (command_in(name, xread)) {
            for (std::size_t i = 1; i < n; ++i) {
                if (command_in(a_.at(i), streams_word)) {
                    const std::size_t rest = n - i - 1;
                    all_from(i + 1, i + 1 + rest / 2);
                    break;
                }
            }
        } else if (n > 1) {
            keys_.push_back(1);
        }
        if (kind_ != route_kind::broadcast && keys_.empty()) kind_ = route_kind::keyless;
    }

    const argv& a_;
    route_kind kind_ = route_kind::keyed;
    std::vector<std::size_t> keys_;
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
