// SPDX-License-Identifier: MIT
// redkit::observer: what a client does, as it does it, for logs, metrics and traces.
//
// Set client_options::observer to an object of a class derived from redkit::observer and
// override the members you care about; the others do nothing. The client then calls them:
//   - on_command_start / on_command: every command a client sends on its shared and pooled
//     connections (command(), eval(), submit(), the patterns' commands there, a pipeline or
//     transaction as one operation), once per call however many retries and redirections it took,
//     with its duration and outcome. Commands on dedicated connections (a subscriber's, a queue
//     worker's takes and outcomes, a stream consumer's reads) are not: their patterns report
//     their own steps (on_job, on_consumer);
//   - on_connect / on_close: every connection opened (or not) and closed, with why;
//   - on_pool_wait: a caller that waited for a pooled connection, and whether it got one;
//   - on_batch: each write of the shared (multiplexed) connection, with its size;
//   - on_cluster_map: each reading of a cluster's slot map;
//   - on_sentinel_switch: each failover a Sentinel deployment made (the primary it moved to);
//   - on_cache: each call of a cache (hit, near hit, miss, waited, stale, failed);
//   - on_job: each job a queue adds, and each attempt a worker starts and ends;
//   - on_rate_limit: each decision of a rate limiter;
//   - on_consumer: a subscriber's reconnects and failed handlers, a stream consumer's deliveries
//     (with their lag), failed handlers and dead letters.
// Calls come from the thread that does the work (a caller, the multiplexer's I/O thread), often
// from many threads at once: an observer must be thread-safe, and quick (it runs inside the
// request). What an observer throws is swallowed. The event's string_views live for the call only.
//
// Cost: with no observer set (the default), each command pays one pointer test and reads no clock.
// With one, a command reads the clock twice and makes two virtual calls (see bench/README.md).
//
// Privacy: keys and arguments never reach the observer unless asked for
// (client_options::observe_keys, observe_query_text), and argument values are masked even then.
// <redkit/metrics.hpp> has a ready observer that counts, and renders Prometheus text.
#pragma once

