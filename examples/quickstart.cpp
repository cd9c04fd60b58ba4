// SPDX-License-Identifier: MIT
// The README's quick start: cache a struct, limit a route, run a background job.
#include <redkit/redkit.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

using namespace std::chrono_literals;

struct product {
    std::string id;
    std::string name;
    double price = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(product, id, name, price)  // stored as JSON

struct welcome_mail {
    std::string to;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(welcome_mail, to)

int main() {
    redkit::client redis = redkit::default_client();  // REDIS_URL, or redis://127.0.0.1:6379

    // 1. Cache-aside: the loader runs on a miss; the value lives in Redis for 10 minutes.
    redkit::cache cache(redis);
    const auto load = [] { return product{"42", "Desk lamp", 24.5}; };  // your database query
    const product p = cache.get_or_set<product>("product:42", load, 10min);
    std::cout << "cached " << p.name << " at " << p.price << '\n';

    // 2. Rate limiting: 100 calls per minute and client IP; the 101st is denied.
    const auto per_ip = redkit::rate_limiter::fixed_window(redis, "api", 100, 1min);
    redkit::rate_limit_result r{};
    for (int call = 1; call <= 101; ++call) r = per_ip.hit("203.0.113.7");
    std::cout << "call 101: " << (r.allowed ? "200 OK" : "429 Too Many Requests") << '\n';

    // 3. A job queue: add a job, and a worker (here in the same process) runs it.
    redkit::queue<welcome_mail> mails(redis, "mail");
    const redkit::added_job job = mails.add("welcome", {"ada@example.com"});
    redkit::worker<welcome_mail> worker(mails, [](redkit::job<welcome_mail>& j) {
        std::cout << "sending a welcome mail to " << j.data().to << '\n';
        return nlohmann::json{{"sent", true}};
    });
    for (int i = 0; i < 500 && mails.get_job(job.id)->state() != redkit::job_state::completed; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    std::cout << "job " << job.id << ": " << redkit::to_string(mails.get_job(job.id)->state()) << '\n';
    worker.close(5s);
}
