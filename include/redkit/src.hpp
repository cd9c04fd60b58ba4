// SPDX-License-Identifier: MIT
// redkit's compiled mode: include this header in exactly one .cpp file of a program built with
// REDKIT_SEPARATE_COMPILATION defined everywhere (CMake's redkit::redkit_compiled does both). It
// defines every non-template function that the headers then only declare; each file that
// includes redkit compiles only the templates it uses.
#pragma once

#if !defined(REDKIT_SEPARATE_COMPILATION)
#error "redkit: <redkit/src.hpp> is for builds with REDKIT_SEPARATE_COMPILATION defined (link redkit::redkit_compiled)"
#endif

#include <redkit/redkit.hpp>

// the core
#include <redkit/core/impl/commands.ipp>
#include <redkit/core/io/impl/raw.ipp>
#include <redkit/impl/client.ipp>
#include <redkit/impl/connection.ipp>
#include <redkit/impl/dedicated_connection.ipp>
#include <redkit/impl/future.ipp>
#include <redkit/impl/pipeline.ipp>
#include <redkit/impl/pool.ipp>
#include <redkit/impl/reply.ipp>
#include <redkit/impl/script.ipp>
#include <redkit/impl/url.ipp>
// the toolkit
#include <redkit/detail/impl/json_reader.ipp>
// the cache (keep this list sorted)
#include <redkit/cache/detail/impl/entry.ipp>
#include <redkit/cache/detail/impl/near.ipp>
#include <redkit/cache/detail/impl/state.ipp>
#include <redkit/cache/impl/cache.ipp>
// the rate limiter, sessions, pub/sub, streams (keep this list sorted)
#include <redkit/impl/pubsub.ipp>
#include <redkit/impl/rate_limit.ipp>
#include <redkit/impl/session.ipp>
#include <redkit/impl/stream.ipp>
// the queue (keep this list sorted)
#include <redkit/queue/detail/impl/keeper.ipp>
#include <redkit/queue/detail/impl/record.ipp>
#include <redkit/queue/detail/impl/reply_timing.ipp>
#include <redkit/queue/detail/impl/schedule.ipp>
#include <redkit/queue/detail/impl/time_zone.ipp>
#include <redkit/queue/impl/cron.ipp>
#include <redkit/queue/impl/events.ipp>
#include <redkit/queue/impl/queue.ipp>
#include <redkit/queue/impl/types.ipp>
