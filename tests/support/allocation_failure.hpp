// SPDX-License-Identifier: MIT
// Test helper: real allocation failures on demand, for the binaries that link
// support/allocation_failure.cpp (which replaces the global operator new).
#pragma once

#include <cstddef>

namespace redkit_test {

/// From now on, allocations of at least `min_size` bytes count down from `n`, and the one that
/// finds the count at zero throws std::bad_alloc (once). Negative n disarms.
void fail_large_allocation_after(long n, std::size_t min_size);

}  // namespace redkit_test
