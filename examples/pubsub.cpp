// SPDX-License-Identifier: MIT
// Pub/sub: order status changes published as JSON and fanned out to handlers, plus the durable
// alternative (a Stream with a consumer group) for events that must not be lost.
#include <redkit/redkit.hpp>

#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

namespace shop {
struct order_status {
    std::string order_id;
    std::string status;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_status, order_id, status)
}  // namespace shop

int main() try {
    using namespace std::chrono_literals;
    redkit::client redis = redkit::default_client();
    const redkit::key_space keys("example:pubsub");
    const std::string channel = keys.key("orders", "updates");

    // Handlers run on the subscriber's thread; collect their output and print it from here.
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<std::string> lines;
    const auto arrived = [&](std::string line) {
        std::lock_guard<std::mutex> lock(mutex);
        lines.push_back(std::move(line));
        cv.notify_all();
    };

    // Two handlers on one subscriber: a typed one per channel, a raw one per pattern.
    redkit::subscriber sub(redis);
    sub.on<shop::order_status>(channel, [&](const shop::order_status& o) {
        arrived("websocket fan-out: order " + o.order_id + " is now " + o.status);
    });
    sub.on_pattern_raw(keys.key("orders") + ":*", [&](const redkit::message& m) {
        arrived("audit log: " + std::string(m.channel) + " <- " + std::string(m.payload));
    });
    if (!sub.wait_subscribed(5s)) throw std::runtime_error("subscription not confirmed");

    redkit::publisher pub(redis);
    const long long receivers = pub.publish(channel, shop::order_status{"ord_7f3a9c2e", "shipped"});
    std::cout << "published to " << receivers << " subscription(s)\n";
    {
        std::unique_lock<std::mutex> lock(mutex);
        if (!cv.wait_for(lock, 5s, [&] { return lines.size() >= 2; }))
            throw std::runtime_error("messages did not arrive");
        for (const auto& line : lines) std::cout << line << '\n';
    }

    // Durable: the same event through a stream survives a consumer that is down when it is sent.
    const std::string stream_key = keys.key("orders", "events");
    redis.command<void>("DEL", stream_key);
    redkit::stream<shop::order_status> events(redis, stream_key, 10000);
    events.create_group("billing", "0");
    events.add(shop::order_status{"ord_7f3a9c2e", "delivered"});
    redkit::stream_consumer_options options;
    options.block = 100ms;
    redkit::stream_consumer<shop::order_status> billing(
        redis, stream_key, "billing", "billing-1",
        [](const shop::order_status& o, const redkit::stream_entry& e) {
            std::cout << "billing (stream entry " << (e.id.empty() ? "?" : "ok") << "): order " << o.order_id << " "
                      << o.status << '\n';
        },
        options);
    const std::size_t handled = billing.poll_once();
    std::cout << "stream consumer handled " << handled << " event(s)\n";
    redis.command<void>("DEL", stream_key);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "pubsub example failed: " << e.what() << '\n';
    return 1;
}
