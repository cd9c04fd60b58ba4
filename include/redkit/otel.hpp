// SPDX-License-Identifier: MIT
// redkit::otel_observer: the observer (observer.hpp) as OpenTelemetry spans and metrics, with the
// names of OpenTelemetry's semantic conventions for database clients and Redis.
//
// Optional: it needs the OpenTelemetry C++ API's headers (opentelemetry-cpp 1.x; header-only, no
// SDK) on the include path, which nothing else in redkit does. The application's SDK (or none:
// the API's no-op providers) decides where spans and measurements go.
//
//   redkit::client_options o = redkit::client_options::from_url(url);
//   o.observer = std::make_shared<redkit::otel_observer>();  // the global providers
//
// What it makes:
//   - a CLIENT span per command (and per pipeline or transaction), named after the operation
//     ("GET", "PIPELINE"), a child of the span current on the calling thread: db.system.name
//     (redis), db.operation.name, db.namespace (the database number), server.address and
//     server.port (the node that answered), db.operation.batch.size (batches), db.query.text
//     (only with client_options::observe_query_text, values masked), db.response.status_code
//     (an error reply's prefix) and error.type (that prefix, or the errc's name for a failure);
//     status error for both;
//   - the histogram db.client.operation.duration (seconds) with the same attributes but the query
//     text; db.client.connection.create_time and db.client.connection.wait_time (seconds), and
//     the counter db.client.connection.timeouts (pool waits that timed out);
//   - a CONSUMER span per attempt of a queue's job ("process <queue>"), current while its handler
//     runs (its commands are its children), linked to the span that was current where the job
//     was added (the W3C traceparent is stored with the job: across processes too), ending with
//     the attempt's outcome; and the histogram messaging.process.duration (seconds).
#pragma once

#include <redkit/observer.hpp>
#include <redkit/version.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <opentelemetry/context/propagation/text_map_propagator.h>
#include <opentelemetry/context/runtime_context.h>
#include <opentelemetry/metrics/meter.h>
#include <opentelemetry/metrics/meter_provider.h>
#include <opentelemetry/metrics/provider.h>
#include <opentelemetry/metrics/sync_instruments.h>
#include <opentelemetry/trace/propagation/http_trace_context.h>
#include <opentelemetry/trace/provider.h>
#include <opentelemetry/trace/scope.h>
#include <opentelemetry/trace/span.h>
#include <opentelemetry/trace/tracer.h>
#include <opentelemetry/trace/tracer_provider.h>

