// SPDX-License-Identifier: MIT
// The reply tree as hiredis parses it, seen from above hiredis: the node type (declared, not
// defined), its owner and its accessors. reply.hpp reads replies through these; only
// impl/raw.ipp and hiredis.hpp include <hiredis/hiredis.h>, so a file compiled against
// redkit's compiled library never parses hiredis.
#pragma once

#include <redkit/config.hpp>
#include <redkit/reply_type.hpp>

#include <cstddef>
#include <memory>
#include <string_view>

struct redisReply;  // hiredis's node (a typedef of this struct in <hiredis/hiredis.h>)

namespace redkit {
inline namespace v0 {
namespace detail {

/// One node of a parsed reply tree, as hiredis allocates it.
using raw_node = ::redisReply;

struct reply_deleter {
    REDKIT_DECL void operator()(raw_node* r) const noexcept;
};
/// An owned reply tree (freed with freeReplyObject).
using reply_ptr = std::unique_ptr<raw_node, reply_deleter>;

REDKIT_DECL reply_type raw_type(const raw_node* r) noexcept;
REDKIT_DECL bool raw_is_error(const raw_node* r) noexcept;
REDKIT_DECL std::string_view raw_str(const raw_node* r) noexcept;
REDKIT_DECL long long raw_integer(const raw_node* r) noexcept;
REDKIT_DECL double raw_real(const raw_node* r) noexcept;
/// Elements of an array, set, push or map (a map's keys and values alternate); 0 for others.
REDKIT_DECL std::size_t raw_size(const raw_node* r) noexcept;
REDKIT_DECL const raw_node* raw_at(const raw_node* r, std::size_t i) noexcept;

/// Parses one complete RESP reply from bytes with hiredis's own reader (for tests and tools).
/// Throws error(protocol_error) on malformed or incomplete input.
REDKIT_DECL reply_ptr parse_resp(std::string_view bytes);

/// Builds reply trees with hiredis's own allocation (so freeReplyObject frees them), for replies
/// the core makes itself: a cluster's merged MGET, summed DBSIZE, joined KEYS.
class reply_builder {
public:
    REDKIT_DECL static reply_ptr integer(long long value);
    REDKIT_DECL static reply_ptr string(std::string_view text);
    /// An array of n empty elements, each to be filled by move_element() or nil_element().
    REDKIT_DECL static reply_ptr array(std::size_t n);
    /// Moves element `i` of `from` (an array) into element `j` of `to` (an array from array()).
    REDKIT_DECL static void move_element(raw_node* from, std::size_t i, raw_node* to, std::size_t j) noexcept;
    /// Sets element `j` of `to` to a nil reply.
    REDKIT_DECL static void nil_element(raw_node* to, std::size_t j);
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/core/io/impl/raw.ipp>
#endif
