// SPDX-License-Identifier: MIT
// An observer that keeps every step of the subscribers and stream consumers of its client
// (observer::on_consumer), for the tests that check them.
#pragma once

#include <redkit/observer.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

namespace redkit_test {

class consumer_steps : public redkit::observer {
public:
    struct step {
        redkit::consumer_step kind;
        std::string source, group, id, reason;
        std::chrono::milliseconds lag;
    };

    void on_consumer(const redkit::consumer_event& e) override {
        std::lock_guard<std::mutex> lock(mutex_);
        steps_.push_back(
            {e.step, std::string(e.source), std::string(e.group), std::string(e.id), std::string(e.reason), e.lag});
    }

    /// The steps of one kind so far, oldest first.
    std::vector<step> of(redkit::consumer_step kind) {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<step> out;
        for (const auto& s : steps_) {
            if (s.kind == kind) out.push_back(s);
        }
        return out;
    }

private:
    std::mutex mutex_;
    std::vector<step> steps_;
};

}  // namespace redkit_test
