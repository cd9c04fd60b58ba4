// SPDX-License-Identifier: MIT
// redkit::queue_events: reads a queue's events (added, active, progress, completed, retried,
// failed, stalled, removed, deduplicated...) from the capped stream its scripts write while events are on
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
#include <redkit/config.hpp>
#include <redkit/dedicated_connection.hpp>
#include <redkit/detail/epoch.hpp>
#include <redkit/queue/types.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace redkit {
inline namespace v0 {

/// One event of a queue.
struct queue_event {
    std::string id;  ///< the stream id ("<ms>-<n>"): resume after it
    /// added, active, progress, completed, retried, failed, stalled, removed, waiting, or, for an
    /// add that added nothing because its deduplication key was held, deduplicated or debounced
    std::string type;
    std::string job_id;  ///< the job's id (deduplicated, debounced: the key's holder)
    /// added, deduplicated, debounced: the name given to add; progress: the progress JSON;
    /// completed: the return value JSON; retried and failed: the reason; otherwise empty.
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
    REDKIT_DECL queue_events(client c, std::string_view queue_name, const queue_options& options = {});

    /// Up to `count` events after `after` ("0": from the oldest kept; "$": only events newer than
    /// the call, which makes sense with a block; or an event id). With `block` > 0 waits up to
    /// that long for one (an empty result then means none came). Throws std::invalid_argument
    /// for count 0 or a block above 24 h; server_error ("redkit: XREAD <key>: <server text>")
    /// for an error reply (an invalid id: ERR; the key is not a stream: WRONGTYPE; no +xread:
    /// NOPERM); error on a transport failure (a blocking reader reconnects on its next call).
    REDKIT_DECL std::vector<queue_event> read(std::string_view after = "0", std::size_t count = 100,
                                              std::chrono::milliseconds block = std::chrono::milliseconds(0));

    /// The stream's key.
    const std::string& key() const noexcept { return key_; }

private:
    client redis_;
    std::string key_;
    dedicated_connection blocking_;  // for blocking reads (opens on the first)
};

}  // namespace v0
}  // namespace redkit

#if REDKIT_HEADER_ONLY
#include <redkit/queue/impl/events.ipp>
#endif
