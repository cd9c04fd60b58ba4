// SPDX-License-Identifier: MIT
// redkit/otel.hpp on a real server, against a recording tracer and meter provider written here
// against OpenTelemetry's API (no SDK): the spans and measurements each command, pool wait, job
// and connection makes, with the semantic conventions' names, parents and links.
#include <redkit/otel.hpp>
#include <redkit/queue.hpp>
#include <redkit/redkit.hpp>

#include "support/queue_options.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <opentelemetry/metrics/noop.h>
#include <opentelemetry/trace/context.h>
#include <opentelemetry/trace/noop.h>

using namespace std::chrono_literals;
using redkit_test::shared_server;

namespace otel = opentelemetry;
namespace nostd = opentelemetry::nostd;

namespace {

// An attribute's value as text ("redis", "6379", "true").
std::string text_of(const otel::common::AttributeValue& v) {
    struct visitor {
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(std::int32_t i) const { return std::to_string(i); }
        std::string operator()(std::int64_t i) const { return std::to_string(i); }
        std::string operator()(std::uint32_t i) const { return std::to_string(i); }
        std::string operator()(std::uint64_t i) const { return std::to_string(i); }
        std::string operator()(double d) const { return std::to_string(d); }
        std::string operator()(const char* s) const { return s; }
        std::string operator()(nostd::string_view s) const { return std::string(s.data(), s.size()); }
        std::string operator()(...) const { return "<array>"; }
    };
    return nostd::visit(visitor{}, v);
}

std::map<std::string, std::string> read_attributes(const otel::common::KeyValueIterable& kv) {
    std::map<std::string, std::string> out;
    kv.ForEachKeyValue([&](nostd::string_view k, otel::common::AttributeValue v) noexcept {
        out[std::string(k.data(), k.size())] = text_of(v);
        return true;
    });
    return out;
}

std::string hex(const otel::trace::SpanId& id) {
    char buf[16];
    id.ToLowerBase16(buf);
    return std::string(buf, 16);
}
std::string hex(const otel::trace::TraceId& id) {
    char buf[32];
    id.ToLowerBase16(buf);
    return std::string(buf, 32);
}

struct recorded_span {
    std::string name;
    otel::trace::SpanKind kind{};
    std::map<std::string, std::string> attributes;
    std::string trace_id, span_id, parent_id;                // parent_id: empty for a root
    std::vector<std::pair<std::string, std::string>> links;  // trace id, span id
    otel::trace::StatusCode status = otel::trace::StatusCode::kUnset;
    std::string status_text;
    bool ended = false;
    int ends = 0;
    std::thread::id started_on;
};

struct recorded_point {
    std::string instrument, unit;
    double value = 0;
    std::map<std::string, std::string> attributes;
};

// Everything the providers below were given, under one lock.
struct recording {
    std::mutex mutex;
    std::vector<recorded_span> spans;
    std::vector<recorded_point> points;

    std::vector<recorded_span> spans_named(const std::string& name) {
        std::lock_guard<std::mutex> lock(mutex);
        std::vector<recorded_span> out;
        for (const auto& s : spans) {
            if (s.name == name) out.push_back(s);
        }
        return out;
    }
    std::vector<recorded_point> points_of(const std::string& instrument) {
        std::lock_guard<std::mutex> lock(mutex);
        std::vector<recorded_point> out;
        for (const auto& p : points) {
            if (p.instrument == instrument) out.push_back(p);
        }
        return out;
    }
    recorded_span& span_at(std::size_t i) { return spans.at(i); }
    void add_point(const std::string& instrument, const std::string& unit, double value,
                   const otel::common::KeyValueIterable& attributes) {
        recorded_point p{instrument, unit, value, read_attributes(attributes)};
        std::lock_guard<std::mutex> lock(mutex);
        points.push_back(std::move(p));
    }
};

std::mt19937_64& ids() {
    static std::mt19937_64 rng(std::random_device{}());
    return rng;
}

class recording_span final : public otel::trace::Span {
public:
    recording_span(std::shared_ptr<recording> to, std::size_t index, otel::trace::SpanContext context)
        : to_(std::move(to)), index_(index), context_(context) {}

