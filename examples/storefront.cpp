// SPDX-License-Identifier: MIT
// The storefront demo: one walk through the five jobs redkit does for a service, narrated.
//
//   1. featured products through cache-aside      products:featured
//   2. an API handler rate-limited per IP         rate_limit:storefront:fixed:{<ip>}
//   3. login, an authenticated request, logout    session:{..}:<sha256>, user:<id>:{..}:sessions
//      everywhere
//   4. an order status change, published and      orders:updates
//      received by a subscriber
//   5. a welcome e-mail job that fails once,      queue:{welcome-mail}:...
//      retries with backoff and completes
//
// Runs against REDIS_URL (default redis://127.0.0.1:6379) and touches only its own keys.
#include <redkit/redkit.hpp>

#include <chrono>
#include <condition_variable>
#include <future>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace storefront {

struct product {
    std::string id;
    std::string name;
    double price = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(product, id, name, price)

struct order_status {
    std::string order_id;
    std::string status;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_status, order_id, status)

struct welcome_mail {
    std::string to;
    std::string name;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(welcome_mail, to, name)

struct http_response {
    int status = 200;
    std::vector<redkit::http_header> headers;
};

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void step(int n, const std::string& title) { std::cout << "\n[" << n << "] " << title << '\n'; }

std::vector<std::string> keys_matching(const redkit::client& redis, const std::string& pattern) {
    std::vector<std::string> keys;
    for (const auto& k : redis.scan(pattern, 500)) keys.push_back(k);
    return keys;
}

}  // namespace storefront

int main() try {
    using namespace storefront;
    std::cout << std::fixed << std::setprecision(2);
    redkit::client redis = redkit::default_client();
    redis.ping();
    std::cout << "redkit " << redkit::version << " storefront demo, Redis at "
              << (redis.options().unix_socket.empty()
                      ? redis.options().host + ":" + std::to_string(redis.options().port)
                      : redis.options().unix_socket)
              << '\n';

    // ---- 1. cache-aside -------------------------------------------------------------------
    step(1, "featured products, cache-aside (GET, then the database and SET PX on a miss)");
    redkit::cache cache(redis);
    const std::string featured_key = redkit::make_key("products", "featured");
    cache.invalidate(featured_key);
    int db_queries = 0;
    double chair_price = 349.99;
    const auto load_featured = [&] {
        ++db_queries;
        std::this_thread::sleep_for(40ms);  // the slow query
        return std::vector<product>{{"prod_000042", "Acme Ergonomic Office Chair", chair_price},
                                    {"prod_000043", "Standing Desk", 599.0}};
    };
    const auto get_featured = [&](const char* label) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto products = cache.get_or_set(featured_key, load_featured, 10min);
        std::cout << "  GET /products/featured (" << label << "): " << products.size() << " products, chair at "
                  << products.front().price << ", " << ms_since(t0) << " ms, database queries so far: " << db_queries
                  << '\n';
    };
    get_featured("first call, loaded");
    get_featured("second call, cache hit");
    std::cout << "  key: " << cache.key(featured_key) << " = "
              << nlohmann::json::parse(redis.command<std::string>("GET", cache.key(featured_key))).dump().substr(0, 60)
              << "...\n";
    chair_price = 299.0;
    std::cout << "  price change in the database -> invalidate " << featured_key << ": " << std::boolalpha
              << cache.invalidate(featured_key) << '\n';
    get_featured("after invalidation, reloaded");

    // ---- 2. rate limiting -----------------------------------------------------------------
    step(2, "API rate limit per IP: fixed window, 100 requests per minute, one EVALSHA per check");
    const auto per_ip = redkit::rate_limiter::fixed_window(redis, "storefront", 100, 1min);
    const std::string ip = "203.0.113.7";
    per_ip.reset(ip);
    const auto api_call = [&](const std::string& from) {
        const redkit::rate_limit_result r = per_ip.hit(from);
        return http_response{r.allowed ? 200 : 429, per_ip.headers(r)};
    };
    int ok = 0;
    for (int i = 0; i < 100; ++i) ok += api_call(ip).status == 200;
    std::cout << "  calls 1-100 from " << ip << ": " << ok << " x HTTP 200\n";
    const http_response limited = api_call(ip);
    std::cout << "  call 101: HTTP " << limited.status << (limited.status == 429 ? " Too Many Requests" : "") << '\n';
    for (const auto& h : limited.headers) std::cout << "    " << h.name << ": " << h.value << '\n';
    std::cout << "  key: " << per_ip.key(ip) << '\n';

