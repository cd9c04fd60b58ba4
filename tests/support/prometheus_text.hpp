// SPDX-License-Identifier: MIT
// A strict reader of the Prometheus text format (version 0.0.4), for the tests of what redkit
// renders in it (redkit::metrics, the queue board's /metrics): every line a HELP, a TYPE or a
// sample of a declared metric, label values escaped, numbers whole; a line that is not fails the
// test.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <regex>
#include <sstream>
#include <string>

namespace redkit_test {

// The text format (version 0.0.4), strictly: HELP and TYPE lines, then samples of declared
// metrics, `name{label="value",...} number`; returns each sample's value by "name{labels}".
inline std::map<std::string, double> parse_prometheus(const std::string& text) {
    std::map<std::string, double> samples;
    std::map<std::string, std::string> types;
    const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) [^\n]*)");
    const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
    const std::regex sample(
        R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})? ([^ ]+))");
    std::istringstream in(text);
    std::string line;
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, type)) {
            EXPECT_EQ(types.count(m[1]), 0U) << "TYPE twice: " << line;
            types[m[1]] = m[2];
            continue;
        }
        if (std::regex_match(line, m, help)) continue;
        if (!std::regex_match(line, m, sample)) {
            ADD_FAILURE() << "not a sample line: '" << line << "'";
            continue;
        }
        std::string family = m[1];
        for (const char* suffix : {"_bucket", "_sum", "_count"}) {
            const std::string s(suffix);
            if (family.size() <= s.size() || family.compare(family.size() - s.size(), s.size(), s) != 0) continue;
            const std::string base = family.substr(0, family.size() - s.size());
            const auto t = types.find(base);
            // a histogram's _bucket, _sum and _count; a summary's _sum and _count
            if (t != types.end() && (t->second == "histogram" || (t->second == "summary" && s != "_bucket"))) {
                family = base;
            }
        }
        EXPECT_EQ(types.count(family), 1U) << "a sample before its TYPE: " << line;
        std::size_t used = 0;
        const std::string value = m[7];
        double v = 0;
        if (value == "+Inf") {
            v = HUGE_VAL;
        } else if (value == "NaN") {  // a summary's quantile over no observation
            v = std::nan("");
        } else {
            v = std::stod(value, &used);
            EXPECT_EQ(used, value.size()) << line;
        }
        const std::string key = m[1].str() + m[2].str();
        EXPECT_EQ(samples.count(key), 0U) << "a sample twice: " << line;
        samples[key] = v;
    }
    return samples;
}

}  // namespace redkit_test
