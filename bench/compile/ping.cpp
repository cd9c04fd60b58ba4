// Compile-time probe: the smallest program, one PING through the client (scripts/compile-times).
#include <redkit/client.hpp>

int main() {
    redkit::client redis("redis://127.0.0.1:6379");
    redis.ping();
    return 0;
}