    void SetAttribute(nostd::string_view key, const otel::common::AttributeValue& value) noexcept override {
        std::lock_guard<std::mutex> lock(to_->mutex);
        to_->span_at(index_).attributes[std::string(key.data(), key.size())] = text_of(value);
    }
    void AddEvent(nostd::string_view) noexcept override {}
    void AddEvent(nostd::string_view, otel::common::SystemTimestamp) noexcept override {}
    void AddEvent(nostd::string_view, otel::common::SystemTimestamp,
                  const otel::common::KeyValueIterable&) noexcept override {}
    void SetStatus(otel::trace::StatusCode code, nostd::string_view description) noexcept override {
        std::lock_guard<std::mutex> lock(to_->mutex);
        to_->span_at(index_).status = code;
        to_->span_at(index_).status_text = std::string(description.data(), description.size());
    }
    void UpdateName(nostd::string_view name) noexcept override {
        std::lock_guard<std::mutex> lock(to_->mutex);
        to_->span_at(index_).name = std::string(name.data(), name.size());
    }
    void End(const otel::trace::EndSpanOptions&) noexcept override {
        std::lock_guard<std::mutex> lock(to_->mutex);
        to_->span_at(index_).ended = true;
        ++to_->span_at(index_).ends;
    }
    otel::trace::SpanContext GetContext() const noexcept override { return context_; }
    bool IsRecording() const noexcept override { return true; }

private:
    std::shared_ptr<recording> to_;
    std::size_t index_;
    otel::trace::SpanContext context_;
};

class recording_tracer final : public otel::trace::Tracer {
public:
    explicit recording_tracer(std::shared_ptr<recording> to) : to_(std::move(to)) {}

