// SPDX-License-Identifier: MIT
// The code of the docs' "Commands and replies" page: each `//! [name]` pair marks a snippet the
// page shows. Run as a test against REDIS_URL.
#include <redkit/redkit.hpp>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

//! [reply_traits]
struct point {
    double lon, lat;
};

template <>
struct redkit::reply_traits<point> {
    static point convert(redkit::reply_view v) {
        if (!v.is_array() || v.size() != 2) v.mismatch("longitude/latitude pair");
        return {v[0].as<double>(), v[1].as<double>()};
    }
};
//! [reply_traits]

int main() try {
    redkit::client redis = redkit::default_client();
    const std::string id = "ord_1";

    //! [command]
    redis.command<void>("SET", "user:42:name", "Ada", "EX", 3600);
    std::optional<std::string> name = redis.command<std::optional<std::string>>("GET", "user:42:name");
    long long visits = redis.command<long long>("INCR", redkit::make_key("visits", 42));
    //! [command]
    std::cout << "name " << name.value_or("(nil)") << ", visits " << (visits > 0 ? "counted" : "lost") << '\n';

    //! [pipeline]
    redkit::pipeline p(redis);
    p.command("SET", "a", 1).command("INCR", "a").command("GET", "a");
    std::vector<redkit::reply> r = p.exec();  // r[1].as<long long>() == 2

    redkit::transaction tx(redis);  // MULTI ... EXEC, one round trip
    tx.command("INCR", "orders:count").command("LPUSH", "orders:recent", id);
    auto results = tx.exec();
    //! [pipeline]
    std::cout << "pipeline INCR -> " << r[1].as<long long>() << ", transaction replies: " << results.size() << '\n';

    //! [script]
    static const redkit::script incr_capped(R"lua(
      local v = redis.call('INCR', KEYS[1])
      if v > tonumber(ARGV[1]) then return -1 end
      return v
    )lua");
    long long n = redis.eval<long long>(incr_capped, {"quota:42"}, 100);
    //! [script]
    std::cout << "script -> " << (n >= 1 ? "counted" : "capped") << '\n';

    redis.command<void>("SET", "session:docs", "x");
    int found = 0;
    //! [scan]
    for (const std::string& key : redis.scan("session:*", 500)) {  // one SCAN round trip per batch
        found += key.empty() ? 0 : 1;
    }
    //! [scan]
    std::cout << "scan found " << (found >= 1 ? "keys" : "nothing") << '\n';

    redis.command<void>("GEOADD", "shops", 13.361389, 38.115556, "palermo", 13.404954, 52.520008, "berlin");
    //! [geopos]
    auto where = redis.command<std::vector<std::optional<point>>>("GEOPOS", "shops", "berlin", "nowhere");
    //! [geopos]
    std::cout << "berlin at " << where[0]->lat << ", nowhere: " << (where[1] ? "found" : "nil") << '\n';

    redis.command<void>("RPUSH", "jobs", "job-1");
    //! [dedicated]
    redkit::connection conn = redis.dedicated();
    redkit::waker stop;  // stop.notify() from any thread
    conn.send("BLPOP", "jobs", 5);
    std::optional<std::string> got;
    const redkit::wait_status w = conn.wait_reply(stop, std::chrono::seconds(6), [&](redkit::reply_view reply) {
        if (!reply.is_nil()) got = reply[1].as<std::string>();
    });
    // w: reply (got is set unless BLPOP timed out), woken (stop.notify() was called) or timeout
    //! [dedicated]
    std::cout << "BLPOP -> " << got.value_or("(nil)") << (w == redkit::wait_status::reply ? " (a reply)" : "") << '\n';

    redis.command<void>("DEL", "inbox");
    redis.command<void>("RPUSH", "inbox", "hello");
    //! [dedicated_connection]
    // reopened after a failure; the reply is overdue at the block plus max(command_timeout, 1 s)
    redkit::dedicated_connection inbox(redis, "inbox");  // on a cluster: the owner of "inbox"'s slot
    const std::optional<redkit::reply> popped = inbox.blocking(stop, std::chrono::seconds(2), "BLPOP", "inbox", 2);
    // popped: the reply (nil when BLPOP timed out), or nullopt once stop.notify() ended the wait
    //! [dedicated_connection]
    if (popped && !popped->is_nil()) std::cout << "popped: " << (*popped)[1].text() << '\n';
    return 0;
} catch (const std::exception& e) {
    std::cerr << "commands snippets failed: " << e.what() << '\n';
    return 1;
}
