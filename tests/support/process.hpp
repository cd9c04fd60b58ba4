// SPDX-License-Identifier: MIT
// Test harness: a free TCP port on loopback for a server to listen on, which server binary to
// start, the TLS certificates, and starting and stopping the server processes (redis_server.hpp,
// redis_cluster.hpp).
#pragma once

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace redkit_test {

/// Binds a TCP socket to 127.0.0.1:port (0: a port the kernel picks) with SO_REUSEADDR, as
/// redis-server binds, and closes it: the port it got, or -1 if the bind failed.
inline int bind_loopback_once(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    socklen_t len = sizeof addr;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    ::close(fd);
    return ok ? ntohs(addr.sin_port) : -1;
}

/// A free TCP port on loopback for a server to listen on. It is taken below the kernel's
/// ephemeral range (net.ipv4.ip_local_port_range), where no outgoing connection (of the tests,
/// the servers, a cluster's bus) can take it between this pick and the server's bind, or while a
/// test has the server stopped before a restart on the same port: a port from bind(0) could, and
/// a cluster node then failed to start. Each port is handed out once per process.
inline int free_loopback_port() {
    static std::mutex mutex;
    static std::set<int> handed_out;
    static std::mt19937 random(static_cast<std::uint32_t>(::getpid()) ^
                               static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
    static const int ephemeral_low = [] {
        int low = 32768;  // Linux's default
        if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
            int read_low = 0;
            if (std::fscanf(f, "%d", &read_low) == 1 && read_low > 0) low = read_low;
            std::fclose(f);
        }
        return low;
    }();
    constexpr int first = 10000;
    const std::lock_guard<std::mutex> lock(mutex);
    if (ephemeral_low - first >= 1000) {
        std::uniform_int_distribution<int> pick(first, ephemeral_low - 1);
        for (int attempt = 0; attempt < 1000; ++attempt) {
            const int port = pick(random);
            if (handed_out.count(port) == 0 && bind_loopback_once(port) == port) {
                handed_out.insert(port);
                return port;
            }
        }
    }
    // no room below the ephemeral range: let the kernel choose
    const int port = bind_loopback_once(0);
    if (port < 0) throw std::runtime_error("bind() on loopback failed");
    handed_out.insert(port);
    return port;
}

/// A server process that exited before it answered (most likely: a port of it was taken after
/// free_loopback_port() picked it).
struct start_failed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Calls `start()`; when it throws start_failed, `fresh_ports()` and again, three tries in all.
/// Only for a first start: a restart must keep the ports its clients and peers know.
template <class Start, class FreshPorts>
void start_on_free_ports(Start start, FreshPorts fresh_ports) {
    for (int attempt = 1;; ++attempt) {
        try {
            start();
            return;
        } catch (const start_failed&) {
            if (attempt == 3) throw;
            fresh_ports();
        }
    }
}

/// Whether REDKIT_TEST_TLS=1: the harness's servers and clusters then serve TLS.
inline bool tls_from_environment() {
    const char* env = std::getenv("REDKIT_TEST_TLS");
    return env && std::string(env) == "1";
}

/// Makes the TLS tests' certificates in `dir` (support/make-test-certs, with the openssl tool).
inline void make_test_certs(const std::string& dir) {
    const std::string cmd = std::string("'") + REDKIT_TEST_SUPPORT_DIR + "/make-test-certs' '" + dir + "'";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make-test-certs failed for " + dir);
}

/// The server binary the harness starts (redis_server.hpp, redis_cluster.hpp, sentinels):
///   REDKIT_TEST_REDIS_SERVER  a path or a name on PATH, as given;
///   REDKIT_TEST_SERVER        a server of the test matrix: valkey-8.1 or redis-8.0 (unpacked from
///                             Debian trixie by scripts/fetch-servers into .deps/servers), or system;
///   neither, or system        Debian's redis-server from PATH.
/// Throws, naming the script to run, when the matrix server asked for was not fetched.
inline std::string server_binary() {
    if (const char* bin = std::getenv("REDKIT_TEST_REDIS_SERVER"); bin && *bin) return bin;
    const char* name = std::getenv("REDKIT_TEST_SERVER");
    const std::string n = name ? name : "";
    if (n.empty() || n == "system") return "redis-server";
    std::string server;
    if (n == "valkey-8.1") {
        server = "valkey-server";
    } else if (n == "redis-8.0") {
        server = "redis-server";
    } else {
        throw std::runtime_error("REDKIT_TEST_SERVER=" + n +
                                 ": not a server of the matrix (valkey-8.1, redis-8.0, system)");
    }
    const std::string path = std::string(REDKIT_TEST_SERVERS_DIR) + "/" + n + "/bin/" + server;
    if (::access(path.c_str(), X_OK) != 0) {
        throw std::runtime_error("REDKIT_TEST_SERVER=" + n + ": " + path + " not found; run scripts/fetch-servers " +
                                 n);
    }
    return path;
}

/// fork + exec of `args` (args[0] from PATH); the child dies with this process.
inline pid_t spawn(std::vector<std::string> args) {
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test binary
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execvp(argv[0], argv.data());
        std::fprintf(stderr, "redkit tests: cannot exec %s: %s\n", argv[0], std::strerror(errno));
        ::_exit(127);
    }
    return pid;
}

/// Sends `sig` (after SIGCONT: a stopped process cannot act on SIGTERM) and reaps the process;
/// SIGKILL if it has not exited within 5 s. Sets pid to -1.
inline void stop_process(pid_t& pid, int sig) {
    if (pid <= 0) return;
    ::kill(pid, SIGCONT);
    ::kill(pid, sig);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid = -1;
}

}  // namespace redkit_test
