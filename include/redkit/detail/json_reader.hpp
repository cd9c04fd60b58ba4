// SPDX-License-Identifier: MIT
// The one-pass JSON reader behind json_fields (json_fields.hpp): a cursor over the text and the
// grammar of RFC 8259, strings decoded and their UTF-8 checked. No DOM.
#pragma once

#include <redkit/config.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {
namespace detail {

/// The one-pass reader: a cursor over the text, and the grammar of RFC 8259.
class json_reader {
public:
    explicit json_reader(std::string_view text) noexcept
        : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

    [[noreturn]] REDKIT_DECL void fail(std::string_view what) const;

    void skip_space() noexcept {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    }
    /// The next character after whitespace ('\0' at the end).
    char peek() noexcept {
        skip_space();
        return p_ < end_ ? *p_ : '\0';
    }
    bool accept(char c) noexcept {
        if (peek() != c) return false;
        ++p_;
        return true;
    }
    void expect(char c, const char* what) {
        if (!accept(c)) fail(what);
    }
    void finish() {
        skip_space();
        if (p_ != end_) fail("unexpected text after the value");
    }

    /// Enters an array or object (bounded nesting: hostile input cannot exhaust the stack).
    void enter() {
        if (++depth_ > max_depth) fail("nesting deeper than 512 levels");
    }
    void leave() noexcept { --depth_; }

    bool literal(std::string_view word) {
        skip_space();
        if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word)
            return false;
        p_ += word.size();
        return true;
    }

    /// A string's contents (after the opening quote was seen by peek()): a view of the text when
    /// it holds no escape, else decoded into `scratch`.
    std::string_view string(std::string& scratch) {
        expect('"', "expected a string");
        const char* start = p_;
        // the common case: plain ASCII up to the closing quote
        while (p_ < end_) {
            const auto c = static_cast<unsigned char>(*p_);
            if (c == '"') return std::string_view(start, static_cast<std::size_t>(p_++ - start));
            if (c == '\\' || c < 0x20 || c >= 0x80) break;
            ++p_;
        }
        scratch.assign(start, static_cast<std::size_t>(p_ - start));
        string_rest(scratch);
        return scratch;
    }
    void string_into(std::string& out) {
        expect('"', "expected a string");
        const char* start = p_;
        while (p_ < end_) {
            const auto c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                out.assign(start, static_cast<std::size_t>(p_++ - start));
                return;
            }
            if (c == '\\' || c < 0x20 || c >= 0x80) break;
            ++p_;
        }
        out.assign(start, static_cast<std::size_t>(p_ - start));
        string_rest(out);
    }

    /// A number's text, checked against the JSON grammar.
    std::string_view number() {
        skip_space();
        const char* start = p_;
        if (p_ < end_ && *p_ == '-') ++p_;
        if (p_ < end_ && *p_ == '0') {
            ++p_;
        } else if (p_ < end_ && *p_ >= '1' && *p_ <= '9') {
            while (p_ < end_ && is_digit(*p_)) ++p_;
        } else {
            fail("expected a number");
        }
        if (p_ < end_ && *p_ == '.') {
            ++p_;
            if (p_ >= end_ || !is_digit(*p_)) fail("expected a digit after '.'");
            while (p_ < end_ && is_digit(*p_)) ++p_;
        }
        if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (p_ >= end_ || !is_digit(*p_)) fail("expected a digit in the exponent");
            while (p_ < end_ && is_digit(*p_)) ++p_;
        }
        return std::string_view(start, static_cast<std::size_t>(p_ - start));
    }

    /// Reads `[v, ...]`, calling element() with the reader at each value.
    template <class F>
    void array(F&& element) {
        expect('[', "expected an array");
        enter();
        if (!accept(']')) {
            do {
                element();
            } while (accept(','));
            expect(']', "expected ',' or ']' in an array");
        }
        leave();
    }
    /// Reads `{"name": v, ...}`, calling member(name) with the reader at each value (`name` may
    /// live in `scratch`: valid until the next string read into it).
    template <class F>
    void object(std::string& scratch, F&& member) {
        expect('{', "expected an object");
        enter();
        if (!accept('}')) {
            do {
                const std::string_view name = string(scratch);
                expect(':', "expected ':' after a field name");
                member(name);
            } while (accept(','));
            expect('}', "expected ',' or '}' in an object");
        }
        leave();
    }

    /// Skips one value of any kind (checking it).
    REDKIT_DECL std::string_view skip_value();

private:
    static constexpr int max_depth = 512;
    static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

    // The rest of a string from p_ (after its plain prefix), appended to `out`, through the
    // closing quote: escapes decoded, UTF-8 checked (no overlong forms, no surrogates).
    REDKIT_DECL void string_rest(std::string& out);

    REDKIT_DECL void escape(std::string& out);

    REDKIT_DECL std::uint32_t hex4();

    REDKIT_DECL static void put_utf8(std::string& out, std::uint32_t cp);

    // One multi-byte UTF-8 sequence, checked (the table of RFC 3629, section 4), copied.
    REDKIT_DECL void utf8(std::string& out);

    const char* begin_;
    const char* p_;
    const char* end_;
    int depth_ = 0;
};

}  // namespace detail
}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/detail/impl/json_reader.ipp>
#endif
