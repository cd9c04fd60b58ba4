// SPDX-License-Identifier: MIT
// Umbrella header: everything redkit offers.
#pragma once

#include <redkit/cache.hpp>
#include <redkit/client.hpp>
#include <redkit/codec.hpp>
#include <redkit/connection.hpp>
#include <redkit/dedicated_connection.hpp>
#include <redkit/error.hpp>
#include <redkit/future.hpp>
#include <redkit/json_fields.hpp>
#include <redkit/key.hpp>
#include <redkit/metrics.hpp>
#include <redkit/observer.hpp>
#include <redkit/options.hpp>
#include <redkit/pipeline.hpp>
#include <redkit/pool.hpp>
#include <redkit/pubsub.hpp>
#include <redkit/queue.hpp>
#include <redkit/rate_limit.hpp>
#include <redkit/reply.hpp>
#include <redkit/reply_type.hpp>
#include <redkit/script.hpp>
#include <redkit/session.hpp>
#include <redkit/stream.hpp>
#include <redkit/url.hpp>
#include <redkit/version.hpp>
#include <redkit/waker.hpp>
