// SPDX-License-Identifier: MIT
// What the redkit-queue commands and its board share: a client on the queues' key space, the
// queue names found by SCAN, a queue opened only when it exists, and text helpers.
#pragma once

#include <redkit/queue/detail/model.hpp>
#include <redkit/redkit.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit_queue {

using json = nlohmann::json;
using redkit::job_state;
using redkit::detail::queue_key;

// A usage problem: no such queue, job or state. Exit status 2.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline std::string iso_time(long long ms) {
    if (ms <= 0) return "-";
    const std::time_t s = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return std::string(buf) + "." + std::to_string(1000 + ms % 1000).substr(1) + "Z";
}

inline std::string iso_time(std::chrono::system_clock::time_point t) {
    return iso_time(std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

inline job_state parse_state(const std::string& s) {
    static const std::pair<const char*, job_state> states[] = {{"waiting", job_state::waiting},
                                                               {"prioritized", job_state::prioritized},
                                                               {"delayed", job_state::delayed},
                                                               {"active", job_state::active},
                                                               {"completed", job_state::completed},
                                                               {"failed", job_state::failed},
                                                               {"waiting-children", job_state::waiting_children}};
    for (const auto& [name, state] : states) {
        if (s == name) return state;
    }
    throw usage_error("unknown state '" + s +
                      "' (waiting, prioritized, delayed, active, completed, failed, waiting-children)");
}

// Text of a JSON document for one line; raw text when it is not JSON.
inline std::string one_line(const std::string& text, std::size_t max = 80) {
    const auto j = json::parse(text, nullptr, false);
    std::string s = j.is_discarded() ? text : j.dump();
    if (s.size() > max) s = s.substr(0, max - 3) + "...";
    return s;
}

class tool {
public:
    tool(const std::string& url, const std::string& prefix)
        : redis_(url), keys_(prefix.empty() ? redkit::key_space() : redkit::key_space(prefix)) {}

    // Every queue with at least one key, by SCAN (never KEYS) of "<prefix:>queue:{*}:*".
    std::set<std::string> queue_names() {
        std::set<std::string> names;
        const std::string root = std::string(redkit::detail::queue_model::root) + ":{";
        const std::string head = keys_.prefix().empty() ? root : keys_.prefix() + ":" + root;
        for (const auto& key : redis_.scan(redkit::escape_glob(head) + "*}:*", 1000)) {
            const auto close = key.find('}', head.size());
            if (key.compare(0, head.size(), head) != 0 || close == std::string::npos) continue;
            try {
                names.insert(redkit::unescape_key_part(key.substr(head.size(), close - head.size())));
            } catch (const std::invalid_argument&) {
                // not one of ours
            }
        }
        return names;
    }

    // The queue, checked to exist (any of its fixed keys): a typo must not create a queue.
    redkit::queue<json> open(const std::string& name) {
        if (name.empty()) throw usage_error("queue name must not be empty");
        redkit::queue<json> q(redis_, name, options());
        // one EXISTS for all of them (one hash tag, so one slot on a cluster too)
        // (not the marker or the stalled-check timer: they come and go with workers)
        namespace model = redkit::detail::queue_model;
        std::vector<std::string> exists{"EXISTS"};
        for (const auto k : {queue_key::wait, queue_key::prioritized, queue_key::delayed, queue_key::active,
                             queue_key::completed, queue_key::failed, queue_key::meta, queue_key::id}) {
            exists.push_back(keys_.key(model::root, redkit::hash_tag(name), model::suffix(k)));
        }
        for (const std::string_view suffix : {model::schedulers, model::events, model::waiting_children}) {
            exists.push_back(keys_.key(model::root, redkit::hash_tag(name), suffix));
        }
        if (redis_.command<long long>(exists) == 0) {
            throw usage_error("no queue '" + name + "' (no key " + keys_.key(model::root, redkit::hash_tag(name), "*") +
                              "); redkit-queue queues lists them");
        }
        return q;
    }

    redkit::queue_options options() const {
        redkit::queue_options o;
        o.keys = keys_;
        return o;
    }

    redkit::client& redis() { return redis_; }

    // The server's clock (TIME) in ms since the epoch: the clock a job's times come from.
    long long server_now_ms() {
        const auto t = redis_.command<std::vector<long long>>("TIME");
        return t.at(0) * 1000 + t.at(1) / 1000;
    }

private:
    redkit::client redis_;
    redkit::key_space keys_;
};

}  // namespace redkit_queue
