// SPDX-License-Identifier: MIT
// The reply tree's accessors (core/io/raw.hpp), over hiredis's redisReply.
#pragma once

#include <redkit/core/io/raw.hpp>
#include <redkit/error.hpp>

#include <hiredis/hiredis.h>

#include <limits>
#include <memory>
#include <new>
#include <string>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL void reply_deleter::operator()(raw_node* r) const noexcept { freeReplyObject(r); }

REDKIT_DECL reply_type raw_type(const raw_node* r) noexcept {
    switch (r->type) {
        case REDIS_REPLY_STRING: return reply_type::string;
        case REDIS_REPLY_ARRAY: return reply_type::array;
        case REDIS_REPLY_INTEGER: return reply_type::integer;
        case REDIS_REPLY_NIL: return reply_type::nil;
        case REDIS_REPLY_STATUS: return reply_type::status;
        case REDIS_REPLY_ERROR: return reply_type::error;
#ifdef REDIS_REPLY_MAP
        case REDIS_REPLY_DOUBLE: return reply_type::real;
        case REDIS_REPLY_BOOL: return reply_type::boolean;
        case REDIS_REPLY_MAP: return reply_type::map;
        case REDIS_REPLY_SET: return reply_type::set;
        case REDIS_REPLY_PUSH: return reply_type::push;
        case REDIS_REPLY_BIGNUM: return reply_type::bignum;
        case REDIS_REPLY_VERB: return reply_type::verbatim;
#endif
        default: return reply_type::nil;
    }
}

REDKIT_DECL bool raw_is_error(const raw_node* r) noexcept { return r->type == REDIS_REPLY_ERROR; }

REDKIT_DECL std::string_view raw_str(const raw_node* r) noexcept {
    return r->str ? std::string_view(r->str, r->len) : std::string_view{};
}

REDKIT_DECL long long raw_integer(const raw_node* r) noexcept { return r->integer; }

REDKIT_DECL double raw_real(const raw_node* r) noexcept {
#ifdef REDIS_REPLY_MAP
    return r->dval;
#else
    (void)r;
    return 0.0;  // RESP2 has no doubles
#endif
}

REDKIT_DECL std::size_t raw_size(const raw_node* r) noexcept { return holds_elements(raw_type(r)) ? r->elements : 0; }

REDKIT_DECL const raw_node* raw_at(const raw_node* r, std::size_t i) noexcept { return r->element[i]; }

namespace raw {
struct reader_deleter {
    void operator()(redisReader* r) const noexcept { redisReaderFree(r); }
};
using reader_ptr = std::unique_ptr<redisReader, reader_deleter>;

// hiredis's own reply constructors (the default reader's table), so that freeReplyObject frees
// what the builder makes whatever allocator hiredis was built or configured with.
inline const redisReplyObjectFunctions& functions() {
    static const redisReplyObjectFunctions* fn = [] {
        const reader_ptr r(redisReaderCreate());
        if (!r || r->fn == nullptr) throw std::bad_alloc();
        return r->fn;  // hiredis's static table, which outlives the reader
    }();
    return *fn;
}

inline redisReadTask root_task(int type) noexcept {
    redisReadTask t{};
    t.type = type;
    t.idx = -1;
    return t;
}

inline reply_ptr made(void* obj) {
    if (obj == nullptr) throw std::bad_alloc();
    return reply_ptr(static_cast<raw_node*>(obj));
}
}  // namespace raw

REDKIT_DECL reply_ptr parse_resp(std::string_view bytes) {
    raw::reader_ptr reader(redisReaderCreate());
    if (!reader) throw std::bad_alloc();
    if (redisReaderFeed(reader.get(), bytes.data(), bytes.size()) != REDIS_OK) {
        throw error(errc::protocol_error, "redkit: resp: cannot feed reader");
    }
    void* out = nullptr;
    if (redisReaderGetReply(reader.get(), &out) != REDIS_OK) {
        throw error(errc::protocol_error, std::string("redkit: resp: ") + reader->errstr);
    }
    if (out == nullptr) throw error(errc::protocol_error, "redkit: resp: incomplete reply");
    return reply_ptr(static_cast<raw_node*>(out));
}

REDKIT_DECL reply_ptr reply_builder::integer(long long value) {
    const redisReadTask t = raw::root_task(REDIS_REPLY_INTEGER);
    return raw::made(raw::functions().createInteger(&t, value));
}

REDKIT_DECL reply_ptr reply_builder::string(std::string_view text) {
    const redisReadTask t = raw::root_task(REDIS_REPLY_STRING);
    // hiredis copies the bytes (its signature takes a char* it does not write through)
    return raw::made(raw::functions().createString(&t, const_cast<char*>(text.data()), text.size()));
}

REDKIT_DECL reply_ptr reply_builder::array(std::size_t n) {
    if (n > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw std::bad_alloc();
    const redisReadTask t = raw::root_task(REDIS_REPLY_ARRAY);
#if HIREDIS_MAJOR >= 1
    return raw::made(raw::functions().createArray(&t, n));  // 1.x counts in size_t
#else
    return raw::made(raw::functions().createArray(&t, static_cast<int>(n)));
#endif
}

REDKIT_DECL void reply_builder::move_element(raw_node* from, std::size_t i, raw_node* to, std::size_t j) noexcept {
    to->element[j] = from->element[i];
    from->element[i] = nullptr;  // freeReplyObject skips it in `from`
}

REDKIT_DECL void reply_builder::nil_element(raw_node* to, std::size_t j) {
    const redisReadTask t = raw::root_task(REDIS_REPLY_NIL);
    to->element[j] = raw::made(raw::functions().createNil(&t)).release();
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
