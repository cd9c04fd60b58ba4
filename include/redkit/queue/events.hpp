// SPDX-License-Identifier: MIT
// redkit::queue_events: reads a queue's events (added, active, progress, completed, retried,
// failed, stalled, removed) from the capped stream its scripts write while events are on
// (queue::set_events), from any process, resumable from an event id.
//
// read(after, count, block)  XREAD COUNT n [BLOCK ms] STREAMS <queue>:events <after>
//                            (blocking reads on a connection of the reader's own)
//
// The stream is capped approximately (XADD MAXLEN ~): a reader that falls further behind than
// the cap loses the oldest events, and an id it resumes from may be gone (reading goes on from
// the oldest kept). One reader object per thread.
#pragma once

#include <redkit/client.hpp>
#include <redkit/connection.hpp>
#include <redkit/detail/epoch.hpp>
#include <redkit/error.hpp>
#include <redkit/key.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/reply.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redkit {
inline namespace v0 {

/// One event of a queue.
struct queue_event {
    std::string id;      ///< the stream id ("<ms>-<n>"): resume after it
    std::string type;    ///< added, active, progress, completed, retried, failed, stalled, removed, waiting
    std::string job_id;  ///< the job's id
    /// added: the job's name; progress: the progress JSON; completed: the return value JSON;
    /// retried and failed: the reason; otherwise empty.
    std::string detail;

    /// When it happened (server clock, from the id).
    std::chrono::system_clock::time_point time() const {
        return detail::from_epoch_ms(std::stoll(id.substr(0, id.find('-'))));
    }
};

/// Reads a queue's events. Not thread-safe: one reader per thread.
///
/// @code
/// redkit::queue_events events(redis, "welcome-mail");
/// std::string after = "$";                           // only what happens from now on
/// for (;;) {
///     for (const auto& e : events.read(after, 100, 5s)) {
///         std::cout << e.type << " " << e.job_id << "\n";
///         after = e.id;
///     }
/// }
/// @endcode
class queue_events {
public:
    /// Throws std::invalid_argument when the name is empty.
    queue_events(client c, std::string_view queue_name, const queue_options& options = {}) : redis_(std::move(c)) {
        if (queue_name.empty()) throw std::invalid_argument("redkit: queue_events: queue name must not be empty");
        key_ = options.keys.key("queue", hash_tag(queue_name), "events");
    }

    /// Up to `count` events after `after` ("0": from the oldest kept; "$": only events newer than
    /// the call, which makes sense with a block; or an event id). With `block` > 0 waits up to
    /// that long for one (an empty result then means none came). Throws std::invalid_argument
    /// for count 0 or a block above 24 h; server_error ("redkit: XREAD <key>: <server text>")
    /// for an error reply (an invalid id: ERR; the key is not a stream: WRONGTYPE; no +xread:
    /// NOPERM); error on a transport failure (a blocking reader reconnects on its next call).
    std::vector<queue_event> read(std::string_view after = "0", std::size_t count = 100,
                                  std::chrono::milliseconds block = std::chrono::milliseconds(0)) {
        if (count == 0) throw std::invalid_argument("redkit: queue_events::read: count must be at least 1");
        if (block.count() < 0 || block > std::chrono::hours(24))
            throw std::invalid_argument("redkit: queue_events::read: block must be in [0, 24 h]");
        reply r;
        if (block.count() == 0) {
            r = redis_.command<reply>(idempotent, "XREAD", "COUNT", count, "STREAMS", key_, after);
        } else {
            if (!blocking_ || blocking_->broken()) {
                blocking_.reset();
                blocking_.emplace(redis_.dedicated(key_));
            }
            blocking_->set_timeout(block + std::max(redis_.options().command_timeout, std::chrono::milliseconds(1000)));
            try {
                r = blocking_->command<reply>("XREAD", "COUNT", count, "BLOCK", block.count(), "STREAMS", key_, after);
            } catch (...) {
                blocking_.reset();
                throw;
            }
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

    /// The stream's key.
    const std::string& key() const noexcept { return key_; }

private:
    client redis_;
    std::string key_;
    std::optional<connection> blocking_;
};

}  // namespace v0
}  // namespace redkit