namespace redkit {
inline namespace v0 {

/// What an otel_observer reports, and to whom.
struct otel_options {
    /// Where spans go; null: the global provider (opentelemetry::trace::Provider), read when the
    /// observer is made.
    opentelemetry::nostd::shared_ptr<opentelemetry::trace::TracerProvider> tracer_provider;
    /// Where measurements go; null: the global provider (opentelemetry::metrics::Provider), read
    /// when the observer is made.
    opentelemetry::nostd::shared_ptr<opentelemetry::metrics::MeterProvider> meter_provider;
    bool command_spans = true;  ///< a span per command, pipeline and transaction
    bool job_spans = true;      ///< a span per attempt of a job (and the trace context stored with jobs)
    bool metrics = true;        ///< the histograms and the counter
};

namespace detail {

/// A W3C traceparent (and tracestate) in a string: "<traceparent>[\n<tracestate>]".
class otel_carrier final : public opentelemetry::context::propagation::TextMapCarrier {
public:
    std::string text;

    opentelemetry::nostd::string_view Get(opentelemetry::nostd::string_view key) const noexcept override {
        const std::string_view t(text);
        const std::size_t nl = t.find('\n');
        if (key == "traceparent") return to_view(t.substr(0, nl));
        if (key == "tracestate" && nl != std::string_view::npos) return to_view(t.substr(nl + 1));
        return {};
    }
    void Set(opentelemetry::nostd::string_view key, opentelemetry::nostd::string_view value) noexcept override {
        try {
            if (key == "traceparent") {
                text.insert(0, std::string(value.data(), value.size()));
            } else if (key == "tracestate" && !value.empty()) {
                text.append("\n").append(value.data(), value.size());
            }
        } catch (...) {
            text.clear();
        }
    }

private:
    static opentelemetry::nostd::string_view to_view(std::string_view s) noexcept { return {s.data(), s.size()}; }
};

/// A span an otel_observer started, ended once (by the event that ends its call, or when dropped).
struct otel_span {
    opentelemetry::nostd::shared_ptr<opentelemetry::trace::Span> span;
    explicit otel_span(opentelemetry::nostd::shared_ptr<opentelemetry::trace::Span> s) noexcept : span(std::move(s)) {}
    otel_span(const otel_span&) = delete;
    otel_span& operator=(const otel_span&) = delete;
    ~otel_span() {
        if (span) span->End();
    }
    void end() noexcept {
        if (span) span->End();
        span = nullptr;
    }
};

/// "host:port" → host and port; "[::1]:6379" → ::1 and 6379; a unix socket's path → itself, port 0.
inline std::pair<std::string_view, std::int64_t> otel_split_server(std::string_view s) noexcept {
    const std::size_t colon = s.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == s.size()) return {s, 0};
    std::int64_t port = 0;
    for (char c : s.substr(colon + 1)) {
        if (c < '0' || c > '9' || port > 65535) return {s, 0};
        port = port * 10 + (c - '0');
    }
    std::string_view host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    return {host, port};
}

}  // namespace detail

/// An observer that turns what a client does into OpenTelemetry spans and metrics (see the file
/// comment). Thread-safe; share one between clients.
class otel_observer : public observer {
public:
    /// One attribute, as the OpenTelemetry API takes it.
    using attribute = std::pair<opentelemetry::nostd::string_view, opentelemetry::common::AttributeValue>;

    /// Takes the providers (the global ones where `o` names none) and makes the instruments.
    explicit otel_observer(otel_options o = {}) : options_(std::move(o)) {
        namespace trace = opentelemetry::trace;
        namespace metrics = opentelemetry::metrics;
        auto tp = options_.tracer_provider ? options_.tracer_provider : trace::Provider::GetTracerProvider();
        tracer_ = tp->GetTracer("redkit", REDKIT_VERSION_STRING);
        if (!options_.metrics) return;
        auto mp = options_.meter_provider ? options_.meter_provider : metrics::Provider::GetMeterProvider();
        meter_ = mp->GetMeter("redkit", REDKIT_VERSION_STRING);
        duration_ = meter_->CreateDoubleHistogram("db.client.operation.duration",
                                                  "Duration of database client operations.", "s");
        create_time_ = meter_->CreateDoubleHistogram("db.client.connection.create_time",
                                                     "The time it took to create a new connection.", "s");
        wait_time_ = meter_->CreateDoubleHistogram("db.client.connection.wait_time",
                                                   "The time it took to obtain an open connection from the pool.", "s");
        timeouts_ = meter_->CreateUInt64Counter(
            "db.client.connection.timeouts",
            "The number of connection timeouts that have occurred trying to obtain a connection from the pool.",
            "{timeout}");
        process_duration_ =
            meter_->CreateDoubleHistogram("messaging.process.duration", "Duration of processing operation.", "s");
    }

    /// Starts the command's span (a child of the span current on this thread).
    std::shared_ptr<void> on_command_start(const command_event& e) override {
        if (!options_.command_spans) return nullptr;
        opentelemetry::trace::StartSpanOptions so;
        so.kind = opentelemetry::trace::SpanKind::kClient;
        const std::string db = std::to_string(e.db);
        std::array<attribute, 5> a{};
        std::size_t n = command_attributes(e, db, a);
        if (!e.query_text.empty()) a[n++] = {"db.query.text", view(e.query_text)};
        return std::make_shared<detail::otel_span>(tracer_->StartSpan(view(e.operation), attributes(a, n), so));
    }

