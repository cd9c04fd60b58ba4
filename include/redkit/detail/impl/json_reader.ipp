// SPDX-License-Identifier: MIT
// detail::json_reader's out-of-line definitions (detail/json_reader.hpp).
#pragma once

#include <redkit/detail/json_reader.hpp>

#include <stdexcept>
#include <string>

namespace redkit {
inline namespace v0 {
namespace detail {

REDKIT_DECL void json_reader::fail(std::string_view what) const {
    throw std::invalid_argument("redkit: json: " + std::string(what) + " at byte " +
                                std::to_string(static_cast<std::size_t>(p_ - begin_)));
}

REDKIT_DECL std::string_view json_reader::skip_value() {
    skip_space();
    const char* start = p_;
    std::string scratch;
    switch (peek()) {
        case '"': (void)string(scratch); break;
        case '{': object(scratch, [this](std::string_view) { (void)skip_value(); }); break;
        case '[': array([this] { (void)skip_value(); }); break;
        case 't':
        case 'f':
        case 'n':
            if (!literal("true") && !literal("false") && !literal("null")) fail("expected a value");
            break;
        default: (void)number();
    }
    return std::string_view(start, static_cast<std::size_t>(p_ - start));
}

REDKIT_DECL void json_reader::string_rest(std::string& out) {
    while (p_ < end_) {
        const auto c = static_cast<unsigned char>(*p_);
        if (c == '"') {
            ++p_;
            return;
        }
        if (c == '\\') {
            ++p_;
            escape(out);
        } else if (c < 0x20) {
            fail("control character in a string");
        } else if (c < 0x80) {
            out.push_back(static_cast<char>(c));
            ++p_;
        } else {
            utf8(out);
        }
    }
    fail("unterminated string");
}

REDKIT_DECL void json_reader::escape(std::string& out) {
    if (p_ >= end_) fail("unterminated string");
    const char e = *p_++;
    switch (e) {
        case '"': out.push_back('"'); return;
        case '\\': out.push_back('\\'); return;
        case '/': out.push_back('/'); return;
        case 'b': out.push_back('\b'); return;
        case 'f': out.push_back('\f'); return;
        case 'n': out.push_back('\n'); return;
        case 'r': out.push_back('\r'); return;
        case 't': out.push_back('\t'); return;
        case 'u': break;
        default: fail("invalid escape in a string");
    }
    std::uint32_t cp = hex4();
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u') fail("a high surrogate without its low half");
        p_ += 2;
        const std::uint32_t low = hex4();
        if (low < 0xDC00 || low > 0xDFFF) fail("a high surrogate without its low half");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        fail("a lone low surrogate");
    }
    put_utf8(out, cp);
}

REDKIT_DECL std::uint32_t json_reader::hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
        const char h = *p_++;
        v <<= 4;
        if (h >= '0' && h <= '9') {
            v |= static_cast<std::uint32_t>(h - '0');
        } else if (h >= 'a' && h <= 'f') {
            v |= static_cast<std::uint32_t>(h - 'a' + 10);
        } else if (h >= 'A' && h <= 'F') {
            v |= static_cast<std::uint32_t>(h - 'A' + 10);
        } else {
            fail("bad hex digit in a \\u escape");
        }
    }
    return v;
}

REDKIT_DECL void json_reader::put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

REDKIT_DECL void json_reader::utf8(std::string& out) {
    const auto b0 = static_cast<unsigned char>(*p_);
    int extra = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        extra = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        extra = 2;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;  // no surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        extra = 3;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
    } else {
        fail("invalid UTF-8 in a string");
    }
    if (end_ - p_ <= extra) fail("invalid UTF-8 in a string");
    for (int i = 1; i <= extra; ++i) {
        const auto b = static_cast<unsigned char>(p_[i]);
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) fail("invalid UTF-8 in a string");
    }
    out.append(p_, static_cast<std::size_t>(extra + 1));
    p_ += extra + 1;
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