    nostd::shared_ptr<otel::trace::Span> StartSpan(nostd::string_view name,
                                                   const otel::common::KeyValueIterable& attributes,
                                                   const otel::trace::SpanContextKeyValueIterable& links,
                                                   const otel::trace::StartSpanOptions& options) noexcept override {
        // the parent: the options' one when valid, else the span current on this thread (as
        // the SDK does; the options' default is an invalid span context)
        otel::trace::SpanContext parent = otel::trace::SpanContext::GetInvalid();
        if (nostd::holds_alternative<otel::trace::SpanContext>(options.parent)) {
            parent = nostd::get<otel::trace::SpanContext>(options.parent);
        }
        if (!parent.IsValid()) {
            const auto ctx = nostd::holds_alternative<otel::context::Context>(options.parent)
                                 ? nostd::get<otel::context::Context>(options.parent)
                                 : otel::context::RuntimeContext::GetCurrent();
            parent = otel::trace::GetSpan(ctx)->GetContext();
        }
        recorded_span r;
        r.name = std::string(name.data(), name.size());
        r.kind = options.kind;
        r.attributes = read_attributes(attributes);
        r.started_on = std::this_thread::get_id();
        std::uint8_t trace_bytes[16];
        std::uint8_t span_bytes[8];
        {
            std::lock_guard<std::mutex> lock(to_->mutex);
            for (auto& b : span_bytes) b = static_cast<std::uint8_t>(ids()() | 1);
            if (parent.IsValid()) {
                parent.trace_id().CopyBytesTo(trace_bytes);
            } else {
                for (auto& b : trace_bytes) b = static_cast<std::uint8_t>(ids()() | 1);
            }
        }
        const otel::trace::SpanContext mine(otel::trace::TraceId(trace_bytes), otel::trace::SpanId(span_bytes),
                                            otel::trace::TraceFlags(otel::trace::TraceFlags::kIsSampled), false);
        r.trace_id = hex(mine.trace_id());
        r.span_id = hex(mine.span_id());
        if (parent.IsValid()) r.parent_id = hex(parent.span_id());
        links.ForEachKeyValue([&](otel::trace::SpanContext c, const otel::common::KeyValueIterable&) noexcept {
            r.links.emplace_back(hex(c.trace_id()), hex(c.span_id()));
            return true;
        });
        std::lock_guard<std::mutex> lock(to_->mutex);
        to_->spans.push_back(std::move(r));
        return nostd::shared_ptr<otel::trace::Span>(new recording_span(to_, to_->spans.size() - 1, mine));
    }
    void ForceFlushWithMicroseconds(std::uint64_t) noexcept override {}
    void CloseWithMicroseconds(std::uint64_t) noexcept override {}

private:
    std::shared_ptr<recording> to_;
};

class recording_tracer_provider final : public otel::trace::TracerProvider {
public:
    explicit recording_tracer_provider(std::shared_ptr<recording> to)
        : tracer_(nostd::shared_ptr<otel::trace::Tracer>(new recording_tracer(std::move(to)))) {}
    nostd::shared_ptr<otel::trace::Tracer> GetTracer(nostd::string_view name, nostd::string_view,
                                                     nostd::string_view) noexcept override {
        std::lock_guard<std::mutex> lock(mutex_);
        scopes.emplace_back(name.data(), name.size());
        return tracer_;
    }
    std::vector<std::string> scopes;  // the instrumentation scopes asked for, in order

private:
    std::mutex mutex_;
    nostd::shared_ptr<otel::trace::Tracer> tracer_;
};

// Where an instrument's measurements go.
struct point_sink {
    std::shared_ptr<recording> to;
    std::string name, unit;
    void add(double value, const otel::common::KeyValueIterable& attributes) const {
        to->add_point(name, unit, value, attributes);
    }
};

template <class T>
class recording_histogram final : public otel::metrics::Histogram<T> {
public:
    explicit recording_histogram(point_sink sink) : sink_(std::move(sink)) {}
    void Record(T value, const otel::context::Context&) noexcept override {
        sink_.add(static_cast<double>(value), otel::common::NoopKeyValueIterable());
    }
    void Record(T value, const otel::common::KeyValueIterable& attributes,
                const otel::context::Context&) noexcept override {
        sink_.add(static_cast<double>(value), attributes);
    }

private:
    point_sink sink_;
};

template <class T>
class recording_counter final : public otel::metrics::Counter<T> {
public:
    explicit recording_counter(point_sink sink) : sink_(std::move(sink)) {}
    void Add(T value) noexcept override { sink_.add(static_cast<double>(value), otel::common::NoopKeyValueIterable()); }
    void Add(T value, const otel::context::Context&) noexcept override {
        sink_.add(static_cast<double>(value), otel::common::NoopKeyValueIterable());
    }
    void Add(T value, const otel::common::KeyValueIterable& attributes) noexcept override {
        sink_.add(static_cast<double>(value), attributes);
    }
    void Add(T value, const otel::common::KeyValueIterable& attributes,
             const otel::context::Context&) noexcept override {
        sink_.add(static_cast<double>(value), attributes);
    }

private:
    point_sink sink_;
};

class recording_meter final : public otel::metrics::Meter {
public:
    explicit recording_meter(std::shared_ptr<recording> to) : to_(std::move(to)) {}
    nostd::unique_ptr<otel::metrics::Counter<std::uint64_t>> CreateUInt64Counter(
        nostd::string_view name, nostd::string_view, nostd::string_view unit) noexcept override {
        return nostd::unique_ptr<otel::metrics::Counter<std::uint64_t>>(
            new recording_counter<std::uint64_t>(point_sink{to_, str(name), str(unit)}));
    }
    nostd::unique_ptr<otel::metrics::Counter<double>> CreateDoubleCounter(nostd::string_view name, nostd::string_view d,
                                                                          nostd::string_view u) noexcept override {
        return nostd::unique_ptr<otel::metrics::Counter<double>>(new otel::metrics::NoopCounter<double>(name, d, u));
    }
    nostd::shared_ptr<otel::metrics::ObservableInstrument> CreateInt64ObservableCounter(
        nostd::string_view name, nostd::string_view d, nostd::string_view u) noexcept override {
        return observable(name, d, u);
    }
    nostd::shared_ptr<otel::metrics::ObservableInstrument> CreateDoubleObservableCounter(
        nostd::string_view name, nostd::string_view d, nostd::string_view u) noexcept override {
        return observable(name, d, u);
    }
    nostd::unique_ptr<otel::metrics::Histogram<std::uint64_t>> CreateUInt64Histogram(
        nostd::string_view name, nostd::string_view, nostd::string_view unit) noexcept override {
        return nostd::unique_ptr<otel::metrics::Histogram<std::uint64_t>>(
            new recording_histogram<std::uint64_t>(point_sink{to_, str(name), str(unit)}));
    }
    nostd::unique_ptr<otel::metrics::Histogram<double>> CreateDoubleHistogram(
        nostd::string_view name, nostd::string_view, nostd::string_view unit) noexcept override {
        return nostd::unique_ptr<otel::metrics::Histogram<double>>(
            new recording_histogram<double>(point_sink{to_, str(name), str(unit)}));
    }
    nostd::shared_ptr<otel::metrics::ObservableInstrument> CreateInt64ObservableGauge(
        nostd::string_view name, nostd::string_view d, nostd::string_view u) noexcept override {
        return observable(name, d, u);
    }
    nostd::shared_ptr<otel::metrics::ObservableInstrument> CreateDoubleObservableGauge(
        nostd::string_view name, nostd::string_view d, nostd::string_view u) noexcept override {
        return observable(name, d, u);
    }
    nostd::unique_ptr<otel::metrics::UpDownCounter<std::int64_t>> CreateInt64UpDownCounter(
        nostd::string_view name, nostd::string_view d, nostd::string_view u) noexcept override {
        return nostd::unique_ptr<otel::metrics::UpDownCounter<std::int64_t>>(
            new otel::metrics::NoopUpDownCounter<std::int64_t>(name, d, u));
    }
    nostd::unique_ptr<otel::metrics::UpDownCounter<double>> CreateDoubleUpDownCounter(
        nostd::string_view name, nostd::string_view d, nostd::string_view u) noexcept override {
        return nostd::unique_ptr<otel::metrics::UpDownCounter<double>>(
            new otel::metrics::NoopUpDownCounter<double>(name, d, u));
    }
    nostd::shared_ptr<otel::metrics::ObservableInstrument> CreateInt64ObservableUpDownCounter(
        nostd::string_view name, nostd::string_view d, nostd::string_view u) noexcept override {
        return observable(name, d, u);
    }
    nostd::shared_ptr<otel::metrics::ObservableInstrument> CreateDoubleObservableUpDownCounter(
        nostd::string_view name, nostd::string_view d, nostd::string_view u) noexcept override {
        return observable(name, d, u);
    }

private:
    static std::string str(nostd::string_view s) { return std::string(s.data(), s.size()); }
    static nostd::shared_ptr<otel::metrics::ObservableInstrument> observable(nostd::string_view n, nostd::string_view d,
                                                                             nostd::string_view u) {
        return nostd::shared_ptr<otel::metrics::ObservableInstrument>(
            new otel::metrics::NoopObservableInstrument(n, d, u));
    }
    std::shared_ptr<recording> to_;
};

class recording_meter_provider final : public otel::metrics::MeterProvider {
public:
    explicit recording_meter_provider(std::shared_ptr<recording> to)
        : meter_(nostd::shared_ptr<otel::metrics::Meter>(new recording_meter(std::move(to)))) {}
    nostd::shared_ptr<otel::metrics::Meter> GetMeter(nostd::string_view, nostd::string_view,
                                                     nostd::string_view) noexcept override {
        return meter_;
    }

private:
    nostd::shared_ptr<otel::metrics::Meter> meter_;
};

class Otel : public ::testing::Test {
protected:
    void SetUp() override {
        if (!shared_server().running()) shared_server().start();
        redkit::client(shared_server().options()).command<void>("FLUSHALL");
    }