    /// Ends the command's span with its server and outcome; records its duration.
    void on_command(const command_event& e) override {
        const auto [host, port] = detail::otel_split_server(e.server);
        const std::string_view error_type = e.outcome == command_outcome::error_reply ? e.error_prefix
                                            : e.outcome == command_outcome::failed    ? errc_name(e.code)
                                                                                      : std::string_view();
        if (auto* s = static_cast<detail::otel_span*>(e.context.get()); s != nullptr && s->span) {
            if (!e.server.empty()) {
                s->span->SetAttribute("server.address", view(host));
                if (port != 0) s->span->SetAttribute("server.port", port);
            }
            if (e.outcome == command_outcome::error_reply)
                s->span->SetAttribute("db.response.status_code", view(e.error_prefix));
            if (!error_type.empty()) {
                s->span->SetAttribute("error.type", view(error_type));
                s->span->SetStatus(opentelemetry::trace::StatusCode::kError, view(error_type));
            }
            s->end();
        }
        if (!duration_) return;
        const std::string db = std::to_string(e.db);
        std::array<attribute, 8> a{};
        std::size_t n = command_attributes(e, db, a);
        if (!e.server.empty()) a[n++] = {"server.address", view(host)};
        if (port != 0) a[n++] = {"server.port", port};
        if (e.outcome == command_outcome::error_reply) a[n++] = {"db.response.status_code", view(e.error_prefix)};
        if (!error_type.empty()) a[n++] = {"error.type", view(error_type)};
        duration_->Record(seconds(e.duration), attributes(a, n), opentelemetry::context::Context{});
    }

    /// Records a connection's create time (one that opened).
    void on_connect(const connect_event& e) override {
        if (!create_time_ || !e.ok) return;
        std::array<attribute, 2> a{};
        std::size_t n = 0;
        a[n++] = {"db.system.name", "redis"};
        a[n++] = {"db.client.connection.pool.name", view(e.server)};
        create_time_->Record(seconds(e.duration), attributes(a, n), opentelemetry::context::Context{});
    }

    /// Records a pool wait, and counts one that timed out.
    void on_pool_wait(const pool_wait_event& e) override {
        if (!wait_time_) return;
        std::array<attribute, 2> a{};
        std::size_t n = 0;
        a[n++] = {"db.system.name", "redis"};
        a[n++] = {"db.client.connection.pool.name", view(e.server)};
        wait_time_->Record(seconds(e.waited), attributes(a, n), opentelemetry::context::Context{});
        if (e.exhausted) timeouts_->Add(1, attributes(a, n), opentelemetry::context::Context{});
    }

    /// Starts the attempt's CONSUMER span, linked to the producer's trace context.
    std::shared_ptr<void> on_job_start(const job_event& e) override {
        if (!options_.job_spans) return nullptr;
        namespace trace = opentelemetry::trace;
        trace::StartSpanOptions so;
        so.kind = trace::SpanKind::kConsumer;
        const std::string name = "process " + std::string(e.queue);
        const std::int64_t attempt = e.attempt;
        const auto attrs = {
            attribute{"messaging.system", "redkit"},          attribute{"messaging.operation.type", "process"},
            attribute{"messaging.operation.name", "process"}, attribute{"messaging.destination.name", view(e.queue)},
            attribute{"messaging.message.id", view(e.id)},    attribute{"redkit.job.name", view(e.name)},
            attribute{"redkit.job.attempt", attempt}};
        const trace::SpanContext producer = producer_of(e.trace_context);
        if (producer.IsValid()) {
            return std::make_shared<detail::otel_span>(tracer_->StartSpan(name, attrs, {{producer, {}}}, so));
        }
        return std::make_shared<detail::otel_span>(tracer_->StartSpan(name, attrs, so));
    }

    /// Makes the attempt's span current while its handler runs.
    std::shared_ptr<void> on_job_scope(const job_event& e) override {
        auto* s = static_cast<detail::otel_span*>(e.context.get());
        if (s == nullptr || !s->span) return nullptr;
        return std::make_shared<opentelemetry::trace::Scope>(s->span);
    }

