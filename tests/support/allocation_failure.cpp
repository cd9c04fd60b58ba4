// SPDX-License-Identifier: MIT
// Replaces the global operator new of the test binary it is linked into (see the header). In a
// translation unit of its own, so that no call site sees malloc and free paired with new/delete.
#include "support/allocation_failure.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> countdown{-1};
std::atomic<std::size_t> threshold{0};
}  // namespace

namespace redkit_test {
void fail_large_allocation_after(long n, std::size_t min_size) {
    threshold.store(min_size);
    countdown.store(n);
}
}  // namespace redkit_test

void* operator new(std::size_t n) {
    if (countdown.load() >= 0 && n >= threshold.load() && countdown.fetch_sub(1) == 0) throw std::bad_alloc();
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
