// SPDX-License-Identifier: MIT
// Test fixture base: a client on the binary's shared redis-server, with the data set flushed
// before every test.
#pragma once

#include <redkit/client.hpp>

#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

namespace redkit_test {

/// INFO commandstats as {command: calls} (subcommands as "script|load").
inline std::map<std::string, long long> command_stats(const redkit::client& redis) {
    const auto info = redis.command<std::string>("INFO", "commandstats");
    std::map<std::string, long long> calls;
    std::istringstream lines(info);
    for (std::string line; std::getline(lines, line);) {
        const auto colon = line.find(':');
        const auto at = line.find("calls=");
        if (line.rfind("cmdstat_", 0) != 0 || colon == std::string::npos || at == std::string::npos) continue;
        calls[line.substr(8, colon - 8)] = std::stoll(line.substr(at + 6));
    }
    return calls;
}

/// How often the server ran `command`.
inline long long command_calls(const redkit::client& redis, const std::string& command) {
    const auto calls = command_stats(redis);
    const auto it = calls.find(command);
    return it == calls.end() ? 0 : it->second;
}

class fresh_database : public ::testing::Test {
protected:
    void SetUp() override {
        redis = redkit::client(shared_server().url());
        redis.command<void>("FLUSHALL");
    }
    redkit::client redis{redkit::client_options{}};
};

}  // namespace redkit_test
