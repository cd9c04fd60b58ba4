// SPDX-License-Identifier: MIT
// Turns command arguments into the (pointer, length) arrays hiredis formats from. Binary safe:
// strings are sent as their bytes, NULs included. Numbers are rendered with std::to_chars into
// storage owned by the argv. Short commands (the common case) use no heap memory at all.
#pragma once

#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <forward_list>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace redkit {
inline namespace v0 {
namespace detail {

template <class T, class = void>
struct is_range : std::false_type {};
template <class T>
struct is_range<
    T, std::void_t<decltype(std::begin(std::declval<const T&>())), decltype(std::end(std::declval<const T&>()))>>
    : std::true_type {};

template <class T>
inline constexpr bool is_string_like_v = std::is_convertible_v<const T&, std::string_view>;

template <class T>
struct is_duration : std::false_type {};
template <class R, class P>
struct is_duration<std::chrono::duration<R, P>> : std::true_type {};

class argv {
public:
    static constexpr std::size_t inline_capacity = 12;

    argv() = default;
    argv(const argv&) = delete;
    argv& operator=(const argv&) = delete;

    std::size_t size() const noexcept { return size_; }
    const char* const* data() const noexcept { return heap_ptr_.empty() ? ptr_.data() : heap_ptr_.data(); }
    const std::size_t* lengths() const noexcept { return heap_len_.empty() ? len_.data() : heap_len_.data(); }

    std::string_view at(std::size_t i) const noexcept { return {data()[i], lengths()[i]}; }
    std::string_view command_name() const noexcept { return size_ > 0 ? at(0) : std::string_view{}; }
    /// The key an error message should name: argument 1, or for EVAL/EVALSHA/FCALL (whose
    /// argument 1 is the script, its SHA or the function) the first of its KEYS. Without KEYS,
    /// the SHA or the function name; never a script's body.
    std::string_view first_key() const noexcept {
        if (size_ < 2) return {};
        const std::string_view name = at(0);
        if (!starts_with_word(name, "EVAL") && !starts_with_word(name, "FCALL")) return at(1);
        if (size_ > 3 && at(2) != "0") return at(3);
        const bool body = starts_with_word(name, "EVAL") && !starts_with_word(name, "EVALSHA");
        return body ? std::string_view{} : at(1);
    }

    /// Replaces argument i (its bytes must outlive the argv).
    void set(std::size_t i, std::string_view s) noexcept {
        if (heap_ptr_.empty()) {
            ptr_[i] = s.data();
            len_[i] = s.size();
        } else {
            heap_ptr_[i] = s.data();
            heap_len_[i] = s.size();
        }
    }

    void push_view(std::string_view s) {
        if (size_ < inline_capacity) {
            ptr_[size_] = s.data();
            len_[size_] = s.size();
        } else {
            if (heap_ptr_.empty()) {
                heap_ptr_.assign(ptr_.begin(), ptr_.end());
                heap_len_.assign(len_.begin(), len_.end());
            }
            heap_ptr_.push_back(s.data());
            heap_len_.push_back(s.size());
        }
        ++size_;
    }

    template <class T>
    void push(const T& value) {
        using U = std::decay_t<T>;
        static_assert(!std::is_same_v<U, bool>, "redkit: pass bools as 0/1 or a string; the wire form is ambiguous");
        static_assert(!std::is_same_v<U, char>, "redkit: pass a single char as a string");
        if constexpr (is_string_like_v<U>) {
            push_view(std::string_view(value));
        } else if constexpr (std::is_integral_v<U> || std::is_floating_point_v<U>) {
            char* buf = number_slot();
            const auto r = std::to_chars(buf, buf + number_width, value);
            push_view(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
        } else if constexpr (is_duration<U>::value) {
            push(value.count());  // the count in the duration's own unit: pass the unit the command expects
        } else if constexpr (is_range<U>::value) {
            for (const auto& element : value) push(element);
        } else {
            static_assert(is_range<U>::value, "redkit: unsupported command argument type");
        }
    }

    template <class... Args>
    void push_all(const Args&... args) {
        (push(args), ...);
    }

private:
    static constexpr std::size_t number_width = 32;

    // Whether `name` starts with `word` (upper case), in any case.
    static bool starts_with_word(std::string_view name, std::string_view word) noexcept {
        if (name.size() < word.size()) return false;
        for (std::size_t i = 0; i < word.size(); ++i) {
            const char c = name[i];
            if ((c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c) != word[i]) return false;
        }
        return true;
    }

    char* number_slot() {
        if (numbers_used_ < numbers_.size()) return numbers_[numbers_used_++].data();
        extra_numbers_.emplace_front();
        return extra_numbers_.front().data();
    }

    std::size_t size_ = 0;
    std::array<const char*, inline_capacity> ptr_{};
    std::array<std::size_t, inline_capacity> len_{};
    std::vector<const char*> heap_ptr_;
    std::vector<std::size_t> heap_len_;
    std::array<std::array<char, number_width>, 6> numbers_;  // uninitialised on purpose: written before read
    std::size_t numbers_used_ = 0;
    std::forward_list<std::array<char, number_width>> extra_numbers_;
};

/// Appends one command in RESP to `out` (the format hiredis itself produces).
inline void append_resp(std::string& out, const argv& a) {
    char num[24];
    const auto put_len = [&](char lead, std::size_t n) {
        out += lead;
        const auto r = std::to_chars(num, num + sizeof num, n);
        out.append(num, static_cast<std::size_t>(r.ptr - num));
        out += "\r\n";
    };
    put_len('*', a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        const std::string_view s = a.at(i);
        put_len('$', s.size());
        out.append(s.data(), s.size());
        out += "\r\n";
    }
}

/// Refuses an empty command before anything is written: Redis ignores "*0\r\n" without a reply,
/// so the caller would wait for an answer that never comes and later replies would be misread.
inline void require_arguments(const argv& a) {
    if (a.size() == 0) throw std::invalid_argument("redkit: command: the argument list is empty (no command name)");
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
