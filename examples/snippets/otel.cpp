// SPDX-License-Identifier: MIT
// The code of the docs' "Seeing what it does" page, OpenTelemetry part: the adapter on the
// application's providers (here the API's global ones; an application that installs an SDK gets
// its spans and metrics there). Built where OpenTelemetry's C++ API headers are; run as a test
// against REDIS_URL.
#include <redkit/otel.hpp>
#include <redkit/redkit.hpp>

#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <string>

#include <opentelemetry/trace/provider.h>
#include <opentelemetry/trace/scope.h>

int main() try {
    const char* env = std::getenv("REDIS_URL");
    const std::string url = env ? env : "redis://127.0.0.1:6379";

    //! [otel]
    redkit::client_options o = redkit::parse_url(url);
    // spans and measurements go to the providers the application installed (the global ones);
    // otel_options names others, or turns command spans, job spans or metrics off
    o.observer = std::make_shared<redkit::otel_observer>();
    redkit::client redis(o);
    redis.command<void>("SET", "docs:otel", "1");  // a CLIENT span "SET" and a duration measurement
    //! [otel]

    //! [otel_job]
    redkit::queue<std::string> mail(redis, "docs-otel-mail");
    auto tracer = opentelemetry::trace::Provider::GetTracerProvider()->GetTracer("shop");
    auto checkout = tracer->StartSpan("checkout");
    {
        opentelemetry::trace::Scope current(checkout);
        (void)mail.add("receipt", "ada@example.com");  // stores checkout's traceparent with the job
    }
    checkout->End();
    // in this process or another: the attempt's span links to checkout's, and the handler's
    // commands are its children
    std::promise<void> done;
    redkit::worker_options<std::string> wo;
    wo.on_completed = [&](const redkit::job<std::string>&) { done.set_value(); };
    redkit::worker<std::string> w(
        mail,
        [&](redkit::job<std::string>& j) {
            return redis.command<long long>("INCR", "docs:otel:sent") > 0 ? j.data() : "";
        },
        wo);
    //! [otel_job]
    if (done.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        throw std::runtime_error("the job did not complete");
    }
    w.close(std::chrono::seconds(5));
    std::cout << "otel: job completed, sent " << redis.command<long long>("GET", "docs:otel:sent") << '\n';
    mail.obliterate(true);
    redis.command<void>("DEL", "docs:otel", "docs:otel:sent");
    return 0;
} catch (const std::exception& e) {
    std::cerr << "otel snippets: " << e.what() << '\n';
    return 1;
}
