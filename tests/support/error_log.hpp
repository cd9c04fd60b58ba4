// SPDX-License-Identifier: MIT
// Test helper: collects what an on_error callback receives, from any thread.
#pragma once

#include <redkit/error.hpp>

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace redkit_test {

class error_log {
public:
    /// A callback to put in client_options::on_error (or a pattern's on_error).
    std::function<void(const redkit::error&)> callback() {
        return [this](const redkit::error& e) {
            std::lock_guard<std::mutex> lock(mutex_);
            entries_.emplace_back(e.kind(), e.what());
        };
    }

    std::size_t size() {
        std::lock_guard<std::mutex> lock(mutex_);
        return entries_.size();
    }

    /// Whether some report's text contains `text`.
    bool contains(const std::string& text) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto& e : entries_) {
            if (e.second.find(text) != std::string::npos) return true;
        }
        return false;
    }

    /// Whether some report has this condition.
    bool has_kind(redkit::errc kind) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto& e : entries_) {
            if (e.first == kind) return true;
        }
        return false;
    }

    std::vector<std::pair<redkit::errc, std::string>> entries() {
        std::lock_guard<std::mutex> lock(mutex_);
        return entries_;
    }

private:
    std::mutex mutex_;
    std::vector<std::pair<redkit::errc, std::string>> entries_;
};

}  // namespace redkit_test
