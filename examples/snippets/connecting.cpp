// SPDX-License-Identifier: MIT
// The code of the docs' "Connecting", "Many threads, one connection" and "Production" pages:
// each `//! [name]` pair marks a snippet a page shows. Run as a test against REDIS_URL.
#include <redkit/redkit.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

// Production set-ups: compiled (so the pages' code compiles), never called (they name servers
// this test does not have).
void connect_with_tls() {
    //! [tls]
    redkit::client redis(
        "rediss://app:secret@cache.internal:6380"
        "?tls_ca_file=/etc/ssl/redis-ca.pem&tls_cert=/etc/app.crt&tls_key=/etc/app.key");
    redkit::client_options o = redkit::parse_url("rediss://cache.internal:6380");
    o.tls.server_name = "redis.example";  // SNI, and the name the certificate must carry
    //! [tls]
}

void connect_through_sentinel() {
    //! [sentinel]
    redkit::client redis(
        "redis+sentinel://app:secret@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3/orders"
        "?sentinel_password=watcher-pw");  // app:secret logs in to the primary
    //! [sentinel]
}

void connect_to_cluster() {
    //! [cluster]
    redkit::client redis("redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000?timeout=500ms");
    //! [cluster]
}

int main() try {
    const char* env = std::getenv("REDIS_URL");
    const std::string url = env ? env : "redis://127.0.0.1:6379";

    //! [client_options]
    redkit::client_options o = redkit::parse_url(url);
    o.pool_size = 16;
    o.on_error = [](const redkit::error& e) { std::cerr << "redis: " << e.what() << '\n'; };
    redkit::client redis(o);
    const bool ready = redis.is_reachable();  // a readiness probe: never throws
    //! [client_options]

    //! [idempotent]
    redis.command<void>(redkit::idempotent, "SET", "user:42:name", "Ada");  // may be retried
    //! [idempotent]

    std::vector<std::string> ids;
    for (int i = 1; i <= 16; ++i) {
        ids.push_back(std::to_string(i));
        redis.command<void>("SET", "product:" + ids.back(), "product " + ids.back());
    }
    //! [submit]
    // from any number of threads at once: their commands share one connection
    std::optional<std::string> name = redis.command<std::optional<std::string>>("GET", "user:42:name");

    // one thread, many commands in flight: redkit::future, like std::future
    std::vector<redkit::future<std::string>> pending;
    for (const auto& id : ids) pending.push_back(redis.submit<std::string>("GET", "product:" + id));
    for (auto& f : pending) std::cout << f.get() << '\n';  // 16 GETs cost about one round trip
    //! [submit]
    std::cout << "name: " << name.value_or("(nil)") << ", ready: " << ready << '\n';
    return 0;
} catch (const std::exception& e) {
    std::cerr << "connecting snippets failed: " << e.what() << '\n';
    return 1;
}
