// SPDX-License-Identifier: MIT
// The code of the docs' pattern pages (cache, rate limiting, sessions, pub/sub and streams): each
// `//! [name]` pair marks a snippet a page shows. Run as a test against REDIS_URL.
#include <redkit/redkit.hpp>

#include <atomic>
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

struct product {
    std::string id, name;
    double price = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(product, id, name, price)

struct user {
    std::string id, email;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(user, id, email)

struct order_status {
    std::string order, status;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_status, order, status)

struct order_event {
    std::string order;
    double amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_event, order, amount)

struct database {  // the slow source of truth the cache sits in front of
    int queries = 0;
    product load_product(const std::string& id) { return ++queries, product{id, "Desk lamp", 24.5}; }
    std::optional<user> find_user(const std::string&) { return ++queries, std::nullopt; }
};

void cache_snippets(redkit::client redis) {
    database db;
    const std::string id = "p1";
    const std::string key = redkit::make_key("user", "u9");
    redkit::cache users(redis);
    //! [cache]
    redkit::cache_options o;
    o.keys = redkit::key_space("shop:cache");  // keys become shop:cache:<key>
    redkit::cache products(redis, o);
    product p = products.get_or_set<product>(
        redkit::make_key("product", id), [&] { return db.load_product(id); }, std::chrono::minutes(10));
    std::optional<user> u = users.get_or_set(
        key, [&] { return db.find_user(id); });            // nullopt is cached too;
                                                           // no TTL given: cache_options::default_ttl (5 minutes)
    products.invalidate(redkit::make_key("product", id));  // after a write: one DEL
    redkit::cache_stats s = products.stats();  // hits, misses, early_refreshes, stale_serves, loader_calls, errors
    //! [cache]
    std::cout << "cache: " << p.name << ", user " << (u ? "found" : "absent") << ", misses " << s.misses << '\n';

    const auto load = [&] { return db.load_product("p2"); };
    const std::string hot = redkit::make_key("product", "p2");
    //! [near]
    redkit::cache_options near;
    near.keys = redkit::key_space("shop:hot");  // a key space of its own: it hears of writes there only
    near.near.enabled = true;                   // off by default
    near.near.max_entries = 10000;              // LRU bounds (max_bytes: 64 MiB by default)
    near.near.max_ttl = std::chrono::minutes(1);
    redkit::cache hot_products(redis, near);
    product q = hot_products.get_or_set<product>(hot, load, std::chrono::minutes(10));  // from memory when hot
    redkit::near_cache_stats n = hot_products.near_stats();  // hits, misses, invalidations, evictions...
    //! [near]
    q = hot_products.get_or_set<product>(hot, load, std::chrono::minutes(10));
    std::cout << "near: " << q.name << ", near misses " << n.misses << ", hits now " << hot_products.near_stats().hits
              << '\n';
}

void rate_limit_snippets(redkit::client redis) {
    const std::string client_ip = "203.0.113.9";
    const std::string team_id = "team-7";
    //! [rate_limit]
    // 100 requests per IP and minute; the 101st gets 429.
    const auto per_ip = redkit::rate_limiter::fixed_window(redis, "docs", 100, std::chrono::minutes(1));
    redkit::rate_limit_result r = per_ip.hit(client_ip);  // allowed, limit, remaining, reset_after, retry_after
    for (const auto& h : per_ip.headers(r)) std::cout << h.name << ": " << h.value << '\n';
    const int status = r.allowed ? 200 : 429;  // a 429 goes out with those headers

    auto login = redkit::rate_limiter::gcra(redis, "login", redkit::rate{1, 2s}, 5);  // burst 5, then 1 per 2 s
    auto exports = redkit::rate_limiter::token_bucket(redis, "export", 100, redkit::per_second(10));
    auto big = exports.hit(team_id, 80);  // a weighted cost; peek(id, cost) asks without charging; reset(id): one DEL
    //! [rate_limit]
    std::cout << "status " << status << ", login allowed: " << login.hit("ada").allowed << ", export remaining "
              << big.remaining << '\n';
    per_ip.reset(client_ip);
    exports.reset(team_id);
    login.reset("ada");
}

void session_snippets(redkit::client redis) {
    const std::string user_id = "42";
    const std::string device_id_to_drop = "none";
    //! [sessions]
    redkit::session_store<> sessions(redis, {std::chrono::minutes(20), std::chrono::hours(8)});  // idle, absolute
    std::string cookie = sessions.create(user_id, {{"device", "Firefox on Linux"}});  // a Secure, HttpOnly cookie
    auto s = sessions.get(cookie);  // nullopt: answer 401. Slides the idle timeout
    std::cout << "signed in as " << s->user_id << '\n';
    std::string fresh = *sessions.rotate(cookie);  // on login / privilege change: old token dead at once
    auto changed = sessions.modify(fresh, [](auto& d) { d["role"] = "admin"; });  // compare-and-set, retried
    for (const auto& d : sessions.list(user_id)) {  // "your devices": d.id, d.data, d.last_seen; no tokens
        std::cout << "device: " << d.data.at("device") << '\n';
    }
    sessions.revoke_by_id(user_id, device_id_to_drop);
    sessions.revoke_all(user_id);  // log out everywhere
    //! [sessions]
    std::cout << "modify: " << (changed.status == redkit::update_status::updated ? "updated" : "lost") << '\n';
    std::cout << "after revoke_all: " << (sessions.get(fresh) ? "still signed in" : "signed out") << '\n';
}

void pubsub_snippets(redkit::client redis) {
    std::atomic<int> received{0};
    const auto push_to_websockets = [&](const order_status&) { ++received; };
    //! [pubsub]
    redkit::subscriber sub;  // its own connection and thread
    sub.on<order_status>("orders:updates", [&](const order_status& o) { push_to_websockets(o); });
    sub.on_pattern_raw("audit:*",
                       [](const redkit::message& m) { std::cout << m.channel << ": " << m.payload << '\n'; });
    sub.wait_subscribed(std::chrono::seconds(5));  // optional: returns once the server confirmed

    redkit::publisher pub;
    long long receivers = pub.publish("orders:updates", order_status{"ord_1", "shipped"});
    //! [pubsub]
    for (int i = 0; i < 200 && receivers > 0 && received == 0; ++i) std::this_thread::sleep_for(10ms);
    std::cout << "pub/sub: " << received << " received\n";

    std::atomic<int> billed{0};
    const auto bill = [&](const order_event&) { ++billed; };
    redis.command<void>("DEL", "orders:events");
    //! [stream]
    redkit::stream<order_event> events(redis, "orders:events", 100000);  // XADD MAXLEN ~ 100000
    events.add(order_event{"ord_1", 349.99});
    redkit::stream_consumer<order_event> billing(redis, "orders:events", "billing", "billing-1",
                                                 [&](const order_event& e, const redkit::stream_entry&) { bill(e); });
    billing.start();  // or billing.poll_once() from your own loop
    //! [stream]
    for (int i = 0; i < 300 && billed == 0; ++i) std::this_thread::sleep_for(10ms);
    billing.stop();
    std::cout << "stream: " << billed << " billed\n";
}

int main() try {
    redkit::client redis = redkit::default_client();
    cache_snippets(redis);
    rate_limit_snippets(redis);
    session_snippets(redis);
    pubsub_snippets(redis);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "pattern snippets failed: " << e.what() << '\n';
    return 1;
}
