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
#include <vector>

namespace redkit_test {

/// INFO commandstats as {command: calls} (subcommands as "script|load"); on a cluster, summed
/// over its nodes.
inline std::map<std::string, long long> command_stats(const redkit::client& redis) {
    std::vector<std::string> infos;
    if (redis.is_cluster() && shared_server().cluster() != nullptr) {
        // the primaries' (a replica counts the writes it applies too)
        const redis_cluster& cluster = *shared_server().cluster();
        for (int i = 0; i < redis_cluster::size; ++i) {
            if (cluster.run(i, {"ROLE"}).rfind("master", 0) == 0)
                infos.push_back(cluster.run(i, {"INFO", "commandstats"}));
        }
    } else {
        infos.push_back(redis.command<std::string>("INFO", "commandstats"));
    }
    std::map<std::string, long long> calls;
    for (const auto& info : infos) {
        std::istringstream lines(info);
        for (std::string line; std::getline(lines, line);) {
            const auto colon = line.find(':');
            const auto at = line.find("calls=");
            if (line.rfind("cmdstat_", 0) != 0 || colon == std::string::npos || at == std::string::npos) continue;
            calls[line.substr(8, colon - 8)] += std::stoll(line.substr(at + 6));
        }
    }
    if (infos.size() > 1) {
        calls.erase("role");      // the harness's own, above
        calls.erase("replconf");  // each replica's REPLCONF ACK, once a second: not a client's command
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