    /// Ends an attempt's span with its outcome, and records its processing time.
    void on_job(const job_event& e) override {
        // an attempt's end (a stalled job's steps come from the check, not from its attempt)
        if (e.stage == job_stage::added || e.stage == job_stage::started || e.attempt == 0) return;
        const bool ok = e.stage == job_stage::completed;
        if (auto* s = static_cast<detail::otel_span*>(e.context.get()); s != nullptr && s->span) {
            if (!ok) {
                s->span->SetAttribute("error.type", e.stage == job_stage::retrying ? "retrying" : "failed");
                s->span->SetStatus(opentelemetry::trace::StatusCode::kError, view(e.reason));
            }
            s->end();
        }
        if (!process_duration_) return;
        std::array<attribute, 4> a{};
        std::size_t n = 0;
        a[n++] = {"messaging.system", "redkit"};
        a[n++] = {"messaging.operation.name", "process"};
        a[n++] = {"messaging.destination.name", view(e.queue)};
        if (!ok) a[n++] = {"error.type", e.stage == job_stage::retrying ? "retrying" : "failed"};
        process_duration_->Record(seconds(e.duration), attributes(a, n), opentelemetry::context::Context{});
    }

    /// The W3C traceparent (and tracestate) of the span current on this thread; empty without one.
    std::string job_trace_context() override {
        if (!options_.job_spans) return {};
        detail::otel_carrier c;
        opentelemetry::trace::propagation::HttpTraceContext().Inject(
            c, opentelemetry::context::RuntimeContext::GetCurrent());
        return std::move(c.text);
    }

private:
    static opentelemetry::nostd::string_view view(std::string_view s) noexcept { return {s.data(), s.size()}; }
    template <class Rep, class Period>
    static double seconds(std::chrono::duration<Rep, Period> d) noexcept {
        return std::chrono::duration<double>(d).count();
    }
    // A command's attributes known from its start, at the front of `a` (`db`: its number as text,
    // alive as long as `a`); returns how many.
    template <std::size_t N>
    static std::size_t command_attributes(const command_event& e, const std::string& db,
                                          std::array<attribute, N>& a) noexcept {
        static_assert(N >= 4, "room for the command's attributes");
        std::size_t n = 0;
        a[n++] = {"db.system.name", "redis"};
        a[n++] = {"db.operation.name", view(e.operation)};
        a[n++] = {"db.namespace", view(db)};
        if (e.batch_size > 1) a[n++] = {"db.operation.batch.size", static_cast<std::int64_t>(e.batch_size)};
        return n;
    }
    // The first n attributes of `a`, as the API's calls take them (the API wraps them in a view).
    template <std::size_t N>
    static opentelemetry::nostd::span<const attribute> attributes(const std::array<attribute, N>& a,
                                                                  std::size_t n) noexcept {
        return opentelemetry::nostd::span<const attribute>(a.data(), n);
    }
    // The producer's span context from a job's stored trace context (invalid when there is none).
    static opentelemetry::trace::SpanContext producer_of(std::string_view stored) {
        if (stored.empty()) return opentelemetry::trace::SpanContext::GetInvalid();
        detail::otel_carrier c;
        c.text = std::string(stored);
        opentelemetry::context::Context none;
        const auto ctx = opentelemetry::trace::propagation::HttpTraceContext().Extract(c, none);
        return opentelemetry::trace::GetSpan(ctx)->GetContext();
    }

    otel_options options_;
    opentelemetry::nostd::shared_ptr<opentelemetry::trace::Tracer> tracer_;
    opentelemetry::nostd::shared_ptr<opentelemetry::metrics::Meter> meter_;
    opentelemetry::nostd::unique_ptr<opentelemetry::metrics::Histogram<double>> duration_;
    opentelemetry::nostd::unique_ptr<opentelemetry::metrics::Histogram<double>> create_time_;
    opentelemetry::nostd::unique_ptr<opentelemetry::metrics::Histogram<double>> wait_time_;
    opentelemetry::nostd::unique_ptr<opentelemetry::metrics::Counter<std::uint64_t>> timeouts_;
    opentelemetry::nostd::unique_ptr<opentelemetry::metrics::Histogram<double>> process_duration_;
};

}  // namespace v0
}  // namespace redkit
