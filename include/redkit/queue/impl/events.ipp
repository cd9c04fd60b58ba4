// SPDX-License-Identifier: MIT
// redkit::queue_events: out-of-line definitions (events.hpp).
#pragma once

#include <redkit/client.hpp>
#include <redkit/dedicated_connection.hpp>
#include <redkit/detail/epoch.hpp>
#include <redkit/error.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/detail/model.hpp>
#include <redkit/queue/events.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

REDKIT_DECL queue_events::queue_events(client c, std::string_view queue_name, const queue_options& options)
    : redis_(std::move(c)), blocking_(redis_) {
    if (queue_name.empty()) throw std::invalid_argument("redkit: queue_events: queue name must not be empty");
    key_ = options.keys.key(detail::queue_model::root, hash_tag(queue_name), detail::queue_model::events);
    blocking_.set_anchor(key_);
}

REDKIT_DECL std::vector<queue_event> queue_events::read(std::string_view after, std::size_t count,
                                                        std::chrono::milliseconds block) {
    if (count == 0) throw std::invalid_argument("redkit: queue_events::read: count must be at least 1");
    if (block.count() < 0 || block > std::chrono::hours(24))
        throw std::invalid_argument("redkit: queue_events::read: block must be in [0, 24 h]");
    reply r;
    if (block.count() == 0) {
        r = redis_.command<reply>(idempotent, "XREAD", "COUNT", count, "STREAMS", key_, after);
    } else {
        r = blocking_.blocking(block, "XREAD", "COUNT", count, "BLOCK", block.count(), "STREAMS", key_, after);
    }
    // command<reply> hands error replies back as values: an id XREAD refuses, a key of
    // another type or a user without +xread must not read as "no events"
    if (r.is_error()) throw server_error(r.text(), "redkit: XREAD " + key_ + ": " + r.text());
    std::vector<queue_event> out;
    if (r.is_nil() || r.size() == 0) return out;
    const reply& entries = r[0][1];
    out.reserve(entries.size());
    for (const auto& e : entries.elements()) {
        queue_event ev;
        ev.id = e[0].text();
        const reply& f = e[1];
        for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
            const std::string& name = f[i].text();
            if (name == "ev") {
                ev.type = f[i + 1].text();
            } else if (name == "id") {
                ev.job_id = unescape_key_part(f[i + 1].text());
            } else if (name == "x") {
                ev.detail = f[i + 1].text();
            }
        }
        out.push_back(std::move(ev));
    }
    return out;
}

}  // namespace v0
}  // namespace redkit
