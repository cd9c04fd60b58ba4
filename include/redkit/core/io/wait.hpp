// SPDX-License-Identifier: MIT
// Waiting on a socket with a deadline that another thread can cut short: poll() on the socket
// plus an eventfd that stop requests (and other wake-ups) write to. Linux.
#pragma once

#include <redkit/error.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace redkit {
inline namespace v0 {
namespace detail {

/// A wake-up flag another thread can raise; wait_readable() returns at once when it is up.
class notifier {
public:
    notifier() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
        if (fd_ < 0) throw error(errc::io_error, "redkit: eventfd failed: errno " + std::to_string(errno));
    }
    ~notifier() { ::close(fd_); }
    notifier(const notifier&) = delete;
    notifier& operator=(const notifier&) = delete;

    /// Wakes the waiter (async-signal-safe, thread-safe).
    void notify() noexcept {
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(fd_, &one, sizeof one);
    }
    /// Clears pending wake-ups.
    void drain() noexcept {
        std::uint64_t value = 0;
        [[maybe_unused]] const auto n = ::read(fd_, &value, sizeof value);
    }
    int fd() const noexcept { return fd_; }

private:
    int fd_;
};

enum class wait_result { readable, woken, timeout };

/// Waits until `fd` is readable (or hung up), the notifier is raised, or the timeout passes.
/// A negative fd waits on the notifier alone (a sleep that can be cut short).
inline wait_result wait_readable(int fd, const notifier& wake, std::chrono::milliseconds timeout) {
    pollfd fds[2]{};
    fds[0].fd = wake.fd();
    fds[0].events = POLLIN;
    fds[1].fd = fd;
    fds[1].events = POLLIN;
    const nfds_t count = fd >= 0 ? 2 : 1;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        const int ms = left.count() < 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
        const int n = ::poll(fds, count, ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw error(errc::io_error, "redkit: poll failed: errno " + std::to_string(errno));
        }
        if (n == 0) return wait_result::timeout;
        if (fds[0].revents != 0) return wait_result::woken;
        return wait_result::readable;
    }
}

}  // namespace detail
}  // namespace v0
}  // namespace redkit
