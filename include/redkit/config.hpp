// SPDX-License-Identifier: MIT
// How redkit is built. Header-only by default: every definition is inline and compiled in each
// file that includes it. With REDKIT_SEPARATE_COMPILATION defined (CMake: link
// redkit::redkit_compiled), the headers declare the non-template code and one library, built
// from <redkit/src.hpp>, defines it: each file that includes redkit then compiles only what it
// instantiates. The README's "Header-only or compiled" says when to pick which.
#pragma once

#if defined(REDKIT_SEPARATE_COMPILATION)
#define REDKIT_HEADER_ONLY 0
/// How redkit's non-template functions are declared and defined.
#define REDKIT_DECL
#else
#define REDKIT_HEADER_ONLY 1
#define REDKIT_DECL inline
#endif
