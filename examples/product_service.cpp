// SPDX-License-Identifier: MIT
// A small HTTP service on Asio, on one thread, that never blocks it: GET /products/<id> answers
// from the cache (on a miss, an awaitable loader asks the "database", which answers through a
// callback), behind a rate limit per client (X-Client-Id, else the peer's address).
//
//   example_product_service            starts on a free loopback port, sends itself requests,
//                                      prints what came back, and exits (what the demo runs)
//   example_product_service --serve 8080
//                                      keeps serving: curl -i http://127.0.0.1:8080/products/1
//
// C++20 and standalone Asio (libasio-dev); REDIS_URL as for every example.
#include <redkit/asio.hpp>
#include <redkit/redkit.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <asio.hpp>

using namespace std::chrono_literals;

namespace {

struct product {
    std::string id;
    std::string name;
    double price = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(product, id, name, price)

// The database: answers 20 ms later, through a callback on the io_context, as an asynchronous
// database client would. A redkit::promise turns that callback into the loader's future.
class catalogue {
public:
    explicit catalogue(asio::any_io_executor ex) : ex_(std::move(ex)) {}

    redkit::future<std::optional<product>> find(std::string id) {
        ++queries;
        redkit::promise<std::optional<product>> p;
        redkit::future<std::optional<product>> found = p.get_future();
        auto timer = std::make_shared<asio::steady_timer>(ex_, 20ms);
        timer->async_wait([timer, p = std::move(p), id = std::move(id)](std::error_code) mutable {
            if (id == "1") {
                p.set_value(product{id, "Desk lamp", 24.5});
            } else if (id == "2") {
                p.set_value(product{id, "Office chair", 349.0});
            } else {
                p.set_value(std::nullopt);  // no such product: cached as absent (negative_ttl)
            }
        });
        return found;
    }

    std::atomic<int> queries{0};

private:
    asio::any_io_executor ex_;
};

std::string response(int status, const char* reason, const std::vector<redkit::http_header>& headers,
                     const std::string& body) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
    for (const auto& h : headers) out += h.name + ": " + h.value + "\r\n";
    out += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
    return out;
}

class service {
public:
    service(redkit::client redis, asio::any_io_executor ex)
        : limiter_(redkit::rate_limiter::fixed_window(redis, "product-api", 10, 1min)),
          products_(redis, cache_options()),
          db_(std::move(ex)) {}

    // One request's answer; never blocks the loop: every wait is a co_await.
    asio::awaitable<std::string> answer(const std::string& method, const std::string& path, const std::string& client) {
        if (method != "GET") co_return response(405, "Method Not Allowed", {}, R"({"error":"GET only"})");
        const std::string prefix = "/products/";
        const std::string id = path.compare(0, prefix.size(), prefix) == 0 ? path.substr(prefix.size()) : "";
        if (id.empty() || id.size() > 32 ||
            id.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyz-") != std::string::npos) {
            co_return response(404, "Not Found", {}, R"({"error":"no such route"})");
        }
        try {
            //! [service]
            const redkit::rate_limit_result allowed =
                co_await redkit::async_get(limiter_.async_hit(client), asio::use_awaitable);
            const std::vector<redkit::http_header> headers = limiter_.headers(allowed);
            if (!allowed) co_return response(429, "Too Many Requests", headers, R"({"error":"slow down"})");

            auto loader = [this, id] { return db_.find(id); };  // awaitable: a redkit::future
            redkit::future<std::optional<product>> cached =
                products_.async_get_or_set("product:" + id, std::move(loader), 10min);
            const std::optional<product> p = co_await redkit::async_get(std::move(cached), asio::use_awaitable);
            //! [service]
            if (!p) co_return response(404, "Not Found", headers, R"({"error":"no such product"})");
            co_return response(200, "OK", headers, nlohmann::json(*p).dump());
        } catch (const redkit::error& e) {  // Redis failed (the limiter fails open by default)
            co_return response(503, "Service Unavailable", {}, nlohmann::json{{"error", e.what()}}.dump());
        }
    }

    int database_queries() const noexcept { return db_.queries.load(); }
    void forget(const std::vector<std::string>& clients, const std::vector<std::string>& ids) {
        for (const auto& c : clients) (void)limiter_.reset(c);
        for (const auto& id : ids) (void)products_.invalidate("product:" + id);
    }

private:
    static redkit::cache_options cache_options() {
        redkit::cache_options o;
        o.keys = redkit::key_space("example:service");
        o.negative_ttl = 30s;
        return o;
    }

    redkit::rate_limiter limiter_;
    redkit::cache products_;
    catalogue db_;
};

asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket, service& svc) {
    try {
        std::string request;
        co_await asio::async_read_until(socket, asio::dynamic_buffer(request, 16 * 1024), "\r\n\r\n",
                                        asio::use_awaitable);
        const std::string line = request.substr(0, request.find("\r\n"));
        const auto sp1 = line.find(' ');
        const auto sp2 = line.find(' ', sp1 + 1);
        std::string client = socket.remote_endpoint().address().to_string();
        if (const auto at = request.find("\r\nX-Client-Id: "); at != std::string::npos) {
            const auto from = at + 15;
            client = request.substr(from, request.find("\r\n", from) - from);
        }
        std::string reply;
        if (sp1 == std::string::npos || sp2 == std::string::npos) {
            reply = response(400, "Bad Request", {}, R"({"error":"bad request line"})");
        } else {
            // named, not temporaries in the co_await expression (GCC 12 frees those twice)
            const std::string method = line.substr(0, sp1);
            const std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
            reply = co_await svc.answer(method, path, client);
        }
        co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
        std::error_code ignored;
        socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    } catch (const std::exception&) {
        // the peer went away, or sent more than 16 KiB of headers: drop the connection
    }
}

asio::awaitable<void> listen(asio::ip::tcp::acceptor& acceptor, service& svc) {
    for (;;) {
        asio::ip::tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        asio::co_spawn(acceptor.get_executor(), serve_connection(std::move(socket), svc), asio::detached);
    }
}

// ---- the self-test: a client on the same io_context ----

struct http_reply {
    int status = 0;
    std::string retry_after;
    std::string body;
};

asio::awaitable<http_reply> fetch(unsigned short port, const std::string& path, const std::string& client) {
    asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
    co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
    const std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Client-Id: " + client + "\r\nConnection: close\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
    std::string all;
    std::error_code ec;
    co_await asio::async_read(socket, asio::dynamic_buffer(all), asio::redirect_error(asio::use_awaitable, ec));
    http_reply r;
    if (all.size() > 12) r.status = std::atoi(all.c_str() + 9);
    if (const auto at = all.find("\r\nRetry-After: "); at != std::string::npos) {
        r.retry_after = all.substr(at + 15, all.find("\r\n", at + 15) - at - 15);
    }
    if (const auto at = all.find("\r\n\r\n"); at != std::string::npos) r.body = all.substr(at + 4);
    co_return r;
}

asio::awaitable<void> self_test(unsigned short port, service& svc, bool& ok) {
    std::vector<std::string> clients{"alice", "bob"};
    for (int i = 0; i < 20; ++i) clients.push_back("visitor-" + std::to_string(i));
    svc.forget(clients, {"1", "2", "404"});

    const http_reply first = co_await fetch(port, "/products/1", "alice");
    std::cout << "GET /products/1 -> " << first.status << " " << first.body
              << " (database queries: " << svc.database_queries() << ")\n";
    const http_reply again = co_await fetch(port, "/products/1", "alice");
    std::cout << "GET /products/1 again -> " << again.status
              << ", from the cache (database queries: " << svc.database_queries() << ")\n";

    // 20 visitors at once, on a product nobody asked for yet: one database query
    std::vector<http_reply> replies(20);
    const auto one = [&](int i) -> asio::awaitable<void> {
        replies[static_cast<std::size_t>(i)] = co_await fetch(port, "/products/2", "visitor-" + std::to_string(i));
    };
    auto ex = co_await asio::this_coro::executor;
    std::atomic<int> pending{20};
    asio::steady_timer all_in(ex, std::chrono::steady_clock::time_point::max());
    for (int i = 0; i < 20; ++i) {
        asio::co_spawn(ex, one(i), [&](std::exception_ptr) {
            if (--pending == 0) all_in.cancel();
        });
    }
    std::error_code waited;
    co_await all_in.async_wait(asio::redirect_error(asio::use_awaitable, waited));
    int ok_count = 0;
    for (const auto& r : replies) ok_count += r.status == 200 ? 1 : 0;
    std::cout << "20 visitors at once on /products/2 -> " << ok_count
              << " x 200 (database queries: " << svc.database_queries() << ")\n";

    const http_reply missing = co_await fetch(port, "/products/404", "alice");
    const http_reply missing_again = co_await fetch(port, "/products/404", "alice");
    std::cout << "GET /products/404 twice -> " << missing.status << ", " << missing_again.status
              << " (database queries: " << svc.database_queries() << ")\n";

    int allowed = 0;
    http_reply denied;
    for (int i = 0; i < 12; ++i) {
        const http_reply r = co_await fetch(port, "/products/1", "bob");
        if (r.status == 200) ++allowed;
        if (r.status == 429) denied = r;
    }
    std::cout << "bob, 12 requests -> " << allowed << " x 200, then " << denied.status
              << " Too Many Requests, Retry-After: " << denied.retry_after << "\n";
    ok = first.status == 200 && again.status == 200 && ok_count == 20 && missing.status == 404 &&
         missing_again.status == 404 && allowed == 10 && denied.status == 429 && svc.database_queries() == 3;
}

}  // namespace

int main(int argc, char** argv) try {
    const char* env = std::getenv("REDIS_URL");
    redkit::client redis(env ? env : "redis://127.0.0.1:6379");
    const bool serve = argc > 1 && std::string(argv[1]) == "--serve";
    const auto port = static_cast<unsigned short>(serve && argc > 2 ? std::atoi(argv[2]) : 0);

    asio::io_context ctx;  // the one thread: everything below runs on it
    service svc(redis, ctx.get_executor());
    asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), port});
    const unsigned short bound = acceptor.local_endpoint().port();
    asio::co_spawn(ctx, listen(acceptor, svc), asio::detached);
    std::cout << "product service on http://127.0.0.1:" << bound << "/products/<id>\n";
    if (serve) {
        asio::signal_set stop(ctx, SIGINT, SIGTERM);
        stop.async_wait([&](std::error_code, int) { ctx.stop(); });
        ctx.run();
        return 0;
    }
    bool ok = false;
    asio::co_spawn(ctx, self_test(bound, svc, ok), [&](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                std::cout << "self-test failed: " << x.what() << '\n';
            }
        }
        ctx.stop();
    });
    ctx.run();
    std::cout << "product service: " << (ok ? "all answers as expected" : "UNEXPECTED ANSWERS") << '\n';
    return ok ? 0 : 1;
} catch (const std::exception& e) {
    std::cerr << "product service failed: " << e.what() << '\n';
    return 1;
}
