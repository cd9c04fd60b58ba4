// SPDX-License-Identifier: MIT
// The code of the docs' "Seeing what it does" page: an observer of one's own (slow commands to a
// log), and redkit::metrics rendered for Prometheus. Run as a test against REDIS_URL.
#include <redkit/redkit.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>

using namespace std::chrono_literals;

//! [slow_log]
// Logs every command slower than a threshold, and every connection that closed for a reason
// other than the client's own.
class slow_log : public redkit::observer {
public:
    explicit slow_log(std::chrono::microseconds threshold) : threshold_(threshold) {}

    void on_command(const redkit::command_event& e) override {
        if (e.duration < threshold_ && e.outcome != redkit::command_outcome::failed) return;
        std::lock_guard<std::mutex> lock(mutex_);  // called from many threads at once
        std::cout << "slow: " << e.operation << " on " << e.server << " took "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(e.duration).count() << " ms"
                  << (e.retries > 0 ? " after retries" : "") << '\n';
    }
    void on_close(const redkit::close_event& e) override {
        if (e.reason == redkit::close_reason::closed) return;
        std::lock_guard<std::mutex> lock(mutex_);
        std::cout << "closed: " << e.server << " (" << redkit::metrics::reason_name(e.reason) << ")\n";
    }

private:
    std::chrono::microseconds threshold_;
    std::mutex mutex_;
};
//! [slow_log]

int main() try {
    const char* env = std::getenv("REDIS_URL");
    const std::string url = env ? env : "redis://127.0.0.1:6379";

    {
        //! [observe]
        redkit::client_options o = redkit::parse_url(url);
        o.observer = std::make_shared<slow_log>(50ms);
        redkit::client redis(o);
        redis.command<void>("BLPOP", "docs:nothing", "0.1");  // "slow: BLPOP on 127.0.0.1:6379 took 100 ms"
        //! [observe]
    }

    //! [metrics]
    const auto counts = std::make_shared<redkit::metrics>();
    redkit::client_options o = redkit::parse_url(url);
    o.observer = counts;
    redkit::client redis(o);
    redis.command<void>("SET", "docs:visits", 0);
    for (int i = 0; i < 3; ++i) redis.command<long long>("INCR", "docs:visits");

    const redkit::metrics::counts now = counts->snapshot();
    std::cout << "INCR ok: " << now.operations.at("INCR").ok << '\n';
    // the body of GET /metrics, for Prometheus to scrape:
    const std::string body = counts->prometheus();
    //! [metrics]
    const auto at = body.find("redkit_commands_total{operation=\"INCR\",outcome=\"ok\"}");
    if (at == std::string::npos) throw std::runtime_error("no INCR sample in the text");
    std::cout << body.substr(at, body.find('\n', at) - at) << '\n';
    redis.command<void>("DEL", "docs:visits");
    return 0;
} catch (const std::exception& e) {
    std::cerr << "observability snippets: " << e.what() << '\n';
    return 1;
}
