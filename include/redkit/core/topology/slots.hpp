// SPDX-License-Identifier: MIT
// Redis Cluster key slots: CRC16 of the key (or of its hash tag) modulo 16384, and where the keys
// of a command are, so a cluster client can route it.
//
// Key positions follow the command table's key rule (core/commands.hpp): argument 1 for nearly
// every command, EVAL's numkeys, XREAD's STREAMS, MSET's pairs, BLPOP's trailing timeout...;
// commands without a key go to any primary, and the ones every primary must see (FLUSHALL,
// FLUSHDB, SCRIPT, FUNCTION, DBSIZE, KEYS, CONFIG SET/RESETSTAT/REWRITE, CLIENT PAUSE/UNPAUSE/LIST)
// are broadcast.
#pragma once

#include <redkit/core/commands.hpp>
#include <redkit/detail/argv.hpp>
#include <redkit/detail/hash.hpp>

#include <algorithm>
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

/// How a command is routed on a cluster.
enum class route_kind {
    keyed,      ///< by the slot of its keys (all in one slot)
    keyless,    ///< no key: any primary
    broadcast,  ///< every primary must run it (FLUSHALL, SCRIPT LOAD...)
};

/// Where the keys of a command are: positions are argument indexes (0 is the command name),
/// found by the command table's key rule.
class key_positions {
public:
    explicit key_positions(const argv& a)
        : key_positions(a, traits_of(a.command_name(), a.size() > 1 ? a.at(1) : "")) {}
    key_positions(const argv& a, const command_traits& t) : a_(a) { locate(t); }

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

    /// Whether the keys span several slots.
    bool spans_slots() const noexcept {
        for (std::size_t i = 1; i < keys_.size(); ++i) {
            if (slot_of(a_.at(keys_[i])) != slot_of(a_.at(keys_[0]))) return true;
        }
        return false;
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

    void locate(const command_traits& t) {
        const std::size_t n = a_.size();
        switch (t.keys) {
            case key_rule::first:
                if (n > 1) keys_.push_back(1);
                break;
            case key_rule::none: break;
            case key_rule::all: all_from(1, n); break;
            case key_rule::two: all_from(1, std::min<std::size_t>(n, 3)); break;
            case key_rule::all_but_last: all_from(1, n > 1 ? n - 1 : 1); break;
            case key_rule::numkeys_at_1: counted(1); break;
            case key_rule::numkeys_at_2: counted(2); break;
            case key_rule::store_numkeys:
                if (n > 1) keys_.push_back(1);
                counted(2);
                break;
            case key_rule::pairs: all_from(1, n, 2); break;
            case key_rule::from_2: all_from(2, n); break;
            case key_rule::streams:
                for (std::size_t i = 1; i < n; ++i) {
                    if (is_streams_word(a_.at(i))) {
                        all_from(i + 1, i + 1 + (n - i - 1) / 2);
                        break;
                    }
                }
                break;
            case key_rule::subcommand:
                if (n > 2) keys_.push_back(2);
                break;
        }
        const bool everywhere = t.spread == fan_out::broadcast || t.spread == fan_out::sum ||
                                t.spread == fan_out::join || t.spread == fan_out::join_text;
        if (everywhere) {
            kind_ = route_kind::broadcast;
            keys_.clear();
        } else if (keys_.empty()) {
            kind_ = route_kind::keyless;
        }
    }

    static bool is_streams_word(std::string_view w) noexcept {
        constexpr std::string_view streams = "STREAMS";
        if (w.size() != streams.size()) return false;
        for (std::size_t i = 0; i < w.size(); ++i) {
            const char c = w[i] >= 'a' && w[i] <= 'z' ? static_cast<char>(w[i] - 'a' + 'A') : w[i];
            if (c != streams[i]) return false;
        }
        return true;
    }

    const argv& a_;
    route_kind kind_ = route_kind::keyed;
    std::vector<std::size_t> keys_;
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit
