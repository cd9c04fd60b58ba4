// SPDX-License-Identifier: MIT
// pubsub: end-to-end messages/s, publish to handler. The payload is bench/fixtures/order.json,
// decoded into a struct by the handler. Publishers pipeline PUBLISH in batches of 100; the
// subscriber runs on its own connection and thread. Baseline: a raw hiredis subscriber thread
// (SUBSCRIBE, redisGetReply loop, nlohmann decode) and a raw hiredis publisher.
#include <redkit/pubsub.hpp>

#include "bench.hpp"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace bench_order {
struct order {
    std::string orderId, customerId, status;
    double total = 0;
    std::string currency, carrier, trackingNumber, updatedAt;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order, orderId, customerId, status, total, currency, carrier, trackingNumber,
                                   updatedAt)
}  // namespace bench_order

namespace redkit_bench {
namespace {

constexpr int batch = 100;

// Counts deliveries and wakes the publisher when a target is reached.
struct counter {
    std::mutex mutex;
    std::condition_variable cv;
    long long count = 0;
    long long target = -1;
    void hit() {
        std::lock_guard<std::mutex> lock(mutex);
        if (++count == target) cv.notify_all();
    }
    void reset(long long t) {
        std::lock_guard<std::mutex> lock(mutex);
        count = 0;
        target = t;
    }
    void wait() {
        std::unique_lock<std::mutex> lock(mutex);
        if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return count >= target; })) {
            throw std::runtime_error("pubsub bench: messages lost (" + std::to_string(count) + "/" +
                                     std::to_string(target) + ")");
        }
    }
};

struct pubsub_state {
    std::string payload;
    counter raw_count, rk_count;
    redisContext* raw_pub = nullptr;
    redisContext* raw_sub = nullptr;
    std::thread raw_thread;
    std::unique_ptr<redkit::client> rk;
    std::unique_ptr<redkit::subscriber> rk_sub;
    ~pubsub_state() {
        if (raw_pub) {
            // stop the raw subscriber thread with a sentinel message
            redisReply* r = raw_command(raw_pub, {"PUBLISH", "bench:pubsub:raw", "__stop__"});
            freeReplyObject(r);
        }
        if (raw_thread.joinable()) raw_thread.join();
        if (raw_sub) redisFree(raw_sub);
        if (raw_pub) redisFree(raw_pub);
        rk_sub.reset();
    }
};

void add_pubsub(context& ctx, std::vector<workload>& out) {
    auto st = std::make_shared<pubsub_state>();
    st->payload = read_file(ctx.fixtures_dir + "/order.json");
    st->raw_pub = raw_connect(ctx.base);
    st->raw_sub = raw_connect(ctx.base);
    redisSetTimeout(st->raw_sub, timeval{0, 0});
    freeReplyObject(raw_command(st->raw_sub, {"SUBSCRIBE", "bench:pubsub:raw"}));
    pubsub_state* raw_state = st.get();
    st->raw_thread = std::thread([raw_state] {
        for (;;) {
            void* r = nullptr;
            if (redisGetReply(raw_state->raw_sub, &r) != REDIS_OK) return;
            auto* reply = static_cast<redisReply*>(r);
            if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3) {
                const redisReply* p = reply->element[2];
                const std::string_view bytes(p->str, p->len);
                if (bytes == "__stop__") {
                    freeReplyObject(reply);
                    return;
                }
                const auto o = nlohmann::json::parse(bytes.begin(), bytes.end()).get<bench_order::order>();
                sink = sink + o.orderId.size();
                raw_state->raw_count.hit();
            }
            freeReplyObject(reply);
        }
    });

    st->rk = std::make_unique<redkit::client>(ctx.base);
    st->rk_sub = std::make_unique<redkit::subscriber>(*st->rk);
    pubsub_state* rk_state = st.get();
    st->rk_sub->on<bench_order::order>("bench:pubsub:redkit", [rk_state](const bench_order::order& o) {
        sink = sink + o.orderId.size();
        rk_state->rk_count.hit();
    });
    if (!st->rk_sub->wait_subscribed(std::chrono::seconds(5)))
        throw std::runtime_error("pubsub bench: subscribe failed");

    out.push_back({"pubsub",
                   2000 * ctx.scale,
                   {{"hiredis",
                     [st](long long n) {
                         st->raw_count.reset(n);
                         const std::string channel = "bench:pubsub:raw";
                         for (long long done = 0; done < n; done += batch) {
                             const long long k = std::min<long long>(batch, n - done);
                             for (long long i = 0; i < k; ++i) {
                                 const char* av[] = {"PUBLISH", channel.c_str(), st->payload.c_str()};
                                 const size_t lens[] = {7, channel.size(), st->payload.size()};
                                 redisAppendCommandArgv(st->raw_pub, 3, av, lens);
                             }
                             for (long long i = 0; i < k; ++i) {
                                 void* r = nullptr;
                                 if (redisGetReply(st->raw_pub, &r) != REDIS_OK)
                                     throw std::runtime_error("raw publish failed");
                                 freeReplyObject(r);
                             }
                         }
                         st->raw_count.wait();
                     }},
                    {"redkit", [st](long long n) {
                         st->rk_count.reset(n);
                         for (long long done = 0; done < n; done += batch) {
                             const long long k = std::min<long long>(batch, n - done);
                             redkit::pipeline p(*st->rk);
                             for (long long i = 0; i < k; ++i) p.command("PUBLISH", "bench:pubsub:redkit", st->payload);
                             p.exec();
                         }
                         st->rk_count.wait();
                     }}}});
}

const registrar reg(40, "pubsub", &add_pubsub);

}  // namespace
}  // namespace redkit_bench