    // A client whose observer reports to this test's recording providers.
    redkit::client_options options() {
        auto o = shared_server().options();
        redkit::otel_options oo;
        oo.tracer_provider = tracers_owner;
        oo.meter_provider = nostd::shared_ptr<otel::metrics::MeterProvider>(new recording_meter_provider(got));
        o.observer = std::make_shared<redkit::otel_observer>(oo);
        return o;
    }
    // Starts a span of the recording tracer and makes it current while `body` runs; returns it.
    template <class Body>
    recorded_span within_span(const std::string& name, Body body) {
        auto tracer = tracers->GetTracer("test", "", "");
        auto outer = tracer->StartSpan(name);
        {
            otel::trace::Scope scope(outer);
            body();
        }
        outer->End();
        return got->spans_named(name).at(0);
    }

    std::shared_ptr<recording> got = std::make_shared<recording>();
    recording_tracer_provider* tracers = new recording_tracer_provider(got);  // owned by the options' pointer
    nostd::shared_ptr<otel::trace::TracerProvider> tracers_owner{tracers};
};

// A command's span and duration carry the conventions' names; the span is a child of the span
// current on the calling thread; an error reply and a timeout mark it an error, with error.type.
TEST_F(Otel, CommandsBecomeClientSpansAndDurations) {
    auto o = options();
    o.db = 2;
    o.command_timeout = 300ms;
    o.max_retries = 0;
    redkit::client c(o);
    const auto outer = within_span("handle request", [&] {
        c.command<void>("SET", "otel:k", "v");
        EXPECT_EQ(c.command<std::string>("GET", "otel:k"), "v");
        EXPECT_THROW(c.command<long long>("HLEN", "otel:k"), redkit::server_error);
    });
    ASSERT_FALSE(tracers->scopes.empty());
    EXPECT_EQ(tracers->scopes[0], "redkit");

    const auto set = got->spans_named("SET");
    ASSERT_EQ(set.size(), 1U);
    const recorded_span& s = set[0];
    EXPECT_EQ(s.kind, otel::trace::SpanKind::kClient);
    EXPECT_EQ(s.trace_id, outer.trace_id);
    EXPECT_EQ(s.parent_id, outer.span_id);
    EXPECT_EQ(s.ends, 1);
    EXPECT_EQ(s.attributes.at("db.system.name"), "redis");
    EXPECT_EQ(s.attributes.at("db.operation.name"), "SET");
    EXPECT_EQ(s.attributes.at("db.namespace"), "2");
    EXPECT_EQ(s.status, otel::trace::StatusCode::kUnset);
    EXPECT_EQ(s.attributes.count("error.type"), 0U);
    EXPECT_EQ(s.attributes.count("db.query.text"), 0U);  // not asked for
    const auto& so = shared_server().options();
    if (so.unix_socket.empty()) {
        EXPECT_EQ(s.attributes.at("server.address"), so.host);
        EXPECT_EQ(s.attributes.at("server.port"), std::to_string(so.port));
    } else {
        EXPECT_EQ(s.attributes.at("server.address"), so.unix_socket);
        EXPECT_EQ(s.attributes.count("server.port"), 0U);
    }

    const auto hlen = got->spans_named("HLEN");
    ASSERT_EQ(hlen.size(), 1U);
    EXPECT_EQ(hlen[0].status, otel::trace::StatusCode::kError);
    EXPECT_EQ(hlen[0].attributes.at("db.response.status_code"), "WRONGTYPE");
    EXPECT_EQ(hlen[0].attributes.at("error.type"), "WRONGTYPE");
    EXPECT_TRUE(hlen[0].ended);

    // a failure: no reply within the timeout
    redkit::client admin(shared_server().options());
    std::thread sleeper([&] { admin.command<void>("DEBUG", "SLEEP", "0.8"); });
    std::this_thread::sleep_for(100ms);
    EXPECT_THROW(c.command<std::string>("PING"), redkit::error);
    sleeper.join();
    const auto ping = got->spans_named("PING");
    ASSERT_EQ(ping.size(), 1U);
    EXPECT_EQ(ping[0].attributes.at("error.type"), "timeout");
    EXPECT_EQ(ping[0].status, otel::trace::StatusCode::kError);
    EXPECT_EQ(ping[0].parent_id, "");  // nothing was current

    const auto durations = got->points_of("db.client.operation.duration");
    ASSERT_EQ(durations.size(), 4U);
    std::map<std::string, recorded_point> by_op;
    for (const auto& p : durations) {
        EXPECT_EQ(p.unit, "s");
        EXPECT_GT(p.value, 0.0);
        EXPECT_LT(p.value, 5.0);
        EXPECT_EQ(p.attributes.at("db.system.name"), "redis");
        EXPECT_EQ(p.attributes.at("db.namespace"), "2");
        EXPECT_EQ(p.attributes.count("db.query.text"), 0U);
        by_op[p.attributes.at("db.operation.name")] = p;
    }
    EXPECT_EQ(by_op.at("GET").attributes.count("error.type"), 0U);
    EXPECT_EQ(by_op.at("HLEN").attributes.at("error.type"), "WRONGTYPE");
    EXPECT_EQ(by_op.at("HLEN").attributes.at("db.response.status_code"), "WRONGTYPE");
    EXPECT_EQ(by_op.at("PING").attributes.at("error.type"), "timeout");
    EXPECT_GE(by_op.at("PING").value, 0.25);
}

// A submitted command's span is a child of the span current where it was submitted, though its
// reply is read on another thread; a pipeline is one span with its batch size; the query text
// comes only when asked, masked.
TEST_F(Otel, SubmittedCommandsPipelinesAndQueryText) {
    auto o = options();
    o.observe_query_text = true;
    redkit::client c(o);
    const auto outer = within_span("submitter", [&] {
        auto f = c.submit<long long>("INCR", "otel:n");
        EXPECT_EQ(f.get(), 1);
        redkit::pipeline p(c);
        p.command("SET", "otel:a", "secret-value");
        p.command("GET", "otel:a");
        p.command("INCR", "otel:n");
        (void)p.exec();
    });
    const auto incr = got->spans_named("INCR");
    ASSERT_EQ(incr.size(), 1U);
    EXPECT_EQ(incr[0].parent_id, outer.span_id);
    EXPECT_EQ(incr[0].attributes.at("db.query.text"), "INCR ?");
    EXPECT_TRUE(incr[0].ended);

    const auto pipe = got->spans_named("PIPELINE");
    ASSERT_EQ(pipe.size(), 1U);
    EXPECT_EQ(pipe[0].parent_id, outer.span_id);
    EXPECT_EQ(pipe[0].attributes.at("db.operation.batch.size"), "3");
    EXPECT_EQ(pipe[0].attributes.at("db.query.text"), "SET GET INCR");  // its commands, no argument
    const auto durations = got->points_of("db.client.operation.duration");
    ASSERT_EQ(durations.size(), 2U);
    EXPECT_EQ(durations[1].attributes.at("db.operation.batch.size"), "3");
    EXPECT_EQ(durations[1].attributes.count("db.query.text"), 0U);  // never on a metric
}

// Connections opened record their create time; a pool wait its wait time, and one that timed
// out counts in db.client.connection.timeouts.
TEST_F(Otel, ConnectionsAndPoolWaits) {
    auto o = options();
    o.pool_size = 1;
    o.multiplex = false;
    o.pool_wait_timeout = 150ms;
    redkit::client c(o);
    c.command<void>("PING");
    const auto created = got->points_of("db.client.connection.create_time");
    ASSERT_GE(created.size(), 1U);
    EXPECT_EQ(created[0].unit, "s");
    EXPECT_GT(created[0].value, 0.0);
    EXPECT_FALSE(created[0].attributes.at("db.client.connection.pool.name").empty());

    {
        auto held = c.borrow();
        EXPECT_THROW(c.command<void>("PING"), redkit::error);  // none comes free within 150 ms
    }
    const auto waits = got->points_of("db.client.connection.wait_time");
    ASSERT_EQ(waits.size(), 1U);
    EXPECT_GE(waits[0].value, 0.14);
    const auto timeouts = got->points_of("db.client.connection.timeouts");
    ASSERT_EQ(timeouts.size(), 1U);
    EXPECT_EQ(timeouts[0].value, 1.0);
    EXPECT_EQ(timeouts[0].unit, "{timeout}");
}

// A job carries the trace context of the code that added it: the worker's span (another client,
// as in another process) links to the producer's span; the handler's commands are children of
// the attempt's span; a failing attempt's span is an error.
TEST_F(Otel, AJobsSpanLinksToTheSpanThatAddedIt) {
    redkit::client producer(options());
    redkit::client consumer(options());  // another observer: nothing shared in memory but Redis
    redkit::queue<int> added_by(producer, "otel-jobs");
    redkit::queue<int> q(consumer, "otel-jobs");
    redkit::job_options once;
    once.attempts = 2;
    std::string ok_id, flaky_id;
    const auto outer = within_span("checkout", [&] {
        ok_id = added_by.add("charge", 1).id;
        flaky_id = added_by.add("flaky", 2, once).id;
    });
    // the stored context is the W3C traceparent of the producer's span
    const auto stored = redkit::client(shared_server().options())
                            .command<std::optional<std::string>>("HGET", "queue:{otel-jobs}:job:" + ok_id, "tc");
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(*stored, "00-" + outer.trace_id + "-" + outer.span_id + "-01");

    std::mutex m;
    std::condition_variable cv;
    int finished = 0;
    auto wo = redkit_test::quick_worker<int>();
    wo.on_completed = [&](const redkit::job<int>&) {
        std::lock_guard<std::mutex> lock(m);
        ++finished;
        cv.notify_all();
    };
    std::atomic<int> flaky_runs{0};
    redkit::worker<int> w(
        q,
        [&](redkit::job<int>& j) -> nlohmann::json {
            consumer.command<void>("SET", "otel:from-handler:" + std::to_string(j.data()), "1");
            if (j.data() == 2 && flaky_runs++ == 0) throw std::runtime_error("try again");
            return j.data();
        },
        wo);
    {
        std::unique_lock<std::mutex> lock(m);
        ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return finished == 2; }));
    }
    EXPECT_TRUE(w.close(5s));

    const auto process = got->spans_named("process otel-jobs");
    ASSERT_EQ(process.size(), 3U);  // charge, flaky's two attempts
    int errors = 0;
    for (const auto& p : process) {
        EXPECT_EQ(p.kind, otel::trace::SpanKind::kConsumer);
        EXPECT_EQ(p.parent_id, "");     // a root on the worker's thread ...
        ASSERT_EQ(p.links.size(), 1U);  // ... linked to the producer's span
        EXPECT_EQ(p.links[0].first, outer.trace_id);
        EXPECT_EQ(p.links[0].second, outer.span_id);
        EXPECT_EQ(p.attributes.at("messaging.destination.name"), "otel-jobs");
        EXPECT_EQ(p.attributes.at("messaging.operation.type"), "process");
        EXPECT_EQ(p.ends, 1);
        if (p.status == otel::trace::StatusCode::kError) {
            ++errors;
            EXPECT_EQ(p.attributes.at("messaging.message.id"), flaky_id);
            EXPECT_EQ(p.attributes.at("redkit.job.attempt"), "1");
            EXPECT_EQ(p.attributes.at("error.type"), "retrying");
            EXPECT_EQ(p.status_text, "try again");
        }
    }
    EXPECT_EQ(errors, 1);
    // the handler's SETs are children of their attempt's span
    const auto sets = got->spans_named("SET");
    ASSERT_EQ(sets.size(), 3U);
    for (const auto& s : sets) {
        bool parent_found = false;
        for (const auto& p : process) parent_found |= (s.parent_id == p.span_id && s.trace_id == p.trace_id);
        EXPECT_TRUE(parent_found) << "SET's parent " << s.parent_id;
    }
    const auto durations = got->points_of("messaging.process.duration");
    ASSERT_EQ(durations.size(), 3U);
    for (const auto& d : durations) EXPECT_EQ(d.unit, "s");
}

// With nothing set (the API's global no-op providers), the adapter costs a no-op and stores no
// trace context with a job.
TEST_F(Otel, NoOpProvidersChangeNothing) {
    auto o = shared_server().options();
    o.observer = std::make_shared<redkit::otel_observer>();
    redkit::client c(o);
    c.command<void>("SET", "otel:plain", "1");
    EXPECT_EQ(c.command<std::string>("GET", "otel:plain"), "1");
    redkit::queue<int> q(c, "otel-plain");
    const auto id = q.add("x", 1).id;
    EXPECT_EQ(c.command<long long>("HEXISTS", "queue:{otel-plain}:job:" + id, "tc"), 0);
    EXPECT_TRUE(got->spans_named("SET").empty());
}

}  // namespace
