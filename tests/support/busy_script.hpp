// SPDX-License-Identifier: MIT
// Test helper: a Lua script that keeps the server busy, for replies that come late.
#pragma once

#include <string>

namespace redkit_test {

/// A script that runs for `ms` (the server reads nothing else meanwhile) and returns 7. Its clock:
/// os.clock() where the server has it (Redis 8, Valkey 8: there TIME inside a script is the time
/// the script started, so a loop on TIME never ends), else TIME (Redis 7.0, which has no os).
inline std::string busy_script(int ms) {
    return "local os_ = rawget(_G, 'os') "
           "local function now() if os_ then return os_.clock() * 1000000 end "
           "local t = redis.call('TIME') return t[1] * 1000000 + t[2] end "
           "local e = now() + " +
           std::to_string(ms * 1000) + " repeat until now() >= e return 7";
}

}  // namespace redkit_test