    // ---- 3. sessions ----------------------------------------------------------------------
    step(3, "sessions: login, an authenticated request, log out everywhere");
    redkit::session_store<> sessions(redis, redkit::session_options{30min, 8h, {}});
    const std::string user = "42";
    (void)sessions.revoke_all(user);
    const std::string cookie = sessions.create(user, {{"name", "Ada"}, {"device", "Firefox on Linux"}});
    const std::string phone = sessions.create(user, {{"name", "Ada"}, {"device", "Safari on iPhone"}});
    std::cout << "  POST /login: session cookie of " << cookie.size()
              << " characters (252 random bits; Redis stores only its SHA-256)\n";
    if (const auto s = sessions.get(cookie)) {
        std::cout << "  GET /account with the cookie: hello " << s->data.at("name") << " (user " << s->user_id << ", "
                  << s->data.at("device") << ")\n";
    }
    std::cout << "  devices signed in: " << sessions.list(user).size() << '\n';
    for (const auto& k : keys_matching(redis, "user:" + user + ":*sessions"))
        std::cout << "  key: " << k << " (the user's index)\n";
    const auto session_keys = keys_matching(redis, "session:*");
    if (!session_keys.empty())
        std::cout << "  key: " << session_keys.front() << " (a session, named by the token's hash)\n";
    const std::size_t revoked = sessions.revoke_all(user);
    std::cout << "  POST /logout-everywhere: " << revoked << " sessions revoked\n";
    std::cout << "  GET /account with the old cookie: "
              << (sessions.get(cookie) ? "200 (still valid?!)" : "401, no session")
              << "; phone: " << (sessions.get(phone) ? "200 (still valid?!)" : "401, no session") << '\n';

    // ---- 4. pub/sub -----------------------------------------------------------------------
    step(4, "order status change: PUBLISH orders:updates, a subscriber fans it out");
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<std::string> delivered;
    redkit::subscriber sub(redis);
    sub.on<order_status>("orders:updates", [&](const order_status& o) {
        std::lock_guard<std::mutex> lock(mutex);
        delivered.push_back("order " + o.order_id + " is now " + o.status);
        cv.notify_all();
    });
    if (!sub.wait_subscribed(5s)) throw std::runtime_error("subscription not confirmed");
    const long long receivers =
        redkit::publisher(redis).publish("orders:updates", order_status{"ord_7f3a9c2e", "shipped"});
    {
        std::unique_lock<std::mutex> lock(mutex);
        if (!cv.wait_for(lock, 5s, [&] { return !delivered.empty(); }))
            throw std::runtime_error("message not received");
    }
    std::cout << "  published to " << receivers << " subscriber; received: " << delivered.front()
              << " -> pushed to the customer's websocket\n";
    sub.stop();

    // ---- 5. job queue ---------------------------------------------------------------------
    step(5, "welcome e-mail job: attempts 3, exponential backoff, a failed-event handler");
    redkit::queue<welcome_mail> mails(redis, "welcome-mail");
    mails.obliterate(true);
    redkit::job_options job;
    job.attempts = 3;
    job.backoff = redkit::backoff_policy::exponential(200ms);
    job.job_id = redkit::make_key("welcome", user);
    const auto added = mails.add("welcome", {"ada@example.com", "Ada"}, job);
    std::cout << "  queue.add('welcome', {to: ada@example.com}, {attempts: 3, backoff: exponential 200 ms}): job "
              << added.id << '\n';
    std::promise<void> done;
    std::vector<std::string> events;  // written by the worker's threads, printed here afterwards
    const auto t_add = std::chrono::steady_clock::now();
    redkit::worker_options<welcome_mail> wopts;
    wopts.on_failed = [&](const redkit::job<welcome_mail>& j, const redkit::job_failure& f) {
        std::ostringstream line;
        line << std::fixed << std::setprecision(0) << "  failed event: attempt " << j.attempts_made() << " of "
             << j.max_attempts() << ": " << f.reason
             << (f.will_retry ? ", retrying in " + std::to_string(f.retry_in.count()) + " ms" : "");
        std::lock_guard<std::mutex> lock(mutex);
        events.push_back(line.str());
    };
    wopts.on_completed = [&](const redkit::job<welcome_mail>& j) {
        {
            std::ostringstream line;
            line << std::fixed << std::setprecision(0) << "  completed event: job " << j.id() << " after "
                 << j.attempts_made() << " attempts, " << ms_since(t_add) << " ms after it was added";
            std::lock_guard<std::mutex> lock(mutex);
            events.push_back(line.str());
        }
        done.set_value();
    };
    redkit::worker<welcome_mail> worker(
        mails,
        [&](redkit::job<welcome_mail>& j) {
            if (j.attempts_made() == 0) throw std::runtime_error("smtp: 421 service not available, try again later");
            std::lock_guard<std::mutex> lock(mutex);
            events.push_back("  sent welcome e-mail to " + j.data().to);
        },
        wopts);
    if (done.get_future().wait_for(10s) != std::future_status::ready)
        throw std::runtime_error("the job did not complete");
    worker.close(5s);
    {
        std::lock_guard<std::mutex> lock(mutex);
        for (const auto& e : events) std::cout << e << '\n';
    }
    const auto counts = mails.counts();

    // ---- summary --------------------------------------------------------------------------
    const redkit::cache_stats stats = cache.stats();
    std::cout << "\nsummary\n"
              << "  cache:      " << stats.hits << " hit, " << stats.misses << " misses, " << stats.loader_calls
              << " database queries for 3 requests\n"
              << "  rate limit: " << ok << " allowed, " << (limited.status == 429 ? 1 : 0) << " rejected with 429 for "
              << ip << '\n'
              << "  sessions:   2 created, " << revoked << " revoked by logout everywhere\n"
              << "  pub/sub:    " << delivered.size() << " order update delivered\n"
              << "  queue:      " << counts.completed << " job completed, " << counts.failed << " failed\n";

    cache.invalidate(featured_key);
    per_ip.reset(ip);
    mails.obliterate(true);
    std::cout << "storefront demo finished\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << "storefront demo failed: " << e.what() << '\n';
    return 1;
}
