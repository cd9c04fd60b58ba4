// SPDX-License-Identifier: MIT
// redkit::queue and redkit::worker: durable job queues in the spirit of BullMQ, at least once,
// with nothing lost.
//
// A queue<T> adds jobs (T travels as JSON through codec<T>); a worker<T> runs them on N threads.
// Jobs may be delayed, prioritised, retried with fixed or exponential backoff (with jitter),
// deduplicated by a job id of the caller's choosing, and kept or removed once finished
// (retention). A worker takes a job with a lease (a token and a deadline, on the server clock),
// renewed while the handler runs. Recording the outcome checks the lease, so a worker that lost
// it (it hung and the job was recovered) cannot overwrite a newer outcome. Leases that expire (a
// crashed or hung worker, or one cut off from Redis for longer than the lease) are found by a
// periodic stalled-job check and the jobs go back in line, or fail once they stalled more than
// worker_options::max_stalled_count times. So a job runs at least once, and more than once only
// after its lease expired.
//
// Redis commands and round trips:
//   - Every state change is one Lua script (EVALSHA; EVAL once on NOSCRIPT), so it is atomic:
//     add/add_bulk (one round trip per 1000 jobs), a worker's move (record any number of
//     outcomes AND lease the next jobs: due delayed jobs join the line first, then waiting jobs
//     are taken before prioritized ones, those by priority), renew, stalled check, progress,
//     pause/resume, retry, remove, drain, obliterate, counts, get_job.
//   - A worker recording an outcome and taking the next job is one round trip. With concurrency
//     N, the outcomes of all threads that finished while a round trip was in flight go together
//     in the next one, which asks for as many jobs as there are idle threads (no prefetch: a
//     leased job is always being handled or about to be).
//   - An idle worker blocks on the server: BZPOPMIN on the queue's marker key with a timeout
//     (worker_options::block_timeout), on a dedicated connection whose wait is a poll() that
//     close() cuts short. Adding a job (or a retry, a recovered stall, resume) sets the marker;
//     a worker woken by it that takes all it asked for sets it again, so idle workers wake one
//     after the other. A worker that found nothing ready learns in the same round trip when the
//     earliest delayed job is due, and fetches then. While its round trip is in flight, a busy
//     worker polls the socket briefly before sleeping (worker_options::reply_spin).
//
// Beyond jobs: schedulers (upsert_scheduler: a cron pattern in a time zone, or every N ms; one
// job per tick, made by the worker that takes the previous tick's job), a queue-wide rate limit
// (set_rate_limit; rate_limited_error from a handler), inspection (jobs by state, job logs,
// per-minute metrics), events (set_events, read by queue_events from any process) and flows
// (add_flow: a parent runs after its children, which may be in other queues, and reads their
// return values).
//
// Key layout (all keys of a queue share the hash tag {name}, so they live in one Redis Cluster
// slot; keys other than the fixed ten are built inside the scripts from a prefix carrying the
// same tag):
//   <prefix:>queue:{name}:wait | prioritized | delayed | active | completed | failed | meta |
//   marker | id | stalled-check, <prefix:>queue:{name}:job:<id> (a hash per job, and :logs),
//   limiter, schedulers, scheduler:<id>, events, waiting-children. A lease
//   lives only in the active zset (member "<id>:<lease>", score its deadline): taking a job
//   writes nothing to its hash.
// Custom job ids are escaped like key parts (escape_key_part) and must not be integers (those are
// the generated ids). queue/detail/model.hpp documents every key and field.
//
// Thread safety: queue<T> is a cheap handle; every member may be called from any thread. A
// worker's public members may be called from any thread (close() from its own threads only asks).
//
// The queue's wing: queue/types.hpp (options, states, outcomes), queue/job.hpp (job<T>),
// queue/queue.hpp (queue<T>), queue/worker.hpp (worker<T>), queue/events.hpp (queue_events),
// queue/cron.hpp (cron_expression), queue/detail/ (the stored record, the Lua, schedules, time
// zones, the reply-timing choice). Include this header.
#pragma once

#include <redkit/queue/events.hpp>
#include <redkit/queue/job.hpp>
#include <redkit/queue/queue.hpp>
#include <redkit/queue/types.hpp>
#include <redkit/queue/worker.hpp>