#include <redkit/error.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace redkit {
inline namespace v0 {

/// The connection a command took.
enum class command_path : unsigned char {
    shared,  ///< the multiplexed connection all threads share (client_options::multiplex)
    pooled,  ///< a pooled connection of its own (blocking commands, pipelines, transactions, spills)
};

/// How a command ended.
enum class command_outcome : unsigned char {
    ok,           ///< a reply that is not an error
    error_reply,  ///< the server answered with an error (command_event::error_prefix)
    failed,       ///< no reply: the transport failed, timed out, or no connection (command_event::code)
};

/// One command, or one pipeline or transaction, as the client sent it (on_command_start, on_command).
struct command_event {
    /// The command's name as the caller wrote it ("GET", "EVALSHA"); "PIPELINE" or "MULTI" for a
    /// pipeline's or a transaction's whole batch.
    std::string_view operation;
    /// The first key, with client_options::observe_keys; else empty.
    std::string_view key;
    /// With client_options::observe_query_text: the command with every argument replaced by "?"
    /// ("SET ? ?"), keys shown as they are with observe_keys too ("SET user:42 ?"); for a batch,
    /// its commands' names. Else empty.
    std::string_view query_text;
    /// The node that answered last, "host:port" or a unix socket's path (after a MOVED, the node it
    /// named). Empty in on_command_start, and when no connection was reached.
    std::string_view server;
    int db = 0;                                     ///< the database number (client_options::db)
    command_path path = command_path::shared;       ///< the connection it took (of its last attempt)
    std::size_t batch_size = 1;                     ///< commands in a pipeline or transaction; else 1
    std::chrono::steady_clock::time_point start;    ///< when the call began
    std::chrono::nanoseconds duration{0};           ///< until its outcome (0 in on_command_start)
    command_outcome outcome = command_outcome::ok;  ///< how it ended (on_command)
    /// An error reply's first word ("WRONGTYPE", "ERR", "NOSCRIPT"); else empty. For a batch:
    /// EXECABORT, or the first error among its replies.
    std::string_view error_prefix;
    errc code{};      ///< outcome failed: why (timeout, connection_closed, connect_failed, ...)
    int retries = 0;  ///< attempts after the first (the retry rule, see client_options::max_retries)
    int moved = 0;    ///< MOVED redirections followed (Redis Cluster)
    int asked = 0;    ///< ASK redirections followed (Redis Cluster)
    /// What on_command_start returned for this call (on_command only): a span, a timer.
    std::shared_ptr<void> context;
};

/// Why a connection closed (close_event).
enum class close_reason : unsigned char {
    closed,      ///< the client closed it (its pool, client or subscriber went away)
    timeout,     ///< a reply did not come in time: its stream is in doubt
    eof,         ///< the server closed it (its timeout, CLIENT KILL, a restart)
    error,       ///< a read or write failed otherwise, or the server sent bytes that are not RESP
    idle_check,  ///< found closed by the server while it sat idle in the pool
    moved,       ///< a MOVED reply: its slot lives elsewhere now (dedicated connections)
    failover,    ///< its primary was replaced (Sentinel), or turned read-only under it
    setup,       ///< its setup (AUTH, SELECT, ...) was refused or timed out
};

/// A connection opened, or an attempt that failed (on_connect).
struct connect_event {
    std::string_view server;               ///< "host:port" or a unix socket's path
    bool tls = false;                      ///< TLS (rediss://)
    std::chrono::nanoseconds duration{0};  ///< connect, TLS handshake and setup round trip
    bool ok = true;                        ///< false: it failed (code, reason)
    errc code{};                           ///< when it failed: connect_failed, timeout
    std::string_view reason;               ///< when it failed: why, as the error message says
};

/// A connection closed (on_close).
struct close_event {
    std::string_view server;                     ///< "host:port" or a unix socket's path
    close_reason reason = close_reason::closed;  ///< why it closed
    std::chrono::nanoseconds lifetime{0};        ///< since it opened
};

/// A caller that had to wait for a pooled connection (on_pool_wait; a caller that found one
/// free is not reported).
struct pool_wait_event {
    std::string_view server;             ///< the pool's server
    std::chrono::nanoseconds waited{0};  ///< how long it waited
    bool exhausted = false;              ///< true: none came free within pool_wait_timeout (errc::pool_exhausted)
    std::size_t pool_size = 0;           ///< client_options::pool_size
};

/// One write of the shared connection (on_batch): the commands of many callers that went out
/// together.
struct batch_event {
    std::string_view server;    ///< the shared connection's server
    std::size_t commands = 0;   ///< commands in this write
    std::size_t in_flight = 0;  ///< commands queued or awaiting replies on the connection at the write
};

/// One reading of a Redis Cluster's slot map (on_cluster_map).
struct cluster_map_event {
    bool ok = true;                        ///< false: no node answered (reason)
    std::size_t primaries = 0;             ///< primaries in the new map
    std::size_t slots_moved = 0;           ///< slots whose primary changed since the last map (a failover, a reshard)
    std::chrono::nanoseconds duration{0};  ///< the whole reading (every node asked)
    std::string_view reason;               ///< when it failed: what each node said
};

/// A Sentinel deployment's primary changed (on_sentinel_switch).
struct sentinel_switch_event {
    std::string_view master;  ///< the master's name (sentinel_options::master)
    std::string_view from;    ///< the primary before, "host:port"
    std::string_view to;      ///< the primary now, as the sentinels name it
};

/// How a cache call was answered (cache_event).
enum class cache_outcome : unsigned char {
    hit,       ///< a fresh value from Redis
    near_hit,  ///< a value from this process's near cache (no round trip)
    miss,      ///< get(): nothing usable; get_or_set: this call ran the loader
    waited,    ///< get_or_set: another caller's load was waited for (in this process, or another's lock)
    stale,     ///< get_or_set: a stale value was served while another caller loads
    failed,    ///< the call threw (the loader's exception, or Redis's failure under the fail policy)
};

/// One call of a cache (on_cache): get, get_or_set or async_get_or_set.
struct cache_event {
    std::string_view cache;  ///< the cache's key prefix (cache_options::keys); empty without one
    std::string_view key;    ///< with client_options::observe_keys: the key, prefix included; else empty
    cache_outcome outcome = cache_outcome::hit;  ///< how it was answered
    bool early_refresh = false;                  ///< get_or_set: XFetch reloaded a value before its expiry
    std::chrono::nanoseconds duration{0};        ///< the whole call (async: until its value or failure)
    /// With cache_options::lock: how long it waited for another process's load; else 0.
    std::chrono::nanoseconds lock_waited{0};
};

/// A job's step (job_event).
enum class job_stage : unsigned char {
    added,      ///< queue::add, add_bulk or async_add created it
    started,    ///< a worker's handler starts an attempt
    completed,  ///< the attempt succeeded (the server recorded it)
    retrying,   ///< the attempt failed; attempts remain (it runs again after its backoff)
    failed,   ///< the attempt failed, and the job with it (no attempt left, or unrecoverable; or it stalled too often)
    stalled,  ///< its worker stopped renewing its lease (it died, or hung): the stalled-job check put it back in line
};

/// One step of a job of a queue (on_job). A stalled job's steps (stalled, or failed for stalling
/// too often) come from the process that ran the stalled-job check, with its id only.
struct job_event {
    std::string_view queue;              ///< the queue's name
    std::string_view id;                 ///< the job's id
    std::string_view name;               ///< the job's name (queue::add's first argument)
    job_stage stage = job_stage::added;  ///< which step
    int attempt = 0;  ///< the attempt (1 for the first) for started, completed, retrying, failed; else 0
    /// started: how long it waited, from when it was due (added, plus its delay) to its start, by
    /// the server's clock. Else 0.
    std::chrono::milliseconds waited{0};
    /// completed, retrying, failed: how long the handler ran. Else 0.
    std::chrono::nanoseconds duration{0};
    std::string_view reason;  ///< retrying, failed: why (the handler's exception's what())
    /// started, completed, retrying, failed: what observer::job_trace_context gave when the job was
    /// added (queue::add, add_bulk, async_add), stored with it; else empty.
    std::string_view trace_context;
    /// completed, retrying, failed: what on_job_start returned for this attempt (a span). Else null.
    std::shared_ptr<void> context;
};

/// One decision of a rate limiter (on_rate_limit).
struct rate_limit_event {
    std::string_view limiter;     ///< the limiter's name
    std::string_view identifier;  ///< with client_options::observe_keys: who was checked (an IP, a user id); else empty
    bool allowed = false;         ///< the decision
    bool peek = false;            ///< a peek (nothing spent)
    bool fallback = false;        ///< Redis did not answer: the failure policy decided
    long long remaining = 0;      ///< quota left after it
    std::chrono::milliseconds retry_after{0};  ///< when denied: until a retry would be allowed
};

/// What a subscriber or a stream consumer met (consumer_event).
enum class consumer_step : unsigned char {
    reconnected,     ///< a subscriber connected again after its connection failed (it subscribes again)
    handler_failed,  ///< a handler threw (a stream entry stays pending, to be claimed again)
    delivered,       ///< a stream entry was read for its handler (lag: how old it was); one that does not decode is
                     ///< dead-lettered next
    dead_letter,     ///< a stream entry that did not decode went to the dead-letter stream
};

/// One step of a subscriber (pubsub.hpp) or a stream consumer (stream.hpp) (on_consumer).
struct consumer_event {
    std::string_view source;  ///< the channel, or the stream's key (empty for a subscriber's reconnect)
    std::string_view group;   ///< a stream consumer's group; empty for a subscriber
    consumer_step step = consumer_step::delivered;  ///< what happened
    std::string_view id;                            ///< a stream entry's id
    /// delivered: the time since the entry was added, from its id (the server's clock when it was
    /// added) to this host's clock now: clocks apart skew it.
    std::chrono::milliseconds lag{0};
    std::string_view reason;  ///< handler_failed, dead_letter: why
};

/// What a client reports as it works (see the file comment). Derive, override what you need.
class observer {
public:
    virtual ~observer() = default;

    /// A command is about to be sent, on the caller's thread (where its trace context is). What
    /// this returns comes back in on_command's `context`. Default: nothing.
    virtual std::shared_ptr<void> on_command_start(const command_event& e) {
        (void)e;
        return nullptr;
    }
    /// A command ended: reply, error reply or failure, after every retry and redirection. Runs on
    /// the caller's thread for a blocking call; for a submitted command, on the thread that read
    /// its reply, before its future is ready.
    virtual void on_command(const command_event& e) { (void)e; }
    /// A connection was opened, or could not be.
    virtual void on_connect(const connect_event& e) { (void)e; }
    /// A connection closed.
    virtual void on_close(const close_event& e) { (void)e; }
    /// A caller waited for a pooled connection.
    virtual void on_pool_wait(const pool_wait_event& e) { (void)e; }
    /// The shared connection wrote a batch.
    virtual void on_batch(const batch_event& e) { (void)e; }
    /// A cluster's slot map was read.
    virtual void on_cluster_map(const cluster_map_event& e) { (void)e; }
    /// The sentinels named another primary than before (a failover): once per switch, on the
    /// thread that opens the first connection to the new primary (connections to the old one close
    /// with close_reason::failover).
    virtual void on_sentinel_switch(const sentinel_switch_event& e) { (void)e; }
    /// A job of a queue made with this client was added, started, completed or failed (from the
    /// process that did it: add's caller, or the worker's thread).
    virtual void on_job(const job_event& e) { (void)e; }
    /// A worker starts an attempt (stage started), on the thread that runs its handler, just before
    /// it. What this returns comes back in the attempt's last event (completed, retrying, failed) as
    /// `context`. Default: calls on_job(e), returns nothing.
    virtual std::shared_ptr<void> on_job_start(const job_event& e) {
        on_job(e);
        return nullptr;
    }
    /// The handler of the attempt on_job_start saw is about to run (e.context: what it returned).
    /// What this returns is held while the handler runs, and released on its thread as it returns:
    /// a scope (the OpenTelemetry adapter makes the attempt's span current in it, so that the
    /// handler's commands are its children). Default: nothing.
    virtual std::shared_ptr<void> on_job_scope(const job_event& e) {
        (void)e;
        return nullptr;
    }
    /// queue::add, add_bulk and async_add ask this, on the caller's thread, for the caller's trace
    /// context (for example a W3C traceparent) and store it with the jobs they create; a worker's
    /// events carry it back (job_event::trace_context), in whatever process runs the job. At most
    /// 512 bytes are stored (a longer one is dropped). Default: empty (nothing is stored).
    virtual std::string job_trace_context() { return {}; }
    /// A call of a cache made with this client was answered (once per call), on the caller's thread
    /// (async_get_or_set: the thread that completed it).
    virtual void on_cache(const cache_event& e) { (void)e; }
    /// A rate limiter made with this client decided (hit, peek, async_hit), on the caller's thread
    /// (async_hit: the thread that read the reply).
    virtual void on_rate_limit(const rate_limit_event& e) { (void)e; }
    /// A subscriber or a stream consumer made with this client reconnected, delivered an entry,
    /// met a handler that threw, or dead-lettered an entry, on its own thread.
    virtual void on_consumer(const consumer_event& e) { (void)e; }

protected:
    observer() = default;                            ///< (a base class only)
    observer(const observer&) = default;             ///< (a base class only)
    observer& operator=(const observer&) = default;  ///< (a base class only)
};

namespace detail {

/// Calls an observer member, swallowing what it throws (an observer must not break a request).
template <class Member, class Event>
void observe(observer* o, Member member, const Event& e) noexcept {
    if (o == nullptr) return;
    try {
        (o->*member)(e);
    } catch (...) {
    }
}

/// Calls an observer member that returns a context, swallowing what it throws (then: no context).
template <class Member, class Event>
std::shared_ptr<void> observe_for(observer* o, Member member, const Event& e) noexcept {
    if (o == nullptr) return nullptr;
    try {
        return (o->*member)(e);
    } catch (...) {
        return nullptr;
    }
}

/// Tells an observer (if any) of a consumer's step (observer::on_consumer).
inline void observe_consumer(observer* to, consumer_step step, std::string_view source, std::string_view group = {},
                             std::string_view id = {}, std::chrono::milliseconds lag = {},
                             std::string_view reason = {}) noexcept {
    if (to == nullptr) return;
    consumer_event e;
    e.source = source;
    e.group = group;
    e.step = step;
    e.id = id;
    e.lag = lag;
    e.reason = reason;
    observe(to, &observer::on_consumer, e);
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
